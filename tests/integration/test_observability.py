"""Operators' view of a request: search attributes the real `temporal` CLI filters on, one trace per request."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from sqlalchemy import Engine
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.llm.engine import OpenAIGenerator
from cli.replay import WORKFLOWS
from docket.contracts import RequestInput, RequestResult
from docket.telemetry import setup_tracing
from docket.temporal import tracing_plugin
from tests.conftest import ROOT, Stack, start_stack, temporal_binary
from tests.support.oracle import LedgerOracle
from tests.support.stub_openai import Reply, StubOpenAI, model_answer_json

pytestmark = pytest.mark.integration


async def ask(stack: Stack, principal: str, question: str) -> dict[str, Any]:
    resp = await stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        json={"question": question, "as_of": "2026-11-21"},
        headers=stack.auth(principal),
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def temporal_list(stack: Stack, query: str) -> list[dict[str, Any]]:
    """`temporal workflow list --query …` with the real CLI, as an operator would type it."""
    out = subprocess.run(
        [
            temporal_binary(),
            "workflow",
            "list",
            "--address",
            stack.client.service_client.config.target_host,
            "--namespace",
            stack.client.namespace,
            "--query",
            query,
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows: list[dict[str, Any]] = json.loads(out.stdout or "[]")
    return rows


async def test_the_temporal_cli_finds_denied_requests_by_their_outcome(stack: Stack) -> None:
    denied = await ask(stack, "carol", "What was payroll for MER-US in January 2026?")
    answered = await ask(stack, "alice", "What was revenue for MER-US last month?")
    assert denied["outcome"] == "denied" and answered["outcome"] == "answered"
    ids: list[str] = []
    # Visibility is eventually consistent: the upsert is in history at once, in the list a moment later.
    for _ in range(50):
        ids = [r["execution"]["workflowId"] for r in temporal_list(stack, "DocketOutcome='denied'")]
        if denied["request_id"] in ids:
            break
        await asyncio.sleep(0.2)
    assert denied["request_id"] in ids
    assert answered["request_id"] not in ids
    by_all = temporal_list(
        stack,
        "DocketTenant='meridian' AND DocketPrincipal='alice' AND DocketIntent='metric_lookup' "
        "AND DocketComplexity='SIMPLE' AND DocketOutcome='answered'",
    )
    assert answered["request_id"] in [r["execution"]["workflowId"] for r in by_all]


# ---------------------------------------------------------------- one trace per request


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span the process finishes, from the global (replay-safe) tracer provider Docket installs."""
    setup_tracing()
    provider = trace.get_tracer_provider()
    assert isinstance(provider, ReplaySafeTracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays on the provider, exporting nowhere


@pytest.fixture(scope="module", params=[None, 0], ids=["cached", "max_cached_workflows=0"])
async def traced(
    request: pytest.FixtureRequest,
    temporal_env: WorkflowEnvironment,
    sqlite_db: tuple[str, Engine],
    stub: StubOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """The stack with a model (the OpenAI stub), once with the worker's workflow cache and once without: with
    max_cached_workflows=0 every workflow task replays the run from its first event, so duplicate spans show."""
    url, engine = sqlite_db
    generator = OpenAIGenerator(AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0), "stub-model-1")
    options = {} if request.param is None else {"max_cached_workflows": request.param}
    async for s in start_stack(
        temporal_env, url, engine, tmp_path_factory.mktemp("traced"), generator, worker_options=options
    ):
        yield s


# The default (fused) placement: classify, authorize and plan are the one local activity understand_request.
ACTIVITIES = [
    "understand_request",
    "ledger_query",
    "retrieve_documents",
    "generate_answer",
    "score_confidence",
    "record_result",
]


def _chain(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names from a span up to the root of its trace."""
    names = [span.name]
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_one_trace_per_request_from_http_through_every_activity_to_the_model(
    traced: Stack, stub: StubOpenAI, spans: InMemorySpanExporter
) -> None:
    question = "What was revenue for MER-US in October 2026?"
    revenue = LedgerOracle().total("meridian", ["MER-US"], "4", ["2026-10"])
    stub.reset()
    stub.reply = Reply(
        content=model_answer_json(f"Revenue for MER-US in October 2026 was {revenue:,} USD.", ["F1"]),
        prompt_tokens=120,
        completion_tokens=18,
    )
    spans.clear()
    body = await ask(traced, "alice", question)
    assert body["outcome"] == "answered" and body["generator"] == "openai", body["answer"]
    finished = list(spans.get_finished_spans())
    server = [s for s in finished if s.kind == SpanKind.SERVER and s.name == "POST /v1/requests"]
    assert len(server) == 1, [s.name for s in finished]
    trace_id = server[0].context.trace_id
    mine = [s for s in finished if s.context.trace_id == trace_id]
    by_id = {s.context.span_id: s for s in mine}
    names = Counter(s.name for s in mine)

    # HTTP → workflow → each activity → the model call, all in the request's one trace.
    assert names["StartWorkflow:RequestWorkflow"] == 1 and names["RunWorkflow:RequestWorkflow"] == 1
    for act in ACTIVITIES:
        assert names[f"RunActivity:{act}"] == 1, (act, names)
        run = next(s for s in mine if s.name == f"RunActivity:{act}")
        assert _chain(run, by_id)[-1] == "POST /v1/requests", _chain(run, by_id)
        assert "RunWorkflow:RequestWorkflow" in _chain(run, by_id)
    [chat] = [s for s in mine if s.name == "chat stub-model-1"]
    assert _chain(chat, by_id)[:3] == ["chat stub-model-1", "docket.generate", "RunActivity:generate_answer"]
    assert chat.kind == SpanKind.CLIENT

    # GenAI attributes on the model call; governance attributes on the activities that decided.
    attrs = {s.name: dict(s.attributes or {}) for s in mine}
    assert attrs["chat stub-model-1"]["gen_ai.request.model"] == "stub-model-1"
    assert attrs["chat stub-model-1"]["gen_ai.usage.input_tokens"] == 120
    assert attrs["chat stub-model-1"]["gen_ai.usage.output_tokens"] == 18
    assert attrs["docket.generate"]["docket.prompt.id"] == "answer"
    assert attrs["docket.generate"]["gen_ai.usage.input_tokens"] == body["usage"]["prompt_tokens"]
    understood = attrs["RunActivity:understand_request"]
    assert understood["docket.decision"] == "allowed"
    assert understood["docket.policy_version"] == body["authorization"]["policy_version"]
    assert understood["docket.masked_count"] == 0
    assert understood["docket.intent"] == "metric_lookup"
    assert understood["docket.plan.tasks"] >= 1  # the plan was made in the same activity
    assert attrs["RunActivity:score_confidence"]["docket.confidence_band"] == body["confidence"]["band"]
    assert attrs["RunActivity:record_result"]["docket.outcome"] == "answered"

    # No content: neither the question nor the answer nor the figure is in any span.
    text = json.dumps(
        [dict(s.attributes or {}) for s in mine] + [[e.attributes for e in s.events] for s in mine], default=str
    )
    assert question not in text and body["answer"] not in text and str(revenue) not in text

    # Replaying the run's history (with the tracing plugin) adds no span.
    history = await traced.client.get_workflow_handle(body["request_id"]).fetch_history()
    spans.clear()
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter, plugins=[tracing_plugin()])
    await replayer.replay_workflow(history)
    assert spans.get_finished_spans() == ()


# ---------------------------------------------------------------- metrics, request ids, logs, health


async def test_gateway_metrics_and_request_ids(stack: Stack) -> None:
    denied = await ask(stack, "carol", "What was payroll for MER-US in January 2026?")
    assert denied["outcome"] == "denied"
    echoed = await stack.http.get("/healthz", headers={"X-Request-ID": "trace-me-42"})
    assert echoed.headers["x-request-id"] == "trace-me-42"
    fresh = await stack.http.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert fresh.headers["x-request-id"] != "bad id\nwith newline" and len(fresh.headers["x-request-id"]) == 32
    text = (await stack.http.get("/metrics")).text
    # Route templates, never raw ids.
    assert 'http_request_duration_seconds_count{method="POST",route="/v1/requests",status="200"}' in text
    assert "/v1/requests/req-" not in text
    # The in-process worker records into the same registry here; in production each process has its own.
    assert (
        'docket_requests_total{complexity="SIMPLE",intent="metric_lookup",outcome="denied",tenant="meridian"}' in text
    )
    assert 'docket_denials_total{policy="POL-001",tenant="meridian"}' in text
    assert 'docket_stage_duration_seconds_bucket{le="0.005",stage="authorize"}' in text
    assert "# TYPE docket_budget_used_ratio gauge" in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_worker_process_serves_health_metrics_and_json_logs(
    temporal_env: WorkflowEnvironment, sqlite_db: tuple[str, Engine], tmp_path: Path
) -> None:
    url, _ = sqlite_db
    http_port, sdk_port = _free_port(), _free_port()
    task_queue = f"docket-obs-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "worker.log"
    env = os.environ | {
        "DATABASE_URL": url,
        "DOCKET_TASK_QUEUE": task_queue,
        "DOCKET_DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "DOCKET_WORKER_HTTP_PORT": str(http_port),
        "DOCKET_TEMPORAL_METRICS_PORT": str(sdk_port),
        "DOCKET_LOG_FORMAT": "json",
        "PYTHONPATH": str(ROOT),
    }
    with log_path.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "worker"], env=env, cwd=ROOT, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{http_port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            for _ in range(600):
                if proc.poll() is not None:
                    pytest.fail(f"worker exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail(f"worker never became ready:\n{log_path.read_text()[-3000:]}")
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            ready = (await http.get("/readyz")).json()
            assert ready["checks"] == {"worker": "ok", "database": "ok", "temporal": "ok"}
            wid = f"req-obs-{uuid.uuid4().hex[:8]}"
            result = await temporal_env.client.execute_workflow(
                "RequestWorkflow",
                RequestInput(
                    tenant="meridian",
                    principal_id="alice",
                    question="What was revenue for MER-US last month?",
                    as_of=date(2026, 11, 21),
                ),
                id=wid,
                task_queue=task_queue,
                result_type=RequestResult,
            )
            assert result.outcome.value == "answered"
            text = (await http.get("/metrics")).text
            assert (
                'docket_requests_total{complexity="SIMPLE",intent="metric_lookup",outcome="answered",'
                'tenant="meridian"} 1.0'
            ) in text
            assert 'docket_stage_duration_seconds_count{stage="gather"} 1.0' in text
            # The Temporal SDK's own series, from the worker's runtime, in the same scrape.
            assert "temporal_" in text and "temporal_workflow_completed" in text, text[-2000:]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    recorded = [r for r in lines if r.get("event") == "request_recorded" and r.get("workflow_id") == wid]
    assert recorded, log_path.read_text()[-3000:]
    assert recorded[0]["tenant"] == "meridian" and recorded[0]["principal"] == "alice"
    assert recorded[0]["service"] == "docket-worker" and recorded[0]["activity"] == "record_result"


async def test_the_status_pages_token_never_reaches_a_span(stack: Stack, spans: InMemorySpanExporter) -> None:
    body = await ask(stack, "alice", "What was revenue for MER-US last month?")
    token = stack.token("alice")
    spans.clear()
    page = await stack.http.get(f"/v1/requests/{body['request_id']}/view", params={"token": token})
    assert page.status_code == 200
    server = [s for s in spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert server, [s.name for s in spans.get_finished_spans()]
    recorded = json.dumps([dict(s.attributes or {}) for s in spans.get_finished_spans()])
    assert token not in recorded and "token=REDACTED" in recorded
