"""A stub model for benchmarks: an OpenAI-compatible chat server whose model time is known exactly.

`POST /v1/chat/completions` (plain or `stream: true`) answers after a configured delay (I/O mode, `delay_ms`: the
server sleeps, so calls overlap like requests to a remote model) or after burning CPU (contention mode, `cpu_ms`:
the server spins on its own thread's CPU clock for that long, one call at a time, like a one-slot local model
competing for the machine's cores). Both may be set; the delay comes first.

The reply is the grounded JSON answer Docket's `openai` generator asks for (prompts/answer.v2.j2): every
`[F1] <label> = <value> <unit>` line of the prompt becomes "<label> was <value> <unit>." and its id goes into
`fact_ids`, so the grounding check accepts it and the request is answered by "the model" on the real client path
(HTTP, streaming, schema, validation, usage). Usage counts are whitespace-separated words of the prompt and the
reply. Every call is counted, in total and per prompt (sha256 of the messages), for counting duplicate model
calls after a crash.

- `GET /stats` → `{"calls", "streamed", "by_prompt", "config"}`; `POST /stats/reset` zeroes the counters;
- `POST /config` with `{"delay_ms": …, "cpu_ms": …}` changes the mode of a running server (one server can serve
  W1 at 0 ms and W2 at 500 ms in one run).

In-process (a uvicorn thread, shares this process's GIL):  `with StubModel(delay_ms=0).running() as stub: …`
In its own process (the benchmarks' default, so the stub's CPU is not the measured process's):
`with StubModelProcess(delay_ms=0).running() as stub: …`, or by hand:

    python -m bench.stub_model [--port 0] [--delay-ms 0] [--cpu-ms 0]   # writes "listening on http://…/v1"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

log = logging.getLogger("bench.stub_model")
ROOT = Path(__file__).resolve().parents[1]
MODEL = "bench-stub"
# A fact line of prompts/answer.v2.j2: "[F1] revenue MER-US 2026-10 = 11765834 USD" (the unit may be empty).
FACT_LINE = re.compile(r"^\[(F\d+)\] (.+?) = (\S+)(?: (.*?))?\s*$", re.MULTILINE)
CHUNK_CHARS = 16


def grounded_answer(prompt: str) -> dict[str, Any]:
    """The answer a perfectly obedient model gives to Docket's answer prompt: the facts, copied exactly."""
    facts = FACT_LINE.findall(prompt)
    if not facts:
        return {
            "answer": "The ledger holds no figure for this question.",
            "fact_ids": [],
            "doc_ids": [],
            "confidence": 0.5,
        }
    sentences = [f"{label} was {value} {unit}".rstrip() + "." for _, label, value, unit in facts]
    return {"answer": " ".join(sentences), "fact_ids": [fid for fid, *_ in facts], "doc_ids": [], "confidence": 0.9}


def expected_answer(facts: Sequence[tuple[str, object, str]]) -> str:
    """What the stub answers for these (label, value as the prompt renders it, unit) facts."""
    return " ".join(f"{label} was {value} {unit}".rstrip() + "." for label, value, unit in facts)


def burn_cpu(ms: float) -> None:
    """Spin until this thread has used `ms` of CPU time (wall time is longer when the cores are busy)."""
    end = time.thread_time() + ms / 1000
    x = 0
    while time.thread_time() < end:
        for i in range(1000):
            x ^= i


def _words(text: str) -> int:
    return len(text.split())


@dataclass
class StubState:
    """The mode and the counters of one stub server."""

    delay_ms: float = 0.0
    cpu_ms: float = 0.0
    calls: int = 0
    streamed: int = 0
    by_prompt: Counter[str] = field(default_factory=Counter)

    def stats(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "streamed": self.streamed,
            "by_prompt": dict(self.by_prompt),
            "duplicates": sum(n - 1 for n in self.by_prompt.values() if n > 1),
            "config": {"delay_ms": self.delay_ms, "cpu_ms": self.cpu_ms},
        }


def make_app(state: StubState) -> Starlette:
    """The Starlette app of the stub: chat completions, models, stats and config."""

    async def chat(request: Request) -> Response:
        body = await request.json()
        messages = body.get("messages") or []
        prompt = "\n".join(str(m.get("content") or "") for m in messages if isinstance(m, dict))
        state.calls += 1
        key = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:16]
        state.by_prompt[key] += 1
        if state.delay_ms > 0:
            await asyncio.sleep(state.delay_ms / 1000)
        if state.cpu_ms > 0:
            burn_cpu(state.cpu_ms)  # in the event loop on purpose: one call at a time, like a one-slot server
        content = json.dumps(grounded_answer(prompt))
        usage = {"prompt_tokens": _words(prompt), "completion_tokens": _words(content)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        cid = f"chatcmpl-stub-{state.calls}"
        model = str(body.get("model") or MODEL)
        if body.get("stream"):
            state.streamed += 1
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _stream(cid, model, content, usage if include_usage else None), media_type="text/event-stream"
            )
        return JSONResponse(
            {
                "id": cid,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                        "logprobs": None,
                    }
                ],
                "usage": usage,
            }
        )

    async def models(_request: Request) -> JSONResponse:
        return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0}]})

    async def stats(_request: Request) -> JSONResponse:
        return JSONResponse(state.stats())

    async def reset(_request: Request) -> JSONResponse:
        state.calls = state.streamed = 0
        state.by_prompt.clear()
        return JSONResponse(state.stats())

    async def config(request: Request) -> JSONResponse:
        body = await request.json()
        state.delay_ms = float(body.get("delay_ms", state.delay_ms))
        state.cpu_ms = float(body.get("cpu_ms", state.cpu_ms))
        return JSONResponse(state.stats()["config"])

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/stats", stats, methods=["GET"]),
            Route("/stats/reset", reset, methods=["POST"]),
            Route("/config", config, methods=["POST"]),
        ]
    )


async def _stream(cid: str, model: str, content: str, usage: dict[str, int] | None) -> AsyncIterator[bytes]:
    """The completion as OpenAI streams it: `data: {chunk}` events, the usage chunk if asked, `data: [DONE]`."""

    def chunk(delta: dict[str, Any], finish: str | None = None, use: dict[str, int] | None = None) -> bytes:
        payload: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [] if use else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if use:
            payload["usage"] = use
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": ""})
    for i in range(0, len(content), CHUNK_CHARS):
        yield chunk({"content": content[i : i + CHUNK_CHARS]})
    yield chunk({}, finish="stop")
    if usage:
        yield chunk({}, use=usage)
    yield b"data: [DONE]\n\n"


def listen(port: int = 0) -> socket.socket:
    """A listening loopback socket. IPPROTO_TCP so asyncio turns Nagle off (see bench.latency.free_socket)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class _Client:
    """What both kinds of stub share: the URL and the control endpoints."""

    port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with httpx.Client(trust_env=False, timeout=10) as http:
            data: dict[str, Any] = http.get(f"{self.root}/stats").raise_for_status().json()
            return data

    def reset(self) -> None:
        with httpx.Client(trust_env=False, timeout=10) as http:
            http.post(f"{self.root}/stats/reset").raise_for_status()

    def configure(self, delay_ms: float | None = None, cpu_ms: float | None = None) -> None:
        body = {k: v for k, v in (("delay_ms", delay_ms), ("cpu_ms", cpu_ms)) if v is not None}
        with httpx.Client(trust_env=False, timeout=10) as http:
            http.post(f"{self.root}/config", json=body).raise_for_status()


class StubModel(_Client):
    """The stub served by uvicorn in a thread of this process (it shares this process's GIL)."""

    def __init__(self, delay_ms: float = 0.0, cpu_ms: float = 0.0) -> None:
        self.state = StubState(delay_ms=delay_ms, cpu_ms=cpu_ms)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.pid = os.getpid()

    def start(self, timeout: float = 10.0) -> StubModel:
        sock = listen()
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(make_app(self.state), log_level="warning", lifespan="off", access_log=False)
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the stub model server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    @contextlib.contextmanager
    def running(self) -> Iterator[StubModel]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


class StubModelProcess(_Client):
    """The stub in a child process (`python -m bench.stub_model`): its CPU is its own, not the benchmark's."""

    def __init__(self, delay_ms: float = 0.0, cpu_ms: float = 0.0) -> None:
        self.delay_ms, self.cpu_ms = delay_ms, cpu_ms
        self.proc: subprocess.Popen[str] | None = None
        self.pid = 0

    def start(self, timeout: float = 30.0) -> StubModelProcess:
        cmd = [sys.executable, "-m", "bench.stub_model", "--delay-ms", str(self.delay_ms), "--cpu-ms", str(self.cpu_ms)]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.pid = self.proc.pid
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("listening on "):
                self.port = int(line.rsplit(":", 1)[1].split("/", 1)[0])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"the stub model process did not start (last line: {line!r})")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    @contextlib.contextmanager
    def running(self) -> Iterator[StubModelProcess]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.stub_model", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    p.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    p.add_argument("--delay-ms", type=float, default=0.0, help="sleep before answering (I/O mode)")
    p.add_argument("--cpu-ms", type=float, default=0.0, help="CPU time burnt before answering (contention mode)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sock = listen(args.port)
    state = StubState(delay_ms=args.delay_ms, cpu_ms=args.cpu_ms)
    server = uvicorn.Server(uvicorn.Config(make_app(state), log_level="warning", lifespan="off", access_log=False))

    async def serve() -> None:
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.01)
        sys.stdout.write(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/v1\n")
        sys.stdout.flush()
        await task

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
