"""bench/baselines.py: the worker's stage functions under plain asyncio, LangGraph and DBOS give Docket's answers.

Every pipeline asks the lookup and the scenario question of the demo pack over one fresh SQLite database; the
figures are checked against the CSV oracle (tests/support/oracle.py), the answers against B0's, and what each
durable baseline persisted is read back from its own SQLite file.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.exceptions import ApplicationError

from activities import names
from activities.classify.model import IntentModel
from activities.llm.engine import TemplateGenerator
from activities.retrieve.engine import DocumentIndex, sync_index
from bench.baselines import (
    KEYS,
    STAGES,
    DBOSPipeline,
    LangGraphPipeline,
    Pipeline,
    PlainPipeline,
    make_pipelines,
    time_pipeline,
)
from docket import ingest
from docket.contracts import LedgerQueryInput, LedgerQueryResult, Outcome, RequestResult
from docket.db import AuditEventRow, RequestRecord, table_of
from tests.support.oracle import DEMO_PACK, LedgerOracle, margin_pct
from tests.unit.conftest import migrated_engine
from worker.main import Components

LOOKUP = "What was revenue for MER-US last month?"
SCENARIO = "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?"
# Classified, then asked to name a period: two stages (classify, record).
SHORT = "What was revenue for MER-US?"
QUESTIONS = (LOOKUP, SCENARIO, SHORT)
CONCURRENT = 4
AS_OF = date(2026, 11, 21)


@dataclass
class Asked:
    results: dict[tuple[str, str], RequestResult]
    # Per pipeline: CONCURRENT lookups asked at once.
    concurrent: dict[str, list[RequestResult]]
    pipelines: dict[str, Pipeline]
    components: Components


@pytest.fixture(scope="module")
def components(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Components]:
    """The worker's components over a fresh demo database, as tests/conftest.py's stack builds them."""
    engine = migrated_engine(tmp_path_factory.mktemp("baselines-db"))
    ingest.load_pack(engine, DEMO_PACK)
    index = DocumentIndex.open()
    sync_index(engine, index)
    yield Components(engine=engine, index=index, generator=TemplateGenerator(), intent_model=IntentModel.load())
    index.close()
    engine.dispose()


@pytest.fixture(scope="module")
async def asked(components: Components, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Asked]:
    """Every baseline asked every question once, then stopped (its SQLite files stay for the tests to read)."""
    pipelines = make_pipelines(components, tmp_path_factory.mktemp("baselines"))
    results: dict[tuple[str, str], RequestResult] = {}
    concurrent: dict[str, list[RequestResult]] = {}
    try:
        for p in pipelines:
            await p.start()
            for q in QUESTIONS:
                results[(p.key, q)] = await p.ask(q, "alice", "meridian", AS_OF)
            concurrent[p.key] = list(await asyncio.gather(*(p.ask(LOOKUP) for _ in range(CONCURRENT))))
    finally:
        for p in pipelines:
            await p.stop()
    yield Asked(results, concurrent, {p.key: p for p in pipelines}, components)


def facts(result: RequestResult) -> dict[str, float | int]:
    return {f.label: f.value for f in result.facts}


def test_make_pipelines_names_and_keys(components: Components, tmp_path: Path) -> None:
    pipelines = make_pipelines(components, tmp_path)
    assert [p.key for p in pipelines] == list(KEYS)
    assert [p.name for p in pipelines] == [
        "B0 plain asyncio",
        "B1 LangGraph (sqlite, durability=sync)",
        "B1 LangGraph (sqlite, durability=async)",
        "B2 DBOS (sqlite)",
    ]
    assert [p.key for p in make_pipelines(components, tmp_path, ["b2", "b0"])] == ["b2", "b0"]
    with pytest.raises(ValueError, match="unknown baseline"):
        make_pipelines(components, tmp_path, ["b3"])


@pytest.mark.parametrize("key", KEYS)
def test_lookup_matches_the_oracle(asked: Asked, oracle: LedgerOracle, key: str) -> None:
    result = asked.results[(key, LOOKUP)]
    assert result.outcome == Outcome.ANSWERED, result.answer
    assert facts(result) == {"revenue MER-US 2026-10": oracle.total("meridian", ["MER-US"], "4", ["2026-10"])}
    assert result.request_id.startswith(f"{key}-")
    # Every stage's time, as RequestWorkflow reports it, and the total.
    assert set(result.timings) == {*STAGES, "total"}
    assert result.timings["total"] >= sum(result.timings[s] for s in STAGES) - len(STAGES)


@pytest.mark.parametrize("key", KEYS)
def test_scenario_runs_the_dag_and_matches_the_oracle(asked: Asked, oracle: LedgerOracle, key: str) -> None:
    result = asked.results[(key, SCENARIO)]
    assert result.outcome == Outcome.ANSWERED, result.answer
    revenue, cogs, materials = (oracle.total("meridian", ["MER-US"], a, ["2026-10"]) for a in ("4", "5.2", "5.2.1"))
    got = facts(result)
    assert got["gross margin pct MER-US 2026-10"] == margin_pct(revenue, cogs) == 60.0
    assert (
        got["scenario gross margin pct MER-US 2026-10"] == margin_pct(revenue, cogs + Fraction(materials, 10)) == 57.2
    )
    # The ledger sums the compute tasks rest on are facts too: the whole DAG ran.
    assert got["revenue MER-US 2026-10"] == revenue


@pytest.mark.parametrize("key", KEYS)
def test_early_exit_goes_straight_to_record(asked: Asked, key: str) -> None:
    result = asked.results[(key, SHORT)]
    assert result.outcome == Outcome.CLARIFICATION_REQUIRED
    assert any("period" in q.lower() for q in result.clarifying_questions)
    assert set(result.timings) == {"classify", "record", "total"}


@pytest.mark.parametrize("key", KEYS)
def test_concurrent_requests_are_separate_runs(asked: Asked, key: str) -> None:
    results = asked.concurrent[key]
    assert len({r.request_id for r in results}) == CONCURRENT
    assert all(r.outcome == Outcome.ANSWERED and r.facts == asked.results[(key, LOOKUP)].facts for r in results)
    p = asked.pipelines[key]
    if isinstance(p, LangGraphPipeline | DBOSPipeline):
        with sqlite3.connect(p.path) as conn:
            for r in results:
                if isinstance(p, LangGraphPipeline):
                    sql = "SELECT count(*) FROM checkpoints WHERE thread_id = ?"
                else:
                    sql = "SELECT count(*) FROM operation_outputs WHERE workflow_uuid = ?"
                (n,) = conn.execute(sql, (r.request_id,)).fetchone()
                assert n == (len(STAGES) + 2 if isinstance(p, LangGraphPipeline) else len(STAGES))


@pytest.mark.parametrize("key", KEYS[1:])
@pytest.mark.parametrize("question", QUESTIONS)
def test_every_baseline_answers_like_b0(asked: Asked, key: str, question: str) -> None:
    mine, floor = asked.results[(key, question)], asked.results[("b0", question)]
    assert mine.outcome == floor.outcome
    assert mine.answer == floor.answer
    assert mine.facts == floor.facts
    assert mine.citations == floor.citations
    assert mine.limitations == floor.limitations
    assert mine.confidence == floor.confidence


@pytest.mark.parametrize("key", KEYS)
def test_record_stage_wrote_the_result_and_one_audit_row_per_stage(asked: Asked, key: str) -> None:
    rid = asked.results[(key, LOOKUP)].request_id
    with asked.components.engine.connect() as conn:
        audit = table_of(AuditEventRow)
        stages = [
            r.stage
            for r in conn.execute(select(audit.c.stage).where(audit.c.workflow_id == rid).order_by(audit.c.step))
        ]
        records = table_of(RequestRecord)
        written = conn.execute(
            select(func.count()).select_from(records).where(records.c.workflow_id == rid)
        ).scalar_one()
    assert stages == list(STAGES)
    assert written == 1


@pytest.mark.parametrize("key", ["b1-sync", "b1-default"])
def test_langgraph_checkpoints_every_step_of_the_thread(asked: Asked, key: str) -> None:
    p = asked.pipelines[key]
    assert isinstance(p, LangGraphPipeline)
    with sqlite3.connect(p.path) as conn:
        for question, nodes in ((LOOKUP, len(STAGES)), (SCENARIO, len(STAGES)), (SHORT, 2)):
            rid = asked.results[(key, question)].request_id
            rows = conn.execute("SELECT metadata FROM checkpoints WHERE thread_id = ?", (rid,)).fetchall()
            steps = sorted(json.loads(m)["step"] for (m,) in rows)
            # The input (step -1), the input applied (0), then one checkpoint after each node that ran.
            assert steps == list(range(-1, nodes + 1)), (question, steps)


def test_dbos_records_the_workflow_and_one_row_per_step(asked: Asked) -> None:
    p = asked.pipelines["b2"]
    assert isinstance(p, DBOSPipeline)
    with sqlite3.connect(p.path) as conn:
        for question, stages in ((LOOKUP, STAGES), (SCENARIO, STAGES), (SHORT, ("classify", "record"))):
            rid = asked.results[("b2", question)].request_id
            status = conn.execute("SELECT status, name FROM workflow_status WHERE workflow_uuid = ?", (rid,)).fetchall()
            assert status == [("SUCCESS", "docket.request")]
            steps = conn.execute(
                "SELECT function_id, function_name FROM operation_outputs WHERE workflow_uuid = ? ORDER BY function_id",
                (rid,),
            ).fetchall()
            assert steps == [(i + 1, f"docket.{s}") for i, s in enumerate(stages)]


async def test_dbos_starts_again_after_stop_and_time_pipeline(
    asked: Asked, components: Components, tmp_path: Path
) -> None:
    # After the module's pipelines stopped: DBOS is created and launched again, and the loop's executor survives.
    b0, b2 = make_pipelines(components, tmp_path, ["b0", "b2"])
    await b2.start()
    try:
        result = await b2.ask(LOOKUP)
        assert result.outcome == Outcome.ANSWERED
        assert facts(result) == facts(asked.results[("b0", LOOKUP)])
        with pytest.raises(RuntimeError, match="already running"):
            await make_pipelines(components, tmp_path / "other", ["b2"])[0].start()
    finally:
        await b2.stop()
    times = await time_pipeline(b0, LOOKUP, 2)
    assert len(times) == 2 and all(t > 0 for t in times)


@pytest.mark.parametrize("key", ["b0", "b1-sync", "b2"])
async def test_a_failed_data_task_is_recorded_as_a_failed_request(
    asked: Asked, components: Components, tmp_path: Path, key: str
) -> None:
    async def broken(data: LedgerQueryInput) -> LedgerQueryResult:
        raise ApplicationError("ledger unavailable", non_retryable=True)

    (p,) = make_pipelines(components, tmp_path, [key])
    assert isinstance(p, PlainPipeline | LangGraphPipeline | DBOSPipeline)
    p.stages.acts.methods[names.LEDGER_QUERY] = broken
    await p.start()
    try:
        result = await p.ask(LOOKUP)
    finally:
        await p.stop()
    assert result.outcome == Outcome.FAILED
    assert result.answer == "The request failed while gathering data; nothing was answered."
    assert "failed: ledger unavailable" in result.limitations[0]
    assert set(result.timings) == {"classify", "authorize", "plan", "gather", "record", "total"}
    with components.engine.connect() as conn:
        audit = table_of(AuditEventRow)
        rows = conn.execute(
            select(audit.c.stage, audit.c.decision)
            .where(audit.c.workflow_id == result.request_id)
            .order_by(audit.c.step)
        ).all()
    assert [tuple(r) for r in rows][-2:] == [("gather", "failed"), ("record", "failed")]
