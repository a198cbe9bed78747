"""A tenant's ledger version, and the store of data-task results keyed by (tenant, task id, data version).

The version is a digest of what a data task reads: the chart of accounts (an account's subtree decides which
balances a sum adds) and every balance. Loading the same files again gives the same version, so results stored
under it stay valid; any change gives a new version, so no stored result of older data is ever served for it.
docs/planner.md, "Idempotent tasks", has the rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from docket.contracts import DataTask, LedgerQueryResult
from docket.db import Account, DataVersion, LedgerBalance, TaskResultRow, insert_ignore, table_of, upsert, utcnow
from docket.errors import DataChangedError


def ledger_digest(conn: Connection, tenant: str) -> str:
    """sha256 over the tenant's chart of accounts and balances, in key order: the same data, the same digest."""
    digest = hashlib.sha256(tenant.encode())
    acc = table_of(Account).c
    for code, parent in conn.execute(select(acc.code, acc.parent).where(acc.tenant == tenant).order_by(acc.code)):
        digest.update(f"A|{code}|{parent or ''}\n".encode())
    lb = table_of(LedgerBalance).c
    rows = conn.execute(
        select(lb.entity, lb.account, lb.period, lb.amount)
        .where(lb.tenant == tenant)
        .order_by(lb.entity, lb.account, lb.period)
    )
    for entity, account, period, amount in rows:
        digest.update(f"B|{entity}|{account}|{period}|{amount}\n".encode())
    return digest.hexdigest()[:16]


def refresh_data_version(conn: Connection, tenant: str) -> str:
    """Recompute the tenant's version from its data and store it; called in the transaction that changed it."""
    version = ledger_digest(conn, tenant)
    upsert(conn, DataVersion, [{"tenant": tenant, "version": version, "updated_at": utcnow()}])
    return version


def data_version(engine: Engine, tenant: str) -> str:
    """The tenant's current version; computed and stored the first time (data loaded before versions existed)."""
    dv = table_of(DataVersion).c
    with engine.connect() as conn:
        found = conn.execute(select(dv.version).where(dv.tenant == tenant)).scalar_one_or_none()
    if found is not None:
        return str(found)
    with engine.begin() as conn:
        return refresh_data_version(conn, tenant)


def _check(engine: Engine, tenant: str, version: str) -> None:
    current = data_version(engine, tenant)
    if current != version:
        raise DataChangedError(
            f"the ledger of {tenant} changed while the request ran (version {version} → {current})",
            hint="ask again: the new request is planned on the current data",
        )


def run_cached(
    engine: Engine,
    tenant: str,
    task: DataTask,
    version: str,
    compute: Callable[[], LedgerQueryResult],
    code: int = 1,
) -> LedgerQueryResult:
    """The task's stored result under (tenant, task id, version), or compute it and store it.

    A task pinned to a version that is no longer the tenant's fails for good: its figures would mix two states
    of the ledger. The version is checked before and again after computing (a load commits balances and version
    together), so a result computed while a load committed is never stored under the old version. `code` is the
    task code's version (activities/data/engine.py): results of older code are not served. Without a version
    (histories recorded before versions) the task is computed and not stored.
    """
    if not version:
        return compute()
    _check(engine, tenant, version)
    # The stored key: the ledger version and the code version ('<ledger>.c<code>').
    stored_as = f"{version}.c{code}"
    tr = table_of(TaskResultRow).c
    key = (tr.tenant == tenant, tr.task_id == task.task_id, tr.data_version == stored_as)
    with engine.begin() as conn:
        stored = conn.execute(select(tr.result).where(*key)).scalar_one_or_none()
        if stored is not None:
            conn.execute(update(table_of(TaskResultRow)).where(*key).values(reuses=tr.reuses + 1, updated_at=utcnow()))
            return LedgerQueryResult.model_validate_json(stored).model_copy(update={"reused": True})
    result = compute()
    _check(engine, tenant, version)
    row: dict[str, Any] = {
        "tenant": tenant,
        "task_id": task.task_id,
        "data_version": stored_as,
        "kind": task.kind,
        "result": result.model_dump_json(exclude={"reused"}),
        "computations": 1,
        "reuses": 0,
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }
    with engine.begin() as conn:
        if not insert_ignore(conn, TaskResultRow, [row], ["tenant", "task_id", "data_version"]):
            # Another run computed it at the same time: count this computation too, keep the first result.
            conn.execute(
                update(table_of(TaskResultRow))
                .where(*key)
                .values(computations=tr.computations + 1, updated_at=utcnow())
            )
    return result


def task_counts(engine: Engine, tenant: str) -> dict[str, tuple[int, int]]:
    """task id → (computations, reuses) for every stored result of the tenant: what tests and operators count."""
    tr = table_of(TaskResultRow).c
    with engine.connect() as conn:
        rows = conn.execute(select(tr.task_id, tr.computations, tr.reuses).where(tr.tenant == tenant)).all()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}
