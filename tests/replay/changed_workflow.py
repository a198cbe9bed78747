"""A deliberately incompatible RequestWorkflow, kept in its own module so the workflow sandbox imports
nothing but workflow code when it loads it."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from docket.contracts import RequestInput, RequestResult
    from workflows.request import RequestWorkflow


@workflow.defn(name="RequestWorkflow")
class ChangedRequestWorkflow(RequestWorkflow):
    """A timer before the first stage, which no committed history has."""

    @workflow.run
    async def run(self, req: RequestInput) -> RequestResult:
        await workflow.sleep(timedelta(milliseconds=10))
        return await super().run(req)
