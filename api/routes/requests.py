"""POST /v1/requests starts a RequestWorkflow; GET /v1/requests/{id} returns the result contract."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities import names
from api.deps import AppState, CurrentPrincipal, State
from api.problems import PROBLEM_BASE, Problem
from api.routes.usage import enforce_budget
from api.schemas import ConfirmRequest, RequestCreate, RequestView
from docket import temporal
from docket.contracts import (
    SA_PRINCIPAL,
    SA_TENANT,
    ConfirmInput,
    ConfirmResult,
    Outcome,
    RequestInput,
    RequestResult,
    RequestStatus,
    Stage,
    StagePlacement,
    StreamEvent,
)
from docket.db import Principal

router = APIRouter(prefix="/v1/requests", tags=["requests"])
log = logging.getLogger("docket.api")
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
        "view": f"{base}/v1/requests/{wid}/view",
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


def _completed(request: Request, result: RequestResult, links: dict[str, str]) -> RequestView:
    base = str(request.base_url).rstrip("/")
    result.citations = [c.model_copy(update={"url": f"{base}/v1/documents/{c.doc_id}"}) for c in result.citations]
    return RequestView(
        **result.model_dump(exclude={"links", "status"}),
        status="completed",
        stage=Stage.DONE,
        links=links,
    )


async def _start_and_wait(client: Client, start: WithStartWorkflowOperation[Any, Any], wait: float) -> Any:
    """Start the run with its `result` update and wait up to `wait` seconds in all for its result (None: not yet,
    or the run closed without one, or the start's answer did not come in time; the caller's view of the run, whose
    id it chose, says which).

    The start returns once the update is accepted, which the worker does in the run's first workflow task (after
    the local stages); with no worker polling, Temporal would keep the call waiting, so it is bounded by `wait` too.
    """
    t0 = time.monotonic()
    try:
        accepted = await asyncio.wait_for(
            client.start_update_with_start_workflow(
                "result",
                start_workflow_operation=start,
                wait_for_stage=WorkflowUpdateStage.ACCEPTED,
                result_type=RequestResult,
            ),
            timeout=wait,
        )
    except (TimeoutError, RPCTimeoutOrCancelledError):
        # The SDK reports a call it had to cancel as its own error, not TimeoutError.
        return None
    try:
        return await asyncio.wait_for(accepted.result(), timeout=max(0.0, wait - (time.monotonic() - t0)))
    except (TimeoutError, RPCTimeoutOrCancelledError):
        return None
    except (WorkflowUpdateFailedError, RPCError):
        # The run closed without a result (a failed record stage), or went away under the update (terminated,
        # timed out): it was started, so the caller answers with its view rather than a gateway error.
        return None


async def _view(
    state: AppState, request: Request, handle: WorkflowHandle[Any, Any], desc: Any, memo: Mapping[str, Any]
) -> RequestView:
    wid = handle.id
    status = STATUS_NAMES.get(desc.status, "running") if desc.status is not None else "running"
    links = _links(state, request, wid)
    if status == "completed":
        return _completed(request, RequestResult.model_validate(await handle.result()), links)
    common: dict[str, Any] = {
        "request_id": wid,
        "links": links,
        "tenant": memo.get("tenant", ""),
        "principal_id": memo.get("principal", ""),
        "question": memo.get("question", ""),
        "as_of": date.fromisoformat(memo["as_of"]) if memo.get("as_of") else None,
    }
    if status == "running":
        raw = desc.raw_description
        if raw.HasField("pending_workflow_task"):
            # The server answers a query only between workflow tasks: with one scheduled or running (with the
            # local stage placement most stages run inside one) it holds the query until that task completes, so
            # asking would cost this poll seconds. Queued if nothing has run yet (history: started, scheduled),
            # else running with the stage unknown at this instant; the next poll, or the event stream, has it.
            queued = raw.workflow_execution_info.history_length <= 2
            return RequestView(**common, status="running", stage=Stage.QUEUED if queued else None)
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
        429: {"description": "daily model budget exhausted (Retry-After)"},
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
    # Before anything starts: an over-budget request must not reach the model (429 with Retry-After).
    await enforce_budget(state, client, principal, wid, keyed=idempotency_key is not None)
    memo = {
        "principal": principal.id,
        "tenant": principal.tenant,
        "question": question,
        "as_of": as_of.isoformat(),
        "fingerprint": fingerprint,
    }
    start = RequestInput(
        tenant=principal.tenant,
        principal_id=principal.id,
        question=question,
        as_of=as_of,
        submitted_at=datetime.now(UTC),
        confirm_timeout_seconds=state.settings.confirm_timeout_seconds,
        stages=StagePlacement(state.settings.stage_placement),
        # A client that waits in the POST reads the result, not the prose as it is written.
        stream_tokens=wait == 0,
    )
    # Searchable from the first moment, at no cost in history (the run adds the rest in one upsert).
    who = TypedSearchAttributes(
        [SearchAttributePair(SA_TENANT, principal.tenant), SearchAttributePair(SA_PRINCIPAL, principal.id)]
    )
    summary = f"{principal.id}: {question[:120]}"
    # Update-with-start answers a keyless `?wait` in one call (start, then the `result` update's outcome). A keyed
    # request keeps the plain start: a retry must find the run it started, and its conflict rules (409 on another
    # question) are checked on the existing run's memo.
    by_update = wait > 0 and state.settings.wait_via_update and idempotency_key is None
    done: Any = None
    waited = False
    try:
        if by_update:
            waited = True
            done = await _start_and_wait(
                client,
                WithStartWorkflowOperation(
                    names.REQUEST_WORKFLOW,
                    start,
                    id=wid,
                    task_queue=state.settings.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    memo=memo,
                    static_summary=summary,
                    search_attributes=who,
                ),
                wait,
            )
            handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(wid)
        else:
            handle = await client.start_workflow(
                names.REQUEST_WORKFLOW,
                start,
                id=wid,
                task_queue=state.settings.task_queue,
                # A finished request is never re-run under its key; one whose run failed may be retried.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                memo=memo,
                static_summary=summary,
                request_eager_start=state.settings.eager_start,
                search_attributes=who,
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
        if exc.status == RPCStatusCode.INVALID_ARGUMENT and (
            "no mapping defined for search attribute" in str(exc) or "is not defined" in str(exc)
        ):
            # A namespace no worker has prepared yet (the worker registers them at start-up).
            raise Problem(
                503,
                "search-attributes-missing",
                "Temporal's namespace lacks Docket's search attributes",
                detail=str(exc),
                hint="start a worker once (it registers them), or run `temporal operator search-attribute create "
                "--namespace <ns> --name DocketTenant --type Keyword` for each of DocketTenant, DocketPrincipal, "
                "DocketIntent, DocketComplexity, DocketOutcome (Temporal Cloud: `tcld namespace search-attributes "
                "add`)",
            ) from exc
        raise Problem(
            503,
            "temporal-unavailable",
            "Temporal did not accept the request",
            detail=str(exc),
            hint="check `docket doctor`",
        ) from exc
    if wait > 0 and not waited:
        try:
            done = await asyncio.wait_for(handle.result(), timeout=wait)
        except TimeoutError:
            pass
        except Exception:
            # A failed workflow is reported by the view below, not as a gateway error.
            pass
    if done is not None:
        # The result is in hand: answer from it, without describing the run and fetching it a second time.
        view = _completed(request, RequestResult.model_validate(done), _links(state, request, wid))
        response.headers["Location"] = view.links["self"]
        return view
    try:
        desc = await handle.describe()
    except RPCError as exc:
        if not (waited and exc.status == RPCStatusCode.NOT_FOUND):
            raise
        # An update-with-start whose wait ran out before Temporal answered the start: nothing runs under this id.
        raise Problem(
            503,
            "request-not-started",
            "The request was not started in time",
            detail=f"Temporal had not started {wid} after {wait:g} s",
            hint="send it again with a longer wait, or with an Idempotency-Key so that a retry can never start it "
            "twice; `docket doctor` checks that a worker is polling",
        ) from exc
    view = await _view(state, request, handle, desc, await desc.memo())
    if view.status == "running":
        return JSONResponse(view.model_dump(mode="json"), status_code=202, headers={"Location": view.links["self"]})
    response.headers["Location"] = view.links["self"]
    return view


@router.get("/{request_id}", response_model=RequestView, responses={404: {"description": "no such request"}})
async def get_request(request_id: str, request: Request, state: State, principal: CurrentPrincipal) -> RequestView:
    """The result contract; status and current stage while the request runs."""
    return await owned_view(state, request, request_id, principal)


async def owned_view(state: AppState, request: Request, request_id: str, principal: Principal) -> RequestView:
    """The caller's request as GET /v1/requests/{id} returns it (404 for anyone else's); the HTML view uses it too."""
    client = await state.temporal()
    handle, desc = await _owned_handle(client, request_id, principal)
    return await _view(state, request, handle, desc, await desc.memo())


# ---------------------------------------------------------------- events (SSE)

# Proxies close idle connections after 30-60 s; a comment line every 15 s keeps a request that waits (for a
# confirmation, or a slow model) open, and surfaces a client that went away.
KEEPALIVE_SECONDS = 15.0
KEEPALIVE_FRAME = b": keep-alive\n\n"
# How soon an EventSource reconnects after a dropped connection (the SSE `retry:` field).
RECONNECT_MS = 1000
# After the workflow published its `result` event, the run closes within the same workflow task.
RESULT_WAIT_SECONDS = 10.0
STATUS_POLL_SECONDS = 0.25
CLOSED = frozenset(
    {
        WorkflowExecutionStatus.COMPLETED,
        WorkflowExecutionStatus.FAILED,
        WorkflowExecutionStatus.CANCELED,
        WorkflowExecutionStatus.TERMINATED,
        WorkflowExecutionStatus.TIMED_OUT,
    }
)
_T = TypeVar("_T")


def _sse(kind: str, data: str, event_id: int | None = None) -> bytes:
    """One SSE frame; `data` is single-line JSON (pydantic's model_dump_json never writes a newline)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {data}\n\n".encode()


def _resume_from(header: str | None, query: int | None) -> int:
    """The first stream offset the client lacks: one past its Last-Event-ID (the header wins over the query,
    because an EventSource reconnects to the same URL with a newer header)."""
    raw: str | int | None = header.strip() if header and header.strip() else query
    if raw is None:
        return 0
    try:
        last = int(raw)
    except ValueError:
        last = -1
    if last < 0:
        raise Problem(
            422,
            "invalid-last-event-id",
            "Last-Event-ID is not an event id of this stream",
            detail=f"got {raw!r}",
            hint="set Last-Event-ID (or ?last_event_id=) to the `id:` of the last event you received, a number; "
            "leave it out to read from the start",
        )
    return last + 1


async def _with_keepalive(items: AsyncIterator[_T], every: float) -> AsyncIterator[_T | None]:
    """`items`, with None whenever `every` seconds pass without one (the caller then sends a keep-alive)."""
    pending: asyncio.Task[_T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(items))
            done, _ = await asyncio.wait({pending}, timeout=every)
            if not done:
                yield None
                continue
            finished, pending = pending, None
            try:
                item = finished.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        # A client that went away cancels this generator: stop the long poll it was waiting on.
        if pending is not None:
            pending.cancel()


async def _final_view(state: AppState, request: Request, handle: WorkflowHandle[Any, Any]) -> RequestView:
    """The result contract as GET returns it, once the run has closed."""
    # A failed, cancelled or still running request is described by the view itself.
    with contextlib.suppress(Exception):
        await asyncio.wait_for(handle.result(), RESULT_WAIT_SECONDS)
    desc = await handle.describe()
    return await _view(state, request, handle, desc, await desc.memo())


async def _status_stages(state: AppState, request: Request, handle: WorkflowHandle[Any, Any]) -> AsyncIterator[bytes]:
    """Stage changes read through the `status` query, for a run whose worker predates the stream.

    These frames carry no id: they cannot be resumed, only re-read from the current stage.
    """
    last: Stage | None = None
    quiet = 0.0
    while True:
        desc = await handle.describe()
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return
        view = await _view(state, request, handle, desc, await desc.memo())
        # No stage at this instant (a workflow task in progress) is not a change of stage.
        if view.stage is not None and view.stage != last:
            last, quiet = view.stage, 0.0
            yield _sse("stage", StreamEvent(kind="stage", stage=view.stage, timings=view.timings).model_dump_json())
        elif quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield KEEPALIVE_FRAME
        await asyncio.sleep(STATUS_POLL_SECONDS)
        quiet += STATUS_POLL_SECONDS


async def _event_frames(
    state: AppState, request: Request, client: Client, handle: WorkflowHandle[Any, Any], desc: Any, start: int
) -> AsyncIterator[bytes]:
    """The request's stream from offset `start`: every event once, in order, then the result; see docs/generation.md."""
    yield f"retry: {RECONNECT_MS}\n\n".encode()
    stream = WorkflowStreamClient.create(client, handle.id)
    # One past the highest offset seen: the id of a result event this route has to make up (see below).
    end: int | None = None
    if desc.status in CLOSED:
        # A closed run's stream is read by a query, which needs a worker to replay the run; ask once, briefly,
        # so that without a worker the client still gets the result instead of waiting on a query.
        try:
            end = await asyncio.wait_for(stream.get_offset(), QUERY_TIMEOUT_SECONDS)
        except Exception as exc:
            log.info("events of %s: stream not readable (%r); sending the result only", handle.id, exc)
            view = await _final_view(state, request, handle)
            yield _sse("result", view.model_dump_json(), start)
            return
    try:
        # Re-read the event the client already has (offset start-1) to learn whether it was the last one.
        items = stream.subscribe(from_offset=max(start - 1, 0), result_type=StreamEvent)
        async for item in _with_keepalive(items, KEEPALIVE_SECONDS):
            if item is None:
                yield KEEPALIVE_FRAME
                continue
            end = item.offset + 1
            event = item.data
            if item.offset < start:
                if event.kind == "result":
                    return  # the client has every event
                continue
            if event.kind == "result":
                # The workflow's result event carries the outcome; the client gets the whole result contract.
                view = await _final_view(state, request, handle)
                yield _sse("result", view.model_dump_json(), item.offset)
                return
            yield _sse(event.kind, event.model_dump_json(exclude_defaults=True), item.offset)
    except WorkflowUpdateFailedError as exc:
        # The running run's worker has no stream handlers (it predates them): follow the stages as before.
        log.info("events of %s: no stream on this run (%s); following its status", handle.id, exc)
        async for frame in _status_stages(state, request, handle):
            yield frame
    except Exception as exc:  # headers are sent: the client learns of the failure in-band, as a problem
        log.warning("events of %s: stream broke off: %r", handle.id, exc, exc_info=not isinstance(exc, RPCError))
        problem = {
            "type": PROBLEM_BASE + "event-stream-interrupted",
            "title": "The event stream was interrupted",
            "status": 503,
            "detail": str(exc),
            "hint": "reconnect with the Last-Event-ID header set to the last id you received; `docket doctor` "
            "checks Temporal",
        }
        yield _sse("error", json.dumps(problem))
        return
    # The run closed without a result event (cancelled, terminated, timed out, or no stream on it): make one up,
    # with the next free offset as its id, unless the client already has it.
    end = start if end is None else end
    if start > end:
        return
    view = await _final_view(state, request, handle)
    yield _sse("result", view.model_dump_json(), end)


@router.get(
    "/{request_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "stage, token, reset and result events"},
        404: {"description": "no such request"},
        422: {"description": "invalid Last-Event-ID"},
    },
)
async def request_events(
    request_id: str,
    request: Request,
    state: State,
    principal: CurrentPrincipal,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[
        int | None, Query(ge=0, description="resume after this event id (for clients that cannot set headers)")
    ] = None,
) -> StreamingResponse:
    """Server-sent events: `stage`, `token` and `reset` events as they happen, then one `result` event carrying
    the result contract. Each event's `id` is its offset in the request's stream: reconnect with
    `Last-Event-ID` (or `?last_event_id=`) to receive every later event exactly once."""
    start = _resume_from(last_event_id_header, last_event_id)
    client = await state.temporal()
    handle, desc = await _owned_handle(client, request_id, principal)
    return StreamingResponse(
        _event_frames(state, request, client, handle, desc, start),
        media_type="text/event-stream",
        # Proxies must pass each event on at once, never cache or buffer the stream.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


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
