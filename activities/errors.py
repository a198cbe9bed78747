"""Turning engine errors into Temporal ApplicationErrors (type from docket.errors, retryable or not)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from docket.errors import DocketError

P = ParamSpec("P")
T = TypeVar("T")


# A server asking for a longer pause than this is treated as unavailable for now, not waited on.
MAX_RETRY_AFTER_SECONDS = 300.0
# Well inside the heartbeat timeouts the workflow gives long-running engine work (ledger tasks: 10 s).
HEARTBEAT_SECONDS = 2.0


def to_application_error(exc: DocketError) -> ApplicationError:
    retry_after = getattr(exc, "retry_after", None)
    return ApplicationError(
        exc.message + (f" (hint: {exc.hint})" if exc.hint else ""),
        type=exc.type,
        non_retryable=not exc.retryable,
        # Retry-After overrides the retry policy's backoff for the next attempt only.
        next_retry_delay=timedelta(seconds=min(retry_after, MAX_RETRY_AFTER_SECONDS)) if retry_after else None,
    )


async def run_engine(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking engine code off the event loop, translating Docket errors for Temporal."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except DocketError as exc:
        raise to_application_error(exc) from exc


async def run_engine_heartbeating(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """run_engine for work that may take a while: heartbeats every HEARTBEAT_SECONDS while it runs, so the
    workflow's heartbeat timeout notices a dead worker in seconds. Work done within the first interval (most
    ledger tasks take milliseconds) sends no heartbeat at all."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            activity.heartbeat()

    if activity.info().is_local:
        # A local activity has no heartbeat: the workflow task it runs in is what a dead worker times out.
        return await run_engine(fn, *args, **kwargs)
    beating = asyncio.create_task(beat())
    try:
        return await run_engine(fn, *args, **kwargs)
    finally:
        beating.cancel()
