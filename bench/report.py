"""Shared by the benchmarks: each one owns a marked section of docs/benchmarks.md and rewrites only that."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path


def write_section(path: Path, section: str, begin: str, end: str) -> None:
    """Replace the section between `begin` and `end`, or append it; everything else in the file stays as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    found = pattern.search(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        pattern.sub(lambda _: section, text) if found else text.rstrip("\n") + "\n\n" + section + "\n",
        encoding="utf-8",
    )


def machine_table(m: dict[str, str], extra: list[tuple[str, str]] | None = None) -> list[str]:
    """The machine-and-versions table every benchmark section opens with; `extra` rows come before SQLite."""
    rows = [
        ("CPUs (usable)", m["cpus"]),
        ("CPU model", m["cpu_model"]),
        ("RAM", m["ram"]),
        ("OS", m["os"]),
        ("Python", m["python"]),
        ("temporalio", m["temporalio"]),
        ("Temporal CLI / dev server", m["temporal_cli"].replace("\n", "; ")),
        *(extra or []),
        ("SQLite", m["sqlite"]),
    ]
    return ["| machine | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]


def quiet_logs(progress: logging.Logger) -> None:
    """A benchmark's own progress (`progress`) at INFO, everything else at WARNING, all on stderr (stdout takes JSON
    lines or the section). Docket's structlog events, one per recorded request, would otherwise go to stdout."""
    import structlog

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    progress.setLevel(logging.INFO)
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


async def lanes(n: int, concurrency: int, max_seconds: float, one: Callable[[], Awaitable[None]]) -> float:
    """The closed loop every benchmark runs: `one` up to n times with `concurrency` in flight, a new one as one
    finishes, none started after `max_seconds`; returns the wall time in seconds. `one` measures and records its
    own request (and bounds it), so each benchmark keeps its own samples."""
    started = 0
    deadline = time.monotonic() + max_seconds

    async def lane() -> None:
        nonlocal started
        while started < n and time.monotonic() < deadline:
            started += 1
            await one()

    t0 = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for _ in range(min(concurrency, n)):
            tg.create_task(lane())
    return time.perf_counter() - t0
