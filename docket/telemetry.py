"""OpenTelemetry setup shared by every process: a replay-safe tracer provider (required by Temporal's plugin).

Exporters follow the standard variables: OTEL_TRACES_EXPORTER (`otlp`, `console`, `none`, or a comma list;
default `otlp` when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, else none),
OTEL_EXPORTER_OTLP_* for the collector (HTTP/protobuf), OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES for the
resource. DOCKET_OTEL_CONSOLE=1 is kept as a shorthand for the console exporter. Without an exporter spans are
created and dropped, which costs next to nothing. Prompt and answer text never enter a span unless
DOCKET_TRACE_CONTENT=true (docs/generation.md).
"""

from __future__ import annotations

import os

import opentelemetry.trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from temporalio.contrib.opentelemetry import ReplaySafeTracerProvider, create_tracer_provider

from docket.errors import ConfigurationError

_configured = False


def exporters_from_env(env: dict[str, str] | None = None) -> list[str]:
    """The span exporters the OTEL_* variables ask for."""
    env = dict(os.environ) if env is None else env
    wanted = env.get("OTEL_TRACES_EXPORTER")
    if wanted is None:
        has_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        wanted = "otlp" if has_endpoint else "none"
    names = [n.strip().lower() for n in wanted.split(",") if n.strip()]
    if env.get("DOCKET_OTEL_CONSOLE") == "1" and "console" not in names:
        names.append("console")
    unknown = [n for n in names if n not in ("otlp", "console", "none")]
    if unknown:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER names unknown exporters {unknown}", hint="use otlp, console or none"
        )
    return [n for n in names if n != "none"]


def _processors(names: list[str]) -> list[SpanProcessor]:
    out: list[SpanProcessor] = []
    for name in names:
        if name == "otlp":
            # Imported here: only processes that export pay for the exporter's import.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            out.append(BatchSpanProcessor(OTLPSpanExporter()))
        elif name == "console":
            out.append(SimpleSpanProcessor(ConsoleSpanExporter()))
    return out


def setup_tracing(service_name: str = "docket") -> None:
    """Install a replay-safe global tracer provider once per process, with the exporters OTEL_* ask for."""
    global _configured
    if _configured or isinstance(opentelemetry.trace.get_tracer_provider(), ReplaySafeTracerProvider):
        _configured = True
        return
    # OTEL_SERVICE_NAME, when set, names the service; Resource.create reads it and OTEL_RESOURCE_ATTRIBUTES.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    provider = create_tracer_provider(resource=Resource.create(attributes))
    for processor in _processors(exporters_from_env()):
        provider.add_span_processor(processor)
    opentelemetry.trace.set_tracer_provider(provider)
    _configured = True
