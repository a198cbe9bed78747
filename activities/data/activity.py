"""ledger_query and compute_task: the data tasks of a plan's DAG, each stored under (tenant, task id, version).

A task is a pure function of the ledger at one version and its operands, so a retried attempt, a resumed run or
the same question asked again reuses the stored result instead of computing it twice (docket/dataversion.py).
"""

from __future__ import annotations

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.data.engine import TASK_CODE_VERSION, compute, run_task
from activities.errors import run_engine, run_engine_heartbeating
from activities.trace import annotate
from docket.catalog import load_catalog
from docket.contracts import LedgerQueryInput, LedgerQueryResult
from docket.dataversion import run_cached


class DataActivities:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _run(self, data: LedgerQueryInput) -> LedgerQueryResult:
        return run_cached(
            self.engine,
            data.tenant,
            data.task,
            data.data_version,
            lambda: run_task(self.engine, load_catalog(self.engine, data.tenant), data.task),
            TASK_CODE_VERSION,
        )

    def _compute(self, data: LedgerQueryInput) -> LedgerQueryResult:
        return run_cached(
            self.engine,
            data.tenant,
            data.task,
            data.data_version,
            lambda: compute(data.task, data.inputs),
            TASK_CODE_VERSION,
        )

    @activity.defn(name=names.LEDGER_QUERY)
    async def ledger_query(self, data: LedgerQueryInput) -> LedgerQueryResult:
        """Compute one ledger figure and report the cells that were missing."""
        result = await run_engine_heartbeating(self._run, data)
        _annotate(data, result)
        return result

    @activity.defn(name=names.COMPUTE_TASK)
    async def compute_task(self, data: LedgerQueryInput) -> LedgerQueryResult:
        """Compute a derived figure (total, difference, margin, growth, trend, variance) from its operands."""
        result = await run_engine(self._compute, data)
        _annotate(data, result)
        return result


def _annotate(data: LedgerQueryInput, result: LedgerQueryResult) -> None:
    annotate(
        **{
            "docket.task.id": data.task.task_id,
            "docket.task.kind": data.task.kind,
            "docket.task.reused": result.reused,
            "docket.task.missing_cells": len(result.missing),
            "docket.data_version": data.data_version,
        }
    )
