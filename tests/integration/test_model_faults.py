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


async def ask(s: Stack, *, watched: bool = False) -> dict[str, Any]:
    """Ask with `?wait` (the model is asked for the whole reply), or `watched`: submitted for its event stream,
    so the prose is streamed, and read back once the run has finished."""
    resp = await s.http.post(
        "/v1/requests",
        params={} if watched else {"wait": 60},
        headers=s.auth("alice"),
        json={"question": QUESTION, "as_of": "2026-11-21"},
    )
    assert resp.status_code == (202 if watched else 200), resp.text
    body: dict[str, Any] = resp.json()
    if watched:
        await s.client.get_workflow_handle(body["request_id"]).result()
        body = (await s.http.get(f"/v1/requests/{body['request_id']}", headers=s.auth("alice"))).json()
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
        # A server silent for longer than the client's timeout, while the prose is streamed to a watcher (a whole
        # reply may take as long as the attempt has left: test_a_whole_reply_slower_than_the_client_timeout_is_used).
        (Reply(delay=CLIENT_TIMEOUT + 1.0), 3, "Model unavailable"),
        # The reply is cut after 2 pieces (a `?wait` request asks for the whole reply: 16 bytes of its JSON body):
        # an incomplete reply is a failed attempt, retried by Temporal.
        (Reply(content=model_answer_json("MER-US revenue was reported.", ["F1"]), drop_after=2), 3, "reply broke off"),
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
    body = await ask(faults, watched=bool(reply.delay))
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


async def test_a_whole_reply_slower_than_the_client_timeout_is_used(
    faults: Stack, stub: StubOpenAI, revenue: int
) -> None:
    # Nobody watches a `?wait` request's prose, so the model is asked for the whole reply, which arrives only once
    # written: the attempt's time, not the client's read timeout, bounds it, as it bounded the streamed call.
    stub.reset()
    answer = f"MER-US booked {revenue:,} USD of revenue in October 2026."
    stub.reply = Reply(content=model_answer_json(answer, ["F1"]), delay=CLIENT_TIMEOUT + 1.0)
    body = await ask(faults)
    assert body["generator"] == "openai" and body["outcome"] == "answered" and f"{revenue:,}" in body["answer"]
    assert len(stub.requests) == 1 and "stream" not in stub.requests[0]["body"]


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
