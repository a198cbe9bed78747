"""Histories are durable contracts: committed runs must replay against the current code.

Record histories for new workflow shapes with `DOCKET_RECORD_HISTORIES=1 pytest tests/replay -k record`; existing
files are never rewritten unless DOCKET_RECORD_HISTORIES_OVERWRITE=1 (a change to the command sequence belongs
behind workflow.patched instead).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from temporalio.client import WithStartWorkflowOperation, WorkflowHistory
from temporalio.common import WorkflowIDConflictPolicy

from cli.replay import WORKFLOWS, replay_history
from docket.contracts import RequestInput, RequestResult, StagePlacement
from tests.conftest import Stack
from tests.replay.changed_workflow import ChangedRequestWorkflow

HISTORIES = Path(__file__).parent / "histories"
RECORD = {
    "lookup-answered": ("alice", "What was revenue for MER-US last month?"),
    "comparison-answered": ("dave", "Compare revenue across EMEA entities for Q2 2026"),
    "group-qualified": ("alice", "What was total revenue for the group in October 2026?"),
    "masked-answered": ("carol", "What were total operating costs for MER-CA in May 2026?"),
    "denied-pol-003": ("dave", "What was revenue for MER-JP last month?"),
    "clarification": ("alice", "What was revenue for MER-US?"),
    # Recorded after the gather-retrieval-concurrently patch: the search is scheduled with the ledger tasks.
    "patched-concurrent-retrieval": ("bob", "Show me COGS for MER-DE in March 2026"),
    # The task DAG: ledger sums as activities, then compute tasks (local activities) once their operands are done.
    "dag-growth": ("grace", "What is the yoy growth of revenue for MER-JP in September 2026?"),
    "dag-scenario": (
        "alice",
        "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?",
    ),
    "dag-variance": ("bob", "Why did COGS for MER-DE change in March 2026?"),
    # Recorded after the search-attributes patch: upserts once understood and when finished.
    "search-attributes-denied": ("carol", "What was payroll for MER-US in January 2026?"),
    "search-attributes-growth": ("grace", "What is the yoy growth of revenue for MER-JP in September 2026?"),
    # Recorded after the stage-placement patch (default placement: every stage but the model call local; tenant
    # and principal set by the gateway at start; intent, complexity and outcome in one upsert).
    "placement-local-lookup": ("alice", "What was revenue for MER-US last month?"),
    "placement-local-denied": ("carol", "What was payroll for MER-US in January 2026?"),
    "placement-local-scenario": (
        "alice",
        "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?",
    ),
    "placement-local-group-qualified": ("alice", "What was total revenue for the group in October 2026?"),
    "placement-local-clarification": ("alice", "What was revenue for MER-US?"),
    # Recorded with the fused placement, the gateway's default since issue 9's part 5 (the placement-local ones above
    # were recorded when `local` was the default: overwriting them now would record fused runs under their names):
    # classify, authorize and plan are one local activity, understand_request, as far as no person is needed.
    "placement-fused-lookup": ("alice", "What was revenue for MER-US last month?"),
    "placement-fused-denied": ("carol", "What was payroll for MER-US in January 2026?"),
    "placement-fused-scenario": (
        "alice",
        "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?",
    ),
    "placement-fused-clarification": ("alice", "What was revenue for MER-US?"),
    "placement-fused-comparison": ("dave", "Compare revenue across EMEA entities for Q2 2026"),
}
# Recorded through the Temporal client with another RequestInput.stages and no start-time search attributes (the
# run upserts tenant and principal itself).
RECORD_PLACED = {
    "placement-regular-comparison": (
        "dave",
        "Compare revenue across EMEA entities for Q2 2026",
        StagePlacement.REGULAR,
    ),
    "placement-mixed-variance": ("bob", "Why did COGS for MER-DE change in March 2026?", StagePlacement.MIXED),
}


# A lookup started by update-with-start (the gateway's `?wait` with DOCKET_WAIT_VIA_UPDATE): the `result` update's
# accepted and completed events in history.
RECORD_UPDATE = {"lookup-update-with-start": ("alice", "What was revenue for MER-US last month?")}


# IngestWorkflow and IndexWorkflow runs recorded after the ingest-authorized-uploads patch, and one IngestWorkflow
# run recorded with the code before it (commit a99a07c: index_documents only) that must keep replaying.
RECORD_OTHER = ("ingest-stored", "index-status", "ingest-pre-patch")


def committed() -> list[Path]:
    return sorted(HISTORIES.glob("*.json"))


def workflow_type(path: Path) -> str:
    first = load(path).events[0]
    return str(first.workflow_execution_started_event_attributes.workflow_type.name)


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text(encoding="utf-8"))


def test_histories_are_committed() -> None:
    # confirm-accepted (recorded before stage placement existed) and the two placement-fused-confirm ones are
    # recorded by tests/integration/test_confirmation.py (they need its stacks), streamed-retry-reset by
    # tests/integration/test_streaming.py (a model stream dropped, its reset, polls).
    expected = {
        *RECORD,
        *RECORD_PLACED,
        *RECORD_UPDATE,
        *RECORD_OTHER,
        "confirm-accepted",
        "placement-fused-confirm-accepted",
        "placement-fused-pol002-confirmed",
        "placement-fused-failed-authorize",  # tests/integration/test_requests.py
        "streamed-retry-reset",
    }
    assert {p.stem for p in committed()} >= expected


@pytest.mark.parametrize("path", committed(), ids=lambda p: p.stem)
async def test_committed_history_replays(path: Path) -> None:
    ok, message = await replay_history(load(path))
    assert ok, message


@pytest.mark.parametrize(
    "path", [p for p in committed() if workflow_type(p) == "RequestWorkflow"], ids=lambda p: p.stem
)
async def test_changed_workflow_fails_replay(path: Path) -> None:
    ok, message = await replay_history(load(path), [ChangedRequestWorkflow, *WORKFLOWS[1:]])
    assert not ok
    assert "nondetermin" in message.lower() or "replay failed" in message.lower()


@pytest.mark.integration
async def test_fresh_run_replays_like_docket_replay(stack: Stack) -> None:
    resp = await stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        headers=stack.auth("bob"),
        json={"question": "Show me COGS for MER-DE in March 2026", "as_of": "2026-11-21"},
    )
    wid = resp.json()["request_id"]
    history = await stack.client.get_workflow_handle(wid).fetch_history()
    ok, message = await replay_history(history)
    assert ok, message


@pytest.mark.integration
@pytest.mark.skipif(os.environ.get("DOCKET_RECORD_HISTORIES") != "1", reason="set DOCKET_RECORD_HISTORIES=1 to rewrite")
async def test_record_histories(stack: Stack) -> None:
    HISTORIES.mkdir(exist_ok=True)
    for name, (principal, question) in RECORD.items():
        if (HISTORIES / f"{name}.json").exists() and os.environ.get("DOCKET_RECORD_HISTORIES_OVERWRITE") != "1":
            continue  # committed histories are contracts: only add new ones unless asked to overwrite
        if not name.startswith("placement-fused-") and (HISTORIES / f"{name}.json").exists():
            continue  # recorded under an earlier default: the gateway can no longer run it that way
        resp = await stack.http.post(
            "/v1/requests",
            params={"wait": 30},
            headers=stack.auth(principal),
            json={"question": question, "as_of": "2026-11-21"},
        )
        history = await stack.client.get_workflow_handle(resp.json()["request_id"]).fetch_history()
        (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")
    for name, (principal, question, stages) in RECORD_PLACED.items():
        if (HISTORIES / f"{name}.json").exists() and os.environ.get("DOCKET_RECORD_HISTORIES_OVERWRITE") != "1":
            continue
        handle = await stack.client.start_workflow(
            "RequestWorkflow",
            RequestInput(
                tenant="meridian",
                principal_id=principal,
                question=question,
                as_of=date(2026, 11, 21),
                stages=stages,
            ),
            id=f"req-record-{name}",
            task_queue=stack.task_queue,
        )
        await handle.result()
        (HISTORIES / f"{name}.json").write_text((await handle.fetch_history()).to_json(), encoding="utf-8")
    for name, (principal, question) in RECORD_UPDATE.items():
        if (HISTORIES / f"{name}.json").exists() and os.environ.get("DOCKET_RECORD_HISTORIES_OVERWRITE") != "1":
            continue
        start = WithStartWorkflowOperation(
            "RequestWorkflow",
            RequestInput(
                tenant="meridian",
                principal_id=principal,
                question=question,
                as_of=date(2026, 11, 21),
                stream_tokens=False,
            ),
            id=f"req-record-{name}",
            task_queue=stack.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
        result = await stack.client.execute_update_with_start_workflow(
            "result", start_workflow_operation=start, result_type=RequestResult
        )
        assert result.outcome.value == "answered", result
        handle = await start.workflow_handle()
        await handle.result()
        (HISTORIES / f"{name}.json").write_text((await handle.fetch_history()).to_json(), encoding="utf-8")


@pytest.mark.integration
@pytest.mark.skipif(os.environ.get("DOCKET_RECORD_HISTORIES") != "1", reason="set DOCKET_RECORD_HISTORIES=1 to rewrite")
async def test_record_ingest_and_index_histories(stack: Stack) -> None:
    from activities import names
    from docket.contracts import IndexAdminInput, IndexStatus

    HISTORIES.mkdir(exist_ok=True)
    overwrite = os.environ.get("DOCKET_RECORD_HISTORIES_OVERWRITE") == "1"
    if overwrite or not (HISTORIES / "ingest-stored.json").exists():
        body = (
            '---\nid: "doc-replay"\ntitle: "Replay memo"\ntenant: "meridian"\nclassification: "internal"\n---\n\nA.\n'
        )
        resp = await stack.http.post(
            "/v1/documents",
            content=body.encode(),
            headers={**stack.auth("alice"), "Content-Type": "text/markdown"},
        )
        assert resp.status_code == 200, resp.text
        history = await stack.client.get_workflow_handle(resp.json()["ingest_id"]).fetch_history()
        (HISTORIES / "ingest-stored.json").write_text(history.to_json(), encoding="utf-8")
    if overwrite or not (HISTORIES / "index-status.json").exists():
        handle = await stack.client.start_workflow(
            names.INDEX_WORKFLOW,
            IndexAdminInput(action="status"),
            id="index-status-record",
            task_queue=stack.task_queue,
            result_type=IndexStatus,
        )
        await handle.result()
        (HISTORIES / "index-status.json").write_text((await handle.fetch_history()).to_json(), encoding="utf-8")
