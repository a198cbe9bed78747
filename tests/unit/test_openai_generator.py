"""OpenAIGenerator against a real HTTP server speaking the OpenAI chat completions protocol."""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from openai import AsyncOpenAI

from activities.errors import to_application_error
from activities.llm.engine import OpenAIGenerator, render_template_answer, retry_after
from activities.llm.redact import redact
from docket.contracts import Fact, GenerateInput, Intent, MaskedComponent, Passage
from docket.errors import ModelBadRequestError, ModelUnavailableError
from prompts import registry
from tests.support.oracle import LedgerOracle
from tests.support.stub_openai import StubOpenAI

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


async def test_valid_answer_is_used(stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput) -> None:
    value = data.facts[0].value
    answer = f"Revenue for MER-US in October 2026 was {value:,} USD."
    stub.reply_json(
        {"answer": answer, "fact_labels": ["revenue MER-US 2026-10"]}, prompt_tokens=321, completion_tokens=54
    )
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert result.validated
    assert result.generator == "openai"
    assert result.answer == answer
    assert result.model == "stub-model-1"  # the model the server says answered
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (321, 54)
    assert result.limitations == []
    assert result.prompt == registry.get("answer", 1).ref


async def test_request_carries_prompt_and_settings(stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput) -> None:
    stub.reply_json({"answer": "Revenue was reported.", "fact_labels": []})
    await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert len(stub.requests) == 1
    body = stub.requests[0]["body"]
    assert body["model"] == MODEL
    assert body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}
    content = body["messages"][0]["content"]
    assert f"revenue MER-US 2026-10 = {data.facts[0].value} USD" in content
    assert data.question in content
    assert stub.requests[0]["headers"]["authorization"] == "Bearer x"


async def test_masked_components_reach_the_prompt_without_a_value(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput, oracle: LedgerOracle
) -> None:
    payroll = oracle.total("meridian", ["MER-CA"], "5.1", ["2026-05"])
    reason = "Payroll (5.1) is left out of the total: POL-001 restricts payroll for your role."
    masked = data.model_copy(
        update={"masked": [MaskedComponent(account="5.1", label="Payroll", policy="POL-008", reason=reason)]}
    )
    stub.reply_json({"answer": "Revenue was reported.", "fact_labels": []})
    await OpenAIGenerator(client=client, model=MODEL).generate(masked)
    content = stub.requests[0]["body"]["messages"][0]["content"]
    assert reason in content
    assert str(payroll) not in content


async def test_invented_number_falls_back_to_template(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput
) -> None:
    stub.reply_json(
        {"answer": "Revenue for MER-US in October 2026 was 12,500,000 USD.", "fact_labels": []},
        prompt_tokens=300,
        completion_tokens=20,
    )
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert not result.validated
    assert result.generator == "template"
    assert result.answer == render_template_answer(data).answer
    assert "12,500,000" not in result.answer
    assert len(result.limitations) == 1
    assert "12,500,000" in result.limitations[0]
    assert "failed validation" in result.model
    # The tokens were spent all the same.
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (300, 20)


@pytest.mark.parametrize(
    "content",
    [
        "Revenue for MER-US was strong last month.",
        '{"fact_labels": []}',
        '{"answer": "   "}',
        '["not", "an", "object"]',
    ],
    ids=["plain-text", "no-answer-key", "blank-answer", "json-list"],
)
async def test_non_json_or_empty_answer_falls_back(
    stub: StubOpenAI, client: AsyncOpenAI, data: GenerateInput, content: str
) -> None:
    stub.reply_text(content, prompt_tokens=10, completion_tokens=5)
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data)
    assert not result.validated
    assert result.generator == "template"
    assert result.answer == render_template_answer(data).answer
    assert result.limitations
    assert "JSON" in result.limitations[0]


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
    stub.reply_json({"answer": "Revenue for MER-US in October 2026 was USD12500000.", "fact_labels": []})
    result = await OpenAIGenerator(client=client, model=MODEL).generate(data)
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
    stub.reply_json({"answer": f"Revenue was {value:,} USD.", "fact_labels": [data.facts[0].label]})
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
