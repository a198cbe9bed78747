"""Budgets through the real stack: an over-budget request is refused (429, Retry-After) before any model call,
and GET /v1/usage reports what the database holds.

The database is this module's own (SQLite, or a fresh PostgreSQL database when DOCKET_TEST_POSTGRES_URL is
set): the usage written here must not spend the budgets of other modules' principals.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from sqlalchemy import Engine, func, select
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.llm.engine import OpenAIGenerator
from activities.retrieve.engine import DocumentIndex, sync_index
from api.routes.requests import request_id_for
from docket import db, ingest, usage
from docket.catalog import load_principal
from docket.contracts import RequestInput, RequestResult
from docket.db import ModelUsage, table_of
from docket.settings import Settings
from tests.conftest import DEMO, ROOT, Stack, fresh_sqlite, start_stack
from tests.support.oracle import LedgerOracle
from tests.support.stub_openai import Reply, StubOpenAI, model_answer_json
from worker.main import Components, make_worker

pytestmark = pytest.mark.integration
QUESTION = "What was revenue for MER-US in October 2026?"
LIMIT = 1000
USAGE = table_of(ModelUsage)
PROBLEM = "application/problem+json"
GLOBEX = {"judy", "ken"}
WRITERS = 8


@pytest.fixture(scope="module")
def budget_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    admin = os.environ.get("DOCKET_TEST_POSTGRES_URL")
    if not admin:
        url, engine = fresh_sqlite(tmp_path_factory.mktemp("budgets"))
        yield url, engine
        engine.dispose()
        return
    import psycopg

    # Asked for PostgreSQL explicitly: an unreachable server is a failure here, not a skip.
    name = f"docket_budgets_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = admin.rpartition("/")
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    db.migrate(url)
    engine = db.make_engine(url)
    ingest.load_pack(engine, DEMO)
    yield url, engine
    engine.dispose()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def admin_principal(budget_db: tuple[str, Engine], tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("people") / "admins.json"
    olga = {"id": "olga", "name": "Olga Admin", "tenant": "meridian", "roles": ["admin"], "clearance": "internal"}
    path.write_text(json.dumps([olga]))
    ingest.load_principals(budget_db[1], path)
    return "olga"


@pytest.fixture(scope="module")
async def metered(
    temporal_env: WorkflowEnvironment,
    budget_db: tuple[str, Engine],
    stub: StubOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """A stack with a model configured (so budgets apply): 1,000 tokens a day per principal, nothing else."""
    url, engine = budget_db
    client = AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0, timeout=5)
    async for s in start_stack(
        temporal_env,
        url,
        engine,
        tmp_path_factory.mktemp("metered"),
        OpenAIGenerator(client, "m"),
        openai_base_url=stub.base_url,
        openai_api_key="x",
        model="m",
        daily_tokens_per_principal=LIMIT,
        daily_tokens_per_tenant=0,
        daily_cost_usd_per_principal=0,
        daily_cost_usd_per_tenant=0,
    ):
        yield s


@pytest.fixture(scope="module")
def revenue(demo_dir: Path) -> int:
    # The expected figure comes from the CSV oracle, never from the product.
    return LedgerOracle(demo_dir).total("meridian", ["MER-US"], "4", ["2026-10"])


@pytest.fixture(autouse=True)
def not_at_midnight() -> None:
    # Usage written at 23:59:59 and checked at 00:00:00 would belong to different days.
    left = usage.seconds_until_reset()
    if left < 30:
        time.sleep(left + 1)


def spend(engine: Engine, principal: str, tokens: int, *, tenant: str = "meridian", model: str = "gpt-4o-mini") -> None:
    """Usage as the generate activity records it: one call of a request that already ran today."""
    rec = usage.UsageRecord(
        workflow_id=f"req-earlier-{uuid.uuid4().hex[:8]}",
        activity_id="1",
        attempt=1,
        call=1,
        tenant=tenant,
        principal_id=principal,
        provider="openai",
        model=model,
        prompt_tokens=tokens - tokens // 4,
        completion_tokens=tokens // 4,
        run_id="r",
    )
    assert usage.record_usage(engine, Settings(), rec)


async def ask(s: Stack, principal: str, key: str | None = None) -> httpx.Response:
    headers = s.auth(principal, "globex" if principal in GLOBEX else "meridian")
    if key:
        headers["Idempotency-Key"] = key
    return await s.http.post(
        "/v1/requests", params={"wait": 30}, headers=headers, json={"question": QUESTION, "as_of": "2026-11-21"}
    )


async def exists(s: Stack, wid: str) -> bool:
    try:
        await s.client.get_workflow_handle(wid).describe()
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND
        return False
    return True


async def started_on(s: Stack) -> int:
    # Let visibility catch up with anything that might have been started.
    await asyncio.sleep(0.5)
    return len([w async for w in s.client.list_workflows(f"TaskQueue = '{s.task_queue}'")])


def assert_problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    assert body["type"].endswith("/" + slug) and body["status"] == status and body["hint"]
    return body


# ----------------------------------------------------------------- exactly once


def test_racing_records_of_one_call_count_once(budget_db: tuple[str, Engine]) -> None:
    """A re-delivered record racing the first one (two workers, or a retry of the record) writes one row."""
    engine = budget_db[1]
    wid = f"req-race-{uuid.uuid4().hex[:8]}"
    rec = usage.UsageRecord(wid, "5", 2, 1, "meridian", "erin", "openai", "gpt-4o-mini", 900, 100, run_id="r")
    barrier = threading.Barrier(WRITERS)
    results: list[bool] = []

    def write() -> None:
        barrier.wait()
        results.append(usage.record_usage(engine, Settings(), rec))

    threads = [threading.Thread(target=write) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * (WRITERS - 1) + [True]
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(USAGE).where(USAGE.c.workflow_id == wid)).scalar()
    assert rows == 1


# ----------------------------------------------------------------- refusals


async def test_an_over_budget_request_is_refused_before_any_model_call(metered: Stack, stub: StubOpenAI) -> None:
    spend(metered.engine, "heidi", LIMIT)
    stub.reset()
    before = await started_on(metered)
    longest = usage.seconds_until_reset()
    resp = await ask(metered, "heidi", key="budget-refused-1")
    shortest = usage.seconds_until_reset()

    body = assert_problem(resp, 429, "budget-exhausted")
    assert body["title"] == "Daily model budget exhausted"
    assert (body["scope"], body["used_tokens"], body["limit_tokens"]) == ("principal", LIMIT, LIMIT)
    assert "heidi has used 1,000 of the 1,000 model tokens" in body["detail"]
    assert "docket budget set --tenant meridian --principal heidi" in body["hint"] and "UTC" in body["hint"]
    # Retry-After is the wait until the budget resets at the next UTC midnight.
    assert shortest <= int(resp.headers["Retry-After"]) <= longest
    assert datetime.fromisoformat(body["resets_at"]) == usage.next_reset()

    # Nothing ran: no workflow under the key, none on the task queue, not one call to the model.
    heidi = load_principal(metered.engine, "heidi")
    assert heidi is not None
    assert not await exists(metered, request_id_for(heidi, "budget-refused-1"))
    unkeyed = await ask(metered, "heidi")
    assert unkeyed.status_code == 429 and unkeyed.headers["Retry-After"]
    assert await started_on(metered) == before
    assert stub.requests == []


async def test_under_budget_the_model_is_called(metered: Stack, stub: StubOpenAI) -> None:
    # The control for the test above: with budget left, the same question does reach the model.
    stub.reset()
    stub.reply = Reply(
        content=model_answer_json("MER-US revenue is in the facts.", ["F1"]), prompt_tokens=10, completion_tokens=2
    )
    resp = await ask(metered, "alice")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "completed"
    assert len(stub.requests) >= 1


async def test_a_resent_request_returns_its_run_even_over_budget(metered: Stack, stub: StubOpenAI) -> None:
    stub.reset()
    first = await ask(metered, "bob", key="budget-resent-1")
    assert first.status_code == 200, first.text
    calls = len(stub.requests)
    spend(metered.engine, "bob", LIMIT)

    again = await ask(metered, "bob", key="budget-resent-1")
    # The same key returns the run that exists (it spends nothing new) instead of a 429.
    assert again.status_code == 200, again.text
    assert again.json()["request_id"] == first.json()["request_id"]
    assert len(stub.requests) == calls
    # A new question is a new request, and bob's budget is spent.
    assert_problem(await ask(metered, "bob", key="budget-resent-2"), 429, "budget-exhausted")
    assert len(stub.requests) == calls


async def test_a_tenant_budget_row_holds_everyone_in_the_tenant(metered: Stack, stub: StubOpenAI) -> None:
    usage.set_budget(metered.engine, "globex", daily_tokens=500, actor="test")
    try:
        spend(metered.engine, "ken", 500, tenant="globex")
        stub.reset()
        body = assert_problem(await ask(metered, "judy"), 429, "budget-exhausted")
        assert (body["scope"], body["used_tokens"], body["limit_tokens"]) == ("tenant", 500, 500)
        assert "tenant globex" in body["detail"]
        assert "docket budget set --tenant globex --daily-tokens" in body["hint"]
        assert stub.requests == []
    finally:
        usage.clear_budget(metered.engine, "globex")


async def test_without_a_model_budgets_do_not_apply(
    temporal_env: WorkflowEnvironment, budget_db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, engine = budget_db
    spend(engine, "carol", LIMIT * 5)
    # Template answers cost nothing: a principal far over the model budget is still answered.
    async for s in start_stack(
        temporal_env, url, engine, tmp_path, openai_base_url="", openai_api_key="", daily_tokens_per_principal=LIMIT
    ):
        assert not s.settings.model_configured
        resp = await ask(s, "carol")
        assert resp.status_code == 200, resp.text
        assert resp.json()["generator"] == "template"


# ----------------------------------------------------------------- GET /v1/usage


def sql_totals(engine: Engine, tenant: str, day: Any, principal: str | None = None) -> tuple[int, int, int, float]:
    """calls, prompt tokens, completion tokens, cost: summed by the database, not by docket.usage."""
    query = select(
        func.count(),
        func.coalesce(func.sum(USAGE.c.prompt_tokens), 0),
        func.coalesce(func.sum(USAGE.c.completion_tokens), 0),
        func.coalesce(func.sum(USAGE.c.cost_usd), 0),
    ).where(USAGE.c.tenant == tenant, USAGE.c.day == day)
    if principal is not None:
        query = query.where(USAGE.c.principal_id == principal)
    with engine.connect() as conn:
        calls, prompt, completion, cost = conn.execute(query).one()
    return int(calls), int(prompt), int(completion), float(cost)


async def test_usage_reports_what_the_database_holds(metered: Stack, admin_principal: str) -> None:
    engine = metered.engine
    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    spend(engine, "dave", 300)
    spend(engine, "dave", 200, model="gpt-4o")
    spend(engine, "dave", 40, model="mystery-model")
    rec = usage.UsageRecord("req-yesterday", "1", 1, 1, "meridian", "dave", "openai", "gpt-4o", 70, 30, run_id="r")
    usage.record_usage(engine, Settings(), rec, now=datetime.now(UTC) - timedelta(days=1))

    resp = await metered.http.get("/v1/usage", headers=metered.auth("dave"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    calls, prompt, completion, cost = sql_totals(engine, "meridian", today, "dave")
    assert (body["calls"], body["prompt_tokens"], body["completion_tokens"]) == (calls, prompt, completion)
    assert body["total_tokens"] == prompt + completion == 540
    assert body["cost_usd"] == pytest.approx(cost, abs=1e-9)
    assert body["day"] == today.isoformat() and body["scope"] == "principal" and body["principal_id"] == "dave"
    assert {m["model"]: m["priced"] for m in body["by_model"]} == {
        "gpt-4o": True,
        "gpt-4o-mini": True,
        "mystery-model": False,
    }
    assert body["priced"] is False
    limit = body["limit"]
    assert (limit["daily_tokens"], limit["remaining_tokens"], limit["exhausted"]) == (LIMIT, LIMIT - 540, False)
    assert limit["source"] == "settings"
    assert body["resets_at"].startswith((today + timedelta(days=1)).isoformat())

    past = (
        await metered.http.get("/v1/usage", params={"day": yesterday.isoformat()}, headers=metered.auth("dave"))
    ).json()
    assert (past["calls"], past["total_tokens"]) == (1, 100)

    whole = await metered.http.get("/v1/usage", params={"scope": "tenant"}, headers=metered.auth(admin_principal))
    assert whole.status_code == 200, whole.text
    tenant = whole.json()
    calls, prompt, completion, cost = sql_totals(engine, "meridian", today)
    assert (tenant["calls"], tenant["total_tokens"]) == (calls, prompt + completion)
    assert tenant["cost_usd"] == pytest.approx(cost, abs=1e-9)
    assert tenant["limit"]["scope"] == "tenant" and tenant["limit"]["daily_tokens"] is None
    with engine.connect() as conn:
        per_principal = {
            p: int(t)
            for p, t in conn.execute(
                select(USAGE.c.principal_id, func.sum(USAGE.c.prompt_tokens + USAGE.c.completion_tokens))
                .where(USAGE.c.tenant == "meridian", USAGE.c.day == today)
                .group_by(USAGE.c.principal_id)
            )
        }
    assert {p["principal_id"]: p["total_tokens"] for p in tenant["by_principal"]} == per_principal


@pytest.mark.parametrize(
    ("params", "principal", "status", "slug"),
    [
        ({"day": "21/11/2026"}, "dave", 422, "invalid-day"),
        ({"day": "2026-02-30"}, "dave", 422, "invalid-day"),
        ({"day": "20261121"}, "dave", 422, "invalid-day"),
        ({"scope": "everyone"}, "dave", 422, "invalid-scope"),
        ({"scope": "tenant"}, "dave", 403, "admin-only"),
    ],
    ids=["day-format", "day-impossible", "day-basic-iso", "scope", "tenant-not-admin"],
)
async def test_bad_usage_queries_get_problems(
    metered: Stack, params: dict[str, str], principal: str, status: int, slug: str
) -> None:
    assert_problem(await metered.http.get("/v1/usage", params=params, headers=metered.auth(principal)), status, slug)


async def test_usage_needs_a_valid_token(metered: Stack) -> None:
    missing = assert_problem(await metered.http.get("/v1/usage"), 401, "unauthenticated")
    assert "docket token" in missing["hint"]
    bad = await metered.http.get("/v1/usage", headers={"Authorization": "Bearer not-a-token"})
    assert_problem(bad, 401, "invalid-token")
    assert bad.headers["WWW-Authenticate"] == "Bearer"


# ----------------------------------------------------------------- the generate activity: checked, recorded once


def calls_of(engine: Engine, wid: str) -> list[tuple[int, int, int, int]]:
    """(attempt, call, prompt tokens, completion tokens) of one request, from the database."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(USAGE.c.attempt, USAGE.c.call, USAGE.c.prompt_tokens, USAGE.c.completion_tokens)
            .where(USAGE.c.workflow_id == wid)
            .order_by(USAGE.c.attempt, USAGE.c.call)
        ).all()
    return [(int(a), int(c), int(p), int(q)) for a, c, p, q in rows]


@pytest.fixture(scope="module")
def spender(budget_db: tuple[str, Engine], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A principal of this module's own, so no other test's spending decides what it has left."""
    path = tmp_path_factory.mktemp("people") / "spender.json"
    mia = {"id": "mia", "name": "Mia Spender", "tenant": "meridian", "roles": ["cfo"], "entities": ["*"]}
    path.write_text(json.dumps([mia | {"clearance": "internal"}]))
    ingest.load_principals(budget_db[1], path)
    return "mia"


async def test_an_in_flight_request_that_runs_out_of_budget_fails_with_the_reason(
    metered: Stack, stub: StubOpenAI, spender: str
) -> None:
    # 60 tokens left: the first call is allowed and spends 110, so the repair it needs is refused.
    spend(metered.engine, spender, LIMIT - 60)
    stub.reset()
    stub.reply = Reply(content="not json at all", prompt_tokens=100, completion_tokens=10)
    resp = await ask(metered, spender)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["outcome"] == "failed", body
    assert any("budget exhausted" in note and spender in note for note in body["limitations"]), body["limitations"]
    # One model call was made and counted; the refused repair never reached the server.
    assert len(stub.requests) == 1
    assert calls_of(metered.engine, body["request_id"]) == [(1, 1, 100, 10)]


async def test_retries_and_repairs_count_every_call_exactly_once(
    metered: Stack, stub: StubOpenAI, revenue: int
) -> None:
    stub.reset()
    # Attempt 1: an invalid reply (spent 40+4), then its repair fails with a 503, so the attempt fails.
    # Attempt 2 (Temporal's retry): a valid answer (spent 50+5).
    stub.queue.extend(
        [
            Reply(content="nope", prompt_tokens=40, completion_tokens=4),
            Reply(status=503),
        ]
    )
    stub.reply = Reply(
        content=model_answer_json(f"MER-US booked {revenue:,} USD of revenue in October 2026.", ["F1"]),
        prompt_tokens=50,
        completion_tokens=5,
    )
    resp = await ask(metered, "alice")
    body = resp.json()
    assert body["generator"] == "openai", body
    assert len(stub.requests) == 3
    wid = body["request_id"]
    assert calls_of(metered.engine, wid) == [(1, 1, 40, 4), (2, 1, 50, 5)]
    # The result reports what the request spent over both attempts, exactly what the database holds.
    assert (body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]) == (90, 9)

    # Replaying the run executes no activity, so nothing more is recorded; re-recording a call is a no-op.
    history = await metered.client.get_workflow_handle(wid).fetch_history()
    from temporalio.worker import Replayer

    from workflows.request import RequestWorkflow

    await Replayer(workflows=[RequestWorkflow], data_converter=metered.client.data_converter).replay_workflow(history)
    assert calls_of(metered.engine, wid) == [(1, 1, 40, 4), (2, 1, 50, 5)]
    run_id = (await metered.client.get_workflow_handle(wid).describe()).run_id
    again = usage.UsageRecord(
        workflow_id=wid,
        run_id=run_id or "",
        activity_id=_generate_activity_id(history),
        attempt=2,
        call=1,
        tenant="meridian",
        principal_id="alice",
        provider="x",
        model="stub-model-1",
        prompt_tokens=50,
        completion_tokens=5,
    )
    assert not usage.record_usage(metered.engine, metered.settings, again)
    assert calls_of(metered.engine, wid) == [(1, 1, 40, 4), (2, 1, 50, 5)]


def _generate_activity_id(history: Any) -> str:
    from temporalio.api.enums.v1 import EventType

    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = e.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "generate_answer":
                return str(attrs.activity_id)
    raise AssertionError("no generate_answer in the history")


async def test_a_worker_killed_during_generation_never_double_counts(
    temporal_env: WorkflowEnvironment,
    budget_db: tuple[str, Engine],
    stub: StubOpenAI,
    revenue: int,
    tmp_path: Path,
) -> None:
    url, engine = budget_db
    task_queue = f"docket-genkill-{uuid.uuid4().hex[:8]}"
    stub.reset()
    # Attempt 1: an invalid reply (spent 30+3, recorded), then a repair the server sits on until the kill.
    stub.queue.extend(
        [
            Reply(content="nope", prompt_tokens=30, completion_tokens=3),
            Reply(content=model_answer_json("late", ["F1"]), delay=60),
        ]
    )
    stub.reply = Reply(
        content=model_answer_json(f"MER-US booked {revenue:,} USD of revenue in October 2026.", ["F1"]),
        prompt_tokens=70,
        completion_tokens=7,
    )
    env = os.environ | {
        "DATABASE_URL": url,
        "DOCKET_TASK_QUEUE": task_queue,
        "DOCKET_DATA_DIR": str(tmp_path / "data"),
        "DOCKET_EMBEDDER": "none",
        "OPENAI_BASE_URL": stub.base_url,
        "OPENAI_API_KEY": "x",
        "DOCKET_MODEL": "m",
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        # No HTTP or SDK metrics port: the test must not depend on (or take) the defaults another stack may use.
        "DOCKET_WORKER_HTTP_PORT": "0",
        "DOCKET_TEMPORAL_METRICS_PORT": "0",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    wid = f"req-genkill-{uuid.uuid4().hex[:8]}"
    try:
        handle = await temporal_env.client.start_workflow(
            "RequestWorkflow",
            RequestInput(
                tenant="meridian",
                principal_id="alice",
                question="What was revenue for MER-US last month?",
                as_of="2026-11-21",
            ),  # type: ignore[arg-type]
            id=wid,
            task_queue=task_queue,
            result_type=RequestResult,
        )
        for _ in range(600):
            if len(stub.requests) >= 2 or proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        assert len(stub.requests) == 2, (proc.poll(), proc.stdout.read().decode()[-3000:] if proc.stdout else "")
        # The repair call is in flight at the server: kill the worker mid-generation.
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()
    assert calls_of(engine, wid) == [(1, 1, 30, 3)]

    # A fresh worker takes over once the activity's heartbeat times out; attempt 2 answers.
    client = AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0, timeout=5)
    index = DocumentIndex.open()
    sync_index(engine, index)
    settings = Settings(task_queue=task_queue, database_url=url, data_dir=tmp_path)
    components = Components(engine=engine, index=index, generator=OpenAIGenerator(client, "m"), settings=settings)
    async with make_worker(temporal_env.client, task_queue, components.activities()):
        result = await asyncio.wait_for(handle.result(), timeout=120)
    index.close()
    await client.close()

    assert result.generator == "openai" and f"{revenue:,}" in result.answer
    # The killed attempt's finished call counts once, its unfinished one not at all, the retry's call once.
    assert calls_of(engine, wid) == [(1, 1, 30, 3), (2, 1, 70, 7)]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (100, 10)
