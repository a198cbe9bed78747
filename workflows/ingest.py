"""IngestWorkflow: (re)index documents that are stored in the database."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities import names
    from docket.contracts import IndexDocumentsInput, IndexDocumentsResult, IngestInput


@workflow.defn(name=names.INGEST_WORKFLOW)
class IngestWorkflow:
    """Index a tenant's stored documents; idempotent, so re-running it is safe."""

    @workflow.run
    async def run(self, data: IngestInput) -> IndexDocumentsResult:
        result: IndexDocumentsResult = await workflow.execute_activity(
            names.INDEX_DOCUMENTS,
            IndexDocumentsInput(tenant=data.tenant, doc_ids=data.doc_ids),
            result_type=IndexDocumentsResult,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        return result
