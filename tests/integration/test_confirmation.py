"""Human in the loop: an LLM-classified request waits for `confirm`, resumes after it, and times out honestly.

The LLM layer talks to a real OpenAI-compatible HTTP server (tests/support/stub_openai.py); thresholds are set
so that neither rules nor the trained model settle the question, which is how an ambiguous question behaves.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from sqlalchemy import Engine, select
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities import names
from activities.classify.hybrid import Thresholds
from activities.classify.llm import OpenAIClassifier
from activities.llm.engine import TemplateGenerator
from activities.retrieve.engine import DocumentIndex, sync_index
from api.main import create_app
from cli.replay import replay_history
from docket import tokens
from docket.db import AuditEventRow, table_of
from docket.settings import Settings
from tests.conftest import DEMO
from tests.support.history import activity_types, commit_history
from tests.support.oracle import LedgerOracle
from tests.support.stub_openai import Reply, StubOpenAI
from worker.main import Components, make_worker

pytestmark = pytest.mark.integration
ORACLE = LedgerOracle(DEMO)


@pytest.fixture(scope="module")
def stub() -> Iterator[StubOpenAI]:
    server = StubOpenAI().start()
    yield server
    server.stop()


class LLMStack:
    def __init__(self, http: httpx.AsyncClient, settings: Settings, engine: Engine, env: WorkflowEnvironment) -> None:
        self.http, self.settings, self.engine, self.env = http, settings, engine, env

    def auth(self, principal: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.mint(self.settings.jwt_secret, principal, 'meridian', 600)}"}

    async def ask(self, principal: str, question: str) -> dict[str, Any]:
        resp = await self.http.post(
            "/v1/requests", json={"question": question, "as_of": "2026-11-21"}, headers=self.auth(principal)
        )
        assert resp.status_code == 202, resp.text
        return dict(resp.json())

    async def until_stage(self, wid: str, principal: str, stage: str) -> dict[str, Any]:
        for _ in range(100):
            view = (await self.http.get(f"/v1/requests/{wid}", headers=self.auth(principal))).json()
            if view.get("stage") == stage:
                return dict(view)
            await asyncio.sleep(0.1)
        pytest.fail(f"{wid} never reached stage {stage}")

    async def result(self, wid: str, principal: str) -> dict[str, Any]:
        await self.env.client.get_workflow_handle(wid).result()
        return dict((await self.http.get(f"/v1/requests/{wid}", headers=self.auth(principal))).json())


async def confirm_stack(
    env: WorkflowEnvironment, sqlite_db: tuple[str, Engine], tmp: Path, **components: Any
) -> AsyncIterator[LLMStack]:
    """Worker + API on their own task queue, with a 3 s confirmation timeout to keep the timeout path short."""
    url, engine = sqlite_db
    task_queue = f"docket-confirm-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=task_queue, database_url=url, data_dir=tmp, confirm_timeout_seconds=3)
    index = DocumentIndex.open()
    sync_index(engine, index)
    parts = Components(engine=engine, index=index, generator=TemplateGenerator(), **components)
    app = create_app(settings, engine=engine, client=env.client)
    transport = httpx.ASGITransport(app=app)
    async with (
        make_worker(env.client, task_queue, parts.activities()),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://docket.test") as http,
    ):
        yield LLMStack(http, settings, engine, env)
    index.close()


@pytest.fixture(scope="module")
async def llm_stack(
    temporal_env: WorkflowEnvironment,
    sqlite_db: tuple[str, Engine],
    stub: StubOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[LLMStack]:
    llm = OpenAIClassifier(AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0), "stub-classifier")
    # Rules and model never settle: every question goes to the language model, as an ambiguous one would.
    async for s in confirm_stack(
        temporal_env, sqlite_db, tmp_path_factory.mktemp("c"), llm=llm, thresholds=Thresholds(rule=1.01, model=1.01)
    ):
        yield s


@pytest.fixture(scope="module")
async def pol002_stack(
    temporal_env: WorkflowEnvironment, sqlite_db: tuple[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LLMStack]:
    """Rules settle questions at 0.9: above the confirm threshold (0.8), below POL-002's 0.95 for consolidation."""
    async for s in confirm_stack(
        temporal_env, sqlite_db, tmp_path_factory.mktemp("p"), thresholds=Thresholds(rule=0.9)
    ):
        yield s


async def test_consolidation_of_an_uncertain_reading_waits_for_confirmation(pol002_stack: LLMStack) -> None:
    question = "What was total revenue for the group in October 2026?"
    wid = (await pol002_stack.ask("alice", question))["request_id"]
    waiting = await pol002_stack.until_stage(wid, "alice", "confirm")
    assert waiting["awaiting_confirmation"]["confidence"] <= 0.95
    ok = await pol002_stack.http.post(
        f"/v1/requests/{wid}/confirm", json={"accept": True}, headers=pol002_stack.auth("alice")
    )
    assert ok.status_code == 200, ok.text
    result = await pol002_stack.result(wid, "alice")
    assert result["outcome"] == "qualified"  # MER-BR 2026-10 is missing
    assert result["facts"][0]["value"] == ORACLE.sum("meridian", ORACLE.entities_of("meridian"), "4", ["2026-10"]).total
    stages = audit_stages(pol002_stack.engine, wid)
    assert (
        ("authorize", "denied") in stages and ("confirm", "accepted") in stages and ("authorize", "allowed") in stages
    )
    # Fused placement (the default): the first decision came from understand_request, the second and the plan
    # from their own activities once the person had confirmed.
    history = await pol002_stack.env.client.get_workflow_handle(wid).fetch_history()
    ran = activity_types(history)
    assert ran[:3] == [names.UNDERSTAND, names.AUTHORIZE, names.PLAN] and names.CLASSIFY not in ran, ran
    ok, message = await replay_history(history)
    assert ok, message
    commit_history(history, "placement-fused-pol002-confirmed")


async def test_consolidation_without_confirmation_is_a_clarification(pol002_stack: LLMStack) -> None:
    wid = (await pol002_stack.ask("alice", "What was total revenue for the group in October 2026?"))["request_id"]
    result = await pol002_stack.result(wid, "alice")
    assert result["outcome"] == "clarification_required"
    assert "POL-002" in result["answer"] and result["facts"] == []


async def test_an_analyst_still_may_not_consolidate(pol002_stack: LLMStack) -> None:
    wid = (await pol002_stack.ask("carol", "What was total revenue for the group in October 2026?"))["request_id"]
    result = await pol002_stack.result(wid, "carol")
    assert result["outcome"] == "denied" and "POL-002" in result["authorization"]["policies"]


def audit_stages(engine: Engine, wid: str) -> list[tuple[str, str]]:
    t = table_of(AuditEventRow)
    with engine.connect() as conn:
        return [(r.stage, r.decision) for r in conn.execute(select(t).where(t.c.workflow_id == wid).order_by(t.c.step))]


async def test_llm_classified_request_waits_and_resumes_after_confirm(llm_stack: LLMStack, stub: StubOpenAI) -> None:
    stub.reset()
    stub.reply_json({"intent": "metric_lookup", "complexity": "SIMPLE"})
    started = await llm_stack.ask("bob", "Show me COGS for MER-DE in March 2026")
    wid = started["request_id"]
    waiting = await llm_stack.until_stage(wid, "bob", "confirm")
    pending = waiting["awaiting_confirmation"]
    assert pending["method"] == "llm" and pending["intent"] == "metric_lookup"
    assert waiting["links"]["confirm"].endswith(f"/v1/requests/{wid}/confirm")
    # The question reached the model fenced as data.
    assert "<<<QUESTION" in json.dumps(stub.requests[-1]["body"])

    confirmed = await llm_stack.http.post(
        f"/v1/requests/{wid}/confirm", json={"accept": True}, headers=llm_stack.auth("bob")
    )
    assert confirmed.status_code == 200, confirmed.text
    result = await llm_stack.result(wid, "bob")
    assert result["outcome"] == "answered"
    assert result["facts"][0]["value"] == ORACLE.total("meridian", ["MER-DE"], "5.2", ["2026-03"])
    assert result["classification"]["confidence"] == 1.0
    assert ("confirm", "accepted") in audit_stages(llm_stack.engine, wid)
    history = await llm_stack.env.client.get_workflow_handle(wid).fetch_history()
    ok, message = await replay_history(history)
    assert ok, message
    # Under the fused placement the reading stopped understand_request before authorization.
    ran = activity_types(history)
    assert ran[:3] == [names.UNDERSTAND, names.AUTHORIZE, names.PLAN] and names.CLASSIFY not in ran, ran
    commit_history(history, "placement-fused-confirm-accepted")
    # A second confirmation is rejected by the validator and never reaches history.
    again = await llm_stack.http.post(
        f"/v1/requests/{wid}/confirm", json={"accept": True}, headers=llm_stack.auth("bob")
    )
    assert again.status_code == 409
    final = await llm_stack.env.client.get_workflow_handle(wid).fetch_history()
    accepted = [e for e in final.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED]
    assert len(accepted) == 1  # the rejected second confirmation left no trace in history


async def test_confirm_with_corrections_runs_the_corrected_request(llm_stack: LLMStack, stub: StubOpenAI) -> None:
    stub.reset()
    stub.reply_json({"intent": "metric_lookup", "complexity": "SIMPLE"})
    wid = (await llm_stack.ask("alice", "revenue for MER-US in March 2026"))["request_id"]
    await llm_stack.until_stage(wid, "alice", "confirm")
    bad = await llm_stack.http.post(
        f"/v1/requests/{wid}/confirm", json={"periods": ["March"]}, headers=llm_stack.auth("alice")
    )
    assert bad.status_code == 422 and bad.json()["type"].endswith("/invalid-confirmation")
    ok = await llm_stack.http.post(
        f"/v1/requests/{wid}/confirm",
        json={"entities": ["MER-CA"], "periods": ["2026-Q2"]},
        headers=llm_stack.auth("alice"),
    )
    assert ok.status_code == 200, ok.text
    result = await llm_stack.result(wid, "alice")
    months = ["2026-04", "2026-05", "2026-06"]
    assert result["facts"][0]["entity"] == "MER-CA" and result["facts"][0]["period"] == "2026-Q2"
    assert result["facts"][0]["value"] == ORACLE.total("meridian", ["MER-CA"], "4", months)
    assert ("confirm", "corrected") in audit_stages(llm_stack.engine, wid)


async def test_unconfirmed_request_times_out_as_clarification(llm_stack: LLMStack, stub: StubOpenAI) -> None:
    stub.reset()
    stub.reply_json({"intent": "comparison", "complexity": "MODERATE"})
    wid = (await llm_stack.ask("alice", "revenue MER-US and MER-CA March 2026"))["request_id"]
    result = await llm_stack.result(wid, "alice")
    assert result["outcome"] == "clarification_required"
    assert result["facts"] == []
    assert any("MER-US" in q for q in result["clarifying_questions"])
    assert "language model" in result["answer"]
    assert ("confirm", "timeout") in audit_stages(llm_stack.engine, wid)


async def test_rejected_reading_ends_as_clarification(llm_stack: LLMStack, stub: StubOpenAI) -> None:
    stub.reset()
    stub.reply_json({"intent": "trend", "complexity": "COMPLEX"})
    wid = (await llm_stack.ask("alice", "revenue for MER-US in March 2026"))["request_id"]
    await llm_stack.until_stage(wid, "alice", "confirm")
    await llm_stack.http.post(f"/v1/requests/{wid}/confirm", json={"accept": False}, headers=llm_stack.auth("alice"))
    result = await llm_stack.result(wid, "alice")
    assert result["outcome"] == "clarification_required"
    assert ("confirm", "rejected") in audit_stages(llm_stack.engine, wid)


async def test_invalid_llm_reply_is_repaired_then_falls_back(llm_stack: LLMStack, stub: StubOpenAI) -> None:
    stub.reset()
    # First reply is not JSON, second has an intent outside the schema, third is valid: two repairs.
    stub.queue = [Reply(content="metric lookup I think"), Reply(content='{"intent": "lookup", "complexity": "SIMPLE"}')]
    stub.reply_json({"intent": "metric_lookup", "complexity": "SIMPLE"})
    wid = (await llm_stack.ask("alice", "revenue for MER-US in March 2026"))["request_id"]
    waiting = await llm_stack.until_stage(wid, "alice", "confirm")
    assert waiting["awaiting_confirmation"]["method"] == "llm"
    assert len(stub.requests) == 3
    # Three invalid replies: no more repairs, the conservative fallback (EXPERT, to be confirmed).
    stub.reset()
    stub.reply_text("no idea")
    wid2 = (await llm_stack.ask("alice", "revenue for MER-CA in March 2026"))["request_id"]
    waiting2 = await llm_stack.until_stage(wid2, "alice", "confirm")
    assert waiting2["awaiting_confirmation"]["method"] == "fallback"
    assert waiting2["awaiting_confirmation"]["complexity"] == "EXPERT"
    assert len(stub.requests) == 3
    for w in (wid, wid2):
        await llm_stack.http.post(f"/v1/requests/{w}/confirm", json={"accept": False}, headers=llm_stack.auth("alice"))


async def test_confirm_on_a_finished_request_is_409(llm_stack: LLMStack, stub: StubOpenAI, tmp_path: Path) -> None:
    stub.reset()
    stub.reply_json({"intent": "metric_lookup", "complexity": "SIMPLE"})
    wid = (await llm_stack.ask("alice", "revenue for MER-US in March 2026"))["request_id"]
    await llm_stack.until_stage(wid, "alice", "confirm")
    await llm_stack.http.post(f"/v1/requests/{wid}/confirm", json={"accept": True}, headers=llm_stack.auth("alice"))
    await llm_stack.result(wid, "alice")
    late = await llm_stack.http.post(
        f"/v1/requests/{wid}/confirm", json={"accept": True}, headers=llm_stack.auth("alice")
    )
    assert late.status_code == 409
    other = await llm_stack.http.post(
        f"/v1/requests/{wid}/confirm", json={"accept": True}, headers=llm_stack.auth("bob")
    )
    assert other.status_code == 404
