"""bench/recovery.py's counting: what a history says about a crash, and how a generation's model calls split into
the completed attempt's, re-calls of lost attempts and duplicates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import ActivityType, Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskScheduledEventAttributes,
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
)
from temporalio.contrib.pydantic import pydantic_data_converter

from activities import names
from bench.dag import decode
from bench.recovery import (
    AFFECTED,
    UNDISTURBED,
    WAITED,
    CallCount,
    candidate_asks,
    count_calls,
    gap_index,
    latency_class,
    read_history,
    record_problems,
)
from docket.contracts import GenerateResult, PromptRef

WFT = (
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
)


def payloads(value: Any) -> Payloads:
    return Payloads(payloads=pydantic_data_converter.payload_converter.to_payloads([value]))


class History:
    """A workflow history built event by event, ids in order, as the server writes it."""

    def __init__(self) -> None:
        self.events: list[HistoryEvent] = []

    def add(self, event_type: int, **attrs: Any) -> int:
        event_id = len(self.events) + 1
        self.events.append(HistoryEvent(event_id=event_id, event_type=event_type, **attrs))  # type: ignore[arg-type]
        return event_id

    def workflow_task(self, *types: int) -> None:
        for t in types or WFT:
            self.add(t)

    def activity(
        self, name: str, activity_id: str, attempt: int, result: Payloads | None = None, heartbeat_s: int = 0
    ) -> None:
        scheduled = self.add(
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            activity_task_scheduled_event_attributes=ActivityTaskScheduledEventAttributes(
                activity_id=activity_id,
                activity_type=ActivityType(name=name),
                input=payloads({"question": name}),
                heartbeat_timeout=Duration(seconds=heartbeat_s),
            ),
        )
        started = self.add(
            EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(
                scheduled_event_id=scheduled, attempt=attempt
            ),
        )
        if result is not None:
            self.add(
                EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(
                    scheduled_event_id=scheduled, started_event_id=started, result=result
                ),
            )


def generated(calls: int) -> GenerateResult:
    return GenerateResult(
        answer="revenue MER-US 2026-03 was 1 USD.",
        generator="openai",
        model="bench-stub",
        prompt=PromptRef(id="answer", version=2, sha256="0" * 64),
        calls=calls,
    )


def undisturbed_history() -> Sequence[HistoryEvent]:
    h = History()
    h.add(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    h.workflow_task()
    h.add(EventType.EVENT_TYPE_MARKER_RECORDED)  # a local activity
    h.add(EventType.EVENT_TYPE_MARKER_RECORDED)
    h.activity(names.GENERATE, "7", attempt=1, result=payloads(generated(1)), heartbeat_s=15)
    h.workflow_task()
    h.add(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
    return h.events


def test_an_undisturbed_history_is_not_affected_and_its_generation_completed_on_attempt_1() -> None:
    facts = read_history(undisturbed_history())
    assert not facts.affected
    assert facts.retried == {} and facts.wft_timeouts == facts.wft_failures == facts.activity_timeouts == 0
    assert facts.regular == {names.GENERATE} and facts.markers == 2
    [gen] = facts.generations
    assert (gen.activity_id, gen.attempts, gen.completed, gen.heartbeat_timeout_s) == ("7", 1, True, 15.0)
    assert gen.result is not None and gen.input is not None
    assert decode(pydantic_data_converter, gen.result.payloads, GenerateResult).calls == 1


def test_a_retried_activity_or_a_lost_workflow_task_marks_the_request_affected() -> None:
    h = History()
    h.add(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    h.workflow_task(EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED)
    h.add(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)  # the worker died holding it
    h.workflow_task()
    h.activity(names.LEDGER_QUERY, "3", attempt=1, result=payloads({}))
    h.activity(names.GENERATE, "5", attempt=3, result=payloads(generated(1)), heartbeat_s=15)
    facts = read_history(h.events)
    assert facts.affected and facts.wft_timeouts == 1
    assert facts.retried == {names.GENERATE: 3}
    assert facts.regular == {names.LEDGER_QUERY, names.GENERATE}
    [gen] = facts.generations
    assert gen.attempts == 3 and gen.completed

    only_retry = History()
    only_retry.activity(names.RETRIEVE, "2", attempt=2, result=payloads({}))
    assert read_history(only_retry.events).affected
    assert read_history(only_retry.events).generations == []

    failed = History()
    failed.add(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    assert read_history(failed.events).affected


def test_a_generation_still_running_is_not_completed() -> None:
    h = History()
    h.activity(names.GENERATE, "5", attempt=2)
    [gen] = read_history(h.events).generations
    assert gen.attempts == 2 and not gen.completed and gen.result is None


def test_calls_split_into_final_recalls_and_duplicates() -> None:
    # Undisturbed: one call, by the attempt that completed.
    assert count_calls(received=1, final=1, attempts=1) == CallCount(1, 1, 0, 0, 0)
    # Killed mid-call once: attempt 2 called again. A re-call, not a duplicate.
    assert count_calls(received=2, final=1, attempts=2) == CallCount(2, 1, 1, 0, 0)
    # Killed before attempt 1 reached the model: no re-call although attempt 2 completed.
    assert count_calls(received=1, final=1, attempts=2) == CallCount(1, 1, 0, 0, 0)
    # A call no attempt explains: the completed generation's call made again.
    assert count_calls(received=2, final=1, attempts=1) == CallCount(2, 1, 0, 1, 0)
    # Two lost attempts explain two calls at most; the fourth is a duplicate.
    assert count_calls(received=4, final=1, attempts=3) == CallCount(4, 1, 2, 1, 0)
    # A repair in every attempt: a lost attempt explains up to as many calls as the completed one made.
    assert count_calls(received=4, final=2, attempts=2) == CallCount(4, 2, 2, 0, 0)
    # Fewer calls than the completed attempt reports: the prompt was not matched to the stub's count.
    assert count_calls(received=0, final=1, attempts=1) == CallCount(0, 1, 0, 0, 1)


def test_latency_class() -> None:
    downtimes = [(10.0, 14.0), (20.0, float("inf"))]
    assert latency_class(True, 0.0, 1.0, downtimes) == AFFECTED
    assert latency_class(False, 9.0, 11.0, downtimes) == WAITED
    assert latency_class(False, 12.0, 15.0, downtimes) == WAITED
    assert latency_class(False, 14.5, 15.0, downtimes) == UNDISTURBED
    assert latency_class(False, 25.0, 26.0, downtimes) == WAITED
    assert latency_class(False, 0.0, 1.0, []) == UNDISTURBED


def clean_counts() -> dict[str, Any]:
    return {
        "request_rows": 1,
        "usage_rows": 1,
        "audit_steps": [1, 2, 3, 4, 5, 6, 7],
        "audit_generate": 1,
        # (activity id, attempt, call): a lost attempt 1 whose answer arrived, and the completed attempt 2.
        "model_usage": [("5", 1, 1), ("5", 2, 1)],
    }


def test_record_problems() -> None:
    assert record_problems(clean_counts(), "5", attempts=2, final_calls=1, recalls=1) == []
    assert record_problems(clean_counts(), None, 0, 0, 0) == []
    assert record_problems({**clean_counts(), "request_rows": 2}, "5", 2, 1, 1) == ["2 result rows"]
    assert record_problems({**clean_counts(), "usage_rows": 0}, "5", 2, 1, 1) == ["0 usage rows"]
    assert record_problems({**clean_counts(), "audit_steps": [1, 2, 2, 3]}, "5", 2, 1, 1) == [
        "audit steps [1, 2, 2, 3]"
    ]
    assert record_problems({**clean_counts(), "audit_generate": 2}, "5", 2, 1, 1) == ["2 generate audit events"]
    # The ledger holds a lost attempt's call the stub never counted as a re-call.
    assert record_problems(clean_counts(), "5", 2, 1, recalls=0) == [
        "the usage ledger has 1 calls of lost attempts, the stub saw 0"
    ]
    twice = {**clean_counts(), "model_usage": [("5", 1, 1), ("5", 1, 1)]}
    assert "a model call recorded twice in the usage ledger" in record_problems(twice, "5", 1, 1, 0)


def test_questions_are_distinct_and_mixed() -> None:
    asks = list(candidate_asks())
    assert len({a.question for a in asks}) == len(asks) >= 40
    first = asks[:40]
    assert {a.kind for a in first} == {"lookup", "comparison"}
    assert {a.principal for a in first} == {"alice", "bob", "dave"}


def test_the_middle_kill_pauses() -> None:
    assert gap_index(1) is None
    assert gap_index(2) == 1
    assert gap_index(3) == 1
