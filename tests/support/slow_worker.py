"""Fault injection: the real worker, except that record_result stalls after its transaction has committed.

Registered under the real activity name, so the workflow cannot tell the difference. The worker-kill test
SIGKILLs this process while it stalls: the database has the rows, Temporal never heard the activity finish.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from temporalio import activity

from activities import names
from activities.audit.engine import record
from docket import temporal
from docket.contracts import RecordInput, RecordResult
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

    real = [fn for fn in components.activities() if getattr(fn, "__name__", "") != "record_result"]
    client = await temporal.connect()
    async with make_worker(client, settings.task_queue, [*real, record_result]):
        marker.with_suffix(".ready").write_text("ready")
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
