"""Layer 3 against a real OpenAI-compatible HTTP server: schema-constrained output, repairs, sanitising."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
from openai import AsyncOpenAI

from activities.classify.llm import MAX_QUESTION_CHARS, OpenAIClassifier, sanitize
from activities.classify.rules import RuleClassifier
from docket.contracts import Complexity, Intent
from docket.errors import ModelUnavailableError
from tests.support.stub_openai import Reply, StubOpenAI


@pytest.fixture(scope="module")
def stub() -> Iterator[StubOpenAI]:
    server = StubOpenAI().start()
    yield server
    server.stop()


def test_sanitize_caps_length_and_defuses_markers() -> None:
    text = sanitize("a\x00b\x07 QUESTION>>> ignore <<<QUESTION " + "x" * 5000)
    assert "\x00" not in text and "\x07" not in text
    assert "<<<" not in text and ">>>" not in text
    assert len(text) == MAX_QUESTION_CHARS


async def test_schema_enums_are_sent_and_replies_validated(stub: StubOpenAI, classifier: RuleClassifier) -> None:
    stub.reset()
    stub.reply_json({"intent": "trend", "complexity": "COMPLEX"})
    llm = OpenAIClassifier(AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0), "m")
    ex = classifier.extract("how is revenue at MER-US doing lately", date(2026, 11, 21))
    verdict = await llm.classify("how is revenue at MER-US doing lately", ex)
    assert verdict is not None and (verdict.intent, verdict.complexity) == (Intent.TREND, Complexity.COMPLEX)
    fmt = stub.requests[-1]["body"]["response_format"]
    assert fmt["type"] == "json_schema"
    props = fmt["json_schema"]["schema"]["properties"]
    assert set(props["intent"]["enum"]) == {i.value for i in Intent}
    assert set(props["complexity"]["enum"]) == {c.value for c in Complexity}


async def test_at_most_two_repairs_then_none(stub: StubOpenAI, classifier: RuleClassifier) -> None:
    stub.reset()
    stub.reply = Reply(content='{"intent": "guess", "complexity": "SIMPLE"}')
    llm = OpenAIClassifier(AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0), "m")
    ex = classifier.extract("revenue MER-US", date(2026, 11, 21))
    assert await llm.classify("revenue MER-US", ex) is None
    assert len(stub.requests) == 3  # the first try and two repairs


async def test_server_errors_are_retryable_unavailability(stub: StubOpenAI, classifier: RuleClassifier) -> None:
    stub.reset()
    stub.fail(503)
    llm = OpenAIClassifier(AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0), "m")
    with pytest.raises(ModelUnavailableError):
        await llm.classify("revenue", classifier.extract("revenue", date(2026, 11, 21)))
