"""The project's question set (tests/questions/meridian.jsonl), end to end over REST through a real Temporal server.

Every question is asked concurrently (a few at a time) and its result checked against what the question expects
(tests/support/question_oracle.check): outcome and intent, each figure by label with the value the independent
oracle recomputes from the CSV files, missing cells, cited documents, the policy a denial names, what is masked,
and strings or figures that must never appear. All mismatches are collected and reported at once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest

from tests.conftest import Stack
from tests.support.question_oracle import (
    Mismatch,
    QuestionOracle,
    check,
    consolidators,
    load_principals,
    load_questions,
)

pytestmark = pytest.mark.integration

QUESTIONS = load_questions()
PRINCIPALS = load_principals()
AS_OF = "2026-11-21"
# Six requests in flight keep the worker busy without queueing behind each other; the set takes ~30 s.
CONCURRENCY = 6
BUDGET_SECONDS = 120

INTENTS = {
    "metric_lookup",
    "comparison",
    "growth",
    "trend",
    "variance_explanation",
    "scenario",
    "document_question",
    "out_of_scope",
}
OUTCOMES = {"answered", "qualified", "clarification_required", "denied"}
DENIAL_POLICIES = {"POL-001", "POL-002", "POL-003", "POL-004", "POL-005"}
# What a question exercises beyond its intent, so that coverage of each kind is asserted from the file.
REQUIRED_TAGS = {
    "entities",  # a comparison across entities
    "periods",  # a comparison across periods
    "yoy",
    "qoq",
    "mom",
    "two_periods",  # growth or a variance between two named periods
    "default_basis",
    "default_window",
    "gross_profit",
    "gross_margin",
    "operating_income",
    "masked",
    "group",
    "missing_data",
    "relative_period",
    "no_period",
    "no_entity",
    "no_metric",
    "nonsense",
    "injection",
    "tenant_isolation",
    "example",
}


async def ask(stack: Stack, q: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    resp = await stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        json={"question": q["question"], "as_of": q.get("as_of", AS_OF)},
        headers=stack.auth(q["principal"], q.get("tenant", "meridian")),
    )
    body: dict[str, Any] = resp.json()
    return resp.status_code, body


def test_the_set_covers_every_intent_outcome_principal_and_policy() -> None:
    ids = [q["id"] for q in QUESTIONS]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert len(QUESTIONS) >= 130
    assert {q["intent"] for q in QUESTIONS} == INTENTS
    assert {q["outcome"] for q in QUESTIONS} == OUTCOMES
    assert {q["principal"] for q in QUESTIONS} == set(PRINCIPALS)
    for q in QUESTIONS:
        assert PRINCIPALS[q["principal"]]["tenant"] == q.get("tenant", "meridian"), q["id"]
        assert (q["outcome"] == "denied") == ("policy" in q), q["id"]
    assert {q["policy"] for q in QUESTIONS if q["outcome"] == "denied"} == DENIAL_POLICIES
    pairs = {(q["intent"], q["outcome"]) for q in QUESTIONS}
    for intent in INTENTS - {"document_question", "out_of_scope"}:
        assert {(intent, "answered"), (intent, "denied")} <= pairs, intent
    for intent in ("metric_lookup", "comparison", "growth", "trend", "variance_explanation"):
        assert (intent, "qualified") in pairs, intent
    for intent in ("metric_lookup", "trend", "variance_explanation", "document_question", "out_of_scope"):
        assert (intent, "clarification_required") in pairs, intent
    assert ("document_question", "answered") in pairs
    # Tenant isolation (POL-006) is never a denial over REST: the gateway scopes each request to its token's
    # tenant, so another tenant's data and documents are simply not there (the questions tagged
    # tenant_isolation: a clarification, nothing leaked), and a token for the wrong tenant is refused (below).
    exercised = {r for q in QUESTIONS for r in q.get("rules", [])} | DENIAL_POLICIES
    assert {"POL-006", "POL-007", "POL-008"} <= exercised
    tags = {t for q in QUESTIONS for t in q.get("tags", [])}
    assert not REQUIRED_TAGS - tags


async def test_every_question_matches_the_oracle(stack: Stack) -> None:
    oracle = QuestionOracle()
    allowed_group = consolidators(PRINCIPALS)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(q: dict[str, Any]) -> list[Mismatch]:
        async with sem:
            status, body = await ask(stack, q)
        return check(oracle, q, status, body, allowed_group)

    started = time.monotonic()
    results = await asyncio.gather(*(one(q) for q in QUESTIONS))
    elapsed = time.monotonic() - started
    problems = [m for r in results for m in r]
    failed = sorted({m.qid for m in problems})
    report = "\n".join(str(m) for m in problems)
    assert not problems, f"{len(failed)} of {len(QUESTIONS)} questions do not match ({', '.join(failed)}):\n{report}"
    assert elapsed < BUDGET_SECONDS, f"the set took {elapsed:.0f} s"


async def test_a_token_for_another_tenant_is_refused(stack: Stack) -> None:
    # POL-006 at the gateway: Ken (globex) presenting a meridian token reaches no workflow at all.
    resp = await stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        json={"question": "What was revenue for MER-US in March 2026?", "as_of": AS_OF},
        headers=stack.auth("ken", "meridian"),
    )
    assert resp.status_code == 403
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert resp.json()["type"].endswith("/unknown-principal")
