"""Replaying a run's history against the current workflow code."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from docket import temporal
from workflows.ingest import IndexWorkflow, IngestWorkflow
from workflows.request import RequestWorkflow

WORKFLOWS: list[type] = [RequestWorkflow, IngestWorkflow, IndexWorkflow]


async def replay_history(history: WorkflowHistory, workflows: list[type] | None = None) -> tuple[bool, str]:
    replayer = Replayer(workflows=workflows or WORKFLOWS, data_converter=pydantic_data_converter)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    n = len(history.events)
    if result.replay_failure is None:
        return True, f"replay OK: {history.workflow_id} ({n} events) matches the current code"
    return False, f"replay FAILED for {history.workflow_id} ({n} events): {result.replay_failure}"


async def replay_request(workflow_id: str) -> tuple[bool, str]:
    client = await temporal.connect()
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return await replay_history(history)


async def replay_file(path: Path) -> tuple[bool, str]:
    text = await asyncio.to_thread(path.read_text, encoding="utf-8")
    history = WorkflowHistory.from_json(path.stem, text)
    return await replay_history(history)
