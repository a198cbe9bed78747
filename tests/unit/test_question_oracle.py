"""The question set's spec evaluator and result checker (tests/support/question_oracle.py), without a server.

The evaluator is checked against the figures the data pack itself ships (example_questions.jsonl), the file
against the CSV (declared missing cells really are missing), and the checker against results built from the
expectations, so a green end-to-end run means the product matched, not that nothing was compared.
"""

from __future__ import annotations

import copy
import json
import re
from fractions import Fraction
from typing import Any

import pytest

from tests.support.oracle import DEMO_PACK, LedgerOracle, months_between
from tests.support.question_oracle import (
    Figure,
    QuestionOracle,
    SpecError,
    check,
    consolidators,
    load_principals,
    load_questions,
    percent,
    period_months,
    trend_direction,
)

QUESTIONS = load_questions()
BY_ID = {q["id"]: q for q in QUESTIONS}
EXAMPLES = [json.loads(line) for line in (DEMO_PACK / "example_questions.jsonl").read_text().splitlines()]
ALLOWED_GROUP = consolidators(load_principals())
# How the pack's example outcomes read in the result contract.
OUTCOMES = {
    "answered": {"answered"},
    "answered_masked": {"answered"},
    "qualified": {"qualified"},
    "denied": {"denied"},
    "no_access_or_no_data": {"clarification_required", "denied"},
}


@pytest.fixture(scope="module")
def qo(oracle: LedgerOracle) -> QuestionOracle:
    return QuestionOracle(oracle)


def sum_spec(entity: str, account: str, period: str, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"sum": {"entities": [entity], "account": account, "period": period, "exclude": list(exclude)}}


def test_period_labels_name_their_months() -> None:
    assert period_months("2026-03") == ["2026-03"]
    assert period_months("2026-Q2") == ["2026-04", "2026-05", "2026-06"]
    assert period_months("2026-H2") == months_between("2026-07", "2026-12")
    assert period_months("2025") == months_between("2025-01", "2025-12")
    assert period_months("2026-05..2026-10") == months_between("2026-05", "2026-10")


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: f"{e['principal']}:{e['question'][:40]}")
def test_the_set_restates_every_example_question(qo: QuestionOracle, example: dict[str, Any]) -> None:
    matches = [q for q in QUESTIONS if (q["principal"], q["question"]) == (example["principal"], example["question"])]
    assert len(matches) == 1
    q = matches[0]
    expect = example["expect"]
    assert q["outcome"] in OUTCOMES[expect["outcome"]]
    assert q.get("policy") == expect.get("policy")
    assert set(expect.get("cites", [])) <= set(q.get("cites", []))
    assert q.get("missing", []) == expect.get("missing", [])
    for label, value in expect.get("facts", {}).items():
        # The pack abbreviates the growth label ("yoy growth pct"); the set names it in full.
        labels = [label] if label in q["facts"] else [x for x in q["facts"] if x.split(" ", 1)[1].startswith(label)]
        assert len(labels) == 1, label
        assert qo.figure(q["facts"][labels[0]]).number == value
    hidden = {str(qo.figure(s).number) for s in q.get("hidden", [])} | set(q.get("must_not_contain", []))
    assert set(expect.get("must_not_contain", [])) <= hidden


def test_the_example_figures_themselves() -> None:
    qo = QuestionOracle()
    facts = BY_ID["scenario-01"]["facts"]
    assert qo.figure(facts["gross margin pct MER-US 2026-10"]) == Figure(Fraction(60), "%")
    assert qo.figure(facts["scenario gross margin pct MER-US 2026-10"]).number == 57.2
    assert qo.figure(BY_ID["qualified-01"]["facts"]["revenue group 2026-10"]).number == 46032176
    assert qo.figure(BY_ID["growth-01"]["facts"]["revenue yoy growth pct MER-JP 2026-09"]).number == 16.0
    assert qo.figure(BY_ID["lookup-04"]["hidden"][0]).number == 959745


def expected_unit(label: str) -> str:
    if "trend slope" in label:
        return "USD/month"
    if re.search(r"\bpct\b.*\bchange\b", label):
        return "pp"  # a change of a percentage is in points
    return "%" if re.search(r"\bpct\b", label) else "USD"


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q["id"])
def test_every_spec_evaluates_in_the_unit_its_label_names(qo: QuestionOracle, q: dict[str, Any]) -> None:
    for label, spec in q.get("facts", {}).items():
        fig = qo.figure(spec)
        assert fig.unit == expected_unit(label), label
        assert isinstance(fig.number, int | float)
    for spec in q.get("hidden", []):
        assert qo.figure(spec).unit == "USD"


def sum_specs(spec: Any) -> list[dict[str, Any]]:
    """Every ledger sum inside a spec."""
    if isinstance(spec, dict):
        if "sum" in spec:
            return [spec["sum"]]
        return [s for v in spec.values() for s in sum_specs(v)]
    if isinstance(spec, list):
        return [s for v in spec for s in sum_specs(v)]
    return []


@pytest.mark.parametrize("q", QUESTIONS, ids=lambda q: q["id"])
def test_declared_missing_cells_are_the_ones_the_csv_lacks(qo: QuestionOracle, q: dict[str, Any]) -> None:
    tenant = q.get("tenant", "meridian")
    for cell in q.get("missing", []):
        entity, month = cell.split(" ")
        assert qo.oracle.is_missing(tenant, entity, month), cell
    # A figure over a missing cell must say so: the cell is among the question's missing data.
    for spec in q.get("facts", {}).values():
        for args in sum_specs(spec):
            assert set(qo.missing(args)) <= set(q.get("missing", [])), args
    if q.get("missing"):
        assert q["outcome"] in ("qualified", "clarification_required")


def test_operations_on_the_ledger(qo: QuestionOracle, oracle: LedgerOracle) -> None:
    rev, cogs = sum_spec("MER-US", "4", "2026-10"), sum_spec("MER-US", "5.2", "2026-10")
    r, c = (
        oracle.total("meridian", ["MER-US"], "4", ["2026-10"]),
        oracle.total("meridian", ["MER-US"], "5.2", ["2026-10"]),
    )
    assert qo.figure({"difference": [rev, cogs]}) == Figure(Fraction(r - c), "USD")
    assert qo.figure({"add": [rev, cogs]}).number == r + c
    assert qo.figure({"scale": [cogs, "0.1"]}).value == Fraction(c, 10)
    assert c % 2 == 1  # so that half of it is a tie: money rounds half away from zero
    assert qo.figure({"round": {"scale": [cogs, "0.5"]}}).number == (c + 1) // 2
    assert qo.figure({"round": {"scale": [cogs, "-0.5"]}}).number == -((c + 1) // 2)
    with pytest.raises(SpecError):
        _ = qo.figure({"scale": [cogs, "0.5"]}).number  # not whole: must be rounded explicitly
    margin = qo.figure({"margin_pct": [rev, cogs]})
    assert margin.unit == "%"
    assert qo.figure({"difference": [{"margin_pct": [rev, cogs]}, {"margin_pct": [rev, rev]}]}) == Figure(
        margin.value, "pp"
    )
    assert qo.figure({"sum": {"entities": "region:EMEA", "account": "4", "period": "2026-Q2"}}).number == (
        oracle.total("meridian", ["MER-UK", "MER-DE", "MER-FR"], "4", months_between("2026-04", "2026-06"))
    )
    per_month = {"slope": {"per_month": {"entities": ["MER-US"], "account": "4", "period": "2026-05..2026-10"}}}
    listed = {"slope": [sum_spec("MER-US", "4", m) for m in months_between("2026-05", "2026-10")]}
    assert qo.figure(per_month) == qo.figure(listed)
    with pytest.raises(SpecError):
        qo.figure(sum_spec("MER-BR", "4", "2026-10"))  # no data at all: there is no figure to expect
    assert qo.missing(sum_spec("MER-BR", "4", "2026-Q3")["sum"]) == ["MER-BR 2026-09"]


def test_percentages_round_half_away_from_zero() -> None:
    assert percent(Fraction(1, 20)) == Fraction(1, 10)
    assert percent(Fraction(-1, 30)) == 0
    assert percent(Fraction(-1, 20)) == Fraction(-1, 10)  # -0.05 → -0.1, as the product rounds


def test_trend_direction_is_relative_to_the_mean() -> None:
    assert trend_direction([100, 110, 120]) == "up"
    assert trend_direction([120, 110, 100]) == "down"
    assert trend_direction([1000, 1001, 1002]) == "flat"  # 1 a month is 0.1 % of the mean
    assert trend_direction([0, 0, 0]) == "flat"


# ---------------------------------------------------------------- the checker


def result_for(qo: QuestionOracle, q: dict[str, Any]) -> dict[str, Any]:
    """The result the question expects, as the API would return it."""
    facts = []
    lines = []
    for label, spec in q.get("facts", {}).items():
        fig = qo.figure(spec)
        detail = trend_direction(qo.series_values(spec)) if "slope" in spec else ""
        facts.append(
            {"label": label, "value": fig.number, "unit": fig.unit, "entity": label.split(" ")[-2]} | {"detail": detail}
        )
        lines.append(f"{label}: {fig.number:,}")
    return {
        "status": "completed",
        "outcome": q["outcome"],
        "answer": "\n".join(lines) + (f" {q['policy']}" if "policy" in q else ""),
        "classification": {"intent": q["intent"]},
        "facts": facts,
        "missing_data": list(q.get("missing", [])),
        "citations": [{"doc_id": d} for d in q.get("cites", [])],
        "authorization": {"masked": [{"account": a} for a in q.get("masked", [])], "policies": [q.get("policy")]},
        "clarifying_questions": ["Which period?"] if q["outcome"] == "clarification_required" else [],
    }


@pytest.mark.parametrize("qid", ["lookup-04", "growth-01", "trend-05", "variance-07", "scenario-01", "deny-13"])
def test_check_passes_the_expected_result(qo: QuestionOracle, qid: str) -> None:
    q = BY_ID[qid]
    assert check(qo, q, 200, result_for(qo, q), ALLOWED_GROUP) == []


def fields(qo: QuestionOracle, q: dict[str, Any], body: dict[str, Any], status: int = 200) -> list[str]:
    return [m.field for m in check(qo, q, status, body, ALLOWED_GROUP)]


def test_check_reports_each_difference(qo: QuestionOracle) -> None:
    q = BY_ID["lookup-04"]  # carol: MER-CA operating costs with payroll masked
    good = result_for(qo, q)
    label = "operating costs excl. payroll MER-CA 2026-05"

    body = copy.deepcopy(good)
    body["facts"][0]["value"] += 1
    assert fields(qo, q, body) == [f"fact {label}"]

    body = copy.deepcopy(good)
    body["answer"] += f" Payroll was {qo.figure(q['hidden'][0]).number:,}."
    assert fields(qo, q, body) == ["hidden figure"]

    body = copy.deepcopy(good)
    body["facts"] = []
    assert fields(qo, q, body) == [f"fact {label}"]

    body = copy.deepcopy(good)
    body["authorization"]["masked"] = []
    body["outcome"] = "qualified"
    body["missing_data"] = ["MER-CA 2026-05"]
    assert fields(qo, q, body) == ["outcome", "missing_data", "masked"]

    assert fields(qo, q, good | {"status": "running"}) == ["status"]
    assert fields(qo, q, good, status=500) == ["status"]


def test_check_reports_a_wrong_policy_a_leak_and_a_consolidated_figure(qo: QuestionOracle) -> None:
    denial = BY_ID["deny-13"]  # dave outside his region: POL-003
    body = result_for(qo, denial)
    body["authorization"]["policies"] = ["POL-005"]
    assert fields(qo, denial, body) == ["policy"]

    memo = BY_ID["doc-03"]  # ken must not learn what the Meridian board memo says
    body = result_for(qo, memo) | {"answer": "The board considers a divestment."}
    assert fields(qo, memo, body) == ["must_not_contain"]

    compare = BY_ID["compare-05"]  # erin compares entities: she may not see a group total
    body = result_for(qo, compare)
    body["facts"].append({"label": "revenue group 2026-Q3", "value": 1, "unit": "USD", "entity": "group"})
    assert fields(qo, compare, body) == ["consolidated facts (POL-002)"]
