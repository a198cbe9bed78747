"""Authorizer with the built-in Cedar policies, principals as loaded from principals.json into the database."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from activities.authorize.engine import (
    BUILTIN_POLICIES,
    Authorizer,
    load_builtin_policies,
    parse_policies,
)
from activities.classify.rules import RuleClassifier
from docket.catalog import Catalog
from docket.contracts import Action, AuthorizeResult
from docket.contracts import required_action as action_for
from docket.db import Principal

AS_OF = date(2026, 11, 21)
PrincipalGetter = Callable[[str], Principal]


def decide(
    who: str,
    question: str,
    *,
    principal: PrincipalGetter,
    catalog: Catalog,
    classifier: RuleClassifier,
    authorizer: Authorizer,
) -> AuthorizeResult:
    classification = classifier.classify(question, AS_OF)
    assert not classification.clarifications, classification.clarifications
    return authorizer.decide(principal(who), catalog, action_for(classification), classification)


@pytest.fixture
def ask(
    principal: PrincipalGetter, catalog: Catalog, classifier: RuleClassifier, authorizer: Authorizer
) -> Callable[[str, str], AuthorizeResult]:
    def run(who: str, question: str) -> AuthorizeResult:
        return decide(who, question, principal=principal, catalog=catalog, classifier=classifier, authorizer=authorizer)

    return run


Ask = Callable[[str, str], AuthorizeResult]


# ----------------------------------------------------------------- the four example denials


def test_carol_payroll_denied_by_pol_001(ask: Ask) -> None:
    result = ask("carol", "What was payroll for MER-US in January 2026?")
    assert not result.allowed
    assert result.policies == ["POL-001"]
    assert "payroll" in result.reasons[0].lower()
    assert "analyst" in result.reasons[0]
    assert result.masked == []


def test_dave_outside_his_region_names_pol_003_first(ask: Ask) -> None:
    result = ask("dave", "What was revenue for MER-JP last month?")
    assert not result.allowed
    assert result.policies[0] == "POL-003"
    reason = result.reasons[0]
    assert reason.startswith("POL-003")
    # A person understands why: their region, and where the entity is.
    assert "EMEA" in reason
    assert "MER-JP" in reason
    assert "APAC" in reason


def test_erin_open_period_denied_by_pol_004(ask: Ask) -> None:
    result = ask("erin", "What was revenue for MER-FR in October 2026?")
    assert not result.allowed
    assert result.policies == ["POL-004"]
    assert "2026-10" in result.reasons[0]
    assert "open" in result.reasons[0]
    assert "2026-09" in result.reasons[0]  # the last closed period, from periods.csv


def test_heidi_without_entitlements_denied_by_pol_005(ask: Ask) -> None:
    result = ask("heidi", "What was revenue for MER-US last month?")
    assert not result.allowed
    assert result.policies == ["POL-005"]
    assert "MER-US" in result.reasons[0]
    assert "entitlement" in result.reasons[0]


# ----------------------------------------------------------------- allowed


@pytest.mark.parametrize(
    "question",
    [
        "What was revenue for MER-US last month?",
        "What was total revenue for the group in October 2026?",
        "What was payroll for MER-JP in January 2026?",
        "Compare revenue across EMEA entities for Q2 2026",
    ],
)
def test_alice_may_ask_anything(ask: Ask, question: str) -> None:
    result = ask("alice", question)
    if "group" in question:
        # The rules alone read a group total at 0.9: POL-002 wants > 0.95 before consolidating, so the CFO is
        # asked to confirm (the only denial a confirmation lifts), not refused.
        assert not result.allowed and result.policies == ["POL-002"] and result.needs_confirmation
        return
    assert result.allowed
    assert result.masked == []
    assert result.decisions > 0


def test_erin_reads_a_closed_period(ask: Ask) -> None:
    result = ask("erin", "What was revenue for MER-FR in September 2026?")
    assert result.allowed
    assert result.allowed_entities == ["MER-FR"]


def test_auditor_may_not_run_scenarios(ask: Ask) -> None:
    result = ask("erin", "Run a scenario: what happens to MER-US revenue in September 2026 if sales fall 10%?")
    assert not result.allowed
    assert result.policies == ["POL-004"]
    assert "scenario" in result.reasons[0]


def test_dave_reads_his_own_region(ask: Ask) -> None:
    assert ask("dave", "What was revenue for MER-DE in March 2026?").allowed
    compare = ask("dave", "Compare revenue across EMEA entities for Q2 2026")
    assert compare.allowed
    assert sorted(compare.allowed_entities) == ["MER-DE", "MER-FR", "MER-UK"]
    # One Cedar decision per (entity, account, month) slice: 3 entities x 3 months.
    assert compare.decisions == 9


def test_only_cfo_and_finance_director_consolidate(ask: Ask) -> None:
    question = "What was total revenue for the group in October 2026?"
    bob = ask("bob", question)
    # At the rules' 0.9 the finance director is asked to confirm (POL-002's confidence clause), nothing else.
    assert bob.policies == ["POL-002"] and bob.needs_confirmation
    denied = ask("dave", question)
    assert not denied.allowed
    assert "POL-002" in denied.policies
    assert not denied.needs_confirmation  # a role denial: no confirmation lifts it


def test_partial_entitlement_suggests_what_may_be_asked(ask: Ask) -> None:
    result = ask("carol", "Compare revenue for MER-US and MER-JP in March 2026")
    assert not result.allowed
    assert result.policies == ["POL-005"]
    assert result.allowed_entities == ["MER-US"]
    assert any("MER-US" in r and "instead" in r for r in result.reasons)


# ----------------------------------------------------------------- masking (POL-008)


def test_carol_operating_costs_masks_payroll(ask: Ask) -> None:
    result = ask("carol", "What were total operating costs for MER-CA in May 2026?")
    assert result.allowed
    assert [m.account for m in result.masked] == ["5.1"]
    masked = result.masked[0]
    assert masked.policy == "POL-008"
    assert masked.label == "Payroll"
    assert "5.1" in masked.reason
    assert "POL-008" in result.policies


def test_bob_operating_costs_are_not_masked(ask: Ask) -> None:
    result = ask("bob", "What were total operating costs for MER-CA in May 2026?")
    assert result.allowed
    assert result.masked == []
    assert "POL-008" not in result.policies


def test_masking_applies_per_entity_in_a_comparison(ask: Ask) -> None:
    result = ask("carol", "Compare operating costs for MER-US and MER-CA in May 2026")
    assert result.allowed
    assert [m.account for m in result.masked] == ["5.1"]


def test_payroll_leaf_for_analyst_is_denied_not_masked(ask: Ask) -> None:
    result = ask("carol", "What were salaries for MER-CA in May 2026?")
    assert not result.allowed
    assert result.policies == ["POL-001"]
    assert "5.1.1" in result.reasons[0]


@pytest.mark.parametrize(("who", "entity"), [("heidi", "MER-CA"), ("carol", "MER-JP")])
def test_entitlement_denial_of_a_total_is_not_blamed_on_payroll(ask: Ask, who: str, entity: str) -> None:
    result = ask(who, f"What were total operating costs for {entity} in May 2026?")
    assert not result.allowed
    assert result.policies == ["POL-005"]
    assert entity in result.reasons[0]


# ----------------------------------------------------------------- tenants


def test_tenant_mismatch_is_denied(ask: Ask) -> None:
    result = ask("ken", "What was revenue for MER-US in March 2026?")
    assert not result.allowed
    assert result.policies[0] in {"POL-006", "POL-005"}
    assert "POL-006" in result.policies
    assert result.allowed_entities == []


def test_tenant_mismatch_on_a_document_question(ask: Ask) -> None:
    result = ask("ken", "What does the Meridian board memo say?")
    assert not result.allowed
    assert result.policies == ["POL-006"]
    assert ask("heidi", "What does the Meridian board memo say?").allowed


# ----------------------------------------------------------------- policy set parsing


def test_builtin_policies_map_positions_to_ids() -> None:
    policies = load_builtin_policies()
    ids = [s.policy_id for s in policies.statements]
    assert ids == [
        "POL-BASE",
        "POL-001",
        "POL-002",
        "POL-002",
        "POL-003",
        "POL-004",
        "POL-004",
        "POL-005",
        "POL-007",
        "POL-006",
    ]
    assert [s.confirmable for s in policies.statements].count(True) == 1  # POL-002's confidence clause
    assert all(s.text.rstrip().endswith(";") for s in policies.statements)
    assert policies.version.startswith("builtin-")
    assert policies == parse_policies(BUILTIN_POLICIES.read_text(encoding="utf-8"))


def test_parse_policies_keeps_reason_and_order() -> None:
    source = """
// comment lines are dropped
@id("A-1")
@reason("first")
permit (principal, action, resource);

@id("B-2")
forbid (principal, action, resource) when { resource.payroll };
"""
    parsed = parse_policies(source)
    assert [(s.policy_id, s.reason) for s in parsed.statements] == [("A-1", "first"), ("B-2", "")]
    assert parse_policies(source.replace("first", "changed")).version != parsed.version


def test_parse_policies_rejects_statement_without_id() -> None:
    with pytest.raises(ValueError, match="without @id"):
        parse_policies('@reason("no id")\npermit (principal, action, resource);')


def test_a_custom_policy_set_reports_its_own_ids(
    principal: PrincipalGetter, catalog: Catalog, classifier: RuleClassifier
) -> None:
    source = BUILTIN_POLICIES.read_text(encoding="utf-8") + (
        '\n@id("POL-X")\n@reason("nobody reads MER-DE this week")\n'
        'forbid (principal, action, resource) when { resource.entity == "MER-DE" };\n'
    )
    custom = Authorizer(parse_policies(source))
    result = decide(
        "alice",
        "What was revenue for MER-DE in March 2026?",
        principal=principal,
        catalog=catalog,
        classifier=classifier,
        authorizer=custom,
    )
    assert not result.allowed
    assert result.policies == ["POL-X"]
    assert result.reasons == ["POL-X: nobody reads MER-DE this week."]
    assert result.policy_version != load_builtin_policies().version


def test_action_for(classifier: RuleClassifier) -> None:
    def action(q: str) -> Action:
        return action_for(classifier.classify(q, AS_OF))

    assert action("What was revenue for MER-US last month?") == Action.READ
    assert action("What was total revenue for the group in October 2026?") == Action.CONSOLIDATE
    assert action("Compare revenue across EMEA entities for Q2 2026") == Action.ANALYZE
    assert action("Run a scenario: what happens to MER-US revenue in October 2026 if sales fall 10%?") == (
        Action.SCENARIO
    )
