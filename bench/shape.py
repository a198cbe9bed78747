"""Temporal alone: a workflow with RequestWorkflow's shape whose activities do nothing.

Three local activities (classify, authorize, plan), then the ledger tasks and the document search concurrently,
then generate, a local score and record as regular activities, each with small payloads. What it costs is what
Temporal (dev server, SDK, sandbox, interceptors) costs for this shape on this machine, before any Docket code.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow

SHAPE_WORKFLOW = "BenchShapeWorkflow"
TIMEOUT = timedelta(seconds=30)


@activity.defn(name="bench_noop")
async def noop(step: str) -> str:
    """Return at once: the activity's cost is only its trip through Temporal."""
    return step


@workflow.defn(name=SHAPE_WORKFLOW)
class ShapeWorkflow:
    """RequestWorkflow's sequence of local and regular activities, with no work in them."""

    @workflow.run
    async def run(self, ledger_tasks: int) -> int:
        for step in ("classify", "authorize", "plan"):
            await workflow.execute_local_activity(noop, step, start_to_close_timeout=TIMEOUT)
        gathered = await asyncio.gather(
            *(
                workflow.execute_activity(noop, f"ledger-{i}", start_to_close_timeout=TIMEOUT)
                for i in range(ledger_tasks)
            ),
            workflow.execute_activity(noop, "retrieve", start_to_close_timeout=TIMEOUT),
        )
        await workflow.execute_activity(noop, "generate", start_to_close_timeout=TIMEOUT)
        await workflow.execute_local_activity(noop, "score", start_to_close_timeout=TIMEOUT)
        await workflow.execute_activity(noop, "record", start_to_close_timeout=TIMEOUT)
        return len(gathered)
