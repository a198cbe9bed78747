"""Benchmark suite (issue 9), W1: what orchestration costs when the model answers at once; W2: a realistic request.

W1 (`smoke`, `full`) runs the lookup with the model answering at once. W2 (`w2-smoke`, `w2`) runs the same real
stages (classify, authorize, ledger tasks) with the stub answering after 500 ms and the document search over
bench.retrieval's synthetic 10,000-chunk corpus (stored with `docket.ingest` before the index is synced).

One process, one run, every side of every comparison in alternating rounds:

- probes first (bench/probes.py): fsync and SQLite commit rate of the run's data dir, a gRPC round trip to the dev
  server, an HTTP round trip to a trivial FastAPI endpoint: the physical floors;
- the stub model (bench/stub_model.py) in its own process, answering at once (W1: `delay_ms` 0), so model time is
  known exactly while Docket's `openai` generator runs its real client path (HTTP, streaming, schema, grounding);
- `empty`: a workflow that returns at once (bench.probes.EmptyWorkflow) through the Temporal client, and
  `empty-rest`: the same through a trivial FastAPI endpoint under uvicorn: Temporal alone on the same server;
- `docket-rest`: `POST /v1/requests?wait=30` to the real gateway under uvicorn on 127.0.0.1; `docket-client`:
  RequestWorkflow started and awaited with the Temporal client (no HTTP); the real worker in-process; the Temporal
  variants `docket-rest-regular` (every stage a regular activity) and `docket-rest-no-eager`; W4's `docket-poll`
  (submit, then poll the result);
- the baselines of bench/baselines.py over the same stage functions and the same stub: `b0` plain asyncio (the
  floor), `b1-sync` / `b1-default` LangGraph with its SQLite checkpointer at durability sync / default, `b2` DBOS
  with SQLite.

Closed loop at each concurrency (smoke: c = 1, 8; full: c = 1, 8, 64), N measured requests per mode after a
warm-up, repeated; the order of the modes is shuffled (seeded) every repetition, and a series starts once the dev
servers are idle. Every loop is bounded by count and by wall time, every request by a timeout; everything listens
on loopback. Every answer is checked (outcome, the figure,
and that the stub's grounded model answer was accepted). Output: JSON lines (`--jsonl`) and the workload's section
of docs/benchmarks.md (`--out`, `-` for none): between `<!-- bench:suite:begin -->` and `<!-- bench:suite:end -->`
for W1, `<!-- bench:suite-w2:begin -->` and `<!-- bench:suite-w2:end -->` for W2.

    python -m bench.suite smoke|full|w2-smoke|w2 [--n N] [--reps R] [--concurrency 1 8 64] [--modes …]
                          [--jsonl F] [--out F]
    python -m bench.suite --from-jsonl F [--out F]   # re-render the section from a saved run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
from openai import AsyncOpenAI
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import names
from activities.classify.model import IntentModel
from activities.llm.engine import OpenAIGenerator
from activities.retrieve.engine import DocumentIndex, sync_index
from activities.retrieve.evaluate import load_corpus
from activities.retrieve.store import ChunkFilter
from api.main import create_app
from bench.dag import stdout_to_stderr
from bench.latency import (
    _short,
    analyse_history,
    cpu_seconds,
    descendants,
    load_expectation,
    machine_info,
    median,
    summary,
    temporal_binary,
)
from bench.latency import check as check_figures
from bench.openloop import OpenSeries, knees, open_line, open_loop, sustained
from bench.openloop import render as render_sweep
from bench.probes import EmptyWorkflow, run_probes, serving, trivial_app
from bench.report import lanes, write_section
from bench.report import quiet_logs as report_logs
from bench.retrieval import synthesize
from bench.stub_model import StubModel, StubModelProcess
from docket import db, ingest, tokens
from docket.contracts import SA_PRINCIPAL, SA_TENANT, SEARCH_ATTRIBUTES, RequestInput, RequestResult
from docket.settings import Settings
from docket.telemetry import setup_tracing
from docket.temporal import dynamic_config_args, tracing_plugin
from worker.main import Components, make_worker

log = logging.getLogger("bench.suite")

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "meridian"
BEGIN = "<!-- bench:suite:begin -->"  # W1's section; every other workload has its own (see `markers`)
END = "<!-- bench:suite:end -->"
PRINCIPAL = "alice"
TENANT = "meridian"
QUESTION = "What was revenue for MER-US last month?"
AS_OF = date(2026, 11, 21)
WAIT_SECONDS = 30
STUB_MODEL = "bench-stub"
# bench.retrieval's seed: W2 searches the very corpus whose search latency that benchmark reports.
CORPUS_SEED = 7

EMPTY, EMPTY_REST, DOCKET_REST, DOCKET_CLIENT = "empty", "empty-rest", "docket-rest", "docket-client"
# Temporal variants of the same request over REST: every stage a regular activity; no eager workflow start; and
# W4's submit-then-poll instead of `?wait`.
DOCKET_REGULAR, DOCKET_LAZY, DOCKET_POLL = "docket-rest-regular", "docket-rest-no-eager", "docket-poll"
# The workflow sandbox on (DOCKET_WORKFLOW_SANDBOX=true) and, for reports from before the default turned it off, off.
DOCKET_SANDBOX, DOCKET_NOSANDBOX = "docket-rest-sandboxed", "docket-rest-unsandboxed"
# `?wait` by update-with-start (DOCKET_WAIT_VIA_UPDATE=true): one call starts the run with its `result` update.
DOCKET_UPDATE = "docket-rest-update"
# The `local` placement (the default before `fused`): classify, authorize and plan each their own local activity.
DOCKET_LOCAL = "docket-rest-local"
# The dev server's other persistence mode: a SQLite file in WAL mode (a second dev server, its own worker and
# gateway), next to the in-memory one every other mode runs on.
EMPTY_REST_SQLITE, DOCKET_REST_SQLITE = "empty-rest-sqlite", "docket-rest-sqlite"
SQLITE_MODES = (EMPTY_REST_SQLITE, DOCKET_REST_SQLITE)
BASELINES = ("b0", "b1-sync", "b1-default", "b2")
ALL_MODES = (
    EMPTY,
    EMPTY_REST,
    DOCKET_REST,
    DOCKET_CLIENT,
    DOCKET_LOCAL,
    DOCKET_REGULAR,
    DOCKET_LAZY,
    DOCKET_SANDBOX,
    DOCKET_NOSANDBOX,
    DOCKET_UPDATE,
    DOCKET_POLL,
    EMPTY_REST_SQLITE,
    DOCKET_REST_SQLITE,
    *BASELINES,
)
# What `smoke` and `full` run: every mode but the one that now equals the default (`docket-rest-unsandboxed`).
DEFAULT_MODES = tuple(m for m in ALL_MODES if m != DOCKET_NOSANDBOX)
DOCKET_MODES = (
    DOCKET_REST,
    DOCKET_CLIENT,
    DOCKET_LOCAL,
    DOCKET_REGULAR,
    DOCKET_LAZY,
    DOCKET_SANDBOX,
    DOCKET_NOSANDBOX,
    DOCKET_UPDATE,
    DOCKET_POLL,
    DOCKET_REST_SQLITE,
)
POLL_MS = 250  # W4: how often a submit-then-poll client asks GET /v1/requests/{id} (a brisk client)
POLL_RETRIES = 3  # W4: tries per call when the connection drops
LABELS = {
    EMPTY: "empty workflow (Temporal client)",
    EMPTY_REST: "empty workflow (REST, trivial FastAPI endpoint)",
    DOCKET_REST: "Docket (REST `?wait`)",
    DOCKET_CLIENT: "Docket (Temporal client)",
    DOCKET_LOCAL: "Docket (REST `?wait`), classify, authorize and plan as three local activities",
    DOCKET_REGULAR: "Docket (REST `?wait`), every stage a regular activity",
    DOCKET_LAZY: "Docket (REST `?wait`), no eager workflow start",
    DOCKET_SANDBOX: "Docket (REST `?wait`), workflows inside the SDK's sandbox",
    DOCKET_NOSANDBOX: "Docket (REST `?wait`), workflows outside the SDK's sandbox",
    DOCKET_UPDATE: "Docket (REST `?wait`), update-with-start",
    DOCKET_POLL: f"Docket (REST submit, then GET every {POLL_MS} ms)",
    EMPTY_REST_SQLITE: "empty workflow (REST), dev server on a SQLite file",
    DOCKET_REST_SQLITE: "Docket (REST `?wait`), dev server on a SQLite file",
    "b0": "B0 plain asyncio (floor)",
    "b1-sync": "B1 LangGraph + SQLite, durability sync",
    "b1-default": "B1 LangGraph + SQLite, default durability",
    "b2": "B2 DBOS + SQLite",
}
MIB = 1024 * 1024
TIMED_OUT = "timed out"


# ---------------------------------------------------------------- configuration


@dataclass
class SuiteConfig:
    preset: str = "smoke"
    workload: str = "W1"  # names the report's section and labels its targets
    corpus_chunks: int = 0  # > 0: bench.retrieval's synthetic corpus of this many chunks is stored and indexed first
    n: int = 20  # measured requests per mode, concurrency and repetition
    reps: int = 1
    concurrency: list[int] = field(default_factory=lambda: [1, 8])
    warmup: int = 3  # unmeasured requests per mode (at c=1, and at the largest c)
    modes: list[str] = field(default_factory=lambda: list(DEFAULT_MODES))
    stub_delay_ms: float = 0.0  # W1: the model answers at once
    stub_process: bool = True  # the stub in its own process (else a thread of this one)
    request_timeout_s: float = 30.0
    series_seconds: float = 60.0  # wall-time bound of one series (mode, c, repetition)
    budget_seconds: float = 270.0  # wall-time bound of the whole run; later series are skipped
    history_sample: int = 5
    # Open-loop rate sweep (bench/openloop.py): offered rates (none: no sweep), the modes swept, the arrival window
    # and request cap of one (mode, rate), the in-flight cap, and the p99 objective a sustained rate must meet.
    rates: list[float] = field(default_factory=lambda: [4.0, 12.0])
    sweep_modes: list[str] = field(default_factory=lambda: [EMPTY_REST, DOCKET_REST, "b1-sync"])
    sweep_seconds: float = 4.0
    sweep_n: int = 400
    max_in_flight: int = 64
    slo_ms: float = 1000.0
    probes: bool = True
    probe_n: int = 200
    probe_seconds: float = 3.0
    jsonl: str = ""
    out: str = "-"


PRESETS: dict[str, SuiteConfig] = {
    "smoke": SuiteConfig(),
    "full": SuiteConfig(
        preset="full",
        n=200,
        reps=3,
        concurrency=[1, 8, 64],
        warmup=10,
        series_seconds=120.0,
        budget_seconds=3600.0,
        history_sample=10,
        rates=[2.0, 5.0, 10.0, 20.0, 40.0, 80.0],
        sweep_modes=[EMPTY_REST, DOCKET_REST, "b0", "b1-sync", "b2"],
        sweep_seconds=10.0,
        probe_n=500,
        probe_seconds=5.0,
        jsonl=str(ROOT / "bench" / "results" / "suite.jsonl"),
        out=str(ROOT / "docs" / "benchmarks.md"),
    ),
    # W2: real stages, a 500 ms model, retrieval over 10,000 chunks. The smoke run checks it end to end in under
    # four minutes and leaves the report alone.
    "w2-smoke": SuiteConfig(
        preset="w2-smoke",
        workload="W2",
        corpus_chunks=10_000,
        stub_delay_ms=500.0,
        n=8,
        modes=[DOCKET_REST, "b0", "b1-sync", "b2"],
        warmup=2,
        budget_seconds=210.0,
        rates=[],
    ),
    "w2": SuiteConfig(
        preset="w2",
        workload="W2",
        corpus_chunks=10_000,
        stub_delay_ms=500.0,
        n=60,
        reps=3,
        concurrency=[1, 8, 64],
        modes=[EMPTY_REST, DOCKET_REST, DOCKET_REGULAR, DOCKET_SANDBOX, "b0", "b1-sync", "b1-default", "b2"],
        warmup=10,
        series_seconds=120.0,
        budget_seconds=3600.0,
        history_sample=10,
        rates=[1.0, 2.0, 5.0, 10.0, 20.0],
        sweep_modes=[DOCKET_REST, "b0", "b1-sync", "b2"],
        sweep_seconds=10.0,
        probe_n=500,
        probe_seconds=5.0,
        jsonl=str(ROOT / "bench" / "results" / "suite-w2.jsonl"),
        out=str(ROOT / "docs" / "benchmarks.md"),
    ),
}


def markers(workload: str) -> tuple[str, str]:
    """The begin/end markers of a workload's section of docs/benchmarks.md: W1 keeps the suite's original ones."""
    if workload == "W1":
        return BEGIN, END
    slug = workload.lower()
    return f"<!-- bench:suite-{slug}:begin -->", f"<!-- bench:suite-{slug}:end -->"


def preset(name: str, **overrides: Any) -> SuiteConfig:
    base = PRESETS[name]
    cfg = replace(
        base,
        concurrency=list(base.concurrency),
        modes=list(base.modes),
        rates=list(base.rates),
        sweep_modes=list(base.sweep_modes),
    )
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


# ---------------------------------------------------------------- what a correct answer is


def answer_problem(result: dict[str, Any]) -> str | None:
    """None when a Docket/baseline result answers the lookup right, with the stub model's answer accepted."""
    expect = load_expectation()
    wrong = check_figures(expect, result.get("outcome"), result.get("facts"))
    if wrong:
        return wrong
    if result.get("generator") != "openai":
        return f"generator {result.get('generator')!r}, not the model: {result.get('limitations')}"
    answer = str(result.get("answer", ""))
    for label, value in expect.facts.items():
        m = re.search(rf"{re.escape(label)} was (\S+)", answer)
        if not m or float(m.group(1).rstrip(".")) != float(value):
            return f"answer {answer[:200]!r} does not state {label} = {value}"
    return None


# ---------------------------------------------------------------- closed loop, bounded


@dataclass
class Sample:
    latency_ms: float
    request_id: str
    problem: str | None = None


@dataclass
class Series:
    mode: str
    concurrency: int
    rep: int
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process (client, gateway, worker, baselines)
    server_cpu_s: float = 0.0  # the Temporal dev server
    stub_cpu_s: float = 0.0  # the stub model process
    truncated: bool = False  # stopped by the series' wall-time bound before n requests


One = Callable[[], Awaitable[tuple[str, str | None]]]


def series_order(modes: Sequence[str], ci: int, rep: int) -> list[str]:
    """The order of one repetition's series: a seeded shuffle, a different one for every (c, repetition).

    A rotation keeps every mode behind the same predecessor, whose after-effects (the dev server still writing
    the visibility and deletion tasks of the workflows it just closed) then land on that one mode every time; a
    shuffle spreads them over all modes, and the seed makes a run repeatable.
    """
    out = list(modes)
    random.Random(f"{ci}:{rep}").shuffle(out)
    return out


# A series starts once the dev servers have gone quiet, within a bound: a busy server is the previous series'
# after-effect, not the next one's cost.
SETTLE_IDLE_CORES = 0.10
SETTLE_WINDOW_S = 0.2
SETTLE_MAX_S = 5.0


async def settle(pids: Sequence[int]) -> float:
    """Wait until the given processes use less than SETTLE_IDLE_CORES of a core over a window (at most
    SETTLE_MAX_S); returns the seconds waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < SETTLE_MAX_S:
        before = cpu_seconds(pids)
        await asyncio.sleep(SETTLE_WINDOW_S)
        if cpu_seconds(pids) - before < SETTLE_IDLE_CORES * SETTLE_WINDOW_S:
            break
    return time.monotonic() - t0


async def closed_loop(n: int, concurrency: int, one: One, max_seconds: float, timeout_s: float) -> Series:
    """`one` up to n times with `concurrency` in flight, a new one when one finishes; none starts after
    `max_seconds`, none runs longer than `timeout_s`."""
    s = Series("", concurrency, 0)

    async def measured() -> None:
        t0 = time.perf_counter()
        try:
            rid, problem = await asyncio.wait_for(one(), timeout_s)
        except TimeoutError:
            rid, problem = "", f"{TIMED_OUT} after {timeout_s:.0f} s"
        except Exception as exc:  # a failed request is a result to report, not a crash of the run
            rid, problem = "", f"{type(exc).__name__}: {str(exc)[:300]}"
        s.samples.append(Sample((time.perf_counter() - t0) * 1000, rid, problem))

    s.wall_s = await lanes(n, concurrency, max_seconds, measured)
    s.truncated = len(s.samples) < n
    return s


# ---------------------------------------------------------------- processes


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process in MiB, from /proc/<pid>/status (empty when it is gone)."""
    out: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(rest.split()[0]) * 1024 / MIB
    return out


def rss_snapshot(label: str, server_pids: Sequence[int], stub_pid: int) -> dict[str, Any]:
    me = proc_status(os.getpid())
    server = [proc_status(p) for p in server_pids]
    stub = proc_status(stub_pid) if stub_pid and stub_pid != os.getpid() else {}
    return {
        "label": label,
        "process_mib": me.get("VmRSS", float("nan")),
        "process_peak_mib": me.get("VmHWM", float("nan")),
        "dev_server_mib": sum(s.get("VmRSS", 0.0) for s in server),
        "stub_mib": stub.get("VmRSS", 0.0),
    }


def versions(binary: str) -> dict[str, str]:
    out = machine_info(binary)
    for pkg in ("langgraph", "langgraph-checkpoint-sqlite", "dbos", "openai", "fastapi"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[pkg] = metadata.version(pkg)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=ROOT)
        if head.returncode == 0:
            out["git"] = head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    return out


# ---------------------------------------------------------------- history


async def history_stats(client: Client, request_ids: Sequence[str], k: int) -> dict[str, Any]:
    """Events, bytes and workflow-task timings per request over up to k of these workflows (spread over the list)."""
    ids = [r for r in request_ids if r]
    step = max(1, len(ids) // max(1, k))
    sizes: list[int] = []
    stats = []
    types: Counter[str] = Counter()
    for rid in ids[::step][:k]:
        history = await client.get_workflow_handle(rid).fetch_history()
        sizes.append(sum(e.ByteSize() for e in history.events))
        stats.append(analyse_history(rid, 0.0, history.events))
        if len(stats) == 1:
            types.update(_short(e.event_type) for e in history.events)
    if not stats:
        return {"sampled": 0}
    events = [st.events for st in stats]
    return {
        "sampled": len(stats),
        "events_median": median(events),
        "events_max": max(events),
        "events_min": min(events),
        "bytes_median": median(sizes),
        "bytes_max": max(sizes),
        "duration_ms": median([st.duration_ms for st in stats]),
        "workflow_tasks": median([st.workflow_tasks for st in stats]),
        "wft_dispatch_ms": median([st.wft_dispatch_ms for st in stats]),
        "wft_dispatch_each_ms": median([d for st in stats for d in st.wft_dispatches_ms]),
        "wft_processing_ms": median([st.wft_processing_ms for st in stats]),
        "regular_activities": median([len(st.activities) for st in stats]),
        "activity_sched_to_start_ms": median([a.schedule_to_start_ms for st in stats for a in st.activities]),
        "local_activities": median([st.local_activities for st in stats]),
        "types_first": dict(types),
    }


# ---------------------------------------------------------------- W2's corpus


def store_corpus(engine: Engine, folder: Path, chunks: int, seed: int = CORPUS_SEED) -> dict[str, Any]:
    """Store bench.retrieval's synthetic corpus of `chunks` chunks (bench.retrieval.synthesize) in the database.

    The documents are written to `folder` as the markdown files `docket ingest documents` reads (a front matter of
    JSON values) and stored by ingest.load_documents, so they take the parser and the store every ingested document
    takes. The corpus holds the demo pack's documents too; load_pack stored those already, so they stay as they are.
    About 90 % of the chunks are the tenant meridian's, the rest belong to five other tenants, as in bench.retrieval:
    the tenant filter of every search has something to filter.
    """
    sources = load_corpus()
    docs = synthesize(sources, chunks, seed)
    folder.mkdir(parents=True)
    for i, d in enumerate(docs):
        front = {
            "id": d.doc_id,
            "title": d.title,
            "tenant": d.tenant,
            "classification": d.classification,
            "entities": list(d.entities),
            "accounts": list(d.accounts),
        }
        head = "".join(f"{key}: {json.dumps(value)}\n" for key, value in front.items())
        (folder / f"{i:05d}.md").write_text(f"---\n{head}---\n\n{d.body}", encoding="utf-8")
    stored = ingest.load_documents(engine, folder)
    return {
        "seed": seed,
        "sources": len(sources),
        "documents": len(docs),
        "stored": stored.rows.get("documents", 0),
        "tenants": dict(Counter(d.tenant for d in docs)),
    }


def build_index(engine: Engine, folder: Path) -> DocumentIndex:
    """The run's document index at `folder`, synced with every stored document.

    Qdrant Edge flushes its shard (an fsync) after every document written: for W2's thousands of documents that
    takes minutes on a disk and seconds on tmpfs. So the index is built in /dev/shm when there is one, then copied
    to `folder` (the run's temporary directory, on the same disk as W1's index) and opened there: the searches
    read the very points sync_index wrote, from where W1's index lives.
    """
    shm = Path("/dev/shm")
    scratch = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="docket-bench-index-", dir=scratch) as build_dir:
        building = DocumentIndex.open(path=build_dir)
        try:
            sync_index(engine, building)
        finally:
            building.close()
        shutil.copytree(build_dir, folder)
    return DocumentIndex.open(path=str(folder))


def index_counts(index: DocumentIndex, tenant: str) -> dict[str, Any]:
    """Chunks in the active index version: in all, and the asking tenant's (the ones its searches filter)."""
    active = index.ensure_active()
    total = next(v.points for v in index.store.versions() if v.name == active)
    return {"chunks": total, "tenant": tenant, "tenant_chunks": index.store.count(active, ChunkFilter(tenant=tenant))}


async def lookup_search(
    http: httpx.AsyncClient, headers: dict[str, str], index: DocumentIndex, clearance: str
) -> dict[str, Any]:
    """How one lookup (unmeasured) searched the documents: that its plan ran a search, in which mode, over how many
    candidate chunks, and which documents it cited (`syn…` ids are the synthetic corpus's)."""
    resp = await http.post(
        "/v1/requests",
        params={"wait": WAIT_SECONDS},
        json={"question": QUESTION, "as_of": AS_OF.isoformat()},
        headers=headers,
    )
    if resp.status_code != 200:
        raise SystemExit(f"the lookup failed before the run: HTTP {resp.status_code}: {resp.text[:300]}")
    data: dict[str, Any] = resp.json()
    retrieval = data.get("retrieval")
    if not retrieval:
        # W2 exists to measure a request that searches the big index; without a search it measures W1 at 500 ms.
        raise SystemExit(f"the lookup ran no document search (plan without retrieval): {str(data)[:300]}")
    cited = [str(c.get("doc_id")) for c in data.get("citations") or []]
    entities = [str(e) for e in ((data.get("classification") or {}).get("slots") or {}).get("entities") or []]
    # The chunks a figure question's search ranks: the tenant's, tagged with its entities, at or below the asker's
    # clearance (the filter activities/plan/engine.py builds); their number is the size of the searched set.
    flt = ChunkFilter(tenant=TENANT, max_level=ingest.CLEARANCES.index(clearance), entities_any=entities)
    return {
        "searched": True,
        "mode": retrieval.get("mode"),
        "notes": list(retrieval.get("notes") or []),
        "entities": entities,
        "clearance": clearance,
        "candidates": index.store.count(index.ensure_active(), flt) if entities else None,
        "cited": cited,
        "cited_synthetic": sum(1 for c in cited if c.startswith("syn")),
    }


# ---------------------------------------------------------------- the run


@contextlib.asynccontextmanager
async def dev_server(client: Client | None) -> AsyncIterator[tuple[Client, list[int]]]:
    """The given client, or a fresh dev server (state in memory) with the tracing plugin; and its pids."""
    if client is not None:
        yield client, []
        return
    setup_tracing()
    with stdout_to_stderr():  # the dev server's banner stays out of stdout
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            plugins=[tracing_plugin()],
            search_attributes=SEARCH_ATTRIBUTES,
            # The dispatch settings `docket up` runs with (docket/temporal.py; bench/hop.py measures them).
            dev_server_extra_args=dynamic_config_args(),
        )
    try:
        yield env.client, descendants(os.getpid())
    finally:
        await env.shutdown()


@contextlib.asynccontextmanager
async def sqlite_dev_server(path: Path) -> AsyncIterator[tuple[Client, list[int]]]:
    """A second dev server keeping its state in a SQLite file in WAL mode (synchronous left at SQLite's default,
    FULL, as the LangGraph checkpointer leaves it), with the same dispatch settings; and its pids."""
    before = set(descendants(os.getpid()))
    with stdout_to_stderr():
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            dev_server_database_filename=str(path),
            data_converter=pydantic_data_converter,
            plugins=[tracing_plugin()],
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_extra_args=[*dynamic_config_args(), "--sqlite-pragma", "journal_mode=wal"],
        )
    try:
        yield env.client, [p for p in descendants(os.getpid()) if p not in before]
    finally:
        await env.shutdown()


async def run(cfg: SuiteConfig, client: Client | None = None) -> dict[str, Any]:
    """The whole suite; returns the report (meta, probes, series, summary, history, rss, targets).

    With `client`, the workflows run on that client's server (tests pass theirs); else a dev server is started here.
    """
    unknown = [m for m in cfg.modes if m not in ALL_MODES]
    if unknown:
        raise SystemExit(f"unknown modes {unknown}; choose from {list(ALL_MODES)}")
    binary = temporal_binary()
    started_at = datetime.now(UTC)
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]
    series: list[Series] = []
    opens: list[OpenSeries] = []
    rss: list[dict[str, Any]] = []
    history: dict[str, Any] = {}
    probes: dict[str, Any] = {}
    skipped: list[str] = []
    stub_stats: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="docket-bench-suite-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'docket.db'}"
        db.migrate(url)
        engine = db.make_engine(url)
        ingest.load_pack(engine, DEMO)
        corpus: dict[str, Any] = {}
        if cfg.corpus_chunks > 0:
            log.info("storing and indexing a synthetic corpus of %d chunks", cfg.corpus_chunks)
            t_corpus = time.monotonic()
            corpus = store_corpus(engine, tmp / "corpus", cfg.corpus_chunks)
            index = build_index(engine, tmp / "index")
            corpus["build_s"] = time.monotonic() - t_corpus
        else:
            index = DocumentIndex.open()
        sync_index(engine, index)  # W2: finds nothing left to index (build_index synced)
        indexed = index_counts(index, TENANT)
        if indexed["chunks"] < cfg.corpus_chunks:
            raise SystemExit(
                f"the index holds {indexed['chunks']} chunks, fewer than the {cfg.corpus_chunks} asked for"
            )
        searched: dict[str, Any] = {}
        stub: StubModel | StubModelProcess = (
            StubModelProcess(delay_ms=cfg.stub_delay_ms) if cfg.stub_process else StubModel(delay_ms=cfg.stub_delay_ms)
        )
        with stub.running():
            model = AsyncOpenAI(base_url=stub.base_url, api_key="not-needed", max_retries=0, timeout=30)
            generator = OpenAIGenerator(model, STUB_MODEL)
            components = Components(engine=engine, index=index, generator=generator, intent_model=IntentModel.load())
            async with dev_server(client) as (temporal, server_pids):
                server_pids = [p for p in server_pids if p != stub.pid]
                stub_pids = [stub.pid] if cfg.stub_process else []
                if cfg.probes:
                    log.info("probes")
                    probes = await run_probes(tmp, temporal, cfg.probe_n, cfg.probe_seconds)
                task_queue = f"docket-bench-suite-{uuid.uuid4().hex[:8]}"
                empty_queue = f"{task_queue}-empty"
                settings = Settings(task_queue=task_queue, database_url=url, data_dir=tmp)
                # The worker as `docket up` runs it (DOCKET_WORKFLOW_SANDBOX's default).
                worker = make_worker(temporal, task_queue, components.activities(), sandbox=settings.workflow_sandbox)
                # The sandbox variants: the same activities on a queue of their own, the workflows inside the SDK's
                # sandbox (`docket-rest-sandboxed`) or outside it (`docket-rest-unsandboxed`). Only when their mode
                # runs: an idle worker's pollers would add to every other mode's CPU.
                box_queue = {DOCKET_SANDBOX: f"{task_queue}-sandboxed", DOCKET_NOSANDBOX: f"{task_queue}-unsandboxed"}
                box_workers = contextlib.AsyncExitStack()  # entered below, inside the block that closes it
                empty_worker = Worker(temporal, task_queue=empty_queue, workflows=[EmptyWorkflow])
                token = tokens.mint(settings.jwt_secret, PRINCIPAL, TENANT, 3600)
                headers = {"Authorization": f"Bearer {token}"}
                limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
                baseline_keys = [m for m in cfg.modes if m in BASELINES]
                regular = settings.model_copy(update={"stage_placement": "regular"})
                local = settings.model_copy(update={"stage_placement": "local"})
                lazy = settings.model_copy(update={"eager_start": False})
                by_update = settings.model_copy(update={"wait_via_update": True})
                # The SQLite-file dev server, its worker and gateways: started only when their modes run.
                sqlite_side = contextlib.AsyncExitStack()
                sqlite_pids: list[int] = []
                boxed = settings.model_copy(update={"task_queue": box_queue[DOCKET_SANDBOX]})
                bare = settings.model_copy(update={"task_queue": box_queue[DOCKET_NOSANDBOX]})
                async with (
                    worker,
                    box_workers,
                    empty_worker,
                    serving(create_app(settings, engine=engine, client=temporal)) as docket_port,
                    serving(create_app(boxed, engine=engine, client=temporal)) as boxed_port,
                    serving(create_app(bare, engine=engine, client=temporal)) as bare_port,
                    serving(create_app(regular, engine=engine, client=temporal)) as regular_port,
                    serving(create_app(lazy, engine=engine, client=temporal)) as lazy_port,
                    serving(create_app(by_update, engine=engine, client=temporal)) as update_port,
                    serving(trivial_app(temporal, empty_queue)) as empty_port,
                    httpx.AsyncClient(
                        base_url=f"http://127.0.0.1:{docket_port}",
                        timeout=WAIT_SECONDS + 30,
                        limits=limits,
                        trust_env=False,
                    ) as http,
                    httpx.AsyncClient(
                        base_url=f"http://127.0.0.1:{empty_port}",
                        timeout=WAIT_SECONDS + 30,
                        limits=limits,
                        trust_env=False,
                    ) as http_empty,
                    sqlite_side,
                ):
                    # Entered here, not in the `async with` above: Python allows only 20 nested blocks there.
                    local_port = (
                        await box_workers.enter_async_context(
                            serving(create_app(local, engine=engine, client=temporal))
                        )
                        if DOCKET_LOCAL in cfg.modes
                        else 0
                    )
                    for m, queue in box_queue.items():
                        if m in cfg.modes:
                            await box_workers.enter_async_context(
                                make_worker(temporal, queue, components.activities(), sandbox=m == DOCKET_SANDBOX)
                            )
                    sqlite_port = sqlite_empty_port = 0
                    if any(m in cfg.modes for m in SQLITE_MODES):
                        lite, sqlite_pids = await sqlite_side.enter_async_context(
                            sqlite_dev_server(tmp / "temporal.db")
                        )
                        await sqlite_side.enter_async_context(
                            make_worker(lite, task_queue, components.activities(), sandbox=settings.workflow_sandbox)
                        )
                        await sqlite_side.enter_async_context(
                            Worker(lite, task_queue=empty_queue, workflows=[EmptyWorkflow])
                        )
                        sqlite_port = await sqlite_side.enter_async_context(
                            serving(create_app(settings, engine=engine, client=lite))
                        )
                        sqlite_empty_port = await sqlite_side.enter_async_context(
                            serving(trivial_app(lite, empty_queue))
                        )

                    async def empty_one() -> tuple[str, str | None]:
                        wid = f"bench-empty-{uuid.uuid4().hex}"
                        got = await temporal.execute_workflow(EmptyWorkflow.run, wid, id=wid, task_queue=empty_queue)
                        return wid, None if got == wid else f"empty workflow returned {got!r}"

                    async def empty_rest_one(port: int = empty_port) -> tuple[str, str | None]:
                        resp = await http_empty.post(f"http://127.0.0.1:{port}/empty")
                        if resp.status_code != 200:
                            return "", f"HTTP {resp.status_code}: {resp.text[:200]}"
                        data = resp.json()
                        ok = data.get("result") == data.get("request_id")
                        return str(data.get("request_id", "")), None if ok else f"empty workflow answered {data!r}"

                    async def docket_rest_one(port: int = docket_port) -> tuple[str, str | None]:
                        resp = await http.post(
                            f"http://127.0.0.1:{port}/v1/requests",
                            params={"wait": WAIT_SECONDS},
                            json={"question": QUESTION, "as_of": AS_OF.isoformat()},
                            headers=headers,
                        )
                        try:
                            data: dict[str, Any] = resp.json()
                        except ValueError:
                            data = {}
                        if resp.status_code != 200:
                            return str(data.get("request_id", "")), f"HTTP {resp.status_code}: {resp.text[:300]}"
                        return str(data.get("request_id", "")), answer_problem(data)

                    async def docket_regular_one() -> tuple[str, str | None]:
                        return await docket_rest_one(regular_port)

                    async def docket_local_one() -> tuple[str, str | None]:
                        return await docket_rest_one(local_port)

                    async def docket_bare_one() -> tuple[str, str | None]:
                        return await docket_rest_one(bare_port)

                    async def docket_boxed_one() -> tuple[str, str | None]:
                        return await docket_rest_one(boxed_port)

                    async def docket_lazy_one() -> tuple[str, str | None]:
                        return await docket_rest_one(lazy_port)

                    async def docket_update_one() -> tuple[str, str | None]:
                        return await docket_rest_one(update_port)

                    async def docket_sqlite_one() -> tuple[str, str | None]:
                        return await docket_rest_one(sqlite_port)

                    async def empty_sqlite_one() -> tuple[str, str | None]:
                        return await empty_rest_one(sqlite_empty_port)

                    async def polite(method: str, url: str, **kw: Any) -> httpx.Response:
                        """A client that polls retries a dropped connection, as any would (the POST carries an
                        Idempotency-Key, so a retried submission is the same request)."""
                        for attempt in range(POLL_RETRIES):
                            try:
                                return await http.request(method, url, **kw)
                            except httpx.TransportError:
                                if attempt == POLL_RETRIES - 1:
                                    raise
                                await asyncio.sleep(POLL_MS / 1000)
                        raise AssertionError("unreachable")

                    async def docket_poll_one() -> tuple[str, str | None]:
                        keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
                        body = {"question": QUESTION, "as_of": AS_OF.isoformat()}
                        resp = await polite("POST", "/v1/requests", json=body, headers=keyed)
                        data = resp.json() if resp.status_code in (200, 202) else {}
                        rid = str(data.get("request_id", ""))
                        if resp.status_code not in (200, 202):
                            return rid, f"HTTP {resp.status_code}: {resp.text[:300]}"
                        while data.get("status") == "running":
                            await asyncio.sleep(POLL_MS / 1000)
                            got = await polite("GET", f"/v1/requests/{rid}", headers=headers)
                            if got.status_code != 200:
                                return rid, f"HTTP {got.status_code}: {got.text[:300]}"
                            data = got.json()
                        return rid, answer_problem(data)

                    async def docket_client_one() -> tuple[str, str | None]:
                        wid = f"req-bench-{uuid.uuid4().hex}"
                        req = RequestInput(
                            tenant=TENANT,
                            principal_id=PRINCIPAL,
                            question=QUESTION,
                            as_of=AS_OF,
                            submitted_at=datetime.now(UTC),
                            # As the gateway starts a `?wait` request: no token stream, who asked set at start.
                            stream_tokens=False,
                        )
                        handle = await temporal.start_workflow(
                            names.REQUEST_WORKFLOW,
                            req,
                            id=wid,
                            task_queue=task_queue,
                            result_type=RequestResult,
                            execution_timeout=timedelta(seconds=cfg.request_timeout_s * 2),
                            request_eager_start=True,
                            search_attributes=TypedSearchAttributes(
                                [SearchAttributePair(SA_TENANT, TENANT), SearchAttributePair(SA_PRINCIPAL, PRINCIPAL)]
                            ),
                        )
                        result = await handle.result()
                        return wid, answer_problem(result.model_dump(mode="json"))

                    modes: dict[str, One] = {}
                    for m, fn in (
                        (EMPTY, empty_one),
                        (EMPTY_REST, empty_rest_one),
                        (DOCKET_REST, docket_rest_one),
                        (DOCKET_CLIENT, docket_client_one),
                        (DOCKET_LOCAL, docket_local_one),
                        (DOCKET_REGULAR, docket_regular_one),
                        (DOCKET_LAZY, docket_lazy_one),
                        (DOCKET_NOSANDBOX, docket_bare_one),
                        (DOCKET_SANDBOX, docket_boxed_one),
                        (DOCKET_UPDATE, docket_update_one),
                        (DOCKET_POLL, docket_poll_one),
                        (EMPTY_REST_SQLITE, empty_sqlite_one),
                        (DOCKET_REST_SQLITE, docket_sqlite_one),
                    ):
                        if m in cfg.modes:
                            modes[m] = fn

                    async def warm(names_: Sequence[str]) -> None:
                        for mode in names_:
                            for c in sorted({1, max(cfg.concurrency)}):
                                s = await closed_loop(
                                    max(cfg.warmup, c),
                                    c,
                                    modes[mode],
                                    cfg.series_seconds,
                                    cfg.request_timeout_s,
                                )
                                # A request over the time bound is a measurement (counted in the series), not a
                                # wrong answer: only a wrong answer stops the run.
                                bad = [
                                    x.problem for x in s.samples if x.problem and not x.problem.startswith(TIMED_OUT)
                                ]
                                if bad:
                                    raise SystemExit(f"{mode} answered wrongly during warm-up: {bad[0]}")

                    if cfg.corpus_chunks > 0:
                        with Session(engine) as session:
                            asker = session.get(db.Principal, PRINCIPAL)
                        clearance = asker.clearance if asker is not None else "public"
                        searched = await lookup_search(http, headers, index, clearance)
                    await warm(list(modes))
                    rss.append(rss_snapshot("Docket warm, before the baselines load", server_pids, stub.pid))
                    pipelines: list[Any] = []
                    if baseline_keys:
                        from bench.baselines import make_pipelines

                        work = tmp / "baselines"
                        work.mkdir()
                        pipelines = list(make_pipelines(components, work, baseline_keys))
                        for p in pipelines:
                            await p.start()

                            def make_one(p: Any = p) -> One:
                                async def one() -> tuple[str, str | None]:
                                    result = await p.ask(QUESTION, principal=PRINCIPAL, tenant=TENANT, as_of=AS_OF)
                                    data = result.model_dump(mode="json")
                                    return str(data.get("request_id", "")), answer_problem(data)

                                return one

                            modes[p.key] = make_one()
                        await warm([p.key for p in pipelines])
                    try:
                        order = [m for m in cfg.modes if m in modes]
                        for ci, c in enumerate(cfg.concurrency):
                            for rep in range(cfg.reps):
                                for mode in series_order(order, ci, rep):
                                    if time.monotonic() - t_start > cfg.budget_seconds:
                                        skipped.append(f"{mode} c={c} rep {rep + 1}")
                                        continue
                                    # The server a mode runs on: the SQLite-file one for its modes.
                                    pids = sqlite_pids if mode in SQLITE_MODES else server_pids
                                    await settle([*server_pids, *sqlite_pids])
                                    cpu0, srv0, stub0 = (
                                        time.process_time(),
                                        cpu_seconds(pids),
                                        cpu_seconds(stub_pids),
                                    )
                                    s = await closed_loop(
                                        cfg.n, c, modes[mode], cfg.series_seconds, cfg.request_timeout_s
                                    )
                                    s.mode, s.rep = mode, rep
                                    s.cpu_s = time.process_time() - cpu0
                                    s.server_cpu_s = cpu_seconds(pids) - srv0
                                    s.stub_cpu_s = cpu_seconds(stub_pids) - stub0
                                    series.append(s)
                                    lat = [x.latency_ms for x in s.samples]
                                    log.info(
                                        "c=%-3d rep %d/%d %-14s n=%-4d p50 %7.1f ms  %6.1f req/s%s%s",
                                        c,
                                        rep + 1,
                                        cfg.reps,
                                        mode,
                                        len(lat),
                                        median(lat),
                                        len(lat) / s.wall_s if s.wall_s else float("nan"),
                                        "  TRUNCATED" if s.truncated else "",
                                        f"  {sum(1 for x in s.samples if x.problem)} FAILED"
                                        if any(x.problem for x in s.samples)
                                        else "",
                                    )
                            rss.append(rss_snapshot(f"after c={c}", server_pids, stub.pid))
                        opens = await sweep(cfg, modes, t_start, skipped, server_pids, sqlite_pids)
                        c_first = cfg.concurrency[0]  # histories of one request at a time: hand-offs undisturbed
                        for mode in (DOCKET_REST, DOCKET_CLIENT, DOCKET_LOCAL, DOCKET_REGULAR, DOCKET_UPDATE, EMPTY):
                            ids = [
                                x.request_id
                                for s in series
                                if s.mode == mode and s.concurrency == c_first
                                for x in s.samples
                                if not x.problem
                            ]
                            if ids:
                                history[mode] = await history_stats(temporal, ids, cfg.history_sample)
                        stub_stats = stub.stats()
                    finally:
                        for p in pipelines:
                            await p.stop()
            await model.close()
        index.close()
        engine.dispose()
    meta = {
        "type": "run",
        "started_at": started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - t_start,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "machine": versions(binary),
        "config": {**asdict(cfg), "question": QUESTION, "principal": PRINCIPAL, "as_of": str(AS_OF)},
        "skipped": skipped,
        "stub": {"calls": stub_stats.get("calls", 0), "streamed": stub_stats.get("streamed", 0)},
        # What the document search ran over: the chunks indexed (in all and the tenant's), W2's corpus, and how one
        # lookup searched it.
        "index": {**indexed, "corpus": corpus or None, "lookup_search": searched or None},
    }
    return assemble(meta, probes, [series_line(s) for s in series], history, rss, [open_line(o) for o in opens])


async def sweep(
    cfg: SuiteConfig,
    modes: dict[str, One],
    t_start: float,
    skipped: list[str],
    server_pids: Sequence[int],
    sqlite_pids: Sequence[int],
) -> list[OpenSeries]:
    """The open-loop rate sweep: every rate in turn, the modes interleaved at each (the machine's drift spread
    over all of them). A mode that failed to sustain two rates sits out the higher ones (they would only queue)."""
    out: list[OpenSeries] = []
    failed: Counter[str] = Counter()
    # Only modes the run has (a `--modes` choice narrows the sweep too).
    swept = [m for m in cfg.sweep_modes if m in modes]
    for rate in cfg.rates:
        for mode in swept:
            if failed[mode] >= 2:
                skipped.append(f"{mode} at {rate:g} req/s (two lower rates not sustained)")
                continue
            if time.monotonic() - t_start > cfg.budget_seconds:
                skipped.append(f"{mode} at {rate:g} req/s")
                continue
            pids = sqlite_pids if mode in SQLITE_MODES else server_pids
            cpu0, srv0 = time.process_time(), cpu_seconds(pids)
            o = await open_loop(
                rate,
                cfg.sweep_n,
                modes[mode],
                max_seconds=cfg.sweep_seconds,
                timeout_s=cfg.request_timeout_s,
                max_in_flight=cfg.max_in_flight,
                # The same arrival times for every mode at a rate.
                seed=int(rate * 1000),
            )
            o.mode, o.cpu_s, o.server_cpu_s = mode, time.process_time() - cpu0, cpu_seconds(pids) - srv0
            out.append(o)
            line = open_line(o)
            if not sustained(line, cfg.slo_ms):
                failed[mode] += 1
            if o.timeouts:
                # A timed-out request was abandoned by this client, not by Temporal: let its run finish before the
                # next series, so one mode's backlog does not land on the next one's numbers.
                await asyncio.sleep(cfg.request_timeout_s)
            lat = line["latency_ms"] or {}
            log.info(
                "open %6.1f req/s %-14s %d/%d right, %d dropped, %d timed out, p50 %s p99 %s ms, %.1f req/s achieved",
                rate,
                mode,
                line["ok"],
                line["offered"],
                line["dropped"],
                line["timeouts"],
                _f(lat.get("p50")),
                _f(lat.get("p99")),
                line["achieved_rps"] or 0.0,
            )
    return out


def series_line(s: Series) -> dict[str, Any]:
    n = len(s.samples)
    problems = [x.problem for x in s.samples if x.problem and not x.problem.startswith(TIMED_OUT)]
    timeouts = sum(1 for x in s.samples if x.problem and x.problem.startswith(TIMED_OUT))
    return {
        "type": "series",
        "mode": s.mode,
        "concurrency": s.concurrency,
        "rep": s.rep,
        "n": n,
        "checked": n - timeouts,  # answers checked; a request that timed out has none
        "failures": len(problems),  # wrong answers and errors
        "first_failure": problems[0] if problems else None,
        "timeouts": timeouts,  # no answer within the request bound: counted at the bound in the latencies
        "truncated": s.truncated,
        "wall_s": s.wall_s,
        "throughput_rps": n / s.wall_s if s.wall_s else None,
        "latency_ms": summary([x.latency_ms for x in s.samples]) if n else None,
        "cpu_ms_per_request": {
            "process": 1000 * s.cpu_s / n if n else None,
            "dev_server": 1000 * s.server_cpu_s / n if n else None,
            "stub": 1000 * s.stub_cpu_s / n if n else None,
        },
        "latencies_ms": [round(x.latency_ms, 3) for x in s.samples],
    }


# ---------------------------------------------------------------- aggregation and targets


def aggregate(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (mode, c): latencies pooled over repetitions, throughput the median of the repetitions."""
    keys: list[tuple[str, int]] = []
    for ln in lines:
        if (ln["mode"], ln["concurrency"]) not in keys:
            keys.append((ln["mode"], ln["concurrency"]))
    keys.sort(key=lambda k: (k[1], ALL_MODES.index(k[0]) if k[0] in ALL_MODES else len(ALL_MODES)))
    rows = []
    for mode, c in keys:
        ls = [ln for ln in lines if ln["mode"] == mode and ln["concurrency"] == c]
        lat = [x for ln in ls for x in ln["latencies_ms"]]
        n = len(lat)

        def per_req(key: str, ls: list[dict[str, Any]] = ls, n: int = n) -> float | None:
            vals = [ln["cpu_ms_per_request"][key] * ln["n"] for ln in ls if ln["cpu_ms_per_request"][key] is not None]
            return sum(vals) / n if n and vals else None

        rows.append(
            {
                "type": "summary",
                "mode": mode,
                "concurrency": c,
                "reps": len(ls),
                "n": n,
                "failures": sum(ln["failures"] for ln in ls),
                "timeouts": sum(ln.get("timeouts", 0) for ln in ls),
                "truncated": any(ln["truncated"] for ln in ls),
                "latency_ms": summary(lat) if lat else None,
                "throughput_rps": median([ln["throughput_rps"] for ln in ls if ln["throughput_rps"]]),
                "throughput_rps_reps": [ln["throughput_rps"] for ln in ls],
                "cpu_ms_per_request": {k: per_req(k) for k in ("process", "dev_server", "stub")},
            }
        )
    b0 = {r["concurrency"]: r for r in rows if r["mode"] == "b0"}
    for r in rows:
        floor = b0.get(r["concurrency"])
        r["overhead_vs_b0_ms"] = (
            r["latency_ms"]["p50"] - floor["latency_ms"]["p50"]
            if floor and r["latency_ms"] and floor["latency_ms"] and r["mode"] not in (EMPTY, EMPTY_REST)
            else None
        )
    return rows


def _p(rows: dict[tuple[str, int], dict[str, Any]], mode: str, c: int, q: str = "p50") -> float | None:
    r = rows.get((mode, c))
    return r["latency_ms"][q] if r and r["latency_ms"] else None


def _rps(rows: dict[tuple[str, int], dict[str, Any]], mode: str, c: int) -> float | None:
    r = rows.get((mode, c))
    return r["throughput_rps"] if r else None


def target(name: str, measured: float | None, goal: float, kind: str, unit: str, note: str = "") -> dict[str, Any]:
    """One target row. kind "max": measured ≤ goal passes; "min": measured ≥ goal passes."""
    row: dict[str, Any] = {"type": "target", "target": name, "goal": goal, "kind": kind, "unit": unit, "note": note}
    if measured is None or measured != measured:
        return {**row, "measured": None, "status": "not measured", "by": None}
    ok = measured <= goal if kind == "max" else measured >= goal
    by = measured - goal if kind == "max" else goal - measured
    return {**row, "measured": measured, "status": "pass" if ok else "miss", "by": None if ok else by}


def targets(
    meta: dict[str, Any], summ: Sequence[dict[str, Any]], history: dict[str, Any], rss: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    rows = {(r["mode"], r["concurrency"]): r for r in summ}
    cs = sorted({r["concurrency"] for r in summ})
    out: list[dict[str, Any]] = []
    if not cs:
        return out
    c1, cmax = cs[0], cs[-1]
    workload = meta["config"].get("workload", "W1")
    # Same transport on both sides: Docket over REST next to the empty workflow over REST (else both via client).
    # W1 only: the empty workflow calls no model, so the difference is orchestration only while the model answers at
    # once; with W2's 500 ms model it would be mostly the model, and these targets would miss by construction.
    pairs = [(DOCKET_REST, EMPTY_REST), (DOCKET_CLIENT, EMPTY)] if workload == "W1" else []
    for docket, empty in pairs:
        p50d, p50e = _p(rows, docket, c1), _p(rows, empty, c1)
        p99d, p99e = _p(rows, docket, c1, "p99"), _p(rows, empty, c1, "p99")
        if p50d is None or p50e is None or p99d is None or p99e is None:
            continue
        via = "REST" if docket == DOCKET_REST else "Temporal client"
        out.append(
            target(f"{workload} p50 added over an empty workflow, c={c1}, via {via}", p50d - p50e, 10, "max", "ms")
        )
        out.append(
            target(f"{workload} p99 added over an empty workflow, c={c1}, via {via}", p99d - p99e, 30, "max", "ms")
        )
    rd, re_ = _rps(rows, DOCKET_REST, cmax), _rps(rows, EMPTY_REST, cmax)
    note = "" if cmax == 64 else f"measured at c={cmax}: this run had no c=64 (the issue's target is at c=64)"
    if rd and re_ and workload == "W1":
        out.append(
            target(
                f"{workload} throughput through REST at c={cmax} / empty workflow's", rd / re_, 0.8, "min", "x", note
            )
        )
    for c in cs:
        d = _p(rows, DOCKET_REST, c)
        b1 = _p(rows, "b1-sync", c)
        b2 = _p(rows, "b2", c)
        if d is not None and b1:
            out.append(target(f"{workload} Docket REST p50 / B1 (LangGraph, sync) p50, c={c}", d / b1, 1.0, "max", "x"))
        rd, rb1 = _rps(rows, DOCKET_REST, c), _rps(rows, "b1-sync", c)
        if c > 1 and rd and rb1:
            out.append(
                target(f"{workload} Docket REST throughput / B1 (LangGraph, sync), c={c}", rd / rb1, 1.0, "min", "x")
            )
        if d is not None and b2:
            out.append(target(f"{workload} Docket REST p50 / B2 (DBOS) p50, c={c}", d / b2, 2.0, "max", "x"))
    h = history.get(DOCKET_REST) or history.get(DOCKET_CLIENT)
    if h and h.get("sampled"):
        out.append(
            target(
                "history events per lookup request (max of the sample)",
                float(h["events_max"]),
                25,
                "max",
                "events",
            )
        )
    if rss:
        worst = max(rss, key=lambda r: r["process_mib"] + r["dev_server_mib"])
        docket_only = rss[0]
        out.append(
            target(
                "RSS: API + worker (this process) + dev server, Docket warm, before the baselines load",
                docket_only["process_mib"] + docket_only["dev_server_mib"],
                600,
                "max",
                "MiB",
                "the process also holds the load generator (httpx, Temporal client) and the stub's client",
            )
        )
        out.append(
            target(
                "RSS: this process + dev server, largest snapshot",
                worst["process_mib"] + worst["dev_server_mib"],
                600,
                "max",
                "MiB",
                f"snapshot {worst['label']!r}: the process also holds the load generator and the baselines, the "
                "in-memory dev server every workflow of the run",
            )
        )
    return out


def assemble(
    meta: dict[str, Any],
    probes: dict[str, Any],
    lines: list[dict[str, Any]],
    history: dict[str, Any],
    rss: list[dict[str, Any]],
    opens: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    summ = aggregate(lines)
    return {
        "meta": meta,
        "probes": probes,
        "series": lines,
        "summary": summ,
        "open": opens or [],
        "history": history,
        "rss": rss,
        "targets": targets(meta, summ, history, rss),
    }


def jsonl_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report as JSON lines: run, probes, one per series, one per (mode, c), history, rss, targets."""
    return [
        report["meta"],
        {"type": "probes", **report["probes"]},
        *report["series"],
        *report["summary"],
        *report["open"],
        {"type": "history", **report["history"]},
        *({"type": "rss", **r} for r in report["rss"]),
        *report["targets"],
    ]


def from_jsonl(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    meta = next(r for r in rows if r.get("type") == "run")
    probes = next(({k: v for k, v in r.items() if k != "type"} for r in rows if r.get("type") == "probes"), {})
    history = next(({k: v for k, v in r.items() if k != "type"} for r in rows if r.get("type") == "history"), {})
    rss = [{k: v for k, v in r.items() if k != "type"} for r in rows if r.get("type") == "rss"]
    return assemble(
        meta,
        probes,
        [r for r in rows if r.get("type") == "series"],
        history,
        rss,
        [r for r in rows if r.get("type") == "open"],
    )


def dumps(row: dict[str, Any]) -> str:
    """Strict JSON (NaN written as null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(row), allow_nan=False)


# ---------------------------------------------------------------- report


def _f(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None or v != v else f"{v:,.{digits}f}"


def summary_table(report: dict[str, Any]) -> str:
    """Plain-text table for the terminal."""
    lines = [
        f"{'mode':<14} {'c':>3} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'req/s':>8} {'+B0 p50':>9}  ok"
    ]
    for r in report["summary"]:
        lat = r["latency_ms"] or {}
        lines.append(
            f"{r['mode']:<14} {r['concurrency']:>3} {r['n']:>5} {_f(lat.get('p50')):>9} {_f(lat.get('p95')):>9} "
            f"{_f(lat.get('p99')):>9} {_f(r['throughput_rps']):>8} {_f(r['overhead_vs_b0_ms']):>9}  "
            + ("yes" if not r["failures"] else f"{r['failures']} FAILED")
            + (f", {r['timeouts']} timed out" if r["timeouts"] else "")
            + (" (truncated)" if r["truncated"] else "")
        )
    lines.append("")
    for t in report["targets"]:
        lines.append(
            f"[{t['status']:>12}] {t['target']}: {_f(t['measured'], 2)} {t['unit']} (target {t['kind']} {t['goal']})"
        )
    return "\n".join(lines)


def corpus_text(index: dict[str, Any]) -> str:
    """What the document search ran over (W2), from the run's meta: the index, the corpus, one lookup's search."""
    corpus, search = index["corpus"], index.get("lookup_search") or {}
    text = (
        f"Documents: the index holds {index['chunks']:,} chunks, {index['tenant_chunks']:,} of them the tenant "
        f"{index['tenant']}'s (every search filters on the asker's tenant first, then on clearance and entities). "
        f"They are bench.retrieval's synthetic corpus (`synthesize`, seed {corpus['seed']}, {corpus['documents']:,} "
        f"documents: the {corpus['sources']} real documents of the demo pack and `examples/retrieval`, then varied "
        f"copies of them spread over {len(corpus['tenants'])} tenants), written as markdown files with front matter "
        "and stored with `docket.ingest.load_documents` before the index was synced "
        f"({corpus['build_s']:.0f} s to synthesize, store and index). Qdrant Edge, in the run's temporary directory "
        "like W1's index; the worker and the baselines search the same index."
    )
    if search:
        cited = ", ".join(f"`{c}`" for c in search["cited"]) or "nothing"
        synthetic = search["cited_synthetic"]
        text += f" One unmeasured lookup before the warm-up searched it in {search['mode']} mode"
        if search.get("candidates") is not None:
            text += (
                f": its filter (tenant {index['tenant']}, tagged {', '.join(search['entities'])}, clearance "
                f"{search['clearance']} and below) admits {search['candidates']:,} of the {index['chunks']:,} chunks, "
                "which the engine ranks;"
            )
        text += (
            f" it cited {cited}"
            + (f" ({synthetic} of {len(search['cited'])} from the synthetic copies)" if synthetic else "")
            + ("" if search["cited"] else " (a figure question keeps only passages naming the month it asks about)")
            + "."
            + "".join(f' Its search notes: "{note}".' for note in search["notes"])
        )
    return text


def render_markdown(report: dict[str, Any]) -> str:
    meta, m, cfg = report["meta"], report["meta"]["machine"], report["meta"]["config"]
    probes, summ, hist = report["probes"], report["summary"], report["history"]
    lines: list[str] = []
    w = lines.append
    workload = cfg.get("workload", "W1")
    begin, end = markers(workload)
    corpus = (meta.get("index") or {}).get("corpus")
    w(begin)
    if workload == "W1":
        w("## Benchmark suite (issue 9): W1, orchestration only, next to an empty workflow and the baselines")
    else:
        searched = f"retrieval over {meta['index']['chunks']:,} chunks, " if corpus else ""
        w(
            f"## Benchmark suite (issue 9): {workload}, realistic: the real stages, {searched}the model at "
            f"{cfg['stub_delay_ms']:.0f} ms, next to the baselines"
        )
    w("")
    w(
        f"Generated by `docket bench {cfg['preset']}` (`python -m bench.suite {cfg['preset']}`); re-running it "
        "rewrites only this section, text included. Run "
        f"{meta['started_at']} → {meta['finished_at']} UTC ({meta['wall_s']:.0f} s); load average (1 min) "
        f"{meta['loadavg_start']:.2f} at start, {meta['loadavg_end']:.2f} at end."
    )
    w("")
    w("| machine and versions | |")
    w("|---|---|")
    w(f"| CPUs (usable) / model | {m.get('cpus')} / {m.get('cpu_model')} |")
    w(f"| RAM / OS | {m.get('ram')} / {m.get('os')} |")
    w(f"| Python / SQLite | {m.get('python')} / {m.get('sqlite')} |")
    w(
        f"| temporalio / Temporal CLI | {m.get('temporalio')} / "
        f"{(str(m.get('temporal_cli') or '').splitlines() or [''])[0]} |"
    )
    w(
        f"| uvicorn / httpx / fastapi / openai | {m.get('uvicorn')} / {m.get('httpx')} / {m.get('fastapi')} / "
        f"{m.get('openai')} |"
    )
    w(
        f"| langgraph / langgraph-checkpoint-sqlite / dbos | {m.get('langgraph', 'n/a')} / "
        f"{m.get('langgraph-checkpoint-sqlite', 'n/a')} / {m.get('dbos', 'n/a')} |"
    )
    w(f"| Docket commit | {m.get('git', 'unknown')} |")
    w("")
    w("### Configuration")
    w("")
    w(
        f'Workload {workload}: "{cfg["question"]}" asked by `{cfg["principal"]}` as of {cfg["as_of"]}, answered by the '
        "`openai` generator against the stub model (bench/stub_model.py) answering after "
        f"{cfg['stub_delay_ms']:.0f} ms "
        f"({'in its own process' if cfg['stub_process'] else 'in a thread of the benchmark process'}), streaming, with "
        "the grounded JSON answer the generator validates. Every answer is checked (outcome `answered`, the figure "
        "from `examples/meridian/example_questions.jsonl`, and that the model's answer was accepted, not the template "
        "fallback)."
    )
    w("")
    w(
        f"Closed loop at c = {', '.join(str(c) for c in cfg['concurrency'])}; N = {cfg['n']} measured requests "
        "per mode, "
        f"concurrency and repetition, {cfg['reps']} repetition(s), the order of the modes shuffled (seeded) every "
        "repetition, each series starting once the dev servers are idle (under a tenth of a core for 0.2 s, waited "
        "for at most 5 s); "
        f"{cfg['warmup']} warm-up requests per mode first at c=1, and as many as the largest c at that c. Bounds: "
        f"{cfg['series_seconds']:.0f} s "
        f"per series, {cfg['request_timeout_s']:.0f} s per request, {cfg['budget_seconds']:.0f} s for the run. One "
        "process holds the load generator, the gateway (uvicorn on 127.0.0.1), the worker and the baselines; the "
        "Temporal dev server (state in memory) and the stub are separate processes."
    )
    if corpus:
        w("")
        w(corpus_text(meta["index"]))
    if meta.get("skipped"):
        w("")
        w(f"**Skipped** (by the run's time budget unless the reason is given): {', '.join(meta['skipped'])}.")
    w("")
    w("| mode | what runs |")
    w("|---|---|")
    about = {
        EMPTY: "`BenchEmptyWorkflow` (returns at once, one workflow task) started and awaited with the Temporal client",
        EMPTY_REST: "the same behind `POST /empty` of a trivial FastAPI app under uvicorn, over HTTP",
        DOCKET_REST: "`POST /v1/requests?wait=30` to the real gateway (JWT, budget check, eager start, wait for the "
        "result); the default `fused` placement: classify, authorize and plan one local activity, the other "
        "stages local, the model call a regular activity",
        DOCKET_LOCAL: "as `docket-rest` with `DOCKET_STAGE_PLACEMENT=local` (the default before `fused`): classify, "
        "authorize and plan each their own local activity",
        DOCKET_CLIENT: "RequestWorkflow started (eagerly) and awaited with the Temporal client, no HTTP",
        DOCKET_REGULAR: "as `docket-rest` with `DOCKET_STAGE_PLACEMENT=regular`: every stage its own activity task",
        DOCKET_LAZY: "as `docket-rest` with `DOCKET_EAGER_START=false`: the first workflow task goes through the queue",
        DOCKET_SANDBOX: "as `docket-rest` with `DOCKET_WORKFLOW_SANDBOX=true`: a second worker, same activities, on a "
        "queue of its own, runs RequestWorkflow inside the SDK's sandbox (the default before this run's code)",
        DOCKET_NOSANDBOX: "as `docket-rest` with `DOCKET_WORKFLOW_SANDBOX=false`: a second worker, same activities, on "
        "a queue of its own, runs RequestWorkflow without the SDK's sandbox",
        DOCKET_UPDATE: "as `docket-rest` with `DOCKET_WAIT_VIA_UPDATE=true`: one update-with-start call starts the "
        "run with its `result` update and brings the answer back (no eager start: Temporal cannot combine them)",
        EMPTY_REST_SQLITE: "as `empty-rest` on a second dev server keeping its state in a SQLite file (WAL, "
        "synchronous FULL): `--db-filename`, `--sqlite-pragma journal_mode=wal`",
        DOCKET_REST_SQLITE: "as `docket-rest` (its own worker and gateway) on that SQLite-file dev server",
        DOCKET_POLL: f"W4: `POST /v1/requests` with an Idempotency-Key (202 at once), then `GET /v1/requests/{{id}}` "
        f"every {POLL_MS} ms; a dropped connection is retried (up to {POLL_RETRIES} tries per call)",
        "b0": "the same stage functions chained in plain asyncio: the floor (bench/baselines.py)",
        "b1-sync": 'the same stage functions as a LangGraph graph, SQLite checkpointer, `durability="sync"`',
        "b1-default": "the same graph at LangGraph's default durability",
        "b2": "the same stage functions as DBOS steps in a DBOS workflow, SQLite system database",
    }
    for mode in cfg["modes"]:
        w(f"| `{mode}` | {about.get(mode, LABELS.get(mode, mode))} |")
    w("")
    if probes:
        w("### Physical probes (the floors)")
        w("")
        w("| probe | n | per second | p50 ms | p99 ms |")
        w("|---|---:|---:|---:|---:|")
        fs = probes.get("fsync", {})
        rows = [
            (f"fsync of a 4 KiB append in the run's data dir ({fs.get('filesystem', '')})", fs),
            ("SQLite commit (one-row INSERT), WAL, synchronous=NORMAL", probes.get("sqlite_normal", {})),
            ("SQLite commit (one-row INSERT), WAL, synchronous=FULL", probes.get("sqlite_full", {})),
            ("gRPC round trip to the dev server (`GetSystemInfo`)", probes.get("grpc", {})),
            (
                "HTTP round trip, `GET /ping` of a trivial FastAPI app (uvicorn, httpx keep-alive)",
                probes.get("http", {}),
            ),
        ]
        for label, p in rows:
            if p:
                w(
                    f"| {label} | {p.get('n')} | {_f(p.get('per_s'), 0)} | {_f(p.get('p50_ms'), 3)} | "
                    f"{_f(p.get('p99_ms'), 3)} |"
                )
        w("")
    w(f"### {workload} results")
    w("")
    w(
        "Latencies pooled over the repetitions; requests/s is the median of the repetitions' N / wall time (a closed "
        "loop's ramp-up and drain included, the same for every mode). *+ B0* is p50 minus the plain-asyncio floor's "
        "p50 at the same c: the orchestration overhead over the summed stage work. CPU is per request: this process "
        "(load generator + gateway + worker or baseline), the dev server, the stub."
        + (
            f" B0's stage work includes the model's {cfg['stub_delay_ms']:.0f} ms, like every other mode's, so *+ B0* "
            "is what a mode adds around the same work."
            if cfg["stub_delay_ms"]
            else ""
        )
    )
    w("")
    w(
        "| mode | c | n | p50 ms | p95 ms | p99 ms | req/s | + B0 p50 ms | CPU ms/req: process / server / stub "
        "| checked |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in summ:
        lat = r["latency_ms"] or {}
        cpu = r["cpu_ms_per_request"]
        ok = "all" if not r["failures"] else f"**{r['failures']} failed**"
        if r["timeouts"]:
            ok = f"{ok} answered; {r['timeouts']} timed out"
        w(
            f"| {LABELS.get(r['mode'], r['mode'])} | {r['concurrency']} | {r['n']} | {_f(lat.get('p50'))} | "
            f"{_f(lat.get('p95'))} | {_f(lat.get('p99'))} | {_f(r['throughput_rps'])} | {_f(r['overhead_vs_b0_ms'])} | "
            f"{_f(cpu['process'])} / {_f(cpu['dev_server'])} / {_f(cpu['stub'])} | {ok}"
            + (" (truncated)" if r["truncated"] else "")
            + " |"
        )
    w("")
    opens = report.get("open") or []
    if opens:
        w("### Open-loop rate sweep")
        w("")
        w(
            f"Requests arrive as a Poisson process at each offered rate (the same seeded arrival times for every "
            f"mode), whatever happened to the ones before: up to {cfg.get('sweep_n')} arrivals or "
            f"{cfg.get('sweep_seconds', 0):.0f} s per (mode, rate), at most {cfg.get('max_in_flight')} in flight (an "
            "arrival beyond that is dropped and counted), each request bounded by "
            f"{cfg['request_timeout_s']:.0f} s. Latency runs from the moment a request was due, so a backlog (in the "
            "system or in this process, which also sends) counts as latency: *sender late* is how far behind its due "
            "time this process sent a request. The modes are interleaved at each rate; a mode that failed to sustain "
            "two rates sits out the higher ones."
        )
        w("")
        for ln in render_sweep(opens, LABELS, float(cfg.get("slo_ms", 1000.0)), cfg.get("rates") or ()):
            w(ln)
        w("")
    if hist:
        w("### History per request")
        w("")
        w(
            "Sampled workflow histories (medians). *WFT* = workflow task; *dispatch* = scheduled → started (the "
            "server handing the task to the worker), *processing* = started → completed (the worker's code, local "
            "activities included)."
        )
        w("")
        w(
            "| mode | sampled | events (median, min-max) | bytes (median, max) | start → close ms | WFTs "
            "| WFT dispatch ms (each) | WFT processing ms | regular / local activities | activity sched → start ms |"
        )
        w("|---|---:|---|---|---:|---:|---|---:|---|---:|")
        for mode, h in hist.items():
            if h.get("sampled"):
                w(
                    f"| {LABELS.get(mode, mode)} | {h['sampled']} | {_f(h['events_median'], 0)} ({h['events_min']}-"
                    f"{h['events_max']}) | {_f(h['bytes_median'], 0)} ({_f(h['bytes_max'], 0)}) | "
                    f"{_f(h.get('duration_ms'))} | {_f(h.get('workflow_tasks'), 0)} | {_f(h.get('wft_dispatch_ms'))} "
                    f"({_f(h.get('wft_dispatch_each_ms'))}) | {_f(h.get('wft_processing_ms'))} | "
                    f"{_f(h.get('regular_activities'), 0)} / {_f(h.get('local_activities'), 0)} | "
                    f"{_f(h.get('activity_sched_to_start_ms'))} |"
                )
        d = hist.get(DOCKET_REST) or hist.get(DOCKET_CLIENT)
        if d and d.get("types_first"):
            w("")
            w(
                "Event types of one Docket request: "
                + ", ".join(f"{k} x {v}" for k, v in sorted(d["types_first"].items(), key=lambda kv: (-kv[1], kv[0])))
                + "."
            )
        w("")
    if report["rss"]:
        w("### Memory (RSS, MiB)")
        w("")
        w("| snapshot | benchmark process (peak) | dev server | stub |")
        w("|---|---:|---:|---:|")
        for r in report["rss"]:
            w(
                f"| {r['label']} | {_f(r['process_mib'], 0)} ({_f(r['process_peak_mib'], 0)}) | "
                f"{_f(r['dev_server_mib'], 0)} | {_f(r['stub_mib'], 0)} |"
            )
        w("")
    w("### Targets (ratios measured in this run)")
    w("")
    w("| target | measured | goal | result | missed by |")
    w("|---|---:|---:|---|---:|")
    for t in report["targets"]:
        sign = "≤" if t["kind"] == "max" else "≥"
        status = {"pass": "met", "miss": "**missed**"}.get(t["status"], t["status"])
        note = f" ({t['note']})" if t["note"] else ""
        w(
            f"| {t['target']}{note} | {_f(t['measured'], 2)} {t['unit']} | {sign} {t['goal']:g} {t['unit']} "
            f"| {status} | "
            f"{_f(t['by'], 2) + ' ' + t['unit'] if t['by'] is not None else ''} |"
        )
    w("")
    w("### Interpretation")
    w("")
    for paragraph in interpret(report):
        w(paragraph)
        w("")
    w("### How to reproduce")
    w("")
    if workload == "W1":
        w(
            "`docket bench smoke` (CI: N=20, c = 1 and 8, one repetition, under 5 minutes; JSON lines to a temp file, "
            "this file untouched unless `--out` is given) and `docket bench full` (N=200, c = 1, 8 and 64, three "
            "repetitions; rewrites this section). `python -m bench.suite --from-jsonl FILE` re-renders the section "
            "from saved JSON lines. The machine is shared: compare ratios within one run, not absolute numbers across "
            "runs."
        )
    else:
        smoke, full = PRESETS["w2-smoke"], PRESETS["w2"]
        w(
            f"`docket bench w2-smoke` (N={smoke.n}, c = {' and '.join(map(str, smoke.concurrency))}, modes "
            f"{', '.join(smoke.modes)}, one repetition, under 4 minutes; JSON lines to a temp file, this file "
            f"untouched unless `--out` is given) and `docket bench w2` (N={full.n}, c = "
            f"{', '.join(map(str, full.concurrency))}, {full.reps} repetitions; rewrites this section, not W1's). "
            "`python -m bench.suite --from-jsonl FILE` re-renders the section from saved JSON lines. The machine is "
            "shared: compare ratios within one run, not absolute numbers across runs."
        )
    w(end)
    return "\n".join(lines)


def interpret(report: dict[str, Any]) -> list[str]:
    """Bullets written from this run's numbers, so re-running keeps them true."""
    rows = {(r["mode"], r["concurrency"]): r for r in report["summary"]}
    cs = sorted({r["concurrency"] for r in report["summary"]})
    out: list[str] = []
    if not cs:
        return ["- No series ran."]
    c1, cmax = cs[0], cs[-1]
    d1, e1, er1, b01 = (
        _p(rows, DOCKET_REST, c1),
        _p(rows, EMPTY, c1),
        _p(rows, EMPTY_REST, c1),
        _p(rows, "b0", c1),
    )
    dc1 = _p(rows, DOCKET_CLIENT, c1)
    probes = report["probes"]
    # W2: every mode but the empty workflow waits this long for the model, so only differences to B0 are overhead.
    delay = float(report["meta"]["config"].get("stub_delay_ms") or 0.0)
    if d1 is not None and er1 is not None and e1 is not None:
        text = (
            f"- **Docket next to an empty workflow.** At c={c1} a Docket request takes {_f(d1)} ms p50 over REST, "
            f"the empty workflow {_f(er1)} ms over REST and {_f(e1)} ms through the client: Docket adds "
            f"{_f(d1 - er1)} ms on the same transport"
        )
        if dc1 is not None:
            text += f" ({_f(dc1 - e1)} ms client to client)"
        text += "."
        if b01 is not None:
            model = f", the model's {delay:.0f} ms included," if delay else ""
            text += (
                f" The stages themselves{model} take {_f(b01)} ms in the plain-asyncio floor (B0), so about "
                f"{_f(d1 - er1 - b01)} ms of what Docket adds is orchestration beyond one empty workflow's round trip."
            )
        out.append(text)
    if delay:
        out += _overhead(rows, cs, delay, er1, c1)
    hd = report["history"].get(DOCKET_REST) or report["history"].get(DOCKET_CLIENT) or {}
    he = report["history"].get(EMPTY) or {}
    if hd.get("sampled") and he.get("sampled") and hd.get("duration_ms") is not None:
        dur, disp = hd["duration_ms"], hd["wft_dispatch_ms"]
        text = (
            f"- **Where Docket's time goes.** A sampled Docket request writes {_f(hd['events_median'], 0)} history "
            f"events ({_f(hd['bytes_median'], 0)} bytes; the empty workflow {_f(he['events_median'], 0)} events, "
            f"{_f(he['bytes_median'], 0)} bytes) and runs {_f(hd['workflow_tasks'], 0)} workflow tasks, "
            f"{_f(hd['regular_activities'], 0)} regular and {_f(hd['local_activities'], 0)} local activities. Of its "
            f"{_f(dur)} ms from start to close, {_f(disp)} ms are workflow tasks waiting to be handed to the worker "
            f"(median {_f(hd['wft_dispatch_each_ms'])} ms each; the empty workflow's one task waits "
            f"{_f(he.get('wft_dispatch_each_ms'))} ms), {_f(hd['wft_processing_ms'])} ms the worker processing them "
            f"(local activities included), and each regular activity waits {_f(hd['activity_sched_to_start_ms'])} ms "
            "from scheduled to started."
        )
        if dur and disp == disp and disp > 0.4 * dur:
            text += (
                " Dispatch, not Docket's code, is the largest part: on this machine every workflow task costs a "
                "hand-off through the server far slower than a gRPC round trip, so the number of workflow tasks on "
                "the critical path sets the latency."
            )
        out.append(text)
    dr1, b0r1, er1r = rows.get((DOCKET_REST, c1)), rows.get(("b0", c1)), rows.get((EMPTY, c1))
    if dr1 and d1 is not None:
        cpu = dr1["cpu_ms_per_request"]
        proc, srv = cpu["process"] or 0.0, cpu["dev_server"] or 0.0
        text = (
            f"- **CPU.** At c={c1} a Docket request over REST uses {_f(proc)} ms of CPU in this process (load "
            f"generator, gateway, worker, engines) and {_f(srv)} ms in the dev server: {_f(proc + srv)} ms, "
            f"{_f(100 * (proc + srv) / d1, 0)} % of its {_f(d1)} ms p50"
        )
        if b0r1 and b0r1["cpu_ms_per_request"]["process"] is not None:
            text += f"; the same stages in B0 use {_f(b0r1['cpu_ms_per_request']['process'])} ms"
        if er1r:
            ecpu = er1r["cpu_ms_per_request"]
            text += f", the empty workflow {_f(ecpu['process'])} ms here and {_f(ecpu['dev_server'])} ms in the server"
        text += "."
        if (proc + srv) > 0.6 * d1:
            text += (
                " One request at a time is thus mostly CPU work, not waiting: Docket's latency and its throughput "
                f"on these {report['meta']['machine'].get('cpus')} CPUs are set by the CPU it spends per request "
                "(the workflow sandbox, payload conversion, tracing, the SDK, the server's history and visibility "
                "writes), so that, not the number of round trips alone, is what to cut."
            )
        out.append(text)
    grpc = probes.get("grpc", {})
    http = probes.get("http", {})
    if grpc.get("p50_ms") and http and e1 is not None:
        text = (
            f"- **Floors.** One gRPC round trip to the dev server is {_f(grpc['p50_ms'], 2)} ms p50, one HTTP round "
            f"trip to a trivial FastAPI endpoint {_f(http.get('p50_ms'), 2)} ms. The empty workflow ({_f(e1)} ms) is "
            f"{_f(e1 / grpc['p50_ms'], 0)}x one gRPC round trip although it needs only a handful (start, the "
            "workflow task's poll and completion, the result)"
        )
        ecpu = rows[(EMPTY, c1)]["cpu_ms_per_request"]
        e_cpu = (ecpu["process"] or 0.0) + (ecpu["dev_server"] or 0.0)
        if e1 / grpc["p50_ms"] <= 10:
            text += "."
        elif e_cpu > 0.6 * e1:
            text += (
                f": the rest is CPU work, {_f(ecpu['process'])} ms in this process (client, SDK, worker) and "
                f"{_f(ecpu['dev_server'])} ms in the dev server per empty workflow."
            )
        else:
            text += ": the rest is time spent inside the server between them."
        sq = probes.get("sqlite_full", {})
        fs = probes.get("fsync", {})
        if sq and fs:
            text += (
                f" The data dir fsyncs in {_f(fs.get('p50_ms'), 2)} ms p50 ({_f(fs.get('p99_ms'), 2)} ms p99) and "
                f"SQLite commits {_f(sq.get('per_s'), 0)} times a second at synchronous=FULL: durable writes are not "
                "what any of the modes waits on at this load."
            )
        out.append(text)
    for c in cs:
        d, b1, b2, b0 = _p(rows, DOCKET_REST, c), _p(rows, "b1-sync", c), _p(rows, "b2", c), _p(rows, "b0", c)
        parts = []
        if d is not None and b1:
            parts.append(f"{_f(d / b1, 2)}x LangGraph at durability sync ({_f(b1)} ms)")
        b1d = _p(rows, "b1-default", c)
        if d is not None and b1d:
            parts.append(f"{_f(d / b1d, 2)}x LangGraph at default durability ({_f(b1d)} ms)")
        if d is not None and b2:
            parts.append(f"{_f(d / b2, 2)}x DBOS ({_f(b2)} ms)")
        if d is not None and b0:
            parts.append(f"{_f(d / b0, 2)}x the plain-asyncio floor ({_f(b0)} ms)")
        if parts:
            out.append(f"- **Baselines at c={c}.** Docket over REST ({_f(d)} ms p50) is " + ", ".join(parts) + ".")
    out += _variants(report, rows, c1, cmax)
    out += _persistence(rows, c1, cmax)
    out += _sweep_text(report)
    dr, er = rows.get((DOCKET_REST, cmax)), rows.get((EMPTY_REST, cmax))
    if dr and er and cmax > c1:
        cpu_p = dr["cpu_ms_per_request"]["process"]
        rps = dr["throughput_rps"]
        busy = cpu_p * rps / 1000 if cpu_p is not None and rps else None
        ratio = rps / er["throughput_rps"] if rps and er["throughput_rps"] else None
        text = (
            f"- **Throughput at c={cmax}.** Docket serves {_f(rps)} req/s over REST, the empty workflow "
            f"{_f(er['throughput_rps'])} req/s ({_f(ratio, 2)}x{', calling no model' if delay else ''}). "
            f"A Docket request costs {_f(cpu_p)} ms of CPU in this process and "
            f"{_f(dr['cpu_ms_per_request']['dev_server'])} ms "
            f"in the dev server"
        )
        srv = dr["cpu_ms_per_request"]["dev_server"]
        busy_srv = srv * rps / 1000 if srv is not None and rps else None
        if busy is not None and busy_srv is not None:
            meta = report["meta"]
            text += (
                f"; at that rate this process keeps {_f(busy, 2)} of a core busy and the dev server "
                f"{_f(busy_srv, 2)}, {_f(busy + busy_srv, 2)} of the {meta['machine'].get('cpus')} CPUs, with a load "
                f"average of {meta['loadavg_start']:.1f} to {meta['loadavg_end']:.1f} on the machine. "
            )
            if busy >= 0.75:
                text += (
                    "One Python process (one GIL) holds the load generator, the gateway and the worker, so it is the "
                    "ceiling; the deployed gateway and worker are separate processes."
                )
            elif delay:
                p50 = _p(rows, DOCKET_REST, cmax)
                text += (
                    f"No single process is at its ceiling: a closed loop keeps {cmax} requests in flight, so it serves "
                    f"about c / latency (c / p50 = {_f(cmax * 1000 / p50 if p50 else None)} req/s), and every request "
                    f"waits {delay:.0f} ms for the model: the latency, the model's share of it included, sets the "
                    "throughput."
                )
            else:
                text += (
                    "No single process is at its ceiling: the CPUs are shared by this process, the dev server and "
                    "the machine's other work, so the CPU per request sets the throughput."
                )
        else:
            text += "."
        out.append(text)
    timeouts = [r for r in report["summary"] if r["timeouts"]]
    if timeouts:
        limit = report["meta"]["config"]["request_timeout_s"]
        text = "- **Requests over the time bound.** " + "; ".join(
            f"{LABELS.get(r['mode'], r['mode'])} at c={r['concurrency']}: {r['timeouts']} of {r['n']}" for r in timeouts
        )
        worst = max(timeouts, key=lambda r: r["timeouts"])
        rps = worst["throughput_rps"]
        wait = worst["concurrency"] / rps if rps else None
        text += (
            f" requests got no answer within {limit:.0f} s. A closed loop keeps c requests in flight; at "
            f"{_f(rps)} req/s a request waits about c / throughput = {_f(wait)} s "
            f"on average, so the tail passes the bound. Those requests count at the bound ({limit:.0f} s) in the "
            "percentiles, which are therefore lower bounds there; no request answered wrongly."
            if not worst["failures"]
            else f" requests got no answer within {limit:.0f} s (they count at the bound in the percentiles)."
        )
        out.append(text)
    rss = report["rss"]
    if len(rss) >= 2:
        first, last = rss[0], rss[-1]
        grew = last["dev_server_mib"] - first["dev_server_mib"]
        ran = sum(r["n"] for r in report["summary"] if r["mode"] in (EMPTY, EMPTY_REST, DOCKET_REST, DOCKET_CLIENT))
        text = (
            f"- **Memory.** With Docket warm and before the baselines load, this process (gateway, worker, load "
            f"generator) holds {_f(first['process_mib'], 0)} MiB and the dev server {_f(first['dev_server_mib'], 0)} "
            f"MiB; at the end {_f(last['process_mib'], 0)} MiB and {_f(last['dev_server_mib'], 0)} MiB."
        )
        if grew > 0.2 * first["dev_server_mib"]:
            text += (
                f" The dev server grew by {_f(grew, 0)} MiB because it keeps every workflow of the run ({ran:,} "
                "measured, warm-ups besides) in its in-memory store: its RSS here follows the run's length, not a "
                "steady state, so the end-of-run figure says little about the 600 MiB target; a steady measurement "
                "needs a dev server with a file database and a short retention, or a fixed rate over a fixed window."
            )
        out.append(text)
    missed = [t for t in report["targets"] if t["status"] == "miss"]
    if missed:
        out.append(
            f"- **Missed targets: {len(missed)} of {len(report['targets'])}** (the table above says by how much): "
            + "; ".join(sorted({re.sub(r", c=\d+.*$", "", t["target"]) for t in missed}))
            + "."
        )
        out.append(closing_advice(report, missed))
    else:
        out.append("- Every target measured in this run was met.")
    out.append(
        "- **Reading these numbers.** Everything shares one small, shared machine (see the load average); the modes "
        "take turns within every repetition so they share its noise, and only ratios from one run mean something. The "
        "dev server keeps its state in memory; a real cluster adds durable persistence per round trip."
    )
    return out


def _overhead(
    rows: dict[tuple[str, int], dict[str, Any]], cs: Sequence[int], delay: float, er1: float | None, c1: int
) -> list[str]:
    """With a model that takes `delay` ms (W2), the overhead of each mode: its p50 minus B0's at the same c."""
    parts = []
    for c in cs:
        b0 = _p(rows, "b0", c)
        added = [
            f"{LABELS.get(r['mode'], r['mode'])} {r['overhead_vs_b0_ms']:+.1f} ms"
            for (mode, cc), r in rows.items()
            if cc == c and mode != "b0" and r["overhead_vs_b0_ms"] is not None
        ]
        if b0 is not None and added:
            parts.append(f"at c={c} B0 takes {_f(b0)} ms p50, and " + ", ".join(added))
    if not parts:
        return []
    text = (
        f"- **Overhead around a {delay:.0f} ms model.** Every mode below waits {delay:.0f} ms for the stub model, so "
        "what a mode adds is its p50 minus B0's (the same stages, the model call included, chained in plain asyncio) "
        "at the same c: " + "; ".join(parts) + "."
    )
    if er1 is not None:
        text += f" For scale: an empty workflow over REST (no model, no stages) takes {_f(er1)} ms p50 at c={c1}."
    return [text]


def _persistence(rows: dict[tuple[str, int], dict[str, Any]], c1: int, cmax: int) -> list[str]:
    """The SQLite-file dev server next to the in-memory one, from this run."""
    pairs = [(EMPTY_REST_SQLITE, EMPTY_REST, "the empty workflow"), (DOCKET_REST_SQLITE, DOCKET_REST, "Docket")]
    parts = []
    for lite, mem, what in pairs:
        for c in sorted({c1, cmax}):
            a, b = _p(rows, lite, c), _p(rows, mem, c)
            ra, rb = _rps(rows, lite, c), _rps(rows, mem, c)
            if a is None or b is None:
                continue
            text = f"{what} at c={c} {_f(a)} ms p50 against {_f(b)} ms in memory ({a - b:+.1f} ms"
            if ra and rb:
                text += f"; {_f(ra)} against {_f(rb)} req/s"
            parts.append(text + ")")
    if not parts:
        return []
    return [
        "- **The dev server on a SQLite file** (WAL, synchronous FULL: every history write reaches the disk, as "
        "the baselines' SQLite databases do) instead of in memory: " + "; ".join(parts) + "."
    ]


def _sweep_text(report: dict[str, Any]) -> list[str]:
    """The open-loop sweep's knees, from this run."""
    opens = report.get("open") or []
    if not opens:
        return []
    slo = float(report["meta"]["config"].get("slo_ms", 1000.0))
    found = knees(opens, slo)
    top = max(report["meta"]["config"].get("rates") or [0.0])
    ran = {m: max(o["rate"] for o in opens if o["mode"] == m) for m in found}
    parts = [
        f"{LABELS.get(m, m)} not even the lowest rate"
        if k is None
        else f"{LABELS.get(m, m)} at least {_f(k)} req/s (higher rates not run)"
        if k == ran[m] and k < top
        else f"{LABELS.get(m, m)} {_f(k)} req/s"
        for m, k in found.items()
    ]
    return [
        f"- **Open loop.** The highest offered rate each sustained (p99 ≤ {slo:,.0f} ms, nothing dropped or wrong): "
        + "; ".join(parts)
        + ". Past its knee a mode's latency grows with the queue of arrivals it cannot serve, which is where a "
        "closed loop hides it."
    ]


def _variants(report: dict[str, Any], rows: dict[tuple[str, int], dict[str, Any]], c1: int, cmax: int) -> list[str]:
    """The Temporal variants and W4 next to the default configuration, from this run."""
    d1, dmax = _p(rows, DOCKET_REST, c1), _p(rows, DOCKET_REST, cmax)
    if d1 is None:
        return []
    parts = []
    for mode, what in (
        (DOCKET_LOCAL, "with classify, authorize and plan as three local activities (`local`)"),
        (DOCKET_REGULAR, "with every stage a regular activity"),
        (DOCKET_LAZY, "without eager workflow start"),
        (DOCKET_SANDBOX, "inside the workflow sandbox"),
        (DOCKET_NOSANDBOX, "outside the workflow sandbox"),
        (DOCKET_UPDATE, "with `?wait` by update-with-start"),
        (DOCKET_POLL, f"submitted and then polled every {POLL_MS} ms (W4)"),
    ):
        v1, vmax = _p(rows, mode, c1), _p(rows, mode, cmax)
        if v1 is None:
            continue
        text = f"{what} {_f(v1)} ms ({v1 - d1:+.1f} ms"
        vr, dr = rows.get((mode, c1)), rows.get((DOCKET_REST, c1))
        if vr and dr and vr["cpu_ms_per_request"]["process"] is not None and dr["cpu_ms_per_request"]["process"]:
            text += (
                f"; {_f(vr['cpu_ms_per_request']['process'])} ms of CPU per request in this process against "
                f"{_f(dr['cpu_ms_per_request']['process'])}"
            )
        text += ")"
        rv, rd = _rps(rows, mode, cmax), _rps(rows, DOCKET_REST, cmax)
        if cmax > c1 and vmax is not None and dmax is not None and rv and rd:
            text += f" and {_f(rv)} req/s at c={cmax} ({_f(rv / rd, 2)}x)"
        parts.append(text)
    if not parts:
        return []
    text = (
        f"- **Temporal variants.** The default (`fused`: classify, authorize and plan one local activity, the other "
        f"stages local, the model call a regular activity, eager start) takes "
        f"{_f(d1)} ms p50 at c={c1}; " + "; ".join(parts) + "."
    )
    hr, hd = report["history"].get(DOCKET_REGULAR) or {}, report["history"].get(DOCKET_REST) or {}
    if hr.get("sampled") and hd.get("sampled"):
        text += (
            f" With every stage a regular activity a lookup writes {_f(hr['events_median'], 0)} events in "
            f"{_f(hr['workflow_tasks'], 0)} workflow tasks instead of {_f(hd['events_median'], 0)} in "
            f"{_f(hd['workflow_tasks'], 0)}: each regular activity is a dispatch to the worker and a workflow task "
            "back, each local one a marker in a workflow task already running."
        )
    return [text]


def closing_advice(report: dict[str, Any], missed: Sequence[dict[str, Any]]) -> str:
    """Why the missed targets are missed and what would close them, from this run's CPU and history figures."""
    rows = {(r["mode"], r["concurrency"]): r for r in report["summary"]}
    c1 = min(r["concurrency"] for r in report["summary"])
    hd = report["history"].get(DOCKET_REST) or report["history"].get(DOCKET_CLIENT) or {}
    parts: list[str] = []
    d, b0, e = rows.get((DOCKET_REST, c1)), rows.get(("b0", c1)), rows.get((EMPTY, c1))
    bare, boxed = rows.get((DOCKET_NOSANDBOX, c1)), rows.get((DOCKET_SANDBOX, c1))
    if d and b0:
        dc, bc = d["cpu_ms_per_request"], b0["cpu_ms_per_request"]
        ec = e["cpu_ms_per_request"] if e else {"process": 0.0, "dev_server": 0.0}
        extra_proc = (dc["process"] or 0) - (bc["process"] or 0) - (ec["process"] or 0)
        extra_srv = (dc["dev_server"] or 0) - (ec["dev_server"] or 0)
        beyond = "the stage work (B0) plus an empty workflow's client and worker cost" if e else "the stage work (B0)"
        server = (
            f"{_f(extra_srv)} ms more in the dev server than an empty workflow"
            if e
            else (f"{_f(extra_srv)} ms in the dev server")
        )
        text = (
            f"Per request Docket spends about {_f(extra_proc)} ms more CPU in the Python process than {beyond}, and "
            f"{server}: the latency and throughput gaps are mostly that CPU on a small machine, not waiting"
        )
        sandbox = ""
        if boxed and boxed["cpu_ms_per_request"]["process"] is not None and dc["process"]:
            # The default runs outside the sandbox: what it would add back.
            extra = boxed["cpu_ms_per_request"]["process"] - dc["process"]
            sandbox = (
                f"The workflow sandbox, off by default since issue 9's part 4, would add {_f(extra)} ms of CPU per "
                f"request at c={c1} (`docket-rest-sandboxed`)"
            )
        elif bare and bare["cpu_ms_per_request"]["process"] is not None and dc["process"]:
            saved = dc["process"] - bare["cpu_ms_per_request"]["process"]
            sandbox = (
                f"The workflow sandbox accounts for {_f(saved)} ms of it at c={c1} (`docket-rest-unsandboxed`)"
                if saved > 0
                else f"Running without the workflow sandbox saved no CPU at c={c1} in this run"
            )
        if sandbox:
            text += (
                f". {sandbox}; the rest is "
                "the Temporal SDK's activations (temporalio 1.35 walks every payload of every workflow task six "
                "times, for a codec, external storage and its references each way, even with none configured) and "
                "payload conversion (every stage's input and result is encoded and decoded as JSON, large for the "
                "plan, the passages and the result), the tracing and logging "
                "interceptors and the HTTP gateway. The next steps: the passages' text kept out of history (ids "
                "and a digest in the result, the text fetched by the model call), and the gateway and worker "
                "measured as separate processes, as they are deployed"
            )
        parts.append(text)
    lo = rows.get((DOCKET_LOCAL, c1))
    if d and lo and d["latency_ms"] and lo["latency_ms"]:
        saved_ms = lo["latency_ms"]["p50"] - d["latency_ms"]["p50"]
        cpu_d, cpu_lo = d["cpu_ms_per_request"]["process"], lo["cpu_ms_per_request"]["process"]
        cpu = f" and {_f(cpu_lo - cpu_d)} ms of CPU per request" if cpu_d is not None and cpu_lo is not None else ""
        parts.append(
            f"fusing classify, authorize and plan into one local activity (`fused`, the default) took "
            f"{saved_ms:.1f} ms p50{cpu} off the three local activities of the `local` placement at c={c1} "
            f"(`docket-rest-local`: {_f(lo['latency_ms']['p50'])} ms p50)"
        )
    types = hd.get("types_first") or {}
    if any(t["target"].startswith("history events") for t in missed) and types:
        upserts = types.get("UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", 0)
        markers = types.get("MARKER_RECORDED", 0)
        signals = types.get("WORKFLOW_EXECUTION_SIGNALED", 0)
        wfts = types.get("WORKFLOW_TASK_COMPLETED", 0)
        parts.append(
            f"the {hd['events_max']} events of a lookup hold {wfts} workflow tasks (3 events each), "
            f"{types.get('ACTIVITY_TASK_SCHEDULED', 0)} regular activities (3 each), {markers} markers, {upserts} "
            f"search-attribute upserts and {signals} signal(s): upserting the search attributes once at the end "
            "instead of per stage, and the fast regular activities as local ones, would bring it near the target "
            "and remove server work (visibility writes, dispatches) with it"
        )
    grpc = report["probes"].get("grpc", {}).get("p50_ms")
    u, d1 = rows.get((DOCKET_UPDATE, c1)), rows.get((DOCKET_REST, c1))
    hu = report["history"].get(DOCKET_UPDATE) or {}
    if u and d1 and u["latency_ms"] and d1["latency_ms"]:
        delta = u["latency_ms"]["p50"] - d1["latency_ms"]["p50"]
        events = f" and {_f(hu['events_median'], 0)} history events" if hu.get("sampled") else ""
        verdict = f"saved {-delta:.1f} ms p50" if delta < -1.0 else "is no lever here"
        parts.append(
            f"update-with-start (`docket-rest-update`) {verdict}: {_f(u['latency_ms']['p50'])} ms p50 at "
            f"c={c1}{events} against {_f(d1['latency_ms']['p50'])} ms ({delta:+.1f} ms); it folds the start and "
            f"the result's long poll into one call, which saves at most a gRPC round trip ({_f(grpc, 2)} ms here), "
            "while Temporal cannot start such a run eagerly and the update adds two events to history"
        )
    else:
        parts.append(
            "update-with-start was not run: `?wait` already costs one start call and one result long-poll, so "
            f"folding the two would save about one gRPC round trip ({_f(grpc, 2)} ms here) while adding an "
            "update's two history events to every request"
        )
    return "- **What would close them.** " + "; ".join(parts) + "."


# ---------------------------------------------------------------- entry points


def write_outputs(report: dict[str, Any], jsonl: str, out: str) -> None:
    if jsonl:
        text = "".join(dumps(r) + "\n" for r in jsonl_rows(report))
        if jsonl == "-":
            sys.stdout.write(text)
        else:
            Path(jsonl).parent.mkdir(parents=True, exist_ok=True)
            Path(jsonl).write_text(text, encoding="utf-8")
    if out and out != "-":
        write_section(Path(out), render_markdown(report), *markers(report["meta"]["config"].get("workload", "W1")))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("preset", nargs="?", choices=list(PRESETS), default="smoke")
    p.add_argument("--n", type=int, help="measured requests per mode, concurrency and repetition")
    p.add_argument("--reps", type=int, help="repetitions")
    p.add_argument("--concurrency", type=int, nargs="+", help="closed-loop concurrencies")
    p.add_argument("--warmup", type=int, help="warm-up requests per mode")
    p.add_argument(
        "--modes",
        nargs="+",
        choices=list(ALL_MODES),
        help="modes to run (default: every mode but docket-rest-unsandboxed)",
    )
    p.add_argument("--series-seconds", type=float, help="wall-time bound of one series")
    p.add_argument("--rates", type=float, nargs="*", help="open-loop offered rates, req/s (none: no sweep)")
    p.add_argument("--sweep-modes", nargs="+", choices=list(ALL_MODES), help="modes the open-loop sweep runs")
    p.add_argument("--sweep-seconds", type=float, help="arrival window of one (mode, rate)")
    p.add_argument("--budget-seconds", type=float, help="wall-time bound of the run")
    p.add_argument("--jsonl", default=None, help="JSON lines file ('-' for stdout)")
    p.add_argument("--out", default=None, help="markdown report to rewrite the section of ('-' for none)")
    p.add_argument("--from-jsonl", type=Path, help="only re-render --out from saved JSON lines")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> SuiteConfig:
    return preset(
        args.preset,
        n=args.n,
        reps=args.reps,
        concurrency=args.concurrency,
        warmup=args.warmup,
        modes=args.modes,
        series_seconds=args.series_seconds,
        rates=args.rates,
        sweep_modes=args.sweep_modes,
        sweep_seconds=args.sweep_seconds,
        budget_seconds=args.budget_seconds,
        jsonl=args.jsonl,
        out=args.out,
    )


def quiet_logs() -> None:
    """This module's progress at INFO and everything else at WARNING, all on stderr (stdout is for JSON lines)."""
    report_logs(log)


def main(argv: Sequence[str] | None = None) -> int:
    quiet_logs()
    args = parse_args(argv)
    if args.from_jsonl:
        rows = [json.loads(x) for x in args.from_jsonl.read_text().splitlines() if x.strip()]
        report = from_jsonl(rows)
        out = args.out or str(ROOT / "docs" / "benchmarks.md")
        if out == "-":
            sys.stdout.write(render_markdown(report) + "\n")
        else:
            write_outputs(report, "", out)
        return 0
    cfg = config_from_args(args)
    report = asyncio.run(run(cfg))
    write_outputs(report, cfg.jsonl, cfg.out)
    sys.stderr.write(summary_table(report) + "\n")
    return 1 if any(r["failures"] for r in report["summary"]) else 0


if __name__ == "__main__":
    sys.exit(main())
