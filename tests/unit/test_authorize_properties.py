"""Properties of the authorizer over random requests on the demo data (hypothesis).

- Default deny: without the POL-BASE permit, and with no policy at all, nothing is allowed.
- A matching forbid always wins: adding one forbid statement whose condition holds for an allowed slice denies it,
  and the denial names that statement's @id (wherever it is placed, even next to a permit for that very slice).
- Order does not matter: permuting the statements of policies.cedar changes no decision, no determining @id, no
  reason and no mask.

Requests are drawn over every principal of principals.json, the entities of one tenant (the catalog a request is
asked against), accounts of the chart, closed/open/unknown months, every action and two confidences (one on each
side of POL-002's 0.95). Examples are few (the whole file runs in a few seconds). Hypothesis keeps no example
database here; it still writes its own self-ignored .hypothesis/ cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import cedarpy
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from activities.authorize.engine import Authorizer, PolicySet, load_builtin_policies, parse_policies
from docket.catalog import Catalog, load_catalog
from docket.contracts import (
    Action,
    AuthorizeResult,
    ClassifyResult,
    Complexity,
    Intent,
    PeriodRef,
    Slots,
)
from docket.db import Principal
from tests.support.oracle import DEMO_PACK

PRINCIPALS = [p["id"] for p in json.loads((DEMO_PACK / "principals.json").read_text(encoding="utf-8"))]
TENANTS = ("meridian", "globex")
# The last closed month, the open one, an older closed one and one the calendar does not know.
MONTHS = ("2026-09", "2026-10", "2025-03", "2027-01")
BUILTIN = load_builtin_policies()

PROPERTY = settings(
    max_examples=120,
    deadline=None,  # Cedar calls are fast but their timing is noisy on a shared machine
    database=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Request:
    who: str
    tenant: str
    entities: tuple[str, ...]
    accounts: tuple[str, ...]
    months: tuple[str, ...]
    action: Action
    confidence: float

    def classification(self) -> ClassifyResult:
        return ClassifyResult(
            intent=Intent.SCENARIO if self.action == Action.SCENARIO else Intent.METRIC_LOOKUP,
            complexity=Complexity.SIMPLE,
            confidence=self.confidence,
            slots=Slots(
                entities=list(self.entities),
                accounts=list(self.accounts),
                periods=[PeriodRef(label=m, months=[m]) for m in self.months],
            ),
        )


@dataclass(frozen=True)
class World:
    catalogs: dict[str, Catalog]
    principals: dict[str, Principal]

    def decide(self, policies: PolicySet, request: Request) -> AuthorizeResult:
        return Authorizer(policies).decide(
            self.principals[request.who], self.catalogs[request.tenant], request.action, request.classification()
        )


@pytest.fixture(scope="module")
def world(pack_engine: Engine, principal: Callable[[str], Principal]) -> World:
    return World({t: load_catalog(pack_engine, t) for t in TENANTS}, {p: principal(p) for p in PRINCIPALS})


def requests(world: World, *, single: bool = False) -> st.SearchStrategy[Request]:
    """Requests against one tenant's catalog; `single` draws exactly one (entity, account, month) slice."""

    @st.composite
    def draw(draw: st.DrawFn) -> Request:
        tenant = draw(st.sampled_from(TENANTS))
        catalog = world.catalogs[tenant]
        most = 1 if single else 3
        return Request(
            who=draw(st.sampled_from(PRINCIPALS)),
            tenant=tenant,
            entities=tuple(draw(st.lists(st.sampled_from(sorted(catalog.entities)), min_size=1, max_size=most))),
            accounts=tuple(draw(st.lists(st.sampled_from(sorted(catalog.accounts)), min_size=1, max_size=most))),
            months=tuple(draw(st.lists(st.sampled_from(MONTHS), min_size=1, max_size=min(most, 2)))),
            action=draw(st.sampled_from(list(Action))),
            confidence=0.99 if single else draw(st.sampled_from([0.99, 0.9])),
        )

    return draw()


def without(policies: PolicySet, policy_id: str) -> PolicySet:
    return PolicySet(
        tuple(s for s in policies.statements if s.policy_id != policy_id), policies.version + "-" + policy_id
    )


# ----------------------------------------------------------------- (a) default deny


def test_default_deny(world: World) -> None:
    @PROPERTY
    @given(request=requests(world))
    def check(request: Request) -> None:
        full = world.decide(BUILTIN, request)
        no_base = world.decide(without(BUILTIN, "POL-BASE"), request)
        empty = world.decide(PolicySet((), "empty"), request)
        assert not no_base.allowed
        assert not empty.allowed
        assert empty.policies == ["POL-DEFAULT-DENY"]
        assert empty.masked == no_base.masked == []
        assert empty.allowed_entities == no_base.allowed_entities == []
        assert empty.readable_entities == no_base.readable_entities == []
        # Without the permit, slices the full set allowed fall to the default deny and slices it forbade stay
        # forbidden by the same rules (a request of several slices may have both kinds).
        if full.allowed:
            assert no_base.policies == ["POL-DEFAULT-DENY"]
        else:
            assert set(full.policies) <= set(no_base.policies) <= {*full.policies, "POL-DEFAULT-DENY"}
            if full.allowed_entities:
                assert "POL-DEFAULT-DENY" in no_base.policies

    check()


@pytest.mark.parametrize("policies", [PolicySet((), "empty"), without(BUILTIN, "POL-BASE")], ids=["empty", "no-base"])
def test_default_deny_holds_for_document_questions(world: World, policies: PolicySet) -> None:
    question = Request("alice", "meridian", (), (), (), Action.ANALYZE, 0.99)
    assert world.decide(BUILTIN, question).allowed
    result = world.decide(policies, question)
    assert not result.allowed
    assert "POL-BASE" not in result.policies


# ----------------------------------------------------------------- (b) a matching forbid always wins


def slice_facts(world: World, request: Request) -> list[str]:
    """Cedar conditions that hold for the request's one slice (as the engine describes principal and slice)."""
    (entity,), (account,), (month,) = request.entities, request.accounts, request.months
    catalog = world.catalogs[request.tenant]
    who = world.principals[request.who]
    other = next(e for e in sorted(catalog.entities) if e != entity) if len(catalog.entities) > 1 else "NOWHERE"
    closed = catalog.periods.get(month) == "closed"
    payroll = catalog.is_sensitive(account, "payroll")
    return [
        "true",
        f'resource.entity == "{entity}"',
        f'resource.entity != "{other}"',
        f'resource.region == "{catalog.entities[entity].region}"',
        f'resource.account == "{account}"',
        f'resource.period == "{month}"',
        f"resource.period_closed == {str(closed).lower()}",
        f"resource.payroll == {str(payroll).lower()}",
        f'resource.tenant == "{request.tenant}"',
        f'principal.tenant == "{who.tenant}"',
        *(f'principal.roles.contains("{role}")' for role in who.roles),
        f"context.classification_confidence > {int(request.confidence * 1000) - 1}",
    ]


@st.composite
def forbid_for(draw: st.DrawFn, world: World, request: Request, policy_id: str) -> tuple[str, str]:
    """A forbid statement whose scope and condition hold for the slice, and one identical but for its condition."""
    facts = draw(st.lists(st.sampled_from(slice_facts(world, request)), min_size=1, max_size=3, unique=True))
    holds = " && ".join(facts)
    principal = draw(st.sampled_from(["principal", f'principal == Docket::Principal::"{request.who}"']))
    action = draw(
        st.sampled_from(
            [
                "action",
                f'action == Docket::Action::"{request.action.value}"',
                f'action in [Docket::Action::"{request.action.value}", Docket::Action::"read"]',
            ]
        )
    )
    condition = draw(st.sampled_from([f"when {{ {holds} }}", f"unless {{ !({holds}) }}"]))
    head = (
        f'@id("{policy_id}")\n@reason("a forbid drawn by the property test")\nforbid ({principal}, {action}, resource)'
    )
    return f"{head}\n{condition};", f"{head}\nwhen {{ !({holds}) }};"


def test_a_matching_forbid_always_wins(world: World) -> None:
    @PROPERTY
    @given(data=st.data(), request=requests(world, single=True))
    def check(data: st.DataObject, request: Request) -> None:
        assume(world.decide(BUILTIN, request).allowed)
        policy_id = f"POL-X{data.draw(st.integers(100, 999), label='id')}"
        matching, failing = data.draw(forbid_for(world, request, policy_id), label="forbid")
        statements = list(BUILTIN.statements)
        # A permit naming this very principal and entity does not save the slice from a matching forbid either.
        if data.draw(st.booleans(), label="with a permit for this very slice"):
            (entity,) = request.entities
            extra = f'@id("PERMIT-X")\npermit (principal == Docket::Principal::"{request.who}", action, resource)\n'
            statements.insert(
                data.draw(st.integers(0, len(statements)), label="permit at"),
                parse_policies(extra + f'when {{ resource.entity == "{entity}" }};').statements[0],
            )
        before = world.decide(PolicySet(tuple(statements), "before"), request)
        at = data.draw(st.integers(0, len(statements)), label="forbid at")

        def with_statement(text: str) -> PolicySet:
            added = parse_policies(text).statements[0]
            return PolicySet((*statements[:at], added, *statements[at:]), f"with-{policy_id}")

        after = world.decide(with_statement(matching), request)
        assert not after.allowed
        assert after.policies == [policy_id]
        assert after.reasons[0].startswith(f"{policy_id}: ")
        assert after.masked == []
        assert after.allowed_entities == []
        # The same statement with a condition that fails for the slice changes nothing.
        unmoved = world.decide(with_statement(failing), request)
        assert unmoved.allowed
        assert (unmoved.policies, unmoved.masked) == (before.policies, before.masked)

    check()


# ----------------------------------------------------------------- (c) order does not matter


def test_reordering_the_statements_changes_nothing(world: World) -> None:
    positions = range(len(BUILTIN.statements))

    @PROPERTY
    @given(order=st.permutations(list(positions)), request=requests(world))
    def check(order: list[int], request: Request) -> None:
        permuted = PolicySet(tuple(BUILTIN.statements[i] for i in order), BUILTIN.version)
        # Cedar numbers statements by position in the text: the engine's position → @id map must follow the
        # permutation (Cedar's own parse of the permuted text says which @id sits where).
        cedar = json.loads(cedarpy.policies_to_json_str(permuted.text))["staticPolicies"]
        assert [cedar[f"policy{i}"]["annotations"]["id"] for i in positions] == [
            s.policy_id for s in permuted.statements
        ]
        original = world.decide(BUILTIN, request)
        reordered = world.decide(permuted, request)
        # Same decision, same determining @ids in the same order, same reasons, masks and entity lists.
        assert reordered.model_dump() == original.model_dump()

    check()
