"""RFC 9457 problem details: every error the gateway returns, with a hint and never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("docket.api")
PROBLEM_BASE = "https://docket.dev/problems/"
MEDIA_TYPE = "application/problem+json"


class Problem(Exception):
    """An error with a stable type slug, a title, and a hint naming the fix."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str = "",
        hint: str = "",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.slug, self.title, self.detail, self.hint = status, slug, title, detail, hint
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    status: int,
    slug: str,
    title: str,
    detail: str = "",
    hint: str = "",
    instance: str = "",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if hint:
        body["hint"] = hint
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status, exc.slug, exc.title, exc.detail, exc.hint, request.url.path, exc.headers, **exc.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return problem_response(
                400,
                "malformed-json",
                "The request body is not valid JSON",
                detail=str(errors[0].get("msg", "")),
                hint='send a JSON object such as {"question": "What was revenue for MER-US '
                'last month?"} with Content-Type: application/json',
                instance=request.url.path,
            )
        fields = [{"loc": [str(p) for p in e.get("loc", [])], "msg": e.get("msg", "")} for e in errors]
        first = fields[0] if fields else {"loc": [], "msg": ""}
        return problem_response(
            422,
            "invalid-request",
            "The request is not valid",
            detail=f"{'.'.join(first['loc'])}: {first['msg']}",
            hint="see the request schema at /docs",
            instance=request.url.path,
            errors=fields,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(
            exc.status_code, slug, str(exc.detail), instance=request.url.path, headers=dict(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(
            500,
            "internal-error",
            "Internal error",
            hint="the server log has the details; retry, and report it if it persists",
            instance=request.url.path,
        )


class BodyLimitMiddleware:
    """Reject bodies over a size limit before they are read into memory (413 problem+json)."""

    def __init__(self, app: Any, max_bytes: int, overrides: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = overrides or {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        path = scope.get("path", "")
        limit = next((n for prefix, n in self.overrides.items() if path.startswith(prefix)), self.max_bytes)
        too_big = problem_response(
            413,
            "body-too-large",
            "The request body is too large",
            detail=f"the limit is {limit} bytes",
            hint="questions are short; send at most a few KB"
            if limit == self.max_bytes
            else "split the document, or raise DOCKET_MAX_DOCUMENT_BYTES",
            instance=path,
        )
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_big(scope, receive, send)
            return
        received = 0
        buffered: list[dict[str, Any]] = []
        # Without a trustworthy Content-Length, read up to the limit before the app sees anything.
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > limit:
                await too_big(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            if buffered:
                return buffered.pop(0)
            message: dict[str, Any] = await receive()
            return message

        await self.app(scope, replay, send)
