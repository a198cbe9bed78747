"""Open-loop rate sweep (issue 9): requests arrive at a set rate whatever happens to the ones before them.

A closed loop (bench/suite.py) sends the next request when one finishes, so a slow system is simply asked less: it
never shows what happens when users keep arriving. Here arrivals follow a Poisson process at each offered rate
(seeded, so every mode sees the same arrival times), and each request's latency runs from the moment it was due,
not from when the generator got round to sending it: a backlog, in the system or in this process, shows up as
latency (no coordinated omission).

Every series is bounded: arrivals stop after `n` requests or `max_seconds`, whichever comes first; at most
`max_in_flight` requests are outstanding (an arrival beyond that is dropped and counted, never queued without
bound); every request has a timeout. The *knee* of a mode is the highest offered rate it sustained: every arrival
answered right within the timeout, none dropped, and p99 within the latency objective (a backlog that builds up
shows there: latency runs from the due time). The answers' rate is reported, not judged: over a window of a few
seconds it falls short of the offered rate by the last answers' latency alone.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.latency import summary

TIMED_OUT = "timed out"

One = Callable[[], Awaitable[tuple[str, str | None]]]


@dataclass
class OpenSeries:
    mode: str
    rate: float  # offered, requests per second
    latencies_ms: list[float] = field(default_factory=list)  # from each request's due time to its answer
    problems: list[str] = field(default_factory=list)  # wrong answers and errors (timeouts counted apart)
    request_ids: list[str] = field(default_factory=list)
    timeouts: int = 0
    dropped: int = 0  # arrivals that found max_in_flight requests outstanding
    offered: int = 0  # arrivals generated
    late_ms: list[float] = field(default_factory=list)  # how late this process sent each request
    wall_s: float = 0.0  # first arrival to the last answer
    arrival_s: float = 0.0  # first to last arrival
    cpu_s: float = 0.0
    server_cpu_s: float = 0.0


def arrivals(rate: float, n: int, max_seconds: float, seed: int) -> list[float]:
    """Due times (seconds from the start) of a Poisson process at `rate`: at most n, none after max_seconds."""
    rng = random.Random(seed)
    out: list[float] = []
    t = 0.0
    while len(out) < n:
        t += rng.expovariate(rate)
        if t > max_seconds:
            break
        out.append(t)
    return out


async def open_loop(
    rate: float,
    n: int,
    one: One,
    *,
    max_seconds: float,
    timeout_s: float,
    max_in_flight: int,
    seed: int = 1,
) -> OpenSeries:
    """`one` at the due times of `arrivals(rate, n, max_seconds, seed)`, each bounded by `timeout_s`."""
    s = OpenSeries("", rate)
    due = arrivals(rate, n, max_seconds, seed)
    s.offered = len(due)
    in_flight: set[asyncio.Task[None]] = set()

    async def send(due_at: float) -> None:
        try:
            rid, problem = await asyncio.wait_for(one(), timeout_s)
        except TimeoutError:
            rid, problem = "", TIMED_OUT
        except Exception as exc:  # a failed request is a result to report, not a crash of the run
            rid, problem = "", f"{type(exc).__name__}: {str(exc)[:300]}"
        s.latencies_ms.append((time.perf_counter() - due_at) * 1000)
        if problem == TIMED_OUT:
            s.timeouts += 1
        elif problem:
            s.problems.append(problem)
        else:
            s.request_ids.append(rid)

    t0 = time.perf_counter()
    for offset in due:
        due_at = t0 + offset
        pause = due_at - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        s.late_ms.append(max(0.0, (time.perf_counter() - due_at) * 1000))
        if len(in_flight) >= max_in_flight:
            s.dropped += 1
            continue
        task = asyncio.create_task(send(due_at))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    s.arrival_s = time.perf_counter() - t0
    if in_flight:
        await asyncio.gather(*in_flight)
    s.wall_s = time.perf_counter() - t0
    return s


def open_line(s: OpenSeries) -> dict[str, Any]:
    answered = len(s.latencies_ms)
    return {
        "type": "open",
        "mode": s.mode,
        "rate": s.rate,
        "offered": s.offered,
        "answered": answered,
        "ok": len(s.request_ids),
        "failures": len(s.problems),
        "first_failure": s.problems[0] if s.problems else None,
        "timeouts": s.timeouts,
        "dropped": s.dropped,
        "arrival_s": s.arrival_s,
        "wall_s": s.wall_s,
        # Answers per second over the whole series (the last arrival's answer included): what the mode delivered.
        "achieved_rps": len(s.request_ids) / s.wall_s if s.wall_s else None,
        "offered_rps": s.offered / s.arrival_s if s.arrival_s else None,
        "latency_ms": summary(s.latencies_ms) if s.latencies_ms else None,
        "late_ms_p99": sorted(s.late_ms)[min(len(s.late_ms) - 1, math.ceil(0.99 * len(s.late_ms)) - 1)]
        if s.late_ms
        else None,
        "cpu_ms_per_request": {
            "process": 1000 * s.cpu_s / answered if answered else None,
            "dev_server": 1000 * s.server_cpu_s / answered if answered else None,
        },
        "latencies_ms": [round(x, 3) for x in s.latencies_ms],
    }


def sustained(line: dict[str, Any], slo_ms: float) -> bool:
    """Whether a series kept up: every arrival answered right in time, none dropped, p99 ≤ slo_ms."""
    lat = line.get("latency_ms") or {}
    return bool(
        line["offered"]
        and line["ok"] == line["offered"]
        and not line["dropped"]
        and lat.get("p99") is not None
        and lat["p99"] <= slo_ms
    )


def knees(lines: Sequence[dict[str, Any]], slo_ms: float) -> dict[str, float | None]:
    """Per mode, the highest offered rate sustained with every lower rate sustained too (None: not even the
    lowest)."""
    out: dict[str, float | None] = {}
    for mode in dict.fromkeys(ln["mode"] for ln in lines):
        best: float | None = None
        for ln in sorted((x for x in lines if x["mode"] == mode), key=lambda x: x["rate"]):
            if not sustained(ln, slo_ms):
                break
            best = ln["rate"]
        out[mode] = best
    return out


def _f(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None or v != v else f"{v:,.{digits}f}"


def render(
    lines: Sequence[dict[str, Any]], labels: dict[str, str], slo_ms: float, rates: Sequence[float] = ()
) -> list[str]:
    """The sweep's markdown: one row per (mode, rate), then each mode's knee (`rates`: the rates the run was
    configured with, so that a knee at the highest rate a mode ran, below higher ones it never ran, reads as a
    lower bound)."""
    if not lines:
        return []
    out = [
        "| mode | offered req/s | achieved req/s | answered right / arrivals | dropped | timeouts | p50 ms | p99 ms "
        "| sender late p99 ms | CPU ms/req: process / server |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for ln in sorted(lines, key=lambda x: (list(labels).index(x["mode"]) if x["mode"] in labels else 99, x["rate"])):
        lat = ln.get("latency_ms") or {}
        cpu = ln.get("cpu_ms_per_request") or {}
        out.append(
            f"| {labels.get(ln['mode'], ln['mode'])} | {_f(ln['rate'])} | {_f(ln.get('achieved_rps'))} | "
            f"{ln['ok']} / {ln['offered']} | {ln['dropped']} | {ln['timeouts']} | {_f(lat.get('p50'))} | "
            f"{_f(lat.get('p99'))} | {_f(ln.get('late_ms_p99'))} | {_f(cpu.get('process'))} / "
            f"{_f(cpu.get('dev_server'))} |"
        )
    out.append("")
    parts = []
    for mode, knee in knees(lines, slo_ms).items():
        lows = [ln for ln in lines if ln["mode"] == mode]
        low = min(lows, key=lambda x: x["rate"])
        ran = max(x["rate"] for x in lows)
        lat = (low.get("latency_ms") or {}).get("p50")
        if knee is None:
            parts.append(f"{labels.get(mode, mode)} **below {_f(low['rate'])} req/s** (p50 {_f(lat)} ms there)")
        elif knee == ran and any(r > ran for r in rates):
            parts.append(f"{labels.get(mode, mode)} **at least {_f(knee)} req/s** (higher rates not run)")
        else:
            parts.append(f"{labels.get(mode, mode)} **{_f(knee)} req/s**")
    out.append(
        f"Highest offered rate sustained (every arrival answered right, none dropped, p99 ≤ {slo_ms:,.0f} ms, and "
        "every lower rate too): " + "; ".join(parts) + "."
    )
    return out
