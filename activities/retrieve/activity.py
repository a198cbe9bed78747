"""Retrieval and ingestion activities over the worker's document index."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity

from activities import names
from activities.authorize.documents import DocumentAuthorizer, planned_changes
from activities.errors import run_engine, to_application_error
from activities.retrieve.engine import (
    DocumentIndex,
    build_version,
    rollback_version,
    switch_version,
    sync_version,
)
from activities.retrieve.store import IndexVersionError
from docket import audit, ingest
from docket.contracts import (
    AuthorizeIngestInput,
    AuthorizeIngestResult,
    IndexAdminInput,
    IndexDocumentsInput,
    IndexDocumentsResult,
    IndexStatus,
    IndexVersionView,
    RetrieveInput,
    RetrieveResult,
    StoreDocumentsInput,
    StoreDocumentsResult,
)
from docket.db import Principal

P = ParamSpec("P")
T = TypeVar("T")
HEARTBEAT_SECONDS = 10.0


async def _heartbeat_until(task: asyncio.Future[T]) -> T:
    """Await a task, heartbeating meanwhile, so a dead worker is noticed in minutes and a live one never is.

    If the activity is cancelled the task is not: the thread behind it cannot be stopped, so it finishes (and
    keeps the write lock until then) rather than leave a second writer running beside it.
    """
    while True:
        done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_SECONDS)
        if done:
            return task.result()
        activity.heartbeat()


async def _locked(lock: asyncio.Lock, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a long engine call under the write lock, heartbeating while waiting for the lock and while running."""

    async def run() -> T:
        async with lock:
            return await run_engine(fn, *args, **kwargs)

    # asyncio.wait never cancels what it waits on, so a cancelled activity leaves this task to finish.
    return await _heartbeat_until(asyncio.ensure_future(run()))


class RetrieveActivities:
    def __init__(self, engine: Engine, index: DocumentIndex, authorizer: DocumentAuthorizer | None = None) -> None:
        self.engine = engine
        self.index = index
        self.authorizer = authorizer or DocumentAuthorizer()
        # Writers take turns (two rebuilds at once would both pick the same next version number); searches do
        # not wait for them: the stores are safe for a reader next to a writer.
        self._write_lock = asyncio.Lock()

    @activity.defn(name=names.RETRIEVE)
    async def retrieve_documents(self, data: RetrieveInput) -> RetrieveResult:
        """Search the tenant's documents the asker may see."""
        return await run_engine(self.index.search, data.query)

    @activity.defn(name=names.INDEX_DOCUMENTS)
    async def index_documents(self, data: IndexDocumentsInput) -> IndexDocumentsResult:
        """(Re)index stored documents of a tenant into the active version."""
        report = await _locked(
            self._write_lock, sync_version, self.engine, self.index, tenant=data.tenant, doc_ids=data.doc_ids or None
        )
        version = self.index.ensure_active()
        flagged = await run_engine(self.index.findings, version, data.tenant, data.doc_ids or None)
        return IndexDocumentsResult(
            documents=report.documents, chunks=report.chunks, version=version, flagged_chunks=flagged
        )

    @activity.defn(name=names.AUTHORIZE_INGEST)
    async def authorize_ingest(self, data: AuthorizeIngestInput) -> AuthorizeIngestResult:
        """May this principal add or delete these documents in this tenant (documents.cedar)."""

        def decide() -> AuthorizeIngestResult:
            with Session(self.engine) as session:
                principal = session.get(Principal, data.principal_id)
            staged = ingest.staged_documents(self.engine, data.tenant, data.upload_ids)
            changes = planned_changes(self.engine, data.tenant, staged, data.delete_doc_ids)
            versions = ingest.authorized_versions(self.engine, data.tenant, [c.doc_id for c in changes])
            decision = self.authorizer.decide(principal, changes)
            if not decision.allowed:
                # Nothing half-done: refused text does not linger in the staging table.
                ingest.reject_uploads(self.engine, data.tenant, data.upload_ids)
            return AuthorizeIngestResult(
                allowed=decision.allowed, policies=decision.policies, reasons=decision.reasons, versions=versions
            )

        return await run_engine(decide)

    @activity.defn(name=names.STORE_DOCUMENTS)
    async def store_documents(self, data: StoreDocumentsInput) -> StoreDocumentsResult:
        """Store staged uploads as document versions and record who added them."""

        def store() -> StoreDocumentsResult:
            report = ingest.store_uploads(self.engine, data.tenant, data.upload_ids, data.expected_versions or None)
            self._audit(data, "document.stored", report.changed, report.unchanged)
            return StoreDocumentsResult(changed=report.changed, unchanged=report.unchanged)

        return await run_engine(store)

    @activity.defn(name=names.DELETE_DOCUMENTS)
    async def delete_documents(self, data: StoreDocumentsInput) -> StoreDocumentsResult:
        """Delete documents from the database and from every index version."""

        def delete() -> StoreDocumentsResult:
            report = ingest.delete_documents(
                self.engine, data.tenant, data.delete_doc_ids, data.expected_versions or None
            )
            # Every requested id, not only those found: a retry after the database commit must still clean the index.
            for doc_id in data.delete_doc_ids:
                self.index.delete_document(data.tenant, doc_id)
            self._audit(data, "document.deleted", report.deleted, [])
            return StoreDocumentsResult(deleted=report.deleted)

        return await _locked(self._write_lock, delete)

    def _audit(self, data: StoreDocumentsInput, stage: str, doc_ids: list[str], unchanged: list[str]) -> None:
        info = activity.info()
        with self.engine.begin() as conn:
            audit.append(
                conn,
                data.tenant,
                [
                    audit.NewEvent(
                        workflow_id=info.workflow_id or info.activity_id,
                        # One event per stage of a workflow: a retried step writes nothing new.
                        step={"document.stored": 1, "document.deleted": 2}[stage],
                        stage=stage,
                        actor=data.principal_id,
                        decision="allowed",
                        detail={"doc_ids": doc_ids, "unchanged": unchanged},
                    )
                ],
            )

    @activity.defn(name=names.INDEX_ADMIN)
    async def index_admin(self, data: IndexAdminInput) -> IndexStatus:
        """Index versions: status, rebuild (blue/green), switch, rollback."""
        if data.action == "switch" and not data.version:
            raise to_application_error(
                IndexVersionError("switch needs a version", hint="`docket index switch docket_chunks_v2`")
            )
        message = ""
        if data.action == "rebuild":
            message = await _locked(self._write_lock, self._rebuild, data.activate)
        elif data.action == "switch":
            previous, report = await _locked(self._write_lock, switch_version, self.engine, self.index, data.version)
            message = f"switched from {previous} to {data.version} ({report.documents} documents caught up)"
        elif data.action == "rollback":
            previous, report = await _locked(self._write_lock, rollback_version, self.engine, self.index)
            message = f"rolled back from {previous} to {self.index.store.active()}"
        # Status reads only: it never waits behind a rebuild.
        return await run_engine(self.status, message)

    def _rebuild(self, activate: bool) -> str:
        info, report = build_version(self.engine, self.index)
        message = f"built {info.name}: {report.documents} documents, {report.chunks} chunks"
        if activate:
            previous, _ = switch_version(self.engine, self.index, info.name)
            message += f"; switched from {previous} to {info.name}"
        return message

    def status(self, message: str = "") -> IndexStatus:
        store = self.index.store
        return IndexStatus(
            backend=store.kind,
            embedder=self.index.embedder_name,
            active=store.active(),
            previous=store.previous(),
            versions=[IndexVersionView.model_validate(v, from_attributes=True) for v in store.versions()],
            message=message,
        )
