"""OpenTelemetry setup shared by every process: a replay-safe tracer provider (required by Temporal's plugin)."""

from __future__ import annotations

import os

import opentelemetry.trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider, create_tracer_provider

_configured = False


def setup_tracing(service_name: str = "docket") -> None:
    """Install a replay-safe global tracer provider once per process.

    Spans go to the console when DOCKET_OTEL_CONSOLE=1; exporting to a collector (OTLP) is configured by the
    operators' issue. Without an exporter spans are created and dropped, which costs next to nothing.
    """
    global _configured
    if _configured or isinstance(opentelemetry.trace.get_tracer_provider(), ReplaySafeTracerProvider):
        _configured = True
        return
    provider = create_tracer_provider(resource=Resource.create({"service.name": service_name}))
    if os.environ.get("DOCKET_OTEL_CONSOLE") == "1":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    opentelemetry.trace.set_tracer_provider(provider)
    _configured = True
