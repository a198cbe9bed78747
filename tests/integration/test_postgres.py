"""The same data layer and one end-to-end request on the real PostgreSQL server (fresh database per run)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from temporalio.testing import WorkflowEnvironment

from activities.audit.engine import record
from activities.data.engine import run_task
from activities.plan.engine import task_id
from docket import db, ingest
from docket.catalog import load_catalog
from docket.contracts import AuditEvent, DataTask, Outcome, PeriodRef, RecordInput, RequestResult
from tests.conftest import DEMO, Stack, start_stack
from tests.support.oracle import LedgerOracle

pytestmark = [pytest.mark.postgres, pytest.mark.integration]
ORACLE = LedgerOracle(DEMO)


@pytest.fixture(scope="module")
def pg_engine(postgres_url: str) -> Engine:
    db.migrate(postgres_url)
    engine = db.make_engine(postgres_url)
    ingest.load_pack(engine, DEMO)
    return engine


@pytest.fixture(scope="module")
async def pg_stack(
    temporal_env: WorkflowEnvironment, postgres_url: str, pg_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    async for s in start_stack(temporal_env, postgres_url, pg_engine, tmp_path_factory.mktemp("pg")):
        yield s


def count(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(db.table_of(model))).scalar() or 0)


def test_loading_twice_changes_nothing(pg_engine: Engine) -> None:
    before = {m.__name__: count(pg_engine, m) for m in (db.LedgerBalance, db.Principal, db.Document, db.Entity)}
    report = ingest.load_pack(pg_engine, DEMO)
    after = {m.__name__: count(pg_engine, m) for m in (db.LedgerBalance, db.Principal, db.Document, db.Entity)}
    assert before == after
    assert report.rows["documents"] == 0
    assert after["LedgerBalance"] == len(ORACLE.balances)


def test_ledger_sums_match_the_oracle(pg_engine: Engine) -> None:
    catalog = load_catalog(pg_engine, "meridian")
    for entities, account, months in [
        (["MER-DE"], "5.2", ["2026-03"]),
        (ORACLE.entities_of("meridian"), "4", ["2026-10"]),
        (["MER-UK"], "4", ["2026-04", "2026-05", "2026-06"]),
    ]:
        t = DataTask(
            task_id="",
            metric="m",
            account=account,
            entity_label="x",
            entities=entities,
            period=PeriodRef(label="p", months=months),
        )
        result = run_task(pg_engine, catalog, t.model_copy(update={"task_id": task_id(t)}))
        expected = ORACLE.sum("meridian", entities, account, months)
        assert result.fact is not None and result.fact.value == expected.total
        assert [(m.entity, m.period) for m in result.missing] == list(expected.missing)


def test_record_is_idempotent(pg_engine: Engine) -> None:
    result = RequestResult(
        request_id="req-pg-idem",
        outcome=Outcome.ANSWERED,
        tenant="meridian",
        principal_id="alice",
        question="q",
        as_of=date(2026, 11, 21),
    )
    data = RecordInput(
        workflow_id="req-pg-idem",
        result=result,
        events=[
            AuditEvent(step=i, stage=s, actor="alice", decision="x")
            for i, s in enumerate(["classify", "record"], start=1)
        ],
    )
    first = record(pg_engine, data)
    second = record(pg_engine, data)
    assert (first.audit_rows_written, first.result_written) == (2, True)
    assert (second.audit_rows_written, second.result_written) == (0, False)


async def test_request_end_to_end_on_postgres(pg_stack: Stack, tmp_path: Path) -> None:
    resp = await pg_stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        headers=pg_stack.auth("alice"),
        json={"question": "What was revenue for MER-US last month?", "as_of": "2026-11-21"},
    )
    body = resp.json()
    assert body["outcome"] == "answered"
    assert body["facts"][0]["value"] == ORACLE.total("meridian", ["MER-US"], "4", ["2026-10"])
    denied = await pg_stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        headers=pg_stack.auth("erin"),
        json={"question": "What was revenue for MER-FR in October 2026?"},
    )
    assert denied.json()["authorization"]["policies"][0] == "POL-004"
    assert count(pg_stack.engine, db.AuditEventRow) >= 7
