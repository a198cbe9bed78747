"""The generate activity's span: who answered and what it cost; prompt and reply text only when enabled."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from openai import AsyncOpenAI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider
from temporalio.testing import ActivityEnvironment

from activities.llm.activity import GenerateActivities
from activities.llm.engine import OpenAIGenerator
from docket.contracts import Fact, GenerateInput, Intent
from docket.settings import Settings
from docket.telemetry import setup_tracing
from tests.support.oracle import LedgerOracle
from tests.support.stub_openai import StubOpenAI

QUESTION = "What was revenue for MER-US last month? Mail me at jane.doe@meridian.example"


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    setup_tracing()
    # Temporal's replay-safe provider wraps the SDK's and takes span processors like it.
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider | ReplaySafeTracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


@pytest.fixture(scope="module")
def server() -> Iterator[StubOpenAI]:
    s = StubOpenAI().start()
    yield s
    s.stop()


@pytest.fixture
async def client(server: StubOpenAI) -> AsyncIterator[AsyncOpenAI]:
    server.reset()
    c = AsyncOpenAI(base_url=server.base_url, api_key="x", max_retries=0, timeout=10)
    yield c
    await c.close()


def data(oracle: LedgerOracle) -> GenerateInput:
    value = oracle.total("meridian", ["MER-US"], "4", ["2026-10"])
    fact = Fact(
        label="revenue MER-US 2026-10",
        value=value,
        unit="USD",
        entity="MER-US",
        account="4",
        period="2026-10",
        source="ledger",
    )
    return GenerateInput(question=QUESTION, intent=Intent.METRIC_LOOKUP, facts=[fact], tenant="meridian")


async def generate(
    client: AsyncOpenAI, server: StubOpenAI, oracle: LedgerOracle, spans: InMemorySpanExporter, trace_content: bool
) -> tuple[str, ReadableSpan]:
    inp = data(oracle)
    answer = f"Revenue for MER-US in October 2026 was {inp.facts[0].value:,} USD."
    server.reply_json(
        {"answer": answer, "fact_ids": ["F1"], "doc_ids": [], "confidence": 0.9},
        prompt_tokens=250,
        completion_tokens=30,
    )
    spans.clear()
    activities = GenerateActivities(OpenAIGenerator(client, "m"), settings=Settings(trace_content=trace_content))
    result = await ActivityEnvironment().run(activities.generate_answer, inp)
    assert result.validated and result.answer == answer
    [span] = [s for s in spans.get_finished_spans() if s.name == "docket.generate"]
    return answer, span


def texts(span: ReadableSpan) -> str:
    values = [str(v) for v in (span.attributes or {}).values()]
    values += [str(v) for e in span.events for v in (e.attributes or {}).values()]
    return "\n".join(values)


async def test_the_span_says_who_answered_and_what_it_cost_but_not_what_was_said(
    client: AsyncOpenAI, server: StubOpenAI, oracle: LedgerOracle, spans: InMemorySpanExporter
) -> None:
    answer, span = await generate(client, server, oracle, spans, trace_content=False)
    attrs = dict(span.attributes or {})
    assert attrs["docket.generator"] == "openai" and attrs["docket.model"] == "stub-model-1"
    assert (attrs["docket.tokens.prompt"], attrs["docket.tokens.completion"], attrs["docket.calls"]) == (250, 30, 1)
    assert attrs["docket.prompt"] == "answer.v2" and len(str(attrs["docket.prompt_sha256"])) == 64
    recorded = texts(span)
    # Neither the answer, nor the figure, nor the question, nor the prompt is on the span.
    for secret in (answer, f"{data(oracle).facts[0].value}", "MER-US last month", "You are Docket"):
        assert secret not in recorded
    assert not span.events


async def test_content_on_spans_is_opt_in(
    client: AsyncOpenAI, server: StubOpenAI, oracle: LedgerOracle, spans: InMemorySpanExporter
) -> None:
    answer, span = await generate(client, server, oracle, spans, trace_content=True)
    assert (span.attributes or {})["docket.answer"] == answer
    [call] = span.events
    assert call.name == "docket.model_call" and "You are Docket" in str((call.attributes or {})["prompt"])
    # Even then, what was redacted before the prompt stays redacted.
    assert "jane.doe@meridian.example" not in texts(span) and "[email]" in texts(span)
