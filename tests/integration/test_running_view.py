"""GET /v1/requests/{id} while a worker is inside a workflow task: with the local stage placement most stages run
there, and the server holds a query until the task completes, so the gateway answers at once with the request
running and no stage, instead of waiting out the query's timeout and calling it queued."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio import activity

from activities import names
from activities.classify.model import IntentModel
from activities.llm.engine import TemplateGenerator
from api.routes.requests import QUERY_TIMEOUT_SECONDS
from docket.contracts import UnderstandInput, UnderstandResult
from tests.conftest import Stack
from tests.support.gateway import gateway
from worker.main import Components

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("eager", [True, False], ids=["eager-start", "queued-start"])
async def test_a_request_inside_a_workflow_task_is_running_with_no_stage(
    stack: Stack, tmp_path: Path, eager: bool
) -> None:
    started = tmp_path / "understand-started"
    release = asyncio.Event()
    activities = Components(
        engine=stack.engine, index=stack.index, generator=TemplateGenerator(), intent_model=IntentModel.load()
    ).activities()
    real = {getattr(fn, "__name__", ""): fn for fn in activities}

    # Fault injection under the real name: the first stage (classify, authorize and plan under the default fused
    # placement) holds its workflow task open until released.
    @activity.defn(name=names.UNDERSTAND)
    async def understand_request(data: UnderstandInput) -> UnderstandResult:
        started.write_text("yes")
        await release.wait()
        result: UnderstandResult = await real["understand_request"](data)
        return result

    kept = [fn for name, fn in real.items() if name != "understand_request"]
    # Without eager start (a gateway with no worker in its process, as deployed) the first task goes through the
    # task queue: the view must not wait on a query either way.
    async with gateway(stack, [*kept, understand_request], eager_start=eager) as http:
        resp = await http.post(
            "/v1/requests",
            json={"question": "What was revenue for MER-US last month?", "as_of": "2026-11-21"},
            headers=stack.auth("alice"),
        )
        assert resp.status_code == 202, resp.text
        wid = resp.json()["request_id"]
        for _ in range(100):
            if started.exists():
                break
            await asyncio.sleep(0.05)
        try:
            assert started.exists(), "understanding never started"
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            view = (await http.get(f"/v1/requests/{wid}", headers=stack.auth("alice"))).json()
            waited = loop.time() - t0
            assert view["status"] == "running" and view["stage"] is None, view
            # Not a speed target: a query would have been held until its timeout; the answer came without one.
            assert waited < QUERY_TIMEOUT_SECONDS, waited
        finally:
            release.set()
        done = await stack.client.get_workflow_handle(wid).result()
    assert done["outcome"] == "answered"
