"""Turning engine errors into Temporal ApplicationErrors (type from docket.errors, retryable or not)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from temporalio.exceptions import ApplicationError

from docket.errors import DocketError

P = ParamSpec("P")
T = TypeVar("T")


def to_application_error(exc: DocketError) -> ApplicationError:
    return ApplicationError(
        exc.message + (f" (hint: {exc.hint})" if exc.hint else ""),
        type=exc.type,
        non_retryable=not exc.retryable,
    )


async def run_engine(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking engine code off the event loop, translating Docket errors for Temporal."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except DocketError as exc:
        raise to_application_error(exc) from exc
