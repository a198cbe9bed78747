"""plan_request: the deterministic data tasks and document search for a request."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.errors import run_engine
from activities.plan.engine import plan as make_plan
from activities.trace import annotate
from docket.catalog import Catalog, load_catalog
from docket.contracts import Plan, PlanInput
from docket.dataversion import data_version


class PlanActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def plan(self, data: PlanInput, catalog: Catalog | None = None) -> Plan:
        """The plan (blocking: database reads), on a catalog already read (understand_request) if given."""
        catalog = catalog or load_catalog(self.engine, data.tenant)
        # The plan pins the ledger version its tasks must read: every figure of one answer comes from one state
        # of the ledger, and stored task results are reused only under it (docket/dataversion.py).
        version = data_version(self.engine, data.tenant)
        result = make_plan(data.tenant, data.question, data.classification, data.authorization, catalog, version)
        annotate(
            **{
                "docket.plan.template": result.template,
                "docket.plan.tasks": len(result.tasks),
                "docket.plan.data_version": result.data_version,
                "docket.plan.unsupported": result.unsupported,
            }
        )
        return result

    @activity.defn(name=names.PLAN)
    async def plan_request(self, data: PlanInput) -> Plan:
        """Plan the data tasks and the document search."""
        return await run_engine(self.plan, data)
