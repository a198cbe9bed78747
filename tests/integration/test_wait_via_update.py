"""`?wait` by update-with-start (DOCKET_WAIT_VIA_UPDATE): one call starts the run with its `result` update.

A keyless `?wait` request is answered from the update's result (the accepted and completed update in history); a
keyed one keeps the plain start (its retries must find the run it started); a run that closes without a result
fails the update, and the gateway answers with the run's view instead of an error. Figures are recomputed from the
CSV by tests/support/oracle.py.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from activities import names
from activities.classify.model import IntentModel
from activities.llm.engine import TemplateGenerator
from docket.contracts import (
    GenerateInput,
    GenerateResult,
    RecordInput,
    RecordResult,
    UnderstandInput,
    UnderstandResult,
)
from tests.conftest import DEMO, Stack
from tests.support.gateway import gateway
from tests.support.oracle import LedgerOracle
from worker.main import Components

pytestmark = pytest.mark.integration

ORACLE = LedgerOracle(DEMO)
QUESTION = {"question": "What was revenue for MER-US last month?", "as_of": "2026-11-21"}
UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}


def components(stack: Stack) -> list[Any]:
    return Components(
        engine=stack.engine, index=stack.index, generator=TemplateGenerator(), intent_model=IntentModel.load()
    ).activities()


async def event_types(stack: Stack, wid: str) -> list[EventType.ValueType]:
    history = await stack.client.get_workflow_handle(wid).fetch_history()
    return [e.event_type for e in history.events]


async def test_a_keyless_wait_is_answered_by_the_result_update(stack: Stack) -> None:
    expected = ORACLE.total("meridian", ["MER-US"], "4", ["2026-10"])
    async with gateway(stack, components(stack), wait_via_update=True) as http:
        resp = await http.post("/v1/requests", params={"wait": 30}, json=QUESTION, headers=stack.auth("alice"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["status"] == "completed" and body["outcome"] == "answered", body
        assert [f["value"] for f in body["facts"]] == [expected]
        assert resp.headers["Location"].endswith(body["request_id"])
        types = await event_types(stack, body["request_id"])
        assert set(types) >= UPDATE_EVENTS, types
        # The update's two events on top of a lookup's history: still within the 25.
        assert len(types) <= 25, len(types)
        # GET reads the same recorded result.
        again = (await http.get(f"/v1/requests/{body['request_id']}", headers=stack.auth("alice"))).json()
        assert again["facts"] == body["facts"]

        # With an Idempotency-Key the gateway starts the run plainly and waits for its close: no update.
        keyed = {**stack.auth("alice"), "Idempotency-Key": uuid.uuid4().hex}
        resp = await http.post("/v1/requests", params={"wait": 30}, json=QUESTION, headers=keyed)
        assert resp.status_code == 200, resp.text
        assert [f["value"] for f in resp.json()["facts"]] == [expected]
        assert not UPDATE_EVENTS & set(await event_types(stack, resp.json()["request_id"]))


async def test_a_run_that_closes_without_a_result_answers_with_its_view(stack: Stack) -> None:
    # Fault injection under the real name: the record stage fails for good, so the run fails with no result.
    @activity.defn(name=names.RECORD)
    async def record_result(data: RecordInput) -> RecordResult:
        raise ApplicationError("the results table is gone", non_retryable=True)

    kept = [fn for fn in components(stack) if getattr(fn, "__name__", "") != "record_result"]
    async with gateway(stack, [*kept, record_result], wait_via_update=True) as http:
        resp = await http.post("/v1/requests", params={"wait": 30}, json=QUESTION, headers=stack.auth("alice"))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["status"] == "failed", body
        handle = stack.client.get_workflow_handle(body["request_id"])
        assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
        # The update was accepted, then failed when the run closed: not left hanging.
        assert set(await event_types(stack, body["request_id"])) >= UPDATE_EVENTS


@pytest.mark.parametrize(
    "held", ["understand_request", "generate_answer"], ids=["before-acceptance", "after-acceptance"]
)
async def test_a_wait_that_runs_out_answers_202_with_the_running_view(stack: Stack, held: str) -> None:
    """Held in its first stage (understand_request), the run's first workflow task (where the update is accepted)
    cannot finish: the start's own wait is what runs out. Held in generate, the update was accepted and the wait
    for its result runs out. Either way the gateway answers 202 with the run it started, never an error and never
    later than asked."""
    release = asyncio.Event()
    activities = components(stack)
    real = {getattr(fn, "__name__", ""): fn for fn in activities}

    # Fault injection under the real names: the stage waits until the test releases it.
    @activity.defn(name=names.UNDERSTAND)
    async def understand_request(data: UnderstandInput) -> UnderstandResult:
        await release.wait()
        result: UnderstandResult = await real["understand_request"](data)
        return result

    @activity.defn(name=names.GENERATE)
    async def generate_answer(data: GenerateInput) -> GenerateResult:
        await release.wait()
        result: GenerateResult = await real["generate_answer"](data)
        return result

    fake = understand_request if held == "understand_request" else generate_answer
    kept = [fn for name, fn in real.items() if name != held]
    async with gateway(stack, [*kept, fake], wait_via_update=True) as http:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        resp = await http.post("/v1/requests", params={"wait": 1.5}, json=QUESTION, headers=stack.auth("alice"))
        waited = loop.time() - t0
        try:
            assert resp.status_code == 202, resp.text
            body = resp.json()
            assert body["status"] == "running" and body["outcome"] is None, body
            assert resp.headers["Location"].endswith(body["request_id"])
            # Not a speed target: the call is bounded by the wait it was given, not by the held stage.
            assert waited < 10, waited
        finally:
            release.set()
        done = await stack.client.get_workflow_handle(body["request_id"]).result()
        assert done["outcome"] == "answered"
