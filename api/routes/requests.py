"""POST /v1/requests starts a RequestWorkflow; GET /v1/requests/{id} returns the result contract."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import names
from api.deps import AppState, CurrentPrincipal, State
from api.problems import Problem
from api.schemas import ConfirmRequest, RequestCreate, RequestView
from docket import temporal
from docket.contracts import ConfirmInput, ConfirmResult, Outcome, RequestInput, RequestResult, RequestStatus, Stage
from docket.db import Principal

router = APIRouter(prefix="/v1/requests", tags=["requests"])
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_WAIT_SECONDS = 60.0
QUERY_TIMEOUT_SECONDS = 2.0
STATUS_NAMES = {
    WorkflowExecutionStatus.RUNNING: "running",
    WorkflowExecutionStatus.COMPLETED: "completed",
    WorkflowExecutionStatus.FAILED: "failed",
    WorkflowExecutionStatus.TIMED_OUT: "failed",
    WorkflowExecutionStatus.TERMINATED: "failed",
    WorkflowExecutionStatus.CANCELED: "cancelled",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "running",
}


def _links(state: AppState, request: Request, wid: str) -> dict[str, str]:
    base = str(request.base_url).rstrip("/")
    return {
        "self": f"{base}/v1/requests/{wid}",
        "events": f"{base}/v1/requests/{wid}/events",
        "temporal_ui": temporal.ui_link(state.settings.namespace_ui_url, wid, temporal.namespace()),
    }


def request_id_for(principal: Principal, idempotency_key: str) -> str:
    """The workflow id of a keyed request, scoped to the principal so two clients' keys never collide."""
    scope = f"{principal.tenant}\x00{principal.id}\x00{idempotency_key}".encode()
    return "req-" + hashlib.blake2b(scope, digest_size=16).hexdigest()


def _fingerprint(principal: Principal, question: str, as_of: str) -> str:
    return hashlib.sha256(json.dumps([principal.id, question, as_of]).encode()).hexdigest()


async def _owned_handle(client: Client, wid: str, principal: Principal) -> tuple[WorkflowHandle[Any, Any], Any]:
    """The workflow, if it exists and belongs to the caller; otherwise 404 (never reveal others' requests)."""
    handle = client.get_workflow_handle(wid)
    not_found = Problem(
        404,
        "request-not-found",
        "No such request",
        detail=wid,
        hint="use the request_id returned by POST /v1/requests",
    )
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise not_found from exc
        raise Problem(
            503,
            "temporal-unavailable",
            "Temporal did not answer",
            detail=str(exc),
            hint="check `docket doctor`",
        ) from exc
    memo = await desc.memo()
    if desc.workflow_type != names.REQUEST_WORKFLOW or memo.get("principal") != principal.id:
        raise not_found
    return handle, desc


async def _view(
    state: AppState, request: Request, handle: WorkflowHandle[Any, Any], desc: Any, memo: Mapping[str, Any]
) -> RequestView:
    wid = handle.id
    status = STATUS_NAMES.get(desc.status, "running") if desc.status is not None else "running"
    links = _links(state, request, wid)
    if status == "completed":
        result = RequestResult.model_validate(await handle.result())
        return RequestView(
            **result.model_dump(exclude={"links", "status"}),
            status="completed",
            stage=Stage.DONE,
            links=links,
        )
    common: dict[str, Any] = {
        "request_id": wid,
        "links": links,
        "tenant": memo.get("tenant", ""),
        "principal_id": memo.get("principal", ""),
        "question": memo.get("question", ""),
        "as_of": date.fromisoformat(memo["as_of"]) if memo.get("as_of") else None,
    }
    if status == "running":
        try:
            # A query needs a worker; with none polling it would block for the server's default 30 s.
            st: RequestStatus = await handle.query(
                "status", result_type=RequestStatus, rpc_timeout=timedelta(seconds=QUERY_TIMEOUT_SECONDS)
            )
        except Exception:
            # The first workflow task has not run yet: nothing to query, the request is queued.
            st = RequestStatus(stage=Stage.QUEUED)
        if st.awaiting_confirmation is not None:
            common["links"] = {**links, "confirm": f"{links['self']}/confirm"}
        return RequestView(
            **common,
            status="running",
            stage=st.stage,
            timings=st.timings,
            awaiting_confirmation=st.awaiting_confirmation,
        )
    return RequestView(
        **common,
        status=status,
        outcome=Outcome.FAILED,
        limitations=[f"the workflow ended as {desc.status.name.lower() if desc.status else 'unknown'}"],
    )


@router.post(
    "",
    response_model=RequestView,
    status_code=200,
    responses={
        202: {"model": RequestView, "description": "accepted; still running"},
        401: {"description": "missing or invalid token"},
        409: {"description": "idempotency key reused"},
        413: {"description": "body too large"},
        422: {"description": "invalid request"},
    },
)
async def create_request(
    body: RequestCreate,
    request: Request,
    response: Response,
    state: State,
    principal: CurrentPrincipal,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_SECONDS, description="seconds to wait for the result")] = 0,
) -> RequestView | JSONResponse:
    """Ask a question. The same Idempotency-Key returns the same request and never starts a second run."""
    question = " ".join(body.question.split())
    if not question:
        raise Problem(
            422,
            "empty-question",
            "The question is empty",
            hint='send {"question": "What was revenue for MER-US last month?"}',
        )
    if len(question) > state.settings.max_question_chars:
        raise Problem(
            422,
            "question-too-long",
            "The question is too long",
            detail=f"{len(question)} characters; the limit is {state.settings.max_question_chars}",
            hint="ask one focused question at a time",
        )
    if idempotency_key is not None and not IDEMPOTENCY_KEY.fullmatch(idempotency_key):
        raise Problem(
            422,
            "invalid-idempotency-key",
            "The Idempotency-Key header is not valid",
            hint="use 1-128 characters from A-Z a-z 0-9 . _ : -, e.g. a UUID",
        )
    as_of = body.as_of or datetime.now(UTC).date()
    wid = request_id_for(principal, idempotency_key) if idempotency_key else "req-" + uuid.uuid4().hex
    # as_of as sent: a retry of a request that left it to the server stays the same request after midnight.
    fingerprint = _fingerprint(principal, question, body.as_of.isoformat() if body.as_of else "")
    client = await state.temporal()
    memo = {
        "principal": principal.id,
        "tenant": principal.tenant,
        "question": question,
        "as_of": as_of.isoformat(),
        "fingerprint": fingerprint,
    }
    try:
        handle: WorkflowHandle[Any, Any] = await client.start_workflow(
            names.REQUEST_WORKFLOW,
            RequestInput(
                tenant=principal.tenant,
                principal_id=principal.id,
                question=question,
                as_of=as_of,
                submitted_at=datetime.now(UTC),
                confirm_timeout_seconds=state.settings.confirm_timeout_seconds,
            ),
            id=wid,
            task_queue=state.settings.task_queue,
            # A finished request is never re-run under its key; one whose run failed may be retried.
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            memo=memo,
            static_summary=f"{principal.id}: {question[:120]}",
        )
    except WorkflowAlreadyStartedError:
        handle = client.get_workflow_handle(wid)
        desc = await handle.describe()
        existing = await desc.memo()
        if existing.get("fingerprint") != fingerprint:
            raise Problem(
                409,
                "idempotency-key-reused",
                "This Idempotency-Key was used for a different request",
                detail=f"request {wid} exists with another question, principal or as_of",
                hint="use a new Idempotency-Key for a new question",
            ) from None
    except RPCError as exc:
        raise Problem(
            503,
            "temporal-unavailable",
            "Temporal did not accept the request",
            detail=str(exc),
            hint="check `docket doctor`",
        ) from exc
    if wait > 0:
        try:
            await asyncio.wait_for(handle.result(), timeout=wait)
        except TimeoutError:
            pass
        except Exception:
            # A failed workflow is reported by the view below, not as a gateway error.
            pass
    desc = await handle.describe()
    view = await _view(state, request, handle, desc, await desc.memo())
    if view.status == "running":
        return JSONResponse(view.model_dump(mode="json"), status_code=202, headers={"Location": view.links["self"]})
    response.headers["Location"] = view.links["self"]
    return view


@router.get("/{request_id}", response_model=RequestView, responses={404: {"description": "no such request"}})
async def get_request(request_id: str, request: Request, state: State, principal: CurrentPrincipal) -> RequestView:
    """The result contract; status and current stage while the request runs."""
    client = await state.temporal()
    handle, desc = await _owned_handle(client, request_id, principal)
    return await _view(state, request, handle, desc, await desc.memo())


@router.get("/{request_id}/events", responses={200: {"content": {"text/event-stream": {}}}})
async def request_events(
    request_id: str, request: Request, state: State, principal: CurrentPrincipal
) -> StreamingResponse:
    """Server-sent events: one `stage` event per stage change, then one `result` event."""
    client = await state.temporal()
    handle, _ = await _owned_handle(client, request_id, principal)

    async def stream() -> AsyncIterator[bytes]:
        last: Stage | None = None
        while True:
            d = await handle.describe()
            view = await _view(state, request, handle, d, await d.memo())
            if view.status != "running":
                yield b"event: result\ndata: " + view.model_dump_json().encode() + b"\n\n"
                return
            if view.stage != last:
                last = view.stage
                yield (
                    b"event: stage\ndata: " + json.dumps({"stage": last, "timings": view.timings}).encode() + b"\n\n"
                )
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.25)

    return StreamingResponse(stream(), media_type="text/event-stream")


@router.post(
    "/{request_id}/confirm",
    response_model=RequestView,
    responses={404: {"description": "no such request"}, 409: {"description": "not waiting for confirmation"}},
)
async def confirm_request(
    request_id: str, body: ConfirmRequest, request: Request, state: State, principal: CurrentPrincipal
) -> RequestView:
    """Confirm (or correct, or reject) what Docket understood; the request then continues."""
    client = await state.temporal()
    handle, desc = await _owned_handle(client, request_id, principal)
    try:
        data = ConfirmInput(**body.model_dump())
    except ValueError as exc:
        raise Problem(
            422,
            "invalid-confirmation",
            "The confirmation is not valid",
            detail=str(exc),
            hint="entities are codes such as MER-DE; periods look like 2026-03, 2026-Q2, 2026-H1 or 2026",
        ) from exc
    try:
        await handle.execute_update("confirm", data, result_type=ConfirmResult, rpc_timeout=timedelta(seconds=10))
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        detail = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        raise Problem(
            409,
            "not-awaiting-confirmation",
            "This request is not waiting for a confirmation",
            detail=detail,
            hint=f"GET {request.url_for('get_request', request_id=request_id)} shows its stage",
        ) from exc
    except RPCError as exc:
        raise Problem(
            409,
            "not-awaiting-confirmation",
            "This request is not waiting for a confirmation",
            detail=exc.message,
            hint="only a running request in the confirm stage accepts one",
        ) from exc
    desc = await handle.describe()
    return await _view(state, request, handle, desc, await desc.memo())
