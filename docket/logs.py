"""Structured logs: one JSON object per line from every process, with the request's context bound.

structlog renders both its own events and the standard library's (uvicorn, temporalio, Docket's modules), so
one log pipeline parses everything. The context a line carries (request_id, workflow_id, tenant, principal,
activity) comes from contextvars: the gateway binds it per HTTP request (api/observability.py), the worker per
activity (worker/observability.py). DOCKET_LOG_FORMAT=console prints the same events for a person instead.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog

_configured = False


def _default() -> None:
    """Until a process calls setup_logging (tests, the CLI, a library user), structlog events go to the standard
    library's logging as JSON strings: never to stdout, where structlog's own default would print them (and mix
    them into `docket ask --json`)."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


_default()


def get_logger(name: str) -> Any:
    """A structlog logger for `name` (configured: JSON through the standard library)."""
    return structlog.get_logger(name)


def setup_logging(service: str, level: int = logging.INFO, fmt: str | None = None) -> None:
    """Route every logger of the process through structlog's JSON (or console) renderer; idempotent."""
    global _configured
    fmt = fmt or os.environ.get("DOCKET_LOG_FORMAT", "json")
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _service(service),
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if fmt == "console" else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_docket", False):
            root.removeHandler(h)
    handler._docket = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    _configured = True


def _service(name: str) -> Any:
    def add(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("service", name)
        return event

    return add
