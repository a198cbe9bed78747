"""SIGKILL the worker mid-request, start another: the request completes and nothing is recorded twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from activities.llm.engine import TemplateGenerator
from activities.retrieve.engine import DocumentIndex, sync_index
from docket.contracts import RequestInput, RequestResult, StagePlacement
from docket.dataversion import task_counts
from docket.db import AuditEventRow, RequestRecord, UsageRecord, table_of
from tests.conftest import ROOT, fresh_sqlite
from tests.support.oracle import LedgerOracle
from worker.main import Components, make_worker

pytestmark = pytest.mark.integration


async def wait_for(path: Path, proc: subprocess.Popen[bytes], seconds: float) -> None:
    for _ in range(int(seconds * 10)):
        if path.exists():
            return
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            pytest.fail(f"slow worker exited early ({proc.returncode}):\n{out[-3000:]}")
        await asyncio.sleep(0.1)
    pytest.fail(f"{path.name} did not appear within {seconds}s")


@pytest.mark.parametrize("stages", [StagePlacement.FUSED, StagePlacement.LOCAL, StagePlacement.MIXED])
async def test_worker_killed_after_commit_resumes_without_duplicates(
    temporal_env: WorkflowEnvironment, sqlite_db: tuple[str, Engine], tmp_path: Path, stages: StagePlacement
) -> None:
    url, engine = sqlite_db
    task_queue = f"docket-kill-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "committed"
    env = os.environ | {
        "DATABASE_URL": url,
        "DOCKET_TASK_QUEUE": task_queue,
        "DOCKET_DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "DOCKET_TEST_MARKER": str(marker),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.slow_worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        await wait_for(marker.with_suffix(".ready"), proc, 60)
        wid = f"req-kill-{uuid.uuid4().hex[:8]}"
        handle = await temporal_env.client.start_workflow(
            "RequestWorkflow",
            RequestInput(
                tenant="meridian",
                principal_id="alice",
                question="What was revenue for MER-US last month?",
                as_of="2026-11-21",
                stages=stages,
            ),  # type: ignore[arg-type]
            id=wid,
            task_queue=task_queue,
            result_type=RequestResult,
        )
        await wait_for(marker, proc, 60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()

    # The rows are there although Temporal never heard the activity complete.
    def rows(model: type) -> int:
        t = table_of(model)
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t).where(t.c.workflow_id == wid)).scalar() or 0)

    audit_before = rows(AuditEventRow)
    assert audit_before == 7 and rows(RequestRecord) == 1

    # A fresh worker picks the request up: record_result is retried once its timeout expires.
    index = DocumentIndex.open()
    sync_index(engine, index)
    components = Components(engine=engine, index=index, generator=TemplateGenerator())
    async with make_worker(temporal_env.client, task_queue, components.activities()):
        result = await asyncio.wait_for(handle.result(), timeout=90)
    index.close()

    assert result.facts[0].value == LedgerOracle().total("meridian", ["MER-US"], "4", ["2026-10"])
    assert rows(AuditEventRow) == audit_before
    assert rows(RequestRecord) == 1 and rows(UsageRecord) == 1
    history = await handle.fetch_history()
    if stages == StagePlacement.MIXED:
        record_attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        ]
        assert max(record_attempts) >= 2, "record_result was never retried: the kill did not hit mid-request"
    else:
        # record_result ran as a local activity inside the workflow task the kill cut off: that task timed out
        # and the fresh worker ran the stage again, which found the rows already written.
        timed_out = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT]
        assert timed_out, "no workflow task timed out: the kill did not hit mid-request"
        # The killed worker's run of record_result wrote the rows (the marker file) but never reached history; the
        # one recorded run is the fresh worker's, after the timeout.
        records = [
            e
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
            and b'"record_result"' in e.marker_recorded_event_attributes.details["data"].payloads[0].data
        ]
        assert len(records) == 1 and records[0].event_id > timed_out[0].event_id


@pytest.mark.parametrize("stages", [StagePlacement.FUSED, StagePlacement.LOCAL, StagePlacement.MIXED])
async def test_worker_killed_mid_dag_resumes_without_recomputing_a_task(
    temporal_env: WorkflowEnvironment, tmp_path: Path, stages: StagePlacement
) -> None:
    """A variance DAG (8 ledger sums, then the variance over them): 3 sums finish, 5 compute and store their
    results but never report back, the worker is SIGKILLed. A fresh worker finishes the request; every task was
    computed exactly once (the task-result store counts).

    mixed placement: the 3 finished sums are in history and never ran again; the 5 lost ones were retried and
    served from the store. fused (the default) and local placements: no sum reached history (local
    activities are recorded when their workflow task completes, and the kill cut it off), so the fresh worker ran
    all 8 again, each served from the store."""
    # A database of its own: the counts below must not see results other tests stored for the same tasks.
    url, engine = fresh_sqlite(tmp_path / "db")
    task_queue = f"docket-dag-kill-{uuid.uuid4().hex[:8]}"
    marker = tmp_path / "stalled"
    env = os.environ | {
        "DATABASE_URL": url,
        "DOCKET_TASK_QUEUE": task_queue,
        "DOCKET_DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "DOCKET_TEST_MARKER": str(marker),
        "DOCKET_TEST_STALL": "ledger",
        "DOCKET_TEST_STALL_AFTER": "3",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.slow_worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    question = "Why did COGS for MER-DE change in March 2026?"
    try:
        await wait_for(marker.with_suffix(".ready"), proc, 60)
        handle = await temporal_env.client.start_workflow(
            "RequestWorkflow",
            RequestInput(tenant="meridian", principal_id="bob", question=question, as_of="2026-11-21", stages=stages),  # type: ignore[arg-type]
            id=f"req-dag-kill-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
            result_type=RequestResult,
        )
        # Kill only once history has the 3 completions and the other 5 sums are stored and stalled.
        for _ in range(600):
            history = await handle.fetch_history()
            completed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]
            stalled = marker.read_text().split() if marker.exists() else []
            finished = len(completed) >= 3 or stages != StagePlacement.MIXED
            if finished and len(stalled) == 5:
                break
            if proc.poll() is not None:
                pytest.fail(f"slow worker exited early ({proc.returncode})")
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"the DAG did not reach 3 finished + 5 stalled sums ({len(completed)}, {stalled})")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout:
            proc.stdout.close()

    before = task_counts(engine, "meridian")
    assert len(before) == 8 and all(c == (1, 0) for c in before.values()), before

    index = DocumentIndex.open()
    sync_index(engine, index)
    components = Components(engine=engine, index=index, generator=TemplateGenerator())
    async with make_worker(temporal_env.client, task_queue, components.activities()):
        result = await asyncio.wait_for(handle.result(), timeout=90)
    index.close()

    after = task_counts(engine, "meridian")
    assert len(after) == 9  # the 8 sums and the variance
    assert all(computations == 1 for computations, _ in after.values()), after
    history = await handle.fetch_history()
    if stages != StagePlacement.MIXED:
        sums = [t for t in after if t in before]
        assert len(sums) == 8 and all(after[t][1] == 1 for t in sums), after
        assert sum(reuses for _, reuses in after.values()) == 8
        assert any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT for e in history.events)
        assert {f.label: f.value for f in result.facts}["cogs variance vs 2026-02 MER-DE 2026-03"] == _change()
        return
    assert sorted(t for t, (_, reuses) in after.items() if reuses == 1) == sorted(stalled)
    assert sum(reuses for _, reuses in after.values()) == 5

    started: dict[int, int] = {}
    scheduled: dict[int, str] = {}
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = e.activity_task_started_event_attributes
            started[attrs.scheduled_event_id] = attrs.attempt
    ledger = {sid: started[sid] for sid, name in scheduled.items() if name == "ledger_query"}
    assert sorted(ledger.values()) == [1, 1, 1, 2, 2, 2, 2, 2], "3 sums ran once, the 5 lost ones once more"

    assert {f.label: f.value for f in result.facts}["cogs variance vs 2026-02 MER-DE 2026-03"] == _change()


def _change() -> int:
    """The oracle's MER-DE COGS change from February to March 2026, recomputed from the CSV."""
    oracle = LedgerOracle()
    change: int = oracle.total("meridian", ["MER-DE"], "5.2", ["2026-03"]) - oracle.total(
        "meridian", ["MER-DE"], "5.2", ["2026-02"]
    )
    return change
