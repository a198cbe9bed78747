"""Fault injection: the real worker, except that one activity stalls after its real work is done.

DOCKET_TEST_STALL=record (default): record_result stalls after its transaction has committed.
DOCKET_TEST_STALL=ledger: the first DOCKET_TEST_STALL_AFTER ledger_query calls finish normally; every later one
computes and stores its result (the real activity) and then stalls, appending its task id to the marker file.

Registered under the real activity names, so the workflow cannot tell the difference. The worker-kill tests
SIGKILL this process while it stalls: the database has the rows, Temporal never heard the activities finish.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from temporalio import activity

from activities import names
from activities.audit.engine import record
from activities.data.activity import DataActivities
from docket import temporal
from docket.contracts import LedgerQueryInput, LedgerQueryResult, RecordInput, RecordResult
from docket.settings import load_settings
from worker.main import build_components, make_worker


async def main() -> None:
    settings = load_settings()
    components = build_components(settings)
    marker = Path(os.environ["DOCKET_TEST_MARKER"])

    @activity.defn(name=names.RECORD)
    async def record_result(data: RecordInput) -> RecordResult:
        result = await asyncio.to_thread(record, components.engine, data)
        marker.write_text(data.workflow_id)
        await asyncio.sleep(3600)
        return result

    data_activities = DataActivities(components.engine)
    finished = 0

    @activity.defn(name=names.LEDGER_QUERY)
    async def ledger_query(data: LedgerQueryInput) -> LedgerQueryResult:
        nonlocal finished
        result = await data_activities.ledger_query(data)
        if finished < int(os.environ.get("DOCKET_TEST_STALL_AFTER", "3")):
            finished += 1
            return result
        with marker.open("a") as fh:
            fh.write(data.task.task_id + "\n")
        await asyncio.sleep(3600)
        return result

    stalled = record_result if os.environ.get("DOCKET_TEST_STALL", "record") == "record" else ledger_query
    real = [fn for fn in components.activities() if getattr(fn, "__name__", "") != stalled.__name__]
    client = await temporal.connect()
    async with make_worker(client, settings.task_queue, [*real, stalled]):
        marker.with_suffix(".ready").write_text("ready")
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
