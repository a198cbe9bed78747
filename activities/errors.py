"""Turning engine errors into Temporal ApplicationErrors (type from docket.errors, retryable or not)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from docket.errors import DocketError

P = ParamSpec("P")
T = TypeVar("T")


# A server asking for a longer pause than this is treated as unavailable for now, not waited on.
MAX_RETRY_AFTER_SECONDS = 300.0


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
