"""The gateway: a thin FastAPI app that turns REST calls into Temporal workflows."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from sqlalchemy import Engine
from temporalio.client import Client

from api import observability, problems
from api.deps import AppState
from api.routes import admin, documents, health, requests, usage, view
from docket import __version__, db
from docket.logs import setup_logging
from docket.settings import Settings, load_settings
from docket.telemetry import setup_tracing
from docket.usage import check_prices

log = logging.getLogger("docket.api")


def create_app(
    settings: Settings | None = None, *, engine: Engine | None = None, client: Client | None = None
) -> FastAPI:
    """Build the app. Tests pass their own engine and client; `docket up` lets the lifespan build them."""
    settings = settings or load_settings()
    settings.check_production()
    # GET /v1/usage prices calls with the same table the worker records with: a bad entry stops the start.
    check_prices(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_engine = engine is None
        eng = engine or db.make_engine(settings.db_url)
        state = AppState(settings=settings, engine=eng, client=client)
        app.state.docket = state
        if client is None:
            try:
                await state.temporal()
            except problems.Problem as exc:
                log.warning("Temporal not reachable yet (%s); will retry on first request", exc.detail)
        yield
        if own_engine:
            eng.dispose()

    app = FastAPI(
        title="Docket",
        version=__version__,
        summary="Governed, durable AI requests over sensitive business data.",
        lifespan=lifespan,
    )
    problems.install(app)
    app.include_router(health.router)
    app.include_router(observability.router)
    app.include_router(requests.router)
    app.include_router(admin.router)
    app.include_router(documents.router)
    app.include_router(usage.router)
    app.include_router(view.router)
    app.add_middleware(
        problems.BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # Documents are larger than questions; the route checks its own limit again after reading.
        overrides={"/v1/documents": settings.max_document_bytes},
    )
    # Outermost: every response (errors and limits included) carries X-Request-ID and is timed and logged.
    app.add_middleware(observability.RequestContextMiddleware)
    # One trace per request: the server span here is the parent of the workflow's spans (the Temporal plugin
    # carries the context into the run) and so of every activity and model call.
    setup_tracing("docket-api")
    FastAPIInstrumentor.instrument_app(
        # Anchored: the list is searched in the whole URL, and /v1/documents/q3-metrics-memo must be traced.
        app,
        excluded_urls="/healthz$,/readyz$,/metrics$",
        server_request_hook=observability.redact_token,
    )
    return app


def app() -> FastAPI:
    """Factory for `uvicorn --factory api.main:app`: JSON logs for everything the process writes."""
    setup_logging("docket-api")
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers print plain text; the request line is logged by RequestContextMiddleware.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = name != "uvicorn.access"
    return create_app()
