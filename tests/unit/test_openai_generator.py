"""OpenAIGenerator against a real HTTP server speaking the OpenAI chat completions protocol."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from openai import AsyncOpenAI

from activities.errors import to_application_error
from activities.llm.engine import AnswerText, GenerationHooks, OpenAIGenerator, render_template_answer, retry_after
from activities.llm.redact import redact
from docket.contracts import Fact, GenerateInput, Intent, MaskedComponent, Passage, Usage
from docket.errors import ModelBadRequestError, ModelUnavailableError
from prompts import registry
from tests.support.oracle import LedgerOracle
from tests.support.stub_openai import Reply, StubOpenAI, model_answer

MODEL = "docket-test-model"


@pytest.fixture(scope="module")
def stub_server() -> Iterator[StubOpenAI]:
    server = StubOpenAI().start()
    yield server
    server.stop()


@pytest.fixture
def stub(stub_server: StubOpenAI) -> StubOpenAI:
    stub_server.reset()
    return stub_server


@pytest.fixture
async def client(stub: StubOpenAI) -> AsyncIterator[AsyncOpenAI]:
    c = AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0, timeout=10)
    yield c
    await c.close()


@pytest.fixture
def data(oracle: LedgerOracle) -> GenerateInput:
    value = oracle.total("meridian", ["MER-US"], "4", ["2026-10"])
    return GenerateInput(
        question="What was revenue for MER-US last month?",
        intent=Intent.METRIC_LOOKUP,
        facts=[
            Fact(
                label="revenue MER-US 2026-10",
                value=value,
                unit="USD",
                entity="MER-US",
                account="4",
                period="2026-10",
                source="ledger meridian: sum of account 4",
            )
        ],
    )


async def test_the_stub_is_a_real_openai_server(client: AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [m.id for m in models.data] == ["stub-model-1"]


class Recorder(GenerationHooks):
    """Collects what the generator tells the activity: calls, usage, streamed text and resets."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.spent: list[tuple[int, str, int, int]] = []
        self.tokens: list[str] = []
        self.resets: list[str] = []

    async def before_call(self, call: int, max_tokens: int) -> None:
        self.calls.append((call, max_tokens))

    async def after_call(self, call: int, model: str, usage: Usage) -> None:
        self.spent.append((call, model, usage.prompt_tokens, usage.completion_tokens))

    def token(self, text: str) -> None:
        self.tokens.append(text)

    async def reset(self, reason: str) -> None:
        self.resets.append(reason)
        self.tokens.clear()


async def test_valid_answer_is_used(stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput) -> None:
    value = data.facts[0].value
    answer = f"Revenue for MER-US in October 2026 was {value:,} USD."
    stub.reply_json(model_answer(answer, ["F1"]), prompt_tokens=321, completion_tokens=54)
    hooks = Recorder()
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    assert result.validated
    assert result.generator == "openai"
    assert result.answer == answer
    assert result.model == "stub-model-1"  # the model the server says answered
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (321, 54)
    assert result.limitations == []
    assert result.prompt == registry.get("answer", 2).ref
    assert (result.fact_ids, result.model_confidence, result.calls, result.repairs) == (["F1"], 0.8, 1, 0)
    assert result.provider == f"127.0.0.1:{stub.port}"
    # The prose streamed piece by piece (the stub sends 8 characters per event), never the JSON around it.
    assert "".join(hooks.tokens) == answer and len(hooks.tokens) > 3
    assert hooks.spent == [(0, "stub-model-1", 321, 54)]


async def test_request_carries_prompt_schema_and_settings(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    stub.reply_json(model_answer("Revenue was reported for MER-US."))
    await OpenAIGenerator(client=client, model=MODEL, max_output_tokens=300).generate(data)
    assert len(stub.requests) == 1
    body = stub.requests[0]["body"]
    assert body["model"] == MODEL
    assert body["temperature"] == 0
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 300
    schema = body["response_format"]["json_schema"]["schema"]
    assert body["response_format"]["type"] == "json_schema"
    assert schema["properties"]["fact_ids"]["items"]["enum"] == ["F1"]
    assert schema["properties"]["doc_ids"]["maxItems"] == 0  # no documents were provided
    assert list(schema["properties"]) == ["answer", "fact_ids", "doc_ids", "confidence"]
    content = body["messages"][0]["content"]
    assert f"[F1] revenue MER-US 2026-10 = {data.facts[0].value} USD" in content
    assert data.question in content
    assert stub.requests[0]["headers"]["authorization"] == "Bearer x"


async def test_json_object_mode_and_no_streaming_for_servers_without_them(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    value = data.facts[0].value
    stub.reply_json(model_answer(f"MER-US revenue was {value:,} USD.", ["F1"]), prompt_tokens=5, completion_tokens=6)
    gen = OpenAIGenerator(client=client, model=MODEL, response_format="json_object", stream=False)
    result = await gen.generate(data)
    body = stub.requests[0]["body"]
    assert body["response_format"] == {"type": "json_object"} and "stream" not in body
    assert result.validated and (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 6)


async def test_masked_components_reach_the_prompt_without_a_value(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput, oracle: LedgerOracle
) -> None:
    payroll = oracle.total("meridian", ["MER-CA"], "5.1", ["2026-05"])
    reason = "Payroll (5.1) is left out of the total: POL-001 restricts payroll for your role."
    masked = data.model_copy(
        update={"masked": [MaskedComponent(account="5.1", label="Payroll", policy="POL-008", reason=reason)]}
    )
    stub.reply_json(model_answer("Revenue was reported for MER-US."))
    await OpenAIGenerator(client=client, model=MODEL).generate(masked)
    content = stub.requests[0]["body"]["messages"][0]["content"]
    assert reason in content
    assert str(payroll) not in content


async def test_invented_number_is_repaired_twice_then_falls_back(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    stub.reply_json(
        model_answer("Revenue for MER-US in October 2026 was 12,500,000 USD.", ["F1"]),
        prompt_tokens=300,
        completion_tokens=20,
    )
    hooks = Recorder()
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    assert not result.validated
    assert result.generator == "template"
    assert result.answer == render_template_answer(data).answer
    assert "12,500,000" not in result.answer
    assert len(result.limitations) == 1
    assert "Model output rejected" in result.limitations[0] and "12,500,000" in result.limitations[0]
    assert "output rejected" in result.model
    # One call and two repairs, each told what was wrong; every call's tokens were spent all the same.
    assert len(stub.requests) == 3 and (result.calls, result.repairs) == (3, 2)
    repair = stub.requests[1]["body"]["messages"]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    assert "12,500,000" in repair[2]["content"] and "rejected" in repair[2]["content"]
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (900, 60)
    assert [c for c, *_ in hooks.spent] == [0, 1, 2]
    # Each repair, and the fallback, told the client to throw away the rejected prose it had been shown.
    assert len(hooks.resets) == 3 and "deterministic narrative" in hooks.resets[-1]


async def test_a_repair_that_succeeds_is_used(stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput) -> None:
    value = data.facts[0].value
    stub.queue.append(Reply(content=json.dumps(model_answer("Revenue was 99 million USD.", ["F1"]))))
    stub.reply_json(model_answer(f"MER-US booked {value:,} USD of revenue in October 2026.", ["F1"]))
    hooks = Recorder()
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    assert result.validated and result.generator == "openai" and (result.calls, result.repairs) == (2, 1)
    assert f"{value:,}" in result.answer
    assert "".join(hooks.tokens) == result.answer and len(hooks.resets) == 1


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("Revenue for MER-US was strong last month.", "JSON"),
        ('{"fact_ids": [], "doc_ids": [], "confidence": 0.5}', "schema"),
        ('{"answer": "   ", "fact_ids": [], "doc_ids": [], "confidence": 0.5}', "empty"),
        ('["not", "an", "object"]', "schema"),
        ('{"answer": "Revenue for MER-US rose.", "fact_ids": ["F9"], "doc_ids": [], "confidence": 0.5}', "1 id(s)"),
        ('{"answer": "Revenue for MER-US.", "fact_ids": [], "doc_ids": ["doc-zz"], "confidence": 0.5}', "1 id(s)"),
        ('{"answer": "The weather in Lisbon is lovely.", "fact_ids": [], "doc_ids": [], "confidence": 0.9}', "topic"),
        ('{"answer": "Revenue for MER-US.", "fact_ids": [], "doc_ids": [], "confidence": 7}', "confidence"),
        ('{"answer": "Revenue", "fact_ids": [], "doc_ids": [], "confidence": 0.5, "extra": 1}', "extra"),
    ],
    ids=["plain-text", "no-answer", "blank", "json-list", "unknown-fact", "unknown-doc", "off-topic", "conf", "extra"],
)
async def test_invalid_replies_are_rejected_and_fall_back(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput, content: str, problem: str
) -> None:
    stub.reply_text(content, prompt_tokens=10, completion_tokens=5)
    result = await OpenAIGenerator(client=client, model=MODEL, repairs=0).generate(data)
    assert not result.validated
    assert result.generator == "template"
    assert result.answer == render_template_answer(data).answer
    assert result.limitations and problem in result.limitations[0], result.limitations
    assert len(stub.requests) == 1


async def test_the_token_ceiling_stops_calls_before_they_are_made(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    stub.reply_json(model_answer("Revenue was 1 USD.", ["F1"]), prompt_tokens=400, completion_tokens=100)
    tiny = await OpenAIGenerator(client=client, model=MODEL, max_request_tokens=100).generate(data)
    assert len(stub.requests) == 0 and not tiny.validated
    assert "exceeds the per-request token ceiling" in tiny.limitations[0]
    # Room for the first call but not for a repair: one call, then the narrative.
    stub.reset()
    stub.reply_json(model_answer("Revenue was 1 USD.", ["F1"]), prompt_tokens=900, completion_tokens=100)
    one = await OpenAIGenerator(client=client, model=MODEL, max_request_tokens=1200).generate(data)
    assert len(stub.requests) == 1 and "no room for a repair" in one.limitations[0]


async def test_a_dropped_stream_is_retryable(stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput) -> None:
    value = data.facts[0].value
    stub.reply = Reply(content=json.dumps(model_answer(f"Revenue was {value:,} USD.", ["F1"])), drop_after=3)
    with pytest.raises(ModelUnavailableError) as err:
        await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert err.value.retryable and "broke off" in err.value.message
    assert len(stub.requests) == 1


async def test_a_dropped_stream_counts_what_the_server_already_produced(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    value = data.facts[0].value
    stub.reply = Reply(content=json.dumps(model_answer(f"Revenue was {value:,} USD.", ["F1"])), drop_after=4)
    hooks = Recorder()
    with pytest.raises(ModelUnavailableError):
        await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    # The server never reported usage for the cut-off call; its tokens were spent, so an estimate is recorded.
    [(call, _model, prompt_tokens, completion_tokens)] = hooks.spent
    assert call == 0 and prompt_tokens > 100 and completion_tokens > 0


async def test_a_server_that_reports_no_usage_is_counted_by_estimate(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    value = data.facts[0].value
    stub.reply_json(model_answer(f"MER-US revenue was {value:,} USD.", ["F1"]))  # usage 0/0, as some servers send
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert result.validated and result.usage.prompt_tokens > 100 and result.usage.completion_tokens > 5


async def test_a_call_that_outlives_the_attempt_is_cut_off_in_time(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    stub.reply = Reply(content=json.dumps(model_answer("late")), delay=5)
    hooks = Recorder()
    hooks.deadline = time.monotonic() + 1.0
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="time limit"):
        await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    assert time.monotonic() - started < 3


def test_answer_text_joins_surrogate_pairs_and_never_emits_a_lone_half() -> None:
    raw = '{"answer": "up \\ud83d\\ude00 and \\ud83d alone, \\ude00 too", "fact_ids": []}'
    out = AnswerText()
    got = "".join(out.feed(ch) for ch in raw)
    assert got == "up \U0001f600 and \ufffd alone, \ufffd too"
    got.encode("utf-8")  # a lone surrogate would raise here, and in the stream's payload converter


@pytest.mark.parametrize("cut", range(1, 40))
def test_answer_text_survives_any_split(cut: int) -> None:
    raw = json.dumps(model_answer('Caf\u00e9 "MER-US"\nline — 11,765,834 USD', ["F1"]), ensure_ascii=True)
    out = AnswerText()
    got = out.feed(raw[:cut]) + out.feed(raw[cut:])
    assert got == json.loads(raw)["answer"]


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_and_rate_limits_are_retryable(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput, status: int
) -> None:
    stub.fail(status)
    with pytest.raises(ModelUnavailableError) as err:
        await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert err.value.retryable
    assert str(status) in err.value.message
    # Temporal owns retries: the client itself tried once.
    assert len(stub.requests) == 1


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_bad_requests_are_not_retryable(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput, status: int
) -> None:
    stub.fail(status)
    with pytest.raises(ModelBadRequestError) as err:
        await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert not err.value.retryable
    assert str(status) in err.value.message
    assert len(stub.requests) == 1


async def test_unreachable_endpoint_is_retryable(data: GenerateInput) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port any more.
    c = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=5)
    try:
        with pytest.raises(ModelUnavailableError):
            await OpenAIGenerator(client=c, model=MODEL).generate(data)
    finally:
        await c.close()


async def test_invented_number_glued_to_a_currency_is_rejected(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    stub.reply_json(model_answer("Revenue for MER-US in October 2026 was USD12500000.", ["F1"]))
    result = await OpenAIGenerator(client=client, model=MODEL, repairs=0).generate(data)
    assert not result.validated
    assert result.generator == "template"


# ------------------------------------------------------------------ Retry-After and personal data (issue 6, part 1)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"Retry-After": "7"}, 7.0), ({"retry-after-ms": "1500"}, 1.5), ({}, None)],
)
async def test_retry_after_is_carried_to_temporal(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput, headers: dict[str, str], expected: float | None
) -> None:
    stub.fail(429, headers)
    with pytest.raises(ModelUnavailableError) as caught:
        await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert caught.value.retry_after == expected
    app_error = to_application_error(caught.value)
    assert not app_error.non_retryable
    assert app_error.next_retry_delay == (timedelta(seconds=expected) if expected is not None else None)


def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    seconds = retry_after(httpx.Headers({"Retry-After": when}))
    assert seconds is not None and 25 <= seconds <= 31
    assert retry_after(httpx.Headers({"Retry-After": "soon"})) is None


async def test_personal_data_never_reaches_the_model(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    value = data.facts[0].value
    stub.reply_json(model_answer(f"Revenue was {value:,} USD.", ["F1"]))
    asked = data.model_copy(
        update={
            "question": "What was revenue for MER-US last month? Reply to jane.doe@meridian.example",
            "passages": [
                Passage(
                    doc_id="doc-x",
                    title="Contacts",
                    chunk_id="doc-x#0",
                    snippet="Call +44 20 7946 0958 or pay IBAN DE89 3704 0044 0532 0130 00, card 4111 1111 1111 1111.",
                    score=1.0,
                )
            ],
        }
    )
    result = await OpenAIGenerator(client=client, model=MODEL).generate(asked)
    prompt = json.dumps(stub.requests[-1]["body"])
    for secret in ("jane.doe@meridian.example", "7946 0958", "DE89 3704", "4111 1111"):
        assert secret not in prompt
    assert result.redactions == {"email": 1, "phone": 1, "iban": 1, "card": 1}
    assert result.validated and f"{value:,}" in result.answer


@pytest.mark.parametrize(
    "text",
    [
        "Revenue was 11,765,834 USD in 2026-10 for account 5.2.2.",
        "Invoice 2026-03-15, reference 12345678901234, 21,318,406 EUR.",
        "IBAN-like DE89370400440532013001 fails its checksum; card 4111 1111 1111 1112 fails Luhn.",
    ],
)
def test_figures_codes_and_bad_checksums_are_not_personal_data(text: str) -> None:
    assert redact(text) == (text, Counter())


# ---------------------------------------------------------------- a request nobody watches (`?wait`)


def unwatched() -> Recorder:
    hooks = Recorder()
    hooks.watched = False
    return hooks


async def test_a_reply_nobody_watches_is_asked_for_whole(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    value = data.facts[0].value
    stub.reply_json(model_answer(f"MER-US revenue was {value:,} USD.", ["F1"]), prompt_tokens=7, completion_tokens=9)
    hooks = unwatched()
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    assert "stream" not in stub.requests[0]["body"]
    assert result.validated and (result.usage.prompt_tokens, result.usage.completion_tokens) == (7, 9)
    assert [(call, p, c) for call, _model, p, c in hooks.spent] == [(0, 7, 9)] and hooks.tokens == []


async def test_a_whole_reply_cut_off_by_the_deadline_counts_the_ceiling_it_asked_for(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    # The server may have been writing all along: a budget errs on the side of spent.
    stub.reply = Reply(content=json.dumps(model_answer("late")), delay=5)
    hooks = unwatched()
    hooks.deadline = time.monotonic() + 1.0
    with pytest.raises(ModelUnavailableError, match="time limit"):
        await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    [(call, max_tokens)] = hooks.calls
    [(_call, _model, prompt_tokens, completion_tokens)] = hooks.spent
    assert call == 0 and prompt_tokens > 100 and completion_tokens == max_tokens


async def test_a_whole_reply_refused_by_the_server_counts_nothing(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    stub.fail(503)
    hooks = unwatched()
    with pytest.raises(ModelUnavailableError):
        await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    assert hooks.spent == [] and len(stub.requests) == 1


async def test_a_whole_reply_cut_off_half_way_counts_the_ceiling_and_is_retryable(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    value = data.facts[0].value
    stub.reply = Reply(content=json.dumps(model_answer(f"Revenue was {value:,} USD.", ["F1"])), drop_after=3)
    hooks = unwatched()
    with pytest.raises(ModelUnavailableError, match="reply broke off") as err:
        await OpenAIGenerator(client=client, model=MODEL).generate(data, hooks)
    assert err.value.retryable
    [(_call, max_tokens)] = hooks.calls
    [(_c, _model, prompt_tokens, completion_tokens)] = hooks.spent
    assert prompt_tokens > 100 and completion_tokens == max_tokens


async def test_an_unreachable_endpoint_counts_nothing_for_a_whole_reply(data: GenerateInput) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=5)
    hooks = unwatched()
    try:
        with pytest.raises(ModelUnavailableError, match="unreachable"):
            await OpenAIGenerator(client=c, model=MODEL).generate(data, hooks)
    finally:
        await c.close()
    assert hooks.spent == []


async def test_a_whole_reply_may_outlast_the_client_timeout_within_the_attempt(
    stub: StubOpenAI, data: GenerateInput
) -> None:
    # Nothing arrives until the model has finished: the attempt's deadline, not the client's read timeout, bounds it.
    value = data.facts[0].value
    stub.reply = Reply(content=json.dumps(model_answer(f"MER-US revenue was {value:,} USD.", ["F1"])), delay=1.5)
    c = AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0, timeout=0.5)
    hooks = unwatched()
    hooks.deadline = time.monotonic() + 20
    try:
        result = await OpenAIGenerator(client=c, model=MODEL).generate(data, hooks)
    finally:
        await c.close()
    assert result.validated


async def test_a_whole_reply_past_the_client_timeout_counts_the_ceiling(stub: StubOpenAI, data: GenerateInput) -> None:
    # No attempt deadline (a script, not an activity): the client's timeout applies, and the server was writing.
    stub.reply = Reply(content=json.dumps(model_answer("late")), delay=3)
    c = AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0, timeout=0.5)
    hooks = unwatched()
    try:
        with pytest.raises(ModelUnavailableError):
            await OpenAIGenerator(client=c, model=MODEL).generate(data, hooks)
    finally:
        await c.close()
    [(_call, max_tokens)] = hooks.calls
    [(_c, _model, prompt_tokens, completion_tokens)] = hooks.spent
    assert prompt_tokens > 100 and completion_tokens == max_tokens
