"""record_result: result, audit rows and usage, idempotent on (workflow id, step)."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.audit.engine import record
from activities.errors import run_engine
from docket.audit import DEFAULT_ANCHOR_EVERY
from docket.contracts import RecordInput, RecordResult


class RecordActivities:
    def __init__(self, engine: Engine, anchor_every: int = DEFAULT_ANCHOR_EVERY) -> None:
        self.engine = engine
        self.anchor_every = anchor_every

    @activity.defn(name=names.RECORD)
    async def record_result(self, data: RecordInput) -> RecordResult:
        """Write the result, the audit trail and usage exactly once."""
        return await run_engine(record, self.engine, data, self.anchor_every)
