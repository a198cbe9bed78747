"""A data task or the document search that fails for good ends the request `failed`, naming what failed, in every
stage placement (a local activity fails with its ApplicationError, a regular one with an ActivityError)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import names
from activities.classify.model import IntentModel
from activities.llm.engine import TemplateGenerator
from docket.contracts import (
    LedgerQueryInput,
    LedgerQueryResult,
    RequestInput,
    RequestResult,
    RetrieveInput,
    RetrieveResult,
    StagePlacement,
)
from tests.conftest import Stack
from worker.main import Components, make_worker

pytestmark = pytest.mark.integration


# Fault injection under the real activity names: the workflow cannot tell them from the real ones.
@activity.defn(name=names.LEDGER_QUERY)
async def ledger_query(data: LedgerQueryInput) -> LedgerQueryResult:
    raise ApplicationError("the warehouse refused the query", type="WarehouseDown", non_retryable=True)


@activity.defn(name=names.RETRIEVE)
async def retrieve_documents(data: RetrieveInput) -> RetrieveResult:
    raise ApplicationError("the index is unreachable", type="IndexDown", non_retryable=True)


@pytest.mark.parametrize("stages", list(StagePlacement))
@pytest.mark.parametrize("broken", [ledger_query, retrieve_documents], ids=["ledger", "search"])
async def test_a_failed_task_or_search_fails_the_request_naming_it(
    stack: Stack, stages: StagePlacement, broken: object
) -> None:
    name = getattr(broken, "__name__", "")
    real = Components(
        engine=stack.engine, index=stack.index, generator=TemplateGenerator(), intent_model=IntentModel.load()
    ).activities()
    task_queue = f"docket-gather-fail-{uuid.uuid4().hex[:8]}"
    kept = [fn for fn in real if getattr(fn, "__name__", "") != name]
    assert len(kept) == len(real) - 1, "the fault must replace exactly one real activity"
    async with make_worker(stack.client, task_queue, [*kept, broken]):
        result = await stack.client.execute_workflow(
            names.REQUEST_WORKFLOW,
            RequestInput(
                tenant="meridian",
                principal_id="alice",
                question="What was revenue for MER-US last month?",
                as_of=date(2026, 11, 21),
                stages=stages,
            ),
            id=f"req-gather-fail-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=RequestResult,
            # A workflow task that keeps failing would retry forever: bound the run, the test fails instead.
            execution_timeout=timedelta(seconds=60),
        )
    assert result.outcome == "failed"
    assert result.answer == "The request failed while gathering data; nothing was answered."
    if name == "ledger_query":
        assert result.limitations[0].startswith("task t-"), result.limitations
        assert "(sum: revenue MER-US 2026-10) failed: the warehouse refused the query" in result.limitations[0]
    else:
        assert result.limitations == [f"{names.RETRIEVE} failed: the index is unreachable"], result.limitations
    assert not result.facts
