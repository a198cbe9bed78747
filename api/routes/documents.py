"""POST/DELETE/GET /v1/documents: documents enter and leave the index only through an authorized IngestWorkflow."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlmodel import Session
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.service import RPCError

from activities import names
from activities.authorize.activity import AuthorizeActivities
from activities.authorize.documents import DocumentAuthorizer, DocumentChange, planned_changes
from api.deps import AppState, CurrentPrincipal, State
from api.problems import Problem
from docket import ingest, temporal
from docket.catalog import load_catalog
from docket.contracts import IndexDocumentsResult, IngestInput
from docket.db import Document, Principal

router = APIRouter(prefix="/v1/documents", tags=["documents"])
TEXT_TYPES = {"text/markdown", "text/x-markdown", "text/plain"}
WAIT_SECONDS = 120.0
_authorizer = DocumentAuthorizer()


class IngestView(BaseModel):
    """What an ingestion did: documents stored (changed/unchanged/deleted), chunks indexed, chunks flagged."""

    ingest_id: str
    status: str
    tenant: str
    changed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    chunks: int = 0
    index_version: str = ""
    flagged_chunks: list[str] = Field(default_factory=list)
    links: dict[str, str] = Field(default_factory=dict)


class DocumentView(BaseModel):
    doc_id: str
    title: str
    classification: str
    entities: list[str]
    version: int
    updated_at: str


class DocumentDetail(DocumentView):
    """A document with its text (GET /v1/documents/{doc_id})."""

    body: str


def _denied(reasons: list[str], policies: list[str]) -> Problem:
    return Problem(
        403,
        "document-change-denied",
        "You may not change these documents",
        detail="; ".join(reasons),
        hint="document managers (cfo, finance_director, admin, content_admin) add documents up to their clearance",
        policies=policies,
    )


def _early_check(principal: Principal, changes: list[DocumentChange]) -> None:
    """The same Cedar decision the workflow makes, taken first so a refusal is a plain 403 and nothing is staged."""
    decision = _authorizer.decide(principal, changes)
    if not decision.allowed:
        raise _denied(decision.reasons, decision.policies)


async def _run_ingest(state: AppState, data: IngestInput, wait: bool) -> IngestView:
    client = await state.temporal()
    wid = f"ingest-{data.tenant}-{uuid.uuid4().hex[:16]}"
    links = {"temporal_ui": temporal.ui_link(state.settings.namespace_ui_url, wid, temporal.namespace())}
    try:
        handle = await client.start_workflow(
            names.INGEST_WORKFLOW,
            data,
            id=wid,
            task_queue=state.settings.task_queue,
            result_type=IndexDocumentsResult,
        )
    except RPCError as exc:
        raise Problem(
            503,
            "temporal-unavailable",
            "Temporal did not accept the ingestion",
            detail=str(exc),
            hint="check the stack with `docket doctor`, then send the document again",
        ) from exc
    if not wait:
        return IngestView(ingest_id=wid, status="running", tenant=data.tenant, links=links)
    try:
        result: IndexDocumentsResult = await asyncio.wait_for(handle.result(), timeout=WAIT_SECONDS)
    except TimeoutError:
        return IngestView(ingest_id=wid, status="running", tenant=data.tenant, links=links)
    except WorkflowFailureError as exc:
        cause = exc.cause.cause if isinstance(exc.cause, ActivityError) else exc.cause
        if isinstance(cause, ApplicationError) and cause.type == "DocumentChanged":
            raise Problem(
                409,
                "document-changed",
                "The document changed while this ingestion ran",
                detail=cause.message,
                hint="send it again: it is authorized against the current version",
                links=links,
            ) from exc
        raise Problem(
            500,
            "ingest-failed",
            "Ingestion failed",
            detail=str(exc.cause or exc),
            hint="see the run in the Temporal UI",
            links=links,
        ) from exc
    if result.denied:
        # The workflow's own refusal reads like the early one: same hint, the policies that decided.
        raise _denied(result.reasons, result.policies)
    return IngestView(
        ingest_id=wid,
        status="completed",
        tenant=data.tenant,
        changed=result.changed,
        unchanged=result.unchanged,
        deleted=result.deleted,
        chunks=result.chunks,
        index_version=result.version,
        flagged_chunks=result.flagged_chunks,
        links=links,
    )


@router.post(
    "",
    status_code=200,
    response_model=IngestView,
    responses={
        403: {"description": "not a document manager, or above your clearance"},
        413: {"description": "document too large"},
        415: {"description": "not markdown or plain text"},
        422: {"description": "front matter invalid"},
    },
)
async def add_document(
    request: Request,
    state: State,
    principal: CurrentPrincipal,
    filename: Annotated[str, Query(max_length=200, description="file name, used when the front matter has no id")] = "",
    wait: bool = True,
) -> IngestView:
    """Add or replace one document (markdown or plain text with front matter) in your tenant and index it."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in TEXT_TYPES:
        raise Problem(
            415,
            "unsupported-document-type",
            "Documents are markdown or plain text",
            detail=f"Content-Type {content_type or '(none)'}",
            hint="send the file with Content-Type: text/markdown (or text/plain), UTF-8",
        )
    raw = await request.body()
    limit = state.settings.max_document_bytes
    if len(raw) > limit:
        raise Problem(
            413,
            "document-too-large",
            "The document is too large",
            detail=f"the limit is {limit} bytes",
            hint="split the document, or raise DOCKET_MAX_DOCUMENT_BYTES",
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(
            415, "unsupported-document-type", "The document is not UTF-8 text", hint="save it as UTF-8 markdown or text"
        ) from exc
    name = filename or "upload.md"
    try:
        doc = ingest.parse_document_text(name, text)
    except ingest.IngestError as exc:
        raise Problem(
            422, "invalid-document", "The document cannot be ingested", detail=exc.message, hint=exc.hint
        ) from exc
    if doc["tenant"] != principal.tenant:
        raise Problem(
            403,
            "document-change-denied",
            "You may not change these documents",
            detail=f"the document names tenant {doc['tenant']!r}; you belong to {principal.tenant!r}",
            hint="documents are added to your own tenant",
            policies=["DOC-003"],
        )
    _early_check(principal, planned_changes(state.engine, principal.tenant, [doc], []))
    upload_ids = ingest.stage_uploads(state.engine, principal.tenant, principal.id, [(name, text)])
    try:
        return await _run_ingest(
            state, IngestInput(tenant=principal.tenant, principal_id=principal.id, upload_ids=upload_ids), wait
        )
    except Problem as exc:
        if exc.status == 503:
            # Nothing half-done: a staged upload whose workflow never started is removed again.
            ingest.discard_uploads(state.engine, upload_ids)
        raise


@router.delete("/{doc_id}", response_model=IngestView, responses={403: {"description": "not allowed"}, 404: {}})
async def delete_document(state: State, principal: CurrentPrincipal, doc_id: str) -> IngestView:
    """Delete a document of your tenant from the database and from every index version."""
    with Session(state.engine) as session:
        stored = session.get(Document, (principal.tenant, doc_id))
    visible = stored is not None and ingest.CLEARANCES.index(stored.classification) <= _clearance(principal)
    if stored is None or not visible:
        # A document above your clearance is reported as absent, like one that does not exist.
        raise Problem(
            404, "document-not-found", "No such document", detail=doc_id, hint="GET /v1/documents lists yours"
        )
    _early_check(principal, [DocumentChange(principal.tenant, doc_id, stored.classification, "delete_document")])
    return await _run_ingest(
        state, IngestInput(tenant=principal.tenant, principal_id=principal.id, delete_doc_ids=[doc_id]), True
    )


def _clearance(principal: Principal) -> int:
    return ingest.CLEARANCES.index(principal.clearance) if principal.clearance in ingest.CLEARANCES else 0


# One policy reader per database: the tenant's active Cedar policy set decides which entities a principal reads.
_readers: dict[int, AuthorizeActivities] = {}


@dataclass(frozen=True)
class _Reading:
    """What the tenant's active Cedar policies let a principal read: the highest document classification and
    the entities (the same decisions document search filters on)."""

    clearance: int
    entities: frozenset[str]


def _reading(state: AppState, principal: Principal) -> _Reading:
    reader = _readers.setdefault(id(state.engine), AuthorizeActivities(state.engine))
    authorizer = reader.authorizer_for(principal.tenant)
    level = authorizer.readable_clearance(principal, principal.tenant)
    catalog = load_catalog(state.engine, principal.tenant)
    return _Reading(
        clearance=ingest.CLEARANCES.index(level) if level in ingest.CLEARANCES else -1,
        entities=frozenset(authorizer.readable_entities(principal, catalog)),
    )


def _visible(d: Document, principal: Principal, reading: _Reading) -> bool:
    """The rules document search applies (POL-006, POL-007, POL-005/003): the tenant's, at or below the
    clearance the policies grant, and tagged with no entity the principal may not read."""
    cleared = d.classification in ingest.CLEARANCES and ingest.CLEARANCES.index(d.classification) <= reading.clearance
    return d.tenant == principal.tenant and cleared and all(e in reading.entities for e in d.entities)


def _view_of(d: Document) -> DocumentView:
    return DocumentView(
        doc_id=d.doc_id,
        title=d.title,
        classification=d.classification,
        entities=list(d.entities),
        version=d.version,
        updated_at=d.updated_at.isoformat(),
    )


@router.get("", response_model=list[DocumentView])
def list_documents(state: State, principal: CurrentPrincipal) -> list[DocumentView]:
    """Documents of your tenant you may read: at or below your clearance, about entities you may read."""
    with Session(state.engine) as session:
        stmt: Any = select(Document).where(Document.tenant == principal.tenant)  # type: ignore[arg-type]
        rows = list(session.execute(stmt).scalars())
    reading = _reading(state, principal)
    return [_view_of(d) for d in sorted(rows, key=lambda d: d.doc_id) if _visible(d, principal, reading)]


@router.get("/{doc_id}", response_model=DocumentDetail, responses={404: {"description": "no such document for you"}})
def get_document(state: State, principal: CurrentPrincipal, doc_id: str) -> DocumentDetail:
    """One document you may read, with its text: where a result's citation links to."""
    with Session(state.engine) as session:
        stored = session.get(Document, (principal.tenant, doc_id))
    if stored is None or not _visible(stored, principal, _reading(state, principal)):
        # A document you may not read is reported as absent, like one that does not exist.
        raise Problem(
            404, "document-not-found", "No such document", detail=doc_id, hint="GET /v1/documents lists yours"
        )
    return DocumentDetail(**_view_of(stored).model_dump(), body=stored.body)
