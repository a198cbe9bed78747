"""ledger_query: one deterministic ledger task (idempotent: a pure read)."""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.data.engine import run_task
from activities.errors import run_engine
from docket.catalog import load_catalog
from docket.contracts import LedgerQueryInput, LedgerQueryResult


class DataActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _run(self, data: LedgerQueryInput) -> LedgerQueryResult:
        return run_task(self.engine, load_catalog(self.engine, data.tenant), data.task)

    @activity.defn(name=names.LEDGER_QUERY)
    async def ledger_query(self, data: LedgerQueryInput) -> LedgerQueryResult:
        """Compute one ledger figure and report the cells that were missing."""
        return await run_engine(self._run, data)
