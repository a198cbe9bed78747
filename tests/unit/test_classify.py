"""RuleClassifier over the catalog loaded from the demo pack: intents, slots, periods, clarifications."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine

from activities.classify.rules import RuleClassifier
from docket.catalog import Catalog, load_catalog
from docket.contracts import Complexity, Intent

AS_OF = date(2026, 11, 21)
EMEA = ["MER-DE", "MER-FR", "MER-UK"]
GROUP = ["MER-AU", "MER-BR", "MER-CA", "MER-DE", "MER-FR", "MER-JP", "MER-MX", "MER-SG", "MER-UK", "MER-US"]


def q_months(year: int, q: int) -> list[str]:
    return [f"{year}-{m:02d}" for m in range(q * 3 - 2, q * 3 + 1)]


# (question, intent, entities, accounts, [(period label, months)]) — read off each question of
# example_questions.jsonl, as of 2026-11-21 (so "last month" is October 2026).
EXAMPLES: list[tuple[str, Intent, list[str], list[str], list[tuple[str, list[str]]]]] = [
    ("What was revenue for MER-US last month?", Intent.METRIC_LOOKUP, ["MER-US"], ["4"], [("2026-10", ["2026-10"])]),
    ("Show me COGS for MER-DE in March 2026", Intent.METRIC_LOOKUP, ["MER-DE"], ["5.2"], [("2026-03", ["2026-03"])]),
    (
        "Compare revenue across EMEA entities for Q2 2026",
        Intent.COMPARISON,
        EMEA,
        ["4"],
        [("2026-Q2", q_months(2026, 2))],
    ),
    (
        "What was payroll for MER-US in January 2026?",
        Intent.METRIC_LOOKUP,
        ["MER-US"],
        ["5.1"],
        [("2026-01", ["2026-01"])],
    ),
    ("What was revenue for MER-JP last month?", Intent.METRIC_LOOKUP, ["MER-JP"], ["4"], [("2026-10", ["2026-10"])]),
    (
        "What was revenue for MER-FR in October 2026?",
        Intent.METRIC_LOOKUP,
        ["MER-FR"],
        ["4"],
        [("2026-10", ["2026-10"])],
    ),
    (
        "What is the yoy growth of revenue for MER-JP in September 2026?",
        Intent.GROWTH,
        ["MER-JP"],
        ["4"],
        [("2026-09", ["2026-09"])],
    ),
    (
        "What was total revenue for the group in October 2026?",
        Intent.METRIC_LOOKUP,
        GROUP,
        ["4"],
        [("2026-10", ["2026-10"])],
    ),
    ("What does the Meridian board memo say?", Intent.DOCUMENT_QUESTION, [], [], []),
    (
        "What were professional fees for MER-US in June 2026?",
        Intent.METRIC_LOOKUP,
        ["MER-US"],
        ["5.7"],
        [("2026-06", ["2026-06"])],
    ),
    (
        "What were total operating costs for MER-CA in May 2026?",
        Intent.METRIC_LOOKUP,
        ["MER-CA"],
        ["5"],
        [("2026-05", ["2026-05"])],
    ),
]


@pytest.mark.parametrize(
    ("question", "intent", "entities", "accounts", "periods"), EXAMPLES, ids=[e[0] for e in EXAMPLES]
)
def test_example_questions(
    classifier: RuleClassifier,
    question: str,
    intent: Intent,
    entities: list[str],
    accounts: list[str],
    periods: list[tuple[str, list[str]]],
) -> None:
    result = classifier.classify(question, AS_OF)
    assert result.intent == intent
    assert sorted(result.slots.entities) == sorted(entities)
    assert result.slots.accounts == accounts
    assert [(p.label, p.months) for p in result.slots.periods] == periods
    assert result.clarifications == []
    assert result.method == "rule"
    assert result.confidence >= 0.9


def test_scenario_example_is_expert(classifier: RuleClassifier) -> None:
    q = "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?"
    result = classifier.classify(q, AS_OF)
    assert result.intent == Intent.SCENARIO
    assert result.complexity == Complexity.EXPERT
    assert result.slots.entities == ["MER-US"]
    # "materials cost rises 10%" is a shock on account 5.2.1, not a metric asked for; gross margin is derived.
    assert [(x.account, x.change_pct) for x in result.slots.shocks] == [("5.2.1", 10.0)]
    assert result.slots.accounts == []
    assert result.slots.derived == ["gross_margin_pct"]
    assert [p.label for p in result.slots.periods] == ["2026-10"]


def test_complexity_follows_intent(classifier: RuleClassifier) -> None:
    assert classifier.classify("What was revenue for MER-US last month?", AS_OF).complexity == Complexity.SIMPLE
    assert (
        classifier.classify("Compare revenue across EMEA entities for Q2 2026", AS_OF).complexity == Complexity.MODERATE
    )
    assert classifier.classify("Why did revenue for MER-DE fall in March 2026?", AS_OF).complexity == (
        Complexity.COMPLEX
    )


def test_group_scope(classifier: RuleClassifier) -> None:
    result = classifier.classify("What was total revenue for the group in October 2026?", AS_OF)
    assert result.slots.entity_scope == "group"
    assert result.slots.regions == []


# ----------------------------------------------------------------- periods, as of 2026-11-21

PERIODS: list[tuple[str, str, list[str], bool]] = [
    ("last month", "2026-10", ["2026-10"], True),
    ("this month", "2026-11", ["2026-11"], True),
    ("March 2026", "2026-03", ["2026-03"], False),
    ("Mar 2026", "2026-03", ["2026-03"], False),
    ("2026-03", "2026-03", ["2026-03"], False),
    ("Q2 2026", "2026-Q2", q_months(2026, 2), False),
    ("Q2", "2026-Q2", q_months(2026, 2), True),
    ("H1 2026", "2026-H1", [f"2026-{m:02d}" for m in range(1, 7)], False),
    ("2025", "2025", [f"2025-{m:02d}" for m in range(1, 13)], False),
    ("FY2025", "2025", [f"2025-{m:02d}" for m in range(1, 13)], False),
    ("YTD", "2026-YTD", [f"2026-{m:02d}" for m in range(1, 11)], True),
    ("last quarter", "2026-Q3", q_months(2026, 3), True),
    ("last year", "2025", [f"2025-{m:02d}" for m in range(1, 13)], True),
    ("the last 3 months", "2026-08..2026-10", ["2026-08", "2026-09", "2026-10"], True),
    ("in March", "2026-03", ["2026-03"], True),
    ("in December", "2025-12", ["2025-12"], True),
]


@pytest.mark.parametrize(("phrase", "label", "months", "relative"), PERIODS, ids=[p[0] for p in PERIODS])
def test_period_resolution(
    classifier: RuleClassifier, phrase: str, label: str, months: list[str], relative: bool
) -> None:
    result = classifier.classify(f"What was revenue for MER-US for {phrase}?", AS_OF)
    assert len(result.slots.periods) == 1, result.explanations
    period = result.slots.periods[0]
    assert (period.label, period.months, period.relative) == (label, months, relative)
    assert result.intent == Intent.METRIC_LOOKUP


@pytest.mark.parametrize(
    ("as_of", "phrase", "label", "first", "last"),
    [
        (date(2026, 1, 15), "last month", "2025-12", "2025-12", "2025-12"),
        (date(2026, 2, 10), "last quarter", "2025-Q4", "2025-10", "2025-12"),
        (date(2026, 2, 10), "the last 3 months", "2025-11..2026-01", "2025-11", "2026-01"),
        (date(2026, 4, 1), "YTD", "2026-YTD", "2026-01", "2026-03"),
        (date(2026, 4, 1), "last quarter", "2026-Q1", "2026-01", "2026-03"),
    ],
)
def test_relative_periods_cross_year_boundaries(
    classifier: RuleClassifier, as_of: date, phrase: str, label: str, first: str, last: str
) -> None:
    period = classifier.classify(f"What was revenue for MER-US for {phrase}?", as_of).slots.periods[0]
    assert (period.label, period.months[0], period.months[-1]) == (label, first, last)


@pytest.mark.parametrize("phrase", ["the last 0 months", "the past 00 months"])
def test_zero_month_window_asks_for_a_period(classifier: RuleClassifier, phrase: str) -> None:
    result = classifier.classify(f"What was revenue for MER-US for {phrase}?", AS_OF)
    assert result.slots.periods == []
    assert any("period" in c.lower() for c in result.clarifications)


def test_two_periods_keep_question_order(classifier: RuleClassifier) -> None:
    result = classifier.classify("Compare revenue for MER-US in March 2026 vs March 2025", AS_OF)
    assert [p.label for p in result.slots.periods] == ["2026-03", "2025-03"]


# ----------------------------------------------------------------- entities and accounts

ENTITIES: list[tuple[str, list[str], str, list[str]]] = [
    ("MER-DE", ["MER-DE"], "explicit", []),
    ("mer-de", ["MER-DE"], "explicit", []),
    ("Meridian GmbH", ["MER-DE"], "explicit", []),
    ("Germany", ["MER-DE"], "explicit", []),
    ("Japan", ["MER-JP"], "explicit", []),
    ("EMEA", EMEA, "region:EMEA", ["EMEA"]),
    ("Europe", EMEA, "region:EMEA", ["EMEA"]),
    ("the group", GROUP, "group", []),
    ("MER-US and MER-CA", ["MER-US", "MER-CA"], "explicit", []),
]


@pytest.mark.parametrize(("phrase", "entities", "scope", "regions"), ENTITIES, ids=[e[0] for e in ENTITIES])
def test_entity_resolution(
    classifier: RuleClassifier, phrase: str, entities: list[str], scope: str, regions: list[str]
) -> None:
    result = classifier.classify(f"What was revenue for {phrase} in March 2026?", AS_OF)
    assert sorted(result.slots.entities) == sorted(entities)
    assert result.slots.entity_scope == scope
    assert result.slots.regions == regions


def test_entity_match_is_explained(classifier: RuleClassifier) -> None:
    result = classifier.classify("What was revenue in Germany in March 2026?", AS_OF)
    assert any("germany" in why and "MER-DE" in why for why in result.explanations)


ACCOUNTS: list[tuple[str, str, str]] = [
    ("COGS", "5.2", "cogs"),
    ("cost of sales", "5.2", "cost of goods sold"),
    ("opex", "5", "opex"),
    ("operating expenses", "5", "operating costs"),
    ("salaries", "5.1.1", "salaries and wages"),
    ("payroll taxes", "5.1.3", "payroll taxes"),
    ("sales and marketing", "5.3", "sales and marketing"),
    ("sales", "4", "revenue"),
    ("account 5.7", "5.7", "professional fees"),
]


@pytest.mark.parametrize(("phrase", "account", "metric"), ACCOUNTS, ids=[a[0] for a in ACCOUNTS])
def test_account_aliases(classifier: RuleClassifier, phrase: str, account: str, metric: str) -> None:
    result = classifier.classify(f"What was {phrase} for MER-US in March 2026?", AS_OF)
    assert result.slots.accounts == [account]
    assert result.slots.metrics == [metric]
    assert result.intent == Intent.METRIC_LOOKUP


def test_other_tenant_names_are_not_recognised(pack_engine: Engine) -> None:
    globex = RuleClassifier(load_catalog(pack_engine, "globex"))
    result = globex.classify("What was revenue for MER-US in March 2026?", AS_OF)
    assert result.slots.entities == []
    assert any("entity" in c.lower() for c in result.clarifications)
    result = globex.classify("What was revenue for Globex Corporation in March 2026?", AS_OF)
    assert result.slots.entities == ["GLX-US"]


# ----------------------------------------------------------------- clarifications and scope


@pytest.mark.parametrize(
    ("question", "asks_for"),
    [
        ("Compare MER-US and MER-CA in March 2026", "metric"),
        ("What was revenue in March 2026?", "entity"),
        ("What was revenue for MER-US?", "period"),
    ],
)
def test_clarification_when_a_slot_is_missing(classifier: RuleClassifier, question: str, asks_for: str) -> None:
    result = classifier.classify(question, AS_OF)
    assert len(result.clarifications) == 1
    assert asks_for in result.clarifications[0].lower()
    assert result.confidence < 0.5


def test_missing_entity_and_period_ask_two_questions(classifier: RuleClassifier) -> None:
    result = classifier.classify("What was revenue?", AS_OF)
    assert result.slots.accounts == ["4"]
    joined = " ".join(result.clarifications).lower()
    assert len(result.clarifications) == 2
    assert "entity" in joined
    assert "period" in joined


def test_out_of_scope(classifier: RuleClassifier) -> None:
    result = classifier.classify("tell me a joke", AS_OF)
    assert result.intent == Intent.OUT_OF_SCOPE
    assert result.clarifications
    assert result.confidence < 0.5
    assert result.slots.accounts == []
    assert result.slots.entities == []
    assert result.slots.periods == []


def test_document_question_needs_no_slots(classifier: RuleClassifier) -> None:
    result = classifier.classify("What does the close calendar say?", AS_OF)
    assert result.intent == Intent.DOCUMENT_QUESTION
    assert result.clarifications == []


def test_deterministic(catalog: Catalog, classifier: RuleClassifier) -> None:
    question = "Compare revenue across EMEA entities for Q2 2026"
    first = classifier.classify(question, AS_OF).model_dump()
    assert classifier.classify(question, AS_OF).model_dump() == first
    assert RuleClassifier(catalog).classify(question, AS_OF).model_dump() == first


def test_whitespace_and_case_do_not_matter(classifier: RuleClassifier) -> None:
    a = classifier.classify("What was revenue for MER-US last month?", AS_OF)
    b = classifier.classify("  what WAS   Revenue for mer-us\nlast month? ", AS_OF)
    assert a.slots == b.slots
    assert a.intent == b.intent


@pytest.mark.parametrize(
    ("question", "labels"),
    [
        ("What was revenue for MER-US from March to May 2026?", ["2026-03..2026-05"]),
        ("What was revenue for MER-US for March, April and May 2026?", ["2026-03", "2026-04", "2026-05"]),
        ("What was revenue for MER-US in the first half of 2026?", ["2026-H1"]),
        ("What was revenue for MER-US in the second half of 2025?", ["2025-H2"]),
    ],
)
def test_ranges_lists_and_halves(classifier: RuleClassifier, question: str, labels: list[str]) -> None:
    result = classifier.classify(question, AS_OF)
    assert [p.label for p in result.slots.periods] == labels
    assert not result.clarifications


def test_an_unreadable_date_asks_instead_of_answering_another_period(classifier: RuleClassifier) -> None:
    result = classifier.classify("What was revenue for MER-US on 2026-13-01?", AS_OF)
    assert any("2026-13-01" in c for c in result.clarifications)


def test_exclusions_and_ampersands(classifier: RuleClassifier) -> None:
    excl = classifier.classify("What were operating costs excluding payroll for MER-CA in May 2026?", AS_OF)
    assert excl.slots.accounts == ["5"] and excl.slots.exclude_accounts == ["5.1"]
    amp = classifier.classify("What was sales & marketing spend for MER-UK in June 2026?", AS_OF)
    assert amp.slots.accounts == ["5.3"]


def test_document_question_naming_an_account(classifier: RuleClassifier) -> None:
    assert classifier.classify("What does the travel policy say?", AS_OF).intent.value == "document_question"


def test_every_slot_match_has_a_confidence_and_an_explanation(classifier: RuleClassifier) -> None:
    result = classifier.classify("Show me COGS for Germany in March 2026 and last month", AS_OF)
    got = {(m.slot, m.text, m.value): m.confidence for m in result.matches}
    assert got == {
        ("account", "cogs", "5.2"): 0.95,  # an abbreviation, not the catalog name
        ("entity", "germany", "MER-DE"): 0.9,  # a country name, not the code
        ("period", "march 2026", "2026-03"): 1.0,
        ("period", "last month", "2026-10"): 0.95,  # relative to as_of
    }
    assert all("[confidence" in why for why in result.explanations[:4])
