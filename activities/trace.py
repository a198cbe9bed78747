"""Attributes on the activity's span (the OpenTelemetry plugin's RunActivity span is current while it runs).

Governance and GenAI facts only (policy version, decision, masked count, intent, confidence band, prompt id):
never the question, the figures or the answer, which stay out of traces unless DOCKET_TRACE_CONTENT=true.
"""

from __future__ import annotations

from opentelemetry import trace


def annotate(**attributes: object) -> None:
    """Set the attributes that have a value (strings, numbers, booleans, lists of strings) on the current span."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    clean: dict[str, str | int | float | bool | list[str]] = {}
    for key, value in attributes.items():
        if isinstance(value, str | int | float | bool) and value != "":
            clean[key] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            clean[key] = [str(v) for v in value]
    span.set_attributes(clean)
