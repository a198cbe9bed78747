"""A real OpenAI-compatible HTTP server for tests: Starlette served by uvicorn on 127.0.0.1, in a thread.

Each test says how the next chat completion is answered (a JSON answer, plain text, or an HTTP error) and can
read back the requests the server received. Only the endpoints Docket uses are implemented:
POST /v1/chat/completions (plain or `stream: true`), POST /v1/embeddings and GET /v1/models.

Embeddings are a hashed bag of words (EMBEDDING_DIM wide, unit length): texts sharing words get similar vectors,
which is all a test of the plumbing needs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import socket
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    503: "server_error",
}


EMBEDDING_DIM = 64


def hashed_embedding(text: str) -> list[float]:
    vec = [0.0] * EMBEDDING_DIM
    for word in text.lower().split():
        vec[int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % EMBEDDING_DIM] += 1.0
    norm = math.sqrt(sum(x * x for x in vec)) or 1.0
    return [x / norm for x in vec]


def model_answer(
    answer: str, fact_ids: list[str] | None = None, doc_ids: list[str] | None = None, confidence: float = 0.8
) -> dict[str, Any]:
    """A reply in the shape the generator asks for (activities/llm/engine.py ModelAnswer)."""
    return {"answer": answer, "fact_ids": fact_ids or [], "doc_ids": doc_ids or [], "confidence": confidence}


def model_answer_json(answer: str, fact_ids: list[str] | None = None, doc_ids: list[str] | None = None) -> str:
    return json.dumps(model_answer(answer, fact_ids, doc_ids))


@dataclass
class Reply:
    """How the server answers the next chat completion."""

    content: str = '{"answer": "ok", "fact_ids": [], "doc_ids": [], "confidence": 0.5}'
    status: int = 200
    model: str = "stub-model-1"
    headers: dict[str, str] = field(default_factory=dict)
    # Seconds to wait before answering: longer than the client's timeout makes a timeout.
    delay: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Streamed replies (`stream: true`): the content goes out in pieces of this many characters, one SSE event
    # each; with `drop_after` set, the connection is cut after that many pieces (a dropped connection). A whole
    # reply with `drop_after` set is cut after that many pieces of its JSON body.
    chunk_chars: int = 8
    drop_after: int | None = None


class _Dropped(Exception):
    """Raised inside a streaming body to make uvicorn abort the connection mid-response."""


@dataclass
class StubOpenAI:
    """The server and its per-test behaviour; start() once, configure with the reply_* / fail methods."""

    host: str = "127.0.0.1"
    reply: Reply = field(default_factory=Reply)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Replies used once each, in order, before falling back to `reply` (e.g. an invalid answer, then a repair).
    queue: list[Reply] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _counter: int = 0
    embedding_requests: list[dict[str, Any]] = field(default_factory=list)
    embeddings_status: int = 200

    # ------------------------------------------------------------------ behaviour

    def reset(self) -> None:
        self.reply = Reply()
        self.requests.clear()
        self.queue.clear()

    def reply_json(self, payload: dict[str, Any], *, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        self.reply = Reply(
            content=json.dumps(payload), prompt_tokens=prompt_tokens, completion_tokens=completion_tokens
        )

    def reply_text(self, text: str, *, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        self.reply = Reply(content=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def fail(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.reply = Reply(status=status, headers=headers or {})

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------------ endpoints

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"body": body, "headers": dict(request.headers), "at": time.monotonic()})
        reply = self.queue.pop(0) if self.queue else self.reply
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            return JSONResponse(
                {
                    "error": {
                        "message": f"stub failure {reply.status}",
                        "type": ERROR_TYPES.get(reply.status, "server_error"),
                        "param": None,
                        "code": str(reply.status),
                    }
                },
                status_code=reply.status,
                headers=reply.headers,
            )
        self._counter += 1
        if body.get("stream"):
            return self._stream(reply, include_usage=bool((body.get("stream_options") or {}).get("include_usage")))
        whole: dict[str, Any] = {
            "id": f"chatcmpl-stub-{self._counter}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }
        if reply.drop_after is not None:
            return self._cut(json.dumps(whole).encode(), reply.drop_after * reply.chunk_chars)
        return JSONResponse(whole)

    def _cut(self, body: bytes, keep: int) -> StreamingResponse:
        """A whole JSON reply whose connection drops after `keep` bytes (announced at full length)."""

        async def send() -> AsyncIterator[bytes]:
            yield body[:keep]
            await asyncio.sleep(0)
            raise _Dropped("connection dropped by the fault injector")

        return StreamingResponse(send(), media_type="application/json", headers={"Content-Length": str(len(body))})

    def _stream(self, reply: Reply, *, include_usage: bool) -> StreamingResponse:
        """The chat completion as OpenAI streams it: `data: {chunk}` events, a usage chunk, then `data: [DONE]`."""
        cid = f"chatcmpl-stub-{self._counter}"

        def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
            payload: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": reply.model,
                "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            }
            if usage:
                payload["usage"] = usage
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        async def body() -> Any:
            yield chunk({"role": "assistant", "content": ""})
            pieces = [reply.content[i : i + reply.chunk_chars] for i in range(0, len(reply.content), reply.chunk_chars)]
            for n, piece in enumerate(pieces):
                if reply.drop_after is not None and n >= reply.drop_after:
                    raise _Dropped("connection dropped by the fault injector")
                yield chunk({"content": piece})
                await asyncio.sleep(0)
            yield chunk({}, finish="stop")
            if include_usage:
                yield chunk(
                    {},
                    usage={
                        "prompt_tokens": reply.prompt_tokens,
                        "completion_tokens": reply.completion_tokens,
                        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                    },
                )
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    async def _embeddings(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.embedding_requests.append(body)
        if self.embeddings_status != 200:
            return JSONResponse(
                {"error": {"message": "stub failure", "type": "server_error", "param": None, "code": None}},
                status_code=self.embeddings_status,
            )
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = [{"object": "embedding", "index": i, "embedding": hashed_embedding(t)} for i, t in enumerate(inputs)]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", ""),
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            }
        )

    async def _models(self, _request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "object": "list",
                "data": [{"id": self.reply.model, "object": "model", "created": 0, "owned_by": "docket-tests"}],
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/embeddings", self._embeddings, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 10.0) -> StubOpenAI:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        server = self._server
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the stub OpenAI server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
