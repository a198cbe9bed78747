"""The worker's share of observability: its HTTP port (/healthz, /readyz, /metrics) and per-activity log context."""

from __future__ import annotations

import asyncio
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from docket import db, metrics, usage
from docket.settings import Settings


class ActivityLogContext(Interceptor):
    """Binds workflow_id, run_id, activity, attempt, tenant and principal to every log line an activity writes."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        from temporalio import activity

        info = activity.info()
        context: dict[str, Any] = {
            "workflow_id": info.workflow_id,
            "run_id": info.workflow_run_id,
            "activity": info.activity_type,
            "attempt": info.attempt,
        }
        # Inputs carry the tenant and principal at the top (most), in the result (record_result) or in the
        # query (retrieve_documents).
        for arg in input.args:
            for holder in (arg, getattr(arg, "result", None), getattr(arg, "query", None)):
                for attr, key in (("tenant", "tenant"), ("principal_id", "principal")):
                    value = getattr(holder, attr, None)
                    if isinstance(value, str) and value and key not in context:
                        context[key] = value
        with structlog.contextvars.bound_contextvars(**context):
            return await super().execute_activity(input)


@dataclass
class WorkerHealth:
    """What /readyz reports: the worker is polling, its database answers, Temporal answers."""

    engine: Engine
    client: Client
    settings: Settings
    polling: asyncio.Event = field(default_factory=asyncio.Event)


def http_app(health: WorkerHealth) -> FastAPI:
    app = FastAPI(title="Docket worker", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=None)
    async def readyz() -> dict[str, Any] | JSONResponse:
        checks: dict[str, str] = {"worker": "ok" if health.polling.is_set() else "not polling yet"}
        try:
            await asyncio.to_thread(db.ping, health.engine)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            await health.client.workflow_service.get_system_info(GetSystemInfoRequest(), timeout=None)
            checks["temporal"] = "ok"
        except Exception as exc:
            checks["temporal"] = f"error: {type(exc).__name__}"
        if all(v == "ok" for v in checks.values()):
            return {"status": "ready", "checks": checks}
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

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        """Docket's series, today's budget use, and the Temporal SDK's own series (served on loopback by the
        SDK's runtime, appended here so one scrape sees the whole worker)."""
        budgets = CollectorRegistry(auto_describe=True)
        budgets.register(
            metrics.BudgetCollector(
                metrics.cached(id(health.engine), lambda now: usage.budget_ratios(health.engine, health.settings, now))
            )
        )
        body = await asyncio.to_thread(lambda: generate_latest(metrics.REGISTRY) + generate_latest(budgets))
        port = health.settings.temporal_metrics_port
        if port:
            body += await asyncio.to_thread(_sdk_metrics, port)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return app


def _sdk_metrics(port: int) -> bytes:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            data: bytes = resp.read()
            return data
    except OSError:
        return b"# Temporal SDK metrics unavailable\n"
