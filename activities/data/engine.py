"""Ledger tasks: sums over (entity set, account subtree, months), with missing cells reported, never zeroed."""

from __future__ import annotations

from sqlalchemy import Engine, and_, func, select

from docket.catalog import Catalog
from docket.contracts import DataTask, Fact, LedgerQueryResult, MissingData
from docket.db import LedgerBalance, table_of
from docket.errors import InvalidTaskError

UNIT = "USD"


def run_task(engine: Engine, catalog: Catalog, task: DataTask) -> LedgerQueryResult:
    if task.account not in catalog.accounts:
        raise InvalidTaskError(f"task {task.task_id}: unknown account {task.account}")
    unknown = [e for e in task.entities if e not in catalog.entities]
    if unknown:
        raise InvalidTaskError(f"task {task.task_id}: unknown entities {unknown}")
    # Balances may be booked at any level of the chart; a figure is the whole subtree minus excluded subtrees.
    accounts = catalog.accounts_in(task.account, task.exclude_accounts)
    tenant = catalog.tenant
    lb = table_of(LedgerBalance).c
    scope = and_(lb.tenant == tenant, lb.entity.in_(task.entities), lb.period.in_(task.period.months))
    with engine.connect() as conn:
        # A cell (entity, month) counts as submitted when the entity booked anything in that month.
        submitted = {
            (row[0], row[1])
            for row in conn.execute(select(lb.entity, lb.period).where(scope).group_by(lb.entity, lb.period))
        }
        total, rows = conn.execute(
            select(func.coalesce(func.sum(lb.amount), 0), func.count()).where(scope, lb.account.in_(accounts))
        ).one()
    missing = [
        MissingData(entity=e, period=m) for e in task.entities for m in task.period.months if (e, m) not in submitted
    ]
    if len(missing) == len(task.entities) * len(task.period.months):
        return LedgerQueryResult(task_id=task.task_id, fact=None, rows=0, missing=missing)
    excl = f" excl. {', '.join(task.exclude_accounts)}" if task.exclude_accounts else ""
    source = (
        f"ledger {tenant}: sum of account {task.account}{excl} ({len(accounts)} accounts) over "
        f"{', '.join(task.entities) if len(task.entities) <= 3 else f'{len(task.entities)} entities'}, "
        f"{task.period.months[0]}..{task.period.months[-1]}; {int(rows)} rows"
    )
    fact = Fact(
        label=f"{task.metric} {task.entity_label} {task.period.label}",
        value=int(total),
        unit=UNIT,
        entity=task.entity_label,
        account=task.account,
        period=task.period.label,
        source=source,
    )
    return LedgerQueryResult(task_id=task.task_id, fact=fact, rows=int(rows), missing=missing)
