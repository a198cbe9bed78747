"""bench/openloop.py: Poisson arrivals, the bounds of an open-loop series, what counts as sustained, the report.

The `one` callables here are asyncio sleeps of a known length standing in for a request, so the arithmetic of
drops, timeouts and latency-from-due-time can be checked exactly; no timing is asserted beyond "at least".
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from bench import openloop, suite


def test_arrivals_are_seeded_poisson_and_bounded() -> None:
    a = openloop.arrivals(50.0, 10_000, 20.0, seed=3)
    assert a == openloop.arrivals(50.0, 10_000, 20.0, seed=3)  # every mode at a rate sees the same times
    assert a != openloop.arrivals(50.0, 10_000, 20.0, seed=4)
    assert all(x < y for x, y in itertools.pairwise(a)) and a[-1] <= 20.0
    # ~1000 arrivals in 20 s at 50/s: a Poisson count has sd ~32, so 850..1150 is ~5 sd either side.
    assert 850 < len(a) < 1150
    gaps = [y - x for x, y in zip([0.0, *a], a, strict=False)]
    mean = sum(gaps) / len(gaps)
    assert 0.018 < mean < 0.022  # exponential gaps with mean 1/rate
    assert len(openloop.arrivals(50.0, 7, 20.0, seed=3)) == 7  # the count bound
    assert openloop.arrivals(1.0, 100, 0.0001, seed=3) == []  # the time bound


async def test_open_loop_counts_drops_timeouts_and_failures() -> None:
    calls = 0

    async def one() -> tuple[str, str | None]:
        nonlocal calls
        calls += 1
        k = calls
        if k % 5 == 0:
            return f"r{k}", "wrong figure"
        await asyncio.sleep(0.05)
        return f"r{k}", None

    s = await openloop.open_loop(200.0, 40, one, max_seconds=5.0, timeout_s=2.0, max_in_flight=1000, seed=1)
    assert s.offered == 40 and s.dropped == 0 and s.timeouts == 0
    assert len(s.latencies_ms) == 40 and len(s.problems) == 8 and len(s.request_ids) == 32
    assert min(x for x in s.latencies_ms) >= 0.0

    # A backlog: one slot, requests of 50 ms arriving every ~5 ms: almost every arrival finds the slot taken.
    async def slow() -> tuple[str, str | None]:
        await asyncio.sleep(0.05)
        return "r", None

    s = await openloop.open_loop(200.0, 40, slow, max_seconds=5.0, timeout_s=2.0, max_in_flight=1, seed=1)
    assert s.offered == 40 and s.dropped > 20 and len(s.latencies_ms) == 40 - s.dropped

    async def stuck() -> tuple[str, str | None]:
        await asyncio.sleep(10)
        return "r", None

    s = await openloop.open_loop(100.0, 5, stuck, max_seconds=5.0, timeout_s=0.05, max_in_flight=10, seed=1)
    assert s.timeouts == 5 and not s.request_ids and all(x >= 50.0 for x in s.latencies_ms)


async def test_latency_runs_from_the_due_time() -> None:
    """A sender that falls behind (here: a request that blocks the event loop) charges the delay to latency."""

    def busy(ms: float) -> None:
        end = asyncio.get_running_loop().time() + ms / 1000
        while asyncio.get_running_loop().time() < end:
            pass

    async def hog() -> tuple[str, str | None]:
        busy(30)  # holds the loop: the next arrival is sent late
        return "r", None

    s = await openloop.open_loop(1000.0, 10, hog, max_seconds=5.0, timeout_s=2.0, max_in_flight=100, seed=2)
    line = openloop.open_line(s)
    assert line["late_ms_p99"] >= 20.0
    # The last request was due within ~10 ms of the start but answered after ten 30 ms stalls.
    assert max(s.latencies_ms) >= 200.0


def line(
    mode: str, rate: float, *, ok: int, offered: int, p99: float, achieved: float, dropped: int = 0
) -> dict[str, Any]:
    return {
        "type": "open",
        "mode": mode,
        "rate": rate,
        "offered": offered,
        "answered": ok,
        "ok": ok,
        "failures": 0,
        "first_failure": None,
        "timeouts": offered - ok - dropped,
        "dropped": dropped,
        "arrival_s": 10.0,
        "wall_s": 10.0,
        "achieved_rps": achieved,
        "offered_rps": rate,
        "latency_ms": {"p50": p99 / 2, "p95": p99 * 0.9, "p99": p99},
        "late_ms_p99": 0.5,
        "cpu_ms_per_request": {"process": 10.0, "dev_server": 5.0},
        "latencies_ms": [],
    }


def test_sustained_and_knees() -> None:
    ok = line("a", 10, ok=100, offered=100, p99=200, achieved=9.8)
    assert openloop.sustained(ok, 1000)
    assert not openloop.sustained(ok, 150)  # p99 over the objective: a backlog built up
    assert not openloop.sustained(line("a", 10, ok=99, offered=100, p99=200, achieved=9.8), 1000)  # one not right
    assert not openloop.sustained(line("a", 10, ok=90, offered=100, p99=200, achieved=9.0, dropped=10), 1000)
    # The answers' rate is not judged: a short window's last answers lag the arrivals without any backlog.
    assert openloop.sustained(line("a", 10, ok=88, offered=88, p99=450, achieved=7.9), 1000)
    lines = [
        line("a", 5, ok=50, offered=50, p99=100, achieved=5),
        line("a", 10, ok=100, offered=100, p99=150, achieved=10),
        line("a", 20, ok=150, offered=200, p99=5000, achieved=12),
        line("a", 40, ok=400, offered=400, p99=100, achieved=40),  # above a failed rate: not the knee
        line("b", 5, ok=40, offered=50, p99=100, achieved=4),
        line("c", 5, ok=50, offered=50, p99=100, achieved=5),  # never run above 5
    ]
    assert openloop.knees(lines, 1000) == {"a": 10, "b": None, "c": 5}
    text = "\n".join(openloop.render(lines, suite.LABELS, 1000, rates=[5, 10, 20, 40]))
    assert "a **10.0 req/s**" in text and "b **below 5.0 req/s**" in text
    assert "c **at least 5.0 req/s** (higher rates not run)" in text
    assert text.count("\n| ") == 6  # one row per (mode, rate) below the header


def test_suite_report_carries_the_sweep_through_jsonl() -> None:
    cfg = suite.preset("smoke", modes=[suite.DOCKET_REST, "b0"], concurrency=[1])
    series = [
        suite.series_line(
            suite.Series(m, 1, 0, samples=[suite.Sample(10.0 + i, f"r{i}") for i in range(3)], wall_s=0.05)
        )
        for m in cfg.modes
    ]
    opens = [line(suite.DOCKET_REST, 4, ok=16, offered=16, p99=80, achieved=3.9)]
    meta = {
        "type": "run",
        "started_at": "2026-11-22 04:00:00",
        "finished_at": "2026-11-22 04:01:00",
        "wall_s": 60.0,
        "loadavg_start": 1.0,
        "loadavg_end": 1.0,
        "machine": {},
        "config": {**json.loads(json.dumps(suite.asdict(cfg))), "question": "q", "principal": "alice", "as_of": "x"},
        "skipped": [],
        "stub": {"calls": 0, "streamed": 0},
        "index": {"chunks": 0},
    }
    report = suite.assemble(meta, {}, series, {}, [], opens)
    markdown = suite.render_markdown(report)
    assert "### Open-loop rate sweep" in markdown
    assert "Docket (REST `?wait`) **at least 4.0 req/s** (higher rates not run)" in markdown
    again = suite.from_jsonl([json.loads(suite.dumps(r)) for r in suite.jsonl_rows(report)])
    assert again["open"] == opens and suite.render_markdown(again) == markdown
