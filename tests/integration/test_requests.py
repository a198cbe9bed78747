"""The example questions this version covers, end to end over REST through a real Temporal dev server.

Expected figures are recomputed from the CSV by tests/support/oracle.py, never copied from the product.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import func, select

from activities import names
from cli.replay import replay_history
from docket.contracts import RequestInput, RequestResult
from docket.db import AuditEventRow, RequestRecord, UsageRecord, table_of
from tests.conftest import DEMO, Stack
from tests.support.history import activity_types, commit_history
from tests.support.oracle import LedgerOracle, growth_pct, margin_pct, months_between

pytestmark = pytest.mark.integration

ORACLE = LedgerOracle(DEMO)
EXAMPLES = {(q["principal"], q["question"]): q for q in map(json.loads, (DEMO / "example_questions.jsonl").open())}
TENANTS = {p["id"]: p["tenant"] for p in json.loads((DEMO / "principals.json").read_text())}


@dataclass
class Expect:
    """What a question should produce, written from the question itself."""

    principal: str
    question: str
    outcome: str
    figures: list[tuple[list[str], str, list[str], list[str]]] = field(default_factory=list)  # ents, acct, months, excl
    missing: list[str] = field(default_factory=list)
    cites: list[str] = field(default_factory=list)
    masked: list[str] = field(default_factory=list)
    policy: str = ""


MERIDIAN = ORACLE.entities_of("meridian")
ANSWERS = [
    Expect("alice", "What was revenue for MER-US last month?", "answered", [(["MER-US"], "4", ["2026-10"], [])]),
    Expect(
        "bob",
        "Show me COGS for MER-DE in March 2026",
        "answered",
        [(["MER-DE"], "5.2", ["2026-03"], [])],
        cites=["doc-close-de-2026-03"],
    ),
    Expect(
        "dave",
        "Compare revenue across EMEA entities for Q2 2026",
        "answered",
        [([e], "4", months_between("2026-04", "2026-06"), []) for e in ORACLE.entities_of("meridian", "EMEA")],
    ),
    Expect(
        "carol",
        "What were professional fees for MER-US in June 2026?",
        "answered",
        [(["MER-US"], "5.7", ["2026-06"], [])],
    ),
    Expect(
        "alice",
        "What was total revenue for the group in October 2026?",
        "qualified",
        [(MERIDIAN, "4", ["2026-10"], [])],
        missing=["MER-BR 2026-10"],
        cites=["doc-br-late"],
    ),
    Expect(
        "carol",
        "What were total operating costs for MER-CA in May 2026?",
        "answered",
        [(["MER-CA"], "5", ["2026-05"], ["5.1"])],
        masked=["5.1"],
    ),
]
DENIALS = [
    Expect("carol", "What was payroll for MER-US in January 2026?", "denied", policy="POL-001"),
    Expect("dave", "What was revenue for MER-JP last month?", "denied", policy="POL-003"),
    Expect("erin", "What was revenue for MER-FR in October 2026?", "denied", policy="POL-004"),
    Expect("heidi", "What was revenue for MER-US last month?", "denied", policy="POL-005"),
]


async def ask(stack: Stack, principal: str, question: str, tenant: str = "meridian", **extra: Any) -> dict[str, Any]:
    example = EXAMPLES.get((principal, question))
    as_of = example["as_of"] if example else "2026-11-21"
    resp = await stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        json={"question": question, "as_of": as_of},
        headers=stack.auth(principal, tenant) | extra.get("headers", {}),
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["status"] == "completed"
    return body


def must_not_contain(body: dict[str, Any], principal: str, question: str) -> None:
    example = EXAMPLES.get((principal, question), {})
    text = json.dumps(body)
    for needle in example.get("expect", {}).get("must_not_contain", []):
        assert needle not in text, f"{needle!r} leaked into the result"


@pytest.mark.parametrize("case", ANSWERS, ids=lambda c: f"{c.principal}:{c.question[:40]}")
async def test_answers_match_the_oracle(stack: Stack, case: Expect) -> None:
    body = await ask(stack, case.principal, case.question)
    assert body["outcome"] == case.outcome, body["answer"]
    assert len(body["facts"]) == len(case.figures)
    for ents, account, months, excl in case.figures:
        expected = ORACLE.sum("meridian", ents, account, months, excl)
        label_entity = ents[0] if len(ents) == 1 else "group"
        fact = next(f for f in body["facts"] if f["entity"] == label_entity and f["account"] == account)
        assert fact["value"] == expected.total
        assert fact["unit"] == "USD"
        assert fact["source"].startswith("ledger meridian")
        assert f"{expected.total:,}" in body["answer"]
    assert body["missing_data"] == case.missing
    for doc in case.cites:
        assert doc in [c["doc_id"] for c in body["citations"]]
    assert [m["account"] for m in body["authorization"]["masked"]] == case.masked
    if case.masked:
        payroll = ORACLE.total("meridian", ["MER-CA"], "5.1", ["2026-05"])
        assert str(payroll) not in json.dumps(body) and f"{payroll:,}" not in json.dumps(body)
        assert any("payroll" in lim.lower() for lim in body["limitations"])
    must_not_contain(body, case.principal, case.question)
    assert body["model"] == "none (template)"
    assert body["prompt"]["id"] == "narrative" and len(body["prompt"]["sha256"]) == 64
    assert body["classification"]["method"] in ("rule", "ml")
    assert "+intent-lr-" in body["classification"]["version"]  # the trained model's version is in every result
    assert set(body["timings"]) >= {"classify", "authorize", "plan", "gather", "generate", "score", "record", "total"}
    assert body["links"]["temporal_ui"].endswith(f"/namespaces/default/workflows/{body['request_id']}")


@pytest.mark.parametrize("case", DENIALS, ids=lambda c: f"{c.principal}:{c.policy}")
async def test_denials_name_the_policy(stack: Stack, case: Expect) -> None:
    body = await ask(stack, case.principal, case.question)
    assert body["outcome"] == "denied"
    assert body["authorization"]["allowed"] is False
    assert body["authorization"]["policies"][0] == case.policy
    assert body["authorization"]["reasons"][0].startswith(case.policy + ":")
    assert body["facts"] == []
    assert case.policy in body["answer"]


async def test_denial_names_the_missing_entitlement(stack: Stack) -> None:
    body = await ask(stack, "heidi", "What was revenue for MER-US last month?")
    assert "MER-US" in body["authorization"]["reasons"][0]


async def test_other_tenant_documents_never_leak(stack: Stack) -> None:
    body = await ask(stack, "ken", "What does the Meridian board memo say?", tenant="globex")
    # Ken (globex) may not see the Meridian memo, and his own tenant's unrelated memo is no answer either.
    assert body["outcome"] == "clarification_required"
    assert body["citations"] == []
    must_not_contain(body, "ken", "What does the Meridian board memo say?")


def document_entities() -> dict[str, set[str]]:
    """Entity tags of the demo documents, read from their front matter (independently of the product)."""
    tags: dict[str, set[str]] = {}
    for path in (DEMO / "documents").glob("*.md"):
        head = path.read_text(encoding="utf-8").split("---")[1]
        line = next(x for x in head.splitlines() if x.startswith("entities:"))
        tags[path.stem] = set(json.loads(line.split(":", 1)[1]))
    return tags


@pytest.mark.parametrize(
    "principal,question,secret",
    [
        ("carol", "What does the Germany close commentary say?", "Stuttgart"),
        ("carol", "What do the close commentaries say?", "Stuttgart"),
        ("dave", "What does the Japan close commentary say?", "doc-close-jp"),
    ],
)
async def test_document_questions_respect_entitlements(
    stack: Stack, principal: str, question: str, secret: str
) -> None:
    body = await ask(stack, principal, question)
    readable = {"carol": {"MER-US", "MER-CA"}, "dave": {"MER-UK", "MER-DE", "MER-FR"}}[principal]
    tags = document_entities()
    for cite in body["citations"]:
        assert tags[cite["doc_id"]] <= readable, f"{cite['doc_id']} is about {tags[cite['doc_id']]}"
    assert secret not in json.dumps(body)


async def test_prompt_injection_in_documents_never_reaches_the_answer(stack: Stack) -> None:
    question = "What were professional fees for MER-US in June 2026?"
    body = await ask(stack, "carol", question)
    must_not_contain(body, "carol", question)
    doc = await ask(stack, "alice", "What does the vendor onboarding note say?")
    assert "IGNORE ALL PREVIOUS INSTRUCTIONS" not in json.dumps(doc)


async def test_a_stage_that_fails_for_good_is_recorded_as_failed(stack: Stack) -> None:
    # A principal who disappears between the gateway's check and the workflow: authorize fails non-retryably.
    wid = f"req-ghost-{stack.task_queue}"
    result = await stack.client.execute_workflow(
        "RequestWorkflow",
        RequestInput(
            tenant="meridian",
            principal_id="ghost",
            question="What was revenue for MER-US last month?",
            as_of=date(2026, 11, 21),
        ),
        id=wid,
        task_queue=stack.task_queue,
        result_type=RequestResult,
    )
    assert result.outcome == "failed"
    assert any("not known" in lim for lim in result.limitations)
    with stack.engine.connect() as conn:
        t = table_of(AuditEventRow)
        stages = [r.stage for r in conn.execute(select(t).where(t.c.workflow_id == wid).order_by(t.c.step))]
    assert stages == ["classify", "authorize", "record"]
    history = await stack.client.get_workflow_handle(wid).fetch_history()
    # The default (fused) placement: understand_request failed for good, and the separate stages ran instead, so
    # the failure is authorize's.
    assert activity_types(history) == [names.UNDERSTAND, names.CLASSIFY, names.AUTHORIZE, names.RECORD]
    ok, message = await replay_history(history)
    assert ok, message
    commit_history(history, "placement-fused-failed-authorize")


async def test_growth_example_is_answered_with_both_periods_and_the_rate(stack: Stack) -> None:
    question = "What is the yoy growth of revenue for MER-JP in September 2026?"
    body = await ask(stack, "grace", question)
    assert body["outcome"] == "answered", body["answer"]
    facts = {f["label"]: f for f in body["facts"]}
    now = ORACLE.total("meridian", ["MER-JP"], "4", ["2026-09"])
    then = ORACLE.total("meridian", ["MER-JP"], "4", ["2025-09"])
    assert facts["revenue MER-JP 2026-09"]["value"] == now
    assert facts["revenue MER-JP 2025-09"]["value"] == then
    growth = facts["revenue yoy growth pct MER-JP 2026-09"]
    assert (
        growth["value"] == growth_pct(now, then) == EXAMPLES[("grace", question)]["expect"]["facts"]["yoy growth pct"]
    )
    assert growth["unit"] == "%" and growth["kind"] == "growth_pct"
    assert facts["revenue yoy change MER-JP 2026-09"]["value"] == now - then
    assert f"{growth_pct(now, then):.1f}%" in body["answer"]
    assert body["confidence"]["components"]["coverage"] == 1.0


async def test_scenario_example_returns_current_and_shocked_gross_margin(stack: Stack) -> None:
    question = "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?"
    body = await ask(stack, "alice", question)
    expected = EXAMPLES[("alice", question)]["expect"]
    assert body["outcome"] == expected["outcome"], body["answer"]
    assert body["classification"]["complexity"] == expected["complexity"]
    facts = {f["label"]: f["value"] for f in body["facts"]}
    revenue = ORACLE.total("meridian", ["MER-US"], "4", ["2026-10"])
    cogs = ORACLE.total("meridian", ["MER-US"], "5.2", ["2026-10"])
    materials = ORACLE.total("meridian", ["MER-US"], "5.2.1", ["2026-10"])
    current = margin_pct(revenue, cogs)
    shocked = margin_pct(revenue, cogs + Fraction(materials, 10))
    assert facts["gross margin pct MER-US 2026-10"] == current == expected["facts"]["gross margin pct MER-US 2026-10"]
    assert (
        facts["scenario gross margin pct MER-US 2026-10"]
        == shocked
        == expected["facts"]["scenario gross margin pct MER-US 2026-10"]
    )
    assert f"{current:.1f}%" in body["answer"] and f"{shocked:.1f}%" in body["answer"]


async def test_question_without_period_asks_for_one(stack: Stack) -> None:
    body = await ask(stack, "alice", "What was revenue for MER-US?")
    assert body["outcome"] == "clarification_required"
    assert any("period" in q.lower() for q in body["clarifying_questions"])


async def test_each_request_records_result_usage_and_one_audit_row_per_stage(stack: Stack) -> None:
    body = await ask(stack, "alice", "What was revenue for MER-US last month?")
    wid = body["request_id"]
    with stack.engine.connect() as conn:
        audit = conn.execute(select(table_of(AuditEventRow)).where(table_of(AuditEventRow).c.workflow_id == wid)).all()
        results = conn.execute(
            select(func.count())
            .select_from(table_of(RequestRecord))
            .where(table_of(RequestRecord).c.workflow_id == wid)
        ).scalar()
        usage = conn.execute(
            select(func.count()).select_from(table_of(UsageRecord)).where(table_of(UsageRecord).c.workflow_id == wid)
        ).scalar()
    stages = [row.stage for row in sorted(audit, key=lambda r: r.step)]
    assert stages == ["classify", "authorize", "plan", "gather", "generate", "score", "record"]
    assert results == 1 and usage == 1
    assert audit[1].policy_version == body["authorization"]["policy_version"] != ""


async def test_get_returns_the_result_contract(stack: Stack) -> None:
    body = await ask(stack, "bob", "Show me COGS for MER-DE in March 2026")
    resp = await stack.http.get(f"/v1/requests/{body['request_id']}", headers=stack.auth("bob"))
    assert resp.status_code == 200
    got = resp.json()
    for key in (
        "request_id",
        "status",
        "outcome",
        "answer",
        "facts",
        "citations",
        "limitations",
        "missing_data",
        "confidence",
        "classification",
        "authorization",
        "prompt",
        "model",
        "usage",
        "timings",
        "links",
    ):
        assert key in got, key
    assert got["facts"] == body["facts"]
    assert set(got["confidence"]) == {"score", "band", "components"}
    # Someone else's request is not theirs to read.
    other = await stack.http.get(f"/v1/requests/{body['request_id']}", headers=stack.auth("alice"))
    assert other.status_code == 404
    assert other.headers["content-type"].startswith("application/problem+json")


async def test_without_wait_returns_202_then_the_result(stack: Stack) -> None:
    resp = await stack.http.post(
        "/v1/requests",
        json={"question": "What was revenue for MER-US last month?", "as_of": "2026-11-21"},
        headers=stack.auth("alice"),
    )
    assert resp.status_code == 202  # wait=0: the gateway answers before the workflow can finish
    assert resp.json()["status"] == "running" and resp.json()["as_of"] == "2026-11-21"
    wid = resp.json()["request_id"]
    assert resp.headers["location"].endswith(f"/v1/requests/{wid}")
    handle = stack.client.get_workflow_handle(wid)
    await handle.result()
    done = await stack.http.get(f"/v1/requests/{wid}", headers=stack.auth("alice"))
    assert done.json()["status"] == "completed"
    assert done.json()["facts"][0]["value"] == ORACLE.total("meridian", ["MER-US"], "4", ["2026-10"])


async def test_events_stream_ends_with_the_result(stack: Stack) -> None:
    body = await ask(stack, "alice", "What was revenue for MER-US last month?")
    async with stack.http.stream(
        "GET", f"/v1/requests/{body['request_id']}/events", headers=stack.auth("alice")
    ) as resp:
        text = "".join([chunk async for chunk in resp.aiter_text()])
    assert "event: result" in text and body["request_id"] in text


async def test_idempotency_key_returns_the_same_request_and_starts_one_workflow(stack: Stack) -> None:
    key = "idem-" + stack.task_queue
    payload = {"question": "What was revenue for MER-US last month?", "as_of": "2026-11-21"}
    headers = stack.auth("alice") | {"Idempotency-Key": key}
    first = await stack.http.post("/v1/requests", params={"wait": 30}, json=payload, headers=headers)
    second = await stack.http.post("/v1/requests", params={"wait": 30}, json=payload, headers=headers)
    assert first.status_code == second.status_code == 200
    wid = first.json()["request_id"]
    assert second.json()["request_id"] == wid and wid.startswith("req-")
    runs: list[Any] = []
    for _ in range(50):  # visibility is eventually consistent: wait until the run shows up
        runs = [w async for w in stack.client.list_workflows(f"WorkflowId = '{wid}'")]
        if runs:
            break
        await asyncio.sleep(0.1)
    assert len(runs) == 1
    with stack.engine.connect() as conn:
        rows = conn.execute(
            select(func.count())
            .select_from(table_of(RequestRecord))
            .where(table_of(RequestRecord).c.workflow_id == wid)
        ).scalar()
    assert rows == 1
    # The same key for a different question is a conflict, not a silent reuse.
    clash = await stack.http.post(
        "/v1/requests", json={"question": "What was revenue for MER-CA last month?"}, headers=headers
    )
    assert clash.status_code == 409
    assert clash.headers["content-type"].startswith("application/problem+json")
    # Another principal's identical key is another request, not a conflict (keys are scoped per principal).
    other = await stack.http.post(
        "/v1/requests", params={"wait": 30}, json=payload, headers=stack.auth("bob") | {"Idempotency-Key": key}
    )
    assert other.status_code == 200 and other.json()["request_id"] != wid


def _fact_for(facts: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The example file names facts by label ("revenue MER-JP 2026-09") or by their kind ("yoy growth pct")."""
    exact = [f for f in facts if f["label"] == key]
    return exact[0] if exact else next(f for f in facts if key in f["label"])


@pytest.mark.parametrize("example", list(EXAMPLES.values()), ids=lambda e: f"{e['principal']}:{e['question'][:40]}")
async def test_every_example_question_gets_its_expected_outcome(stack: Stack, example: dict[str, Any]) -> None:
    """examples/meridian/example_questions.jsonl as written (its figures are the data pack's, not Docket's)."""
    expect = example["expect"]
    body = await ask(stack, example["principal"], example["question"], tenant=TENANTS[example["principal"]])
    outcome = {"answered_masked": "answered", "no_access_or_no_data": body["outcome"]}.get(
        expect["outcome"], expect["outcome"]
    )
    if expect["outcome"] == "no_access_or_no_data":
        assert body["outcome"] in ("denied", "clarification_required") and body["facts"] == []
    assert body["outcome"] == outcome, body["answer"]
    for key, value in expect.get("facts", {}).items():
        assert _fact_for(body["facts"], key)["value"] == value, key
    assert body["missing_data"] == expect.get("missing", [])
    for doc in expect.get("cites", []):
        assert doc in [c["doc_id"] for c in body["citations"]]
    if "policy" in expect:
        assert expect["policy"] in body["authorization"]["policies"]
    if "complexity" in expect:
        assert body["classification"]["complexity"] == expect["complexity"]
    must_not_contain(body, example["principal"], example["question"])


async def test_citations_link_to_documents_the_asker_may_read(stack: Stack) -> None:
    body = await ask(stack, "bob", "Show me COGS for MER-DE in March 2026")
    cited = next(c for c in body["citations"] if c["doc_id"] == "doc-close-de-2026-03")
    assert cited["url"].endswith("/v1/documents/doc-close-de-2026-03")
    doc = await stack.http.get(cited["url"], headers=stack.auth("bob"))
    assert doc.status_code == 200, doc.text
    assert doc.json()["doc_id"] == "doc-close-de-2026-03" and "MER-DE" in doc.json()["body"]
    # The same link for someone who may not read MER-DE (grace: APAC only), or another tenant: absent.
    for who, tenant in (("grace", "meridian"), ("judy", "globex")):
        denied = await stack.http.get(cited["url"], headers=stack.auth(who, tenant))
        assert denied.status_code == 404, (who, denied.text)
        assert denied.headers["content-type"].startswith("application/problem+json")
    listed = await stack.http.get("/v1/documents", headers=stack.auth("grace"))
    assert "doc-close-de-2026-03" not in [d["doc_id"] for d in listed.json()]
