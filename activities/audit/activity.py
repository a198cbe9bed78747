"""record_result: result, audit rows and usage, idempotent on (workflow id, step)."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.audit.engine import record
from activities.errors import run_engine
from activities.trace import annotate
from docket import metrics
from docket.audit import DEFAULT_ANCHOR_EVERY
from docket.contracts import RecordInput, RecordResult
from docket.logs import get_logger

log = get_logger("docket.audit")


class RecordActivities:
    def __init__(self, engine: Engine, anchor_every: int = DEFAULT_ANCHOR_EVERY) -> None:
        self.engine = engine
        self.anchor_every = anchor_every

    @activity.defn(name=names.RECORD)
    async def record_result(self, data: RecordInput) -> RecordResult:
        """Write the result, the audit trail and usage exactly once."""
        written = await run_engine(record, self.engine, data, self.anchor_every)
        if written.result_written:
            # Counted where the result is written for the first time: a retried record is not a second request.
            metrics.observe_result(data.result)
        # One line per request in the worker's JSON log; workflow id, tenant and principal come from the context
        # the worker binds per activity (worker/observability.py).
        log.info(
            "request_recorded",
            outcome=data.result.outcome.value,
            audit_rows=written.audit_rows_written,
            first_write=written.result_written,
        )
        annotate(
            **{
                "docket.outcome": data.result.outcome.value,
                "docket.confidence_band": data.result.confidence.band if data.result.confidence else "",
                "docket.audit_rows": written.audit_rows_written,
            }
        )
        return written
