"""OpenTelemetry setup shared by every process: a replay-safe tracer provider (required by Temporal's plugin).

Exporters follow the standard variables: OTEL_TRACES_EXPORTER (`otlp`, `console`, `none`, or a comma list;
default `otlp` when OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set, else none),
OTEL_EXPORTER_OTLP_* for the collector (HTTP/protobuf), OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES for the
resource. DOCKET_OTEL_CONSOLE=1 is kept as a shorthand for the console exporter. Without an exporter (or another
span processor) spans are not recorded at all; only their context travels, for the logs' trace ids. Prompt and
answer text never enter a span unless DOCKET_TRACE_CONTENT=true (docs/generation.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import opentelemetry.trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, SynchronousMultiSpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
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


class _CountedProcessors(SynchronousMultiSpanProcessor):
    """The provider's span processors, counted: _WhenExported records spans only once there is one."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.count = 0

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self.count += 1


class _WhenExported(Sampler):
    """Record spans only while some processor would receive them (an exporter, or a test's in-memory one).

    With none, a recorded span is built, filled and dropped on every stage and RPC: a few per cent of the worker's
    CPU per request (docs/benchmarks.md). A dropped span still carries a valid context, so trace ids still reach
    the logs and Temporal's headers.
    """

    def __init__(self, processors: _CountedProcessors) -> None:
        self._processors = processors
        # A remote parent that came unsampled was most likely dropped here by a process with no exporter (a
        # gateway without one in front of a worker with one): it must not silence this process's spans.
        self._inner = ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if not self._processors.count:
            parent = opentelemetry.trace.get_current_span(parent_context).get_span_context()
            return SamplingResult(Decision.DROP, trace_state=parent.trace_state if parent.is_valid else None)
        return self._inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "DocketWhenExported"


def setup_tracing(service_name: str = "docket") -> None:
    """Install a replay-safe global tracer provider once per process, with the exporters OTEL_* ask for."""
    global _configured
    if _configured or isinstance(opentelemetry.trace.get_tracer_provider(), ReplaySafeTracerProvider):
        _configured = True
        return
    # OTEL_SERVICE_NAME, when set, names the service; Resource.create reads it and OTEL_RESOURCE_ATTRIBUTES.
    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": service_name}
    processors = _CountedProcessors()
    provider = create_tracer_provider(
        resource=Resource.create(attributes),
        active_span_processor=processors,
        # An operator's OTEL_TRACES_SAMPLER wins: the SDK reads it when no sampler is given.
        sampler=None if os.environ.get("OTEL_TRACES_SAMPLER") else _WhenExported(processors),
    )
    for processor in _processors(exporters_from_env()):
        provider.add_span_processor(processor)
    opentelemetry.trace.set_tracer_provider(provider)
    _configured = True
