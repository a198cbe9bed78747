"""Physical probes: the floors every benchmark result is compared with, measured on this machine in this run.

- fsync rate of a directory: n x (write 4 KiB at the end of a file, `os.fsync`), per second and per call;
- SQLite commit rate: one-row INSERT + COMMIT in WAL mode at `synchronous=NORMAL` and `synchronous=FULL`;
- gRPC round trip to the Temporal dev server: `WorkflowService.GetSystemInfo` (the cheapest RPC it serves);
- HTTP round trip: `GET /ping` of a trivial FastAPI app under uvicorn on 127.0.0.1 (httpx, keep-alive);
- Temporal floor: `EmptyWorkflow`, a workflow that returns at once (one workflow task), started and awaited.

Every probe is bounded by a count and by wall time. This module also defines `EmptyWorkflow` and the trivial
FastAPI app (`trivial_app`: `/ping`, and `POST /empty` running the empty workflow), so it imports only the standard
library and temporalio at the top: the workflow sandbox re-imports this module for every workflow run.

    python -m bench.probes [--dir DIR] [--n 200]   # starts a dev server for the gRPC probe; JSON to stdout
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from temporalio import workflow

if TYPE_CHECKING:
    from fastapi import FastAPI
    from temporalio.client import Client

EMPTY_WORKFLOW = "BenchEmptyWorkflow"
PAYLOAD = b"d" * 4096


@workflow.defn(name=EMPTY_WORKFLOW)
class EmptyWorkflow:
    """Returns its argument at once: one workflow task, no activity. What Temporal alone costs per request."""

    @workflow.run
    async def run(self, tag: str) -> str:
        return tag


def timing(values_ms: Sequence[float], wall_s: float) -> dict[str, float]:
    """n, calls per second (of wall time), p50/p99/mean in ms."""
    xs = sorted(values_ms)
    if not xs:
        return {"n": 0, "per_s": float("nan"), "p50_ms": float("nan"), "p99_ms": float("nan"), "mean_ms": float("nan")}
    q = statistics.quantiles(xs, n=100, method="inclusive") if len(xs) > 1 else [xs[0]] * 99
    return {
        "n": len(xs),
        "per_s": len(xs) / wall_s if wall_s > 0 else float("nan"),
        "p50_ms": q[49],
        "p99_ms": q[98],
        "mean_ms": statistics.fmean(xs),
    }


def filesystem_of(path: Path) -> str:
    """The mount's filesystem type and device of `path`, from /proc/mounts ("" when unknown)."""
    best, found = "", ""
    with contextlib.suppress(OSError):
        real = str(path.resolve())
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype, *_ = line.split()
            if (real == mnt or real.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, found = mnt, f"{fstype} ({dev} on {mnt})"
    return found


def fsync_rate(directory: Path, n: int = 200, max_seconds: float = 5.0) -> dict[str, Any]:
    """n small appends each followed by fsync, in a scratch file under `directory` (removed afterwards)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".fsync-probe-{uuid.uuid4().hex[:8]}"
    xs: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        deadline = time.monotonic() + max_seconds
        t0 = time.perf_counter()
        while len(xs) < n and time.monotonic() < deadline:
            s = time.perf_counter()
            os.write(fd, PAYLOAD)
            os.fsync(fd)
            xs.append((time.perf_counter() - s) * 1000)
        wall = time.perf_counter() - t0
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"dir": str(directory), "filesystem": filesystem_of(directory), **timing(xs, wall)}


def sqlite_commit_rate(directory: Path, synchronous: str, n: int = 500, max_seconds: float = 5.0) -> dict[str, Any]:
    """One-row INSERT + COMMIT per call on a scratch SQLite file in WAL mode at the given `synchronous`."""
    import sqlite3

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f".sqlite-probe-{uuid.uuid4().hex[:8]}.db"
    xs: list[float] = []
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
        deadline = time.monotonic() + max_seconds
        t0 = time.perf_counter()
        while len(xs) < n and time.monotonic() < deadline:
            s = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (body) VALUES (?)", (PAYLOAD[:512],))
            conn.execute("COMMIT")
            xs.append((time.perf_counter() - s) * 1000)
        wall = time.perf_counter() - t0
    finally:
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    return {"synchronous": synchronous, **timing(xs, wall)}


async def timed_calls(
    fn: Callable[[], Awaitable[object]], n: int, max_seconds: float, warmup: int = 5
) -> dict[str, Any]:
    """`fn` n times one after another (after `warmup` unmeasured calls), bounded by `max_seconds`."""
    for _ in range(warmup):
        await fn()
    xs: list[float] = []
    deadline = time.monotonic() + max_seconds
    t0 = time.perf_counter()
    while len(xs) < n and time.monotonic() < deadline:
        s = time.perf_counter()
        await fn()
        xs.append((time.perf_counter() - s) * 1000)
    return timing(xs, time.perf_counter() - t0)


async def grpc_round_trip(client: Client, n: int = 200, max_seconds: float = 5.0) -> dict[str, Any]:
    """`GetSystemInfo` on the client's server: one gRPC round trip through the SDK's Rust core."""
    from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

    async def once() -> None:
        await client.workflow_service.get_system_info(GetSystemInfoRequest())

    return {"rpc": "GetSystemInfo", **await timed_calls(once, n, max_seconds)}


async def empty_workflow_round_trip(
    client: Client, task_queue: str, n: int = 100, max_seconds: float = 10.0
) -> dict[str, Any]:
    """Start EmptyWorkflow and await its result (a worker must poll `task_queue` with it registered)."""

    async def once() -> None:
        await client.execute_workflow(
            EmptyWorkflow.run, "probe", id=f"bench-empty-probe-{uuid.uuid4().hex}", task_queue=task_queue
        )

    return {"workflow": EMPTY_WORKFLOW, **await timed_calls(once, n, max_seconds)}


def trivial_app(client: Client | None = None, task_queue: str = "") -> FastAPI:
    """`GET /ping` → {"ok": true}; with a client, `POST /empty` runs EmptyWorkflow and returns its result."""
    from fastapi import FastAPI

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    if client is not None:

        @app.post("/empty")
        async def empty() -> dict[str, str]:
            wid = f"bench-empty-rest-{uuid.uuid4().hex}"
            tag = await client.execute_workflow(EmptyWorkflow.run, wid, id=wid, task_queue=task_queue)
            return {"request_id": wid, "result": tag}

    return app


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[int]:
    """Serve an ASGI app with uvicorn on a free loopback port in this event loop; yield the port."""
    import uvicorn

    from bench.stub_model import listen

    sock = listen()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", log_level="warning", access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                await task
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)


async def http_round_trip(n: int = 200, max_seconds: float = 5.0) -> dict[str, Any]:
    """`GET /ping` of the trivial FastAPI app under uvicorn on 127.0.0.1, over httpx keep-alive."""
    import httpx

    async with (
        serving(trivial_app()) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http,
    ):

        async def once() -> None:
            (await http.get("/ping")).raise_for_status()

        return {"endpoint": "GET /ping (FastAPI, uvicorn, httpx keep-alive)", **await timed_calls(once, n, max_seconds)}


async def run_probes(data_dir: Path, client: Client | None, n: int = 200, max_seconds: float = 5.0) -> dict[str, Any]:
    """Every probe once (the gRPC one only with a client). Blocking probes run in a thread."""
    out: dict[str, Any] = {
        "fsync": await asyncio.to_thread(fsync_rate, data_dir, n, max_seconds),
        "sqlite_normal": await asyncio.to_thread(sqlite_commit_rate, data_dir, "NORMAL", n * 5, max_seconds),
        "sqlite_full": await asyncio.to_thread(sqlite_commit_rate, data_dir, "FULL", n, max_seconds),
        "http": await http_round_trip(n, max_seconds),
    }
    if client is not None:
        out["grpc"] = await grpc_round_trip(client, n, max_seconds)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json
    import sys
    import tempfile

    from temporalio.testing import WorkflowEnvironment

    from bench.latency import temporal_binary

    p = argparse.ArgumentParser(prog="python -m bench.probes", description=__doc__.splitlines()[0] if __doc__ else "")
    p.add_argument(
        "--dir", type=Path, default=None, help="directory to probe fsync and SQLite in (default: a temp dir)"
    )
    p.add_argument("--n", type=int, default=200, help="calls per probe (default 200)")
    p.add_argument("--max-seconds", type=float, default=5.0, help="wall-time bound per probe (default 5)")
    args = p.parse_args(argv)

    async def go(directory: Path) -> dict[str, Any]:
        env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary())
        try:
            return await run_probes(directory, env.client, args.n, args.max_seconds)
        finally:
            await env.shutdown()

    with tempfile.TemporaryDirectory(prefix="docket-probes-") as tmp:
        result = asyncio.run(go(args.dir or Path(tmp)))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
