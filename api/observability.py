"""The gateway's share of observability: X-Request-ID, HTTP metrics, structured request logs and /metrics."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from fastapi import APIRouter, Response
from opentelemetry.trace import Span
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import State
from docket import metrics, usage
from docket.logs import get_logger

router = APIRouter(tags=["health"])
log = get_logger("docket.api")
# A client's X-Request-ID is echoed only when it is a sane token: it ends up in logs and headers.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# Event streams stay open for a request's lifetime: their duration is not a latency.
_STREAMS = {"/v1/requests/{request_id}/events"}


class RequestContextMiddleware:
    """Every response carries X-Request-ID (the client's, or a new one); every request is timed by route template
    and logged once as JSON with its request id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route: Any = scope.get("route")
            # The route's template (/v1/requests/{request_id}), never the raw path: ids would explode the series.
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            # Any token is a method to the HTTP parser: unknown ones share one label, or they would mint series.
            method = method if method in _METHODS else "other"
            if template not in _STREAMS:
                metrics.HTTP_SECONDS.labels(method, template, str(status)).observe(elapsed)
            if template not in ("/metrics", "/healthz", "/readyz"):
                log.info(
                    "http_request",
                    method=scope.get("method", ""),
                    route=template,
                    status=status,
                    duration_ms=round(elapsed * 1000, 1),
                )
            structlog.contextvars.clear_contextvars()


_TOKEN_PARAM = re.compile(r"(^|[?&])token=[^&]*")


def redact_token(span: Span, scope: dict[str, Any]) -> None:
    """The status page accepts its bearer token as ?token= (api/routes/view.py): keep it out of the span's URL
    attributes, which the instrumentation records whole."""
    query = scope.get("query_string", b"").decode("latin-1")
    if "token=" not in query or not span.is_recording():
        return
    attributes = getattr(span, "attributes", None) or {}
    for key in ("http.target", "http.url", "url.full", "url.query"):
        value = attributes.get(key)
        if isinstance(value, str) and "token=" in value:
            span.set_attribute(key, _TOKEN_PARAM.sub(r"\1token=REDACTED", value))


@router.get("/metrics", include_in_schema=False)
def metrics_endpoint(state: State) -> Response:
    """Prometheus exposition: HTTP and request series, and today's budget use read from the usage ledger (at most
    once per BUDGET_TTL seconds per process). For the cluster's scraper, not the public: keep it off the ingress."""
    budgets = CollectorRegistry(auto_describe=True)
    budgets.register(
        metrics.BudgetCollector(
            metrics.cached(id(state.engine), lambda now: usage.budget_ratios(state.engine, state.settings, now))
        )
    )
    return Response(generate_latest(metrics.REGISTRY) + generate_latest(budgets), media_type=CONTENT_TYPE_LATEST)
