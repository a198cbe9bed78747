"""IngestWorkflow: authorize, store and index documents; IndexWorkflow: index versions (blue/green)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import names
    from docket.contracts import (
        AuthorizeIngestInput,
        AuthorizeIngestResult,
        IndexAdminInput,
        IndexDocumentsInput,
        IndexDocumentsResult,
        IndexStatus,
        IngestInput,
        StoreDocumentsInput,
        StoreDocumentsResult,
    )

# Before this patch the workflow only indexed documents already stored; histories of that shape still replay.
PATCH_AUTHORIZED_UPLOADS = "ingest-authorized-uploads"
RETRY = RetryPolicy(maximum_attempts=5)


@workflow.defn(name=names.INGEST_WORKFLOW)
class IngestWorkflow:
    """Authorize the principal, store staged uploads and deletions, then index; every step is idempotent."""

    @workflow.run
    async def run(self, data: IngestInput) -> IndexDocumentsResult:
        doc_ids = list(data.doc_ids)
        stored = StoreDocumentsResult()
        if workflow.patched(PATCH_AUTHORIZED_UPLOADS) and (data.upload_ids or data.delete_doc_ids):
            decision: AuthorizeIngestResult = await workflow.execute_local_activity(
                names.AUTHORIZE_INGEST,
                AuthorizeIngestInput(
                    tenant=data.tenant,
                    principal_id=data.principal_id,
                    upload_ids=data.upload_ids,
                    delete_doc_ids=data.delete_doc_ids,
                ),
                result_type=AuthorizeIngestResult,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RETRY,
            )
            if not decision.allowed:
                # A denial is an answer, not a failure: nothing was stored and the result says why.
                return IndexDocumentsResult(
                    documents=0, chunks=0, denied=True, reasons=decision.reasons, policies=decision.policies
                )
            store_input = StoreDocumentsInput(
                tenant=data.tenant,
                principal_id=data.principal_id,
                upload_ids=data.upload_ids,
                delete_doc_ids=data.delete_doc_ids,
                expected_versions=decision.versions,
            )
            if data.upload_ids:
                stored = await workflow.execute_activity(
                    names.STORE_DOCUMENTS,
                    store_input,
                    result_type=StoreDocumentsResult,
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=RETRY,
                )
            if data.delete_doc_ids:
                removed: StoreDocumentsResult = await workflow.execute_activity(
                    names.DELETE_DOCUMENTS,
                    store_input,
                    result_type=StoreDocumentsResult,
                    start_to_close_timeout=timedelta(minutes=2),
                    retry_policy=RETRY,
                )
                stored.deleted = removed.deleted
            doc_ids = stored.changed
            if not doc_ids:
                return IndexDocumentsResult(documents=0, chunks=0, deleted=stored.deleted, unchanged=stored.unchanged)
        result: IndexDocumentsResult = await workflow.execute_activity(
            names.INDEX_DOCUMENTS,
            IndexDocumentsInput(tenant=data.tenant, doc_ids=doc_ids),
            result_type=IndexDocumentsResult,
            # Embedding thousands of chunks on a CPU takes minutes; the activity heartbeats per document.
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=RETRY,
        )
        result.changed = stored.changed
        result.unchanged = stored.unchanged
        result.deleted = stored.deleted
        return result


@workflow.defn(name=names.INDEX_WORKFLOW)
class IndexWorkflow:
    """Index versions: status, rebuild into a new version, switch the alias, roll back. Runs in the worker,
    which alone opens an embedded index."""

    @workflow.run
    async def run(self, data: IndexAdminInput) -> IndexStatus:
        status: IndexStatus = await workflow.execute_activity(
            names.INDEX_ADMIN,
            data,
            result_type=IndexStatus,
            start_to_close_timeout=timedelta(hours=2),
            heartbeat_timeout=timedelta(minutes=2),
            # A failed rebuild leaves a half-built version that is never switched to; retrying builds another.
            retry_policy=RetryPolicy(maximum_attempts=2 if data.action == "rebuild" else 5),
        )
        return status
