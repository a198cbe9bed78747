"""A fault-injecting OpenAI-compatible server drives each failure mode through RequestWorkflow.

Every request reaches a defined terminal state, and the server's call log shows Temporal's retries only: the
client is built with max_retries=0, so one activity attempt is one HTTP call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment

from activities.llm.engine import OpenAIGenerator
from tests.conftest import Stack, start_stack
from tests.support.oracle import LedgerOracle
from tests.support.stub_openai import Reply, StubOpenAI, model_answer_json

pytestmark = pytest.mark.integration
QUESTION = "What was revenue for MER-US in October 2026?"
CLIENT_TIMEOUT = 1.5


@pytest.fixture(scope="module")
async def faults(
    temporal_env: WorkflowEnvironment,
    sqlite_db: tuple[str, Engine],
    stub: StubOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    client = AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0, timeout=CLIENT_TIMEOUT)
    url, engine = sqlite_db
    generator = OpenAIGenerator(client, "m")
    async for s in start_stack(temporal_env, url, engine, tmp_path_factory.mktemp("faults"), generator):
        yield s


async def ask(s: Stack) -> dict[str, Any]:
    resp = await s.http.post(
        "/v1/requests",
        params={"wait": 60},
        headers=s.auth("alice"),
        json={"question": QUESTION, "as_of": "2026-11-21"},
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["status"] == "completed"
    return body


@pytest.fixture(scope="module")
def revenue(demo_dir: Path) -> int:
    # The expected figure comes from the CSV oracle, never from the product.
    return LedgerOracle(demo_dir).total("meridian", ["MER-US"], "4", ["2026-10"])


@pytest.mark.parametrize(
    ("reply", "calls", "limitation"),
    [
        # Retryable: one call per Temporal attempt, three attempts, then the template.
        (Reply(status=500), 3, "Model unavailable"),
        (Reply(status=503), 3, "Model unavailable"),
        # Retry-After 3 s against a retry policy that would wait 1 s, then 2 s: the gaps show which one won.
        (Reply(status=429, headers={"Retry-After": "3"}), 3, "Model unavailable"),
        (Reply(delay=CLIENT_TIMEOUT + 1.0), 3, "Model unavailable"),
        # The stream is cut after 2 pieces: an incomplete reply is a failed attempt, retried by Temporal.
        (Reply(content=model_answer_json("MER-US revenue was reported.", ["F1"]), drop_after=2), 3, "stream broke off"),
        # Not retryable: one call.
        (Reply(status=401), 1, "model rejected the request"),
        # Invalid output: one call and two repairs (each a call), then the template.
        (Reply(content="this is not json"), 3, "did not return the requested JSON"),
        (Reply(content=model_answer_json("Revenue was 99,000,000,000 USD.", ["F1"])), 3, "not facts"),
        (Reply(content=model_answer_json("")), 3, "schema"),
        # Schema-valid nonsense: well-formed, cites a real id, says nothing about the question.
        (Reply(content=model_answer_json("Bananas are an excellent source of potassium.", ["F1"])), 3, "off topic"),
    ],
    ids=["500", "503", "429-retry-after", "slow", "dropped", "401", "malformed", "ungrounded", "empty", "nonsense"],
)
async def test_every_fault_ends_in_a_defined_state(
    faults: Stack, stub: StubOpenAI, revenue: int, reply: Reply, calls: int, limitation: str
) -> None:
    stub.reset()
    stub.reply = reply
    body = await ask(faults)
    # The figures are the ledger's whatever the model did; the wording falls back to the template, and the
    # outcome says so.
    assert body["outcome"] == "qualified"
    assert f"{revenue:,}" in body["answer"]
    assert body["generator"] == "template"
    assert any(limitation in note for note in body["limitations"]), body["limitations"]
    # One HTTP call per Temporal attempt or repair: the client library never retried on its own.
    assert len(stub.requests) == calls
    if reply.headers.get("Retry-After"):
        gaps = [b["at"] - a["at"] for a, b in zip(stub.requests, stub.requests[1:], strict=False)]
        assert all(g >= 2.8 for g in gaps), gaps


async def test_a_good_answer_after_two_failures_is_used(faults: Stack, stub: StubOpenAI, revenue: int) -> None:
    stub.reset()
    stub.queue.extend([Reply(status=503), Reply(status=429, headers={"Retry-After": "1"})])
    stub.reply = Reply(content=model_answer_json(f"MER-US booked {revenue:,} USD of revenue in October 2026.", ["F1"]))
    body = await ask(faults)
    assert body["generator"] == "openai" and f"{revenue:,}" in body["answer"]
    assert body["outcome"] == "answered"
    assert len(stub.requests) == 3


async def test_a_repaired_answer_is_used(faults: Stack, stub: StubOpenAI, revenue: int) -> None:
    stub.reset()
    stub.queue.append(Reply(content=model_answer_json("Revenue was 12 million USD.", ["F1"])))
    stub.reply = Reply(content=model_answer_json(f"MER-US booked {revenue:,} USD of revenue in October 2026.", ["F1"]))
    body = await ask(faults)
    assert body["generator"] == "openai" and f"{revenue:,}" in body["answer"] and body["outcome"] == "answered"
    # The repair went back to the model with the rejected reply and what was wrong with it.
    assert len(stub.requests) == 2
    messages = stub.requests[1]["body"]["messages"]
    assert messages[1] == {"role": "assistant", "content": model_answer_json("Revenue was 12 million USD.", ["F1"])}
    assert "12" in messages[2]["content"] and "not facts" in messages[2]["content"]
