"""understand_request (the fused placement): classify, authorize and plan in one local activity.

Its result must be exactly what the three separate activities give for the same question, it must stop where they
would hand over (a clarification or confirmation, a denial), and the stage timings a request reports must be the
ones it measured, since the workflow's clock cannot tell stages inside one local activity apart.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from temporalio import activity

from activities import names
from activities.classify.model import IntentModel
from activities.llm.engine import TemplateGenerator
from docket.contracts import (
    AuthorizeInput,
    ClassifyInput,
    PlanInput,
    UnderstandInput,
    UnderstandResult,
    required_action,
)
from tests.conftest import Stack
from tests.support.gateway import gateway
from tests.support.history import activity_types
from worker.main import Components

pytestmark = pytest.mark.integration
AS_OF = date(2026, 11, 21)


def methods(stack: Stack) -> dict[str, Any]:
    acts = Components(
        engine=stack.engine, index=stack.index, generator=TemplateGenerator(), intent_model=IntentModel.load()
    ).activities()
    return {getattr(fn, "__name__", ""): fn for fn in acts}


@pytest.mark.parametrize(
    ("principal", "question", "reached"),
    [
        ("alice", "What was revenue for MER-US last month?", {"classify", "authorize", "plan"}),
        ("carol", "What was payroll for MER-US in January 2026?", {"classify", "authorize"}),  # denied
        ("alice", "What was revenue for MER-US?", {"classify"}),  # no period: a clarification
    ],
    ids=["allowed", "denied", "clarification"],
)
async def test_understanding_is_the_three_stages_and_stops_where_they_hand_over(
    stack: Stack, principal: str, question: str, reached: set[str]
) -> None:
    m = methods(stack)
    fused: UnderstandResult = await m["understand_request"](
        UnderstandInput(tenant="meridian", principal_id=principal, question=question, as_of=AS_OF)
    )
    assert set(fused.timings) == reached and all(ms >= 0 for ms in fused.timings.values())
    # The oracle: the separate activities, called in the order the workflow calls them.
    cls = await m["classify_request"](ClassifyInput(tenant="meridian", question=question, as_of=AS_OF))
    assert fused.classification == cls
    if "authorize" not in reached:
        assert cls.clarifications and fused.authorization is None and fused.plan is None
        return
    authz = await m["authorize_request"](
        AuthorizeInput(tenant="meridian", principal_id=principal, action=required_action(cls), classification=cls)
    )
    assert fused.authorization == authz
    if "plan" not in reached:
        assert not authz.allowed and fused.plan is None
        return
    plan = await m["plan_request"](
        PlanInput(tenant="meridian", question=question, classification=cls, authorization=authz)
    )
    assert authz.allowed and fused.plan == plan and plan.tasks


async def test_a_request_reports_the_stage_timings_understanding_measured(stack: Stack) -> None:
    real = methods(stack)
    measured = {"classify": 1234, "authorize": 567, "plan": 89}

    # Fault injection under the real name: the real result, with timings no clock of this test could produce.
    @activity.defn(name=names.UNDERSTAND)
    async def understand_request(data: UnderstandInput) -> UnderstandResult:
        result: UnderstandResult = await real["understand_request"](data)
        return result.model_copy(update={"timings": measured})

    kept = [fn for name, fn in real.items() if name != "understand_request"]
    async with gateway(stack, [*kept, understand_request]) as http:
        resp = await http.post(
            "/v1/requests",
            params={"wait": 30},
            json={"question": "What was revenue for MER-US last month?", "as_of": "2026-11-21"},
            headers=stack.auth("alice"),
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["outcome"] == "answered"
    assert {k: body["timings"][k] for k in measured} == measured
    history = await stack.client.get_workflow_handle(body["request_id"]).fetch_history()
    ran = activity_types(history)
    assert ran[0] == names.UNDERSTAND and not {names.CLASSIFY, names.AUTHORIZE, names.PLAN} & set(ran), ran
