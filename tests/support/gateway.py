"""A gateway and worker of their own over a test stack's Temporal and database: for tests that register fakes
under the real activity names (fault injection) or change a gateway setting."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx

from api.main import create_app
from tests.conftest import Stack
from worker.main import make_worker


@contextlib.asynccontextmanager
async def gateway(stack: Stack, activities: Sequence[Any], **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of a fresh gateway whose worker (on a task queue of its own) runs `activities`;
    `settings` override the stack's."""
    task_queue = f"docket-gateway-{uuid.uuid4().hex[:8]}"
    app = create_app(
        stack.settings.model_copy(update={"task_queue": task_queue, **settings}),
        engine=stack.engine,
        client=stack.client,
    )
    async with (
        make_worker(stack.client, task_queue, list(activities)),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docket") as http,
    ):
        yield http
