"""docket.telemetry: spans are recorded only while a processor would receive them (docs/benchmarks.md measured
the cost of building and dropping every span), and a dropped span still has a context to log and propagate."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.opentelemetry import create_tracer_provider

from docket.telemetry import _CountedProcessors, _WhenExported


def test_spans_are_recorded_only_once_a_processor_listens() -> None:
    processors = _CountedProcessors()
    provider = create_tracer_provider(active_span_processor=processors, sampler=_WhenExported(processors))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("before") as span:
        assert not span.is_recording()
        ctx = span.get_span_context()
        assert ctx.is_valid and not ctx.trace_flags.sampled  # a trace id for the logs, nothing built
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    assert processors.count == 1
    with tracer.start_as_current_span("after") as parent:
        assert parent.is_recording()
        with tracer.start_as_current_span("child") as child:
            assert child.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["child", "after"]


def test_an_exporting_process_records_under_a_parent_dropped_elsewhere() -> None:
    """A gateway with no exporter sends an unsampled context; the worker that exports still records its spans."""
    quiet = _CountedProcessors()
    gateway = create_tracer_provider(active_span_processor=quiet, sampler=_WhenExported(quiet)).get_tracer("gw")
    with gateway.start_as_current_span("api") as api:
        sent = api.get_span_context()
    assert not sent.trace_flags.sampled
    remote = trace.set_span_in_context(
        trace.NonRecordingSpan(
            trace.SpanContext(sent.trace_id, sent.span_id, is_remote=True, trace_flags=sent.trace_flags)
        )
    )
    exporting = _CountedProcessors()
    worker = create_tracer_provider(active_span_processor=exporting, sampler=_WhenExported(exporting))
    exporter = InMemorySpanExporter()
    worker.add_span_processor(SimpleSpanProcessor(exporter))
    with worker.get_tracer("worker").start_as_current_span("activity", context=remote) as span:
        assert span.is_recording() and span.get_span_context().trace_id == sent.trace_id
    assert [s.name for s in exporter.get_finished_spans()] == ["activity"]
