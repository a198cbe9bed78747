"""retrieve_documents and index_documents over the worker's document index."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.errors import run_engine
from activities.retrieve.engine import DocumentIndex, sync_index
from docket.contracts import IndexDocumentsInput, IndexDocumentsResult, RetrieveInput, RetrieveResult


class RetrieveActivities:
    def __init__(self, engine: Engine, index: DocumentIndex) -> None:
        self.engine = engine
        self.index = index
        # Local-mode Qdrant is not safe for concurrent writers in one process; searches and indexing take turns.
        self._lock = asyncio.Lock()

    @activity.defn(name=names.RETRIEVE)
    async def retrieve_documents(self, data: RetrieveInput) -> RetrieveResult:
        """Search the tenant's documents the asker may see."""
        async with self._lock:
            return await run_engine(self.index.search, data.query)

    @activity.defn(name=names.INDEX_DOCUMENTS)
    async def index_documents(self, data: IndexDocumentsInput) -> IndexDocumentsResult:
        """(Re)index stored documents of a tenant."""
        async with self._lock:
            docs, chunks = await run_engine(sync_index, self.engine, self.index, data.tenant, data.doc_ids or None)
        return IndexDocumentsResult(documents=docs, chunks=chunks)
