"""Reading and committing workflow histories in tests."""

from __future__ import annotations

import json
import os

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

from tests.replay.test_replay import HISTORIES


def activity_types(history: WorkflowHistory) -> list[str]:
    """The activities a run ran, in order: local ones from their markers, regular ones as scheduled."""
    out: list[str] = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            out.append(e.activity_task_scheduled_event_attributes.activity_type.name)
        elif (
            e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
            and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        ):
            data = json.loads(e.marker_recorded_event_attributes.details["data"].payloads[0].data)
            out.append(str(data["activity_type"]))
    return out


def commit_history(history: WorkflowHistory, name: str) -> None:
    """Commit a replay history once (DOCKET_RECORD_HISTORIES=1): committed histories are never rewritten."""
    target = HISTORIES / f"{name}.json"
    if os.environ.get("DOCKET_RECORD_HISTORIES") == "1" and not target.exists():
        target.write_text(history.to_json(), encoding="utf-8")
