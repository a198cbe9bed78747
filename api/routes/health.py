"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.service import RPCError

from api.deps import State
from api.problems import Problem
from api.schemas import Health
from docket import db

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"description": "a dependency is not ready"}})
async def readyz(state: State) -> Health | JSONResponse:
    """Database and Temporal reachable (503 otherwise); whether a worker polls the task queue is reported too."""
    checks: dict[str, str] = {}
    try:
        db.ping(state.engine)
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        client = await state.temporal()
        resp = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=state.settings.task_queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            )
        )
        checks["temporal"] = "ok"
        checks["worker"] = "ok" if resp.pollers else "no worker polling task queue " + state.settings.task_queue
    except Problem as exc:
        checks["temporal"] = f"error: {exc.detail}"
    except RPCError as exc:
        checks["temporal"] = f"error: {exc.message}"
    # Ready means this process can serve: results, documents and new requests (which wait in the task queue until
    # a worker polls) need the database and Temporal. A missing worker is reported, not a reason to take the API
    # out of its load balancer: that would turn a worker outage into a full outage.
    if checks["database"] == "ok" and checks.get("temporal") == "ok":
        return Health(status="ready", checks=checks)
    return JSONResponse(
        {
            "type": "https://docket.dev/problems/not-ready",
            "title": "Not ready",
            "status": 503,
            "checks": checks,
            "hint": "run `docket doctor` for the fix of each failing check",
        },
        status_code=503,
        media_type="application/problem+json",
    )
