"""understand_request: classify, authorize and plan in one local activity (StagePlacement.FUSED).

The three are pure decisions over the tenant's catalog that take milliseconds each; as separate local activities
each cost a marker, an activation and two payload round trips, and each read the catalog again. Fused, they run
back to back on one catalog read and stop exactly where the separate stages would hand over to something else: a
reading that needs a clarification or a person's confirmation, or a denial. The workflow then carries on with the
separate activities (confirmation, re-authorization, planning), so every path but the straight one is unchanged.
"""

from __future__ import annotations

import asyncio
import time

from temporalio import activity

from activities import names
from activities.authorize.activity import AuthorizeActivities
from activities.classify.activity import ClassifyActivities
from activities.errors import to_application_error
from activities.plan.activity import PlanActivities
from docket.catalog import Catalog
from docket.contracts import (
    AuthorizeInput,
    ClassifyInput,
    ClassifyResult,
    PlanInput,
    Stage,
    UnderstandInput,
    UnderstandResult,
    required_action,
)
from docket.errors import DocketError


def _ms(since: float) -> int:
    return int((time.perf_counter() - since) * 1000)


class UnderstandActivities:
    def __init__(self, classify: ClassifyActivities, authorize: AuthorizeActivities, plan: PlanActivities) -> None:
        self.classify = classify
        self.authorize = authorize
        self.plan = plan

    def _decide_and_plan(
        self, data: UnderstandInput, cls: ClassifyResult, catalog: Catalog, timings: dict[str, int]
    ) -> UnderstandResult:
        started = time.perf_counter()
        authz = self.authorize.decide(
            AuthorizeInput(
                tenant=data.tenant, principal_id=data.principal_id, action=required_action(cls), classification=cls
            ),
            catalog,
        )
        timings[Stage.AUTHORIZE.value] = _ms(started)
        if not authz.allowed:
            # A denial ends the request, or (POL-002) waits for a person's confirmation and a second decision,
            # which the workflow asks for itself.
            return UnderstandResult(classification=cls, authorization=authz, timings=timings)
        started = time.perf_counter()
        planned = self.plan.plan(
            PlanInput(tenant=data.tenant, question=data.question, classification=cls, authorization=authz), catalog
        )
        timings[Stage.PLAN.value] = _ms(started)
        return UnderstandResult(classification=cls, authorization=authz, plan=planned, timings=timings)

    @activity.defn(name=names.UNDERSTAND)
    async def understand_request(self, data: UnderstandInput) -> UnderstandResult:
        """Classify, authorize and plan a question, stopping where a person or a denial has to come first."""
        try:
            started = time.perf_counter()
            catalog = self.classify.catalog(data.tenant)
            cls = await self.classify.classify(
                ClassifyInput(tenant=data.tenant, question=data.question, as_of=data.as_of), catalog
            )
            timings = {Stage.CLASSIFY.value: _ms(started)}
            if cls.clarifications or cls.needs_confirmation:
                return UnderstandResult(classification=cls, timings=timings)
            # Both read the database: one hop off the event loop for the two, as each stage alone takes one.
            return await asyncio.to_thread(self._decide_and_plan, data, cls, catalog, timings)
        except DocketError as exc:
            raise to_application_error(exc) from exc
