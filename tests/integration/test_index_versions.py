"""Index versions (blue/green) through IndexWorkflow on a real worker, and the two vector stores underneath."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Literal

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities import names
from activities.retrieve.engine import point_id, sparse_vector
from activities.retrieve.store import ChunkFilter, ChunkPoint, EdgeStore, IndexVersionError, QdrantStore, VectorStore
from docket import ingest
from docket.contracts import IndexAdminInput, IndexDocumentsResult, IndexStatus, IngestInput
from docket.errors import TenantFilterMissingError
from tests.conftest import Stack, fresh_sqlite, start_stack
from tests.support.documents import chunk_ids, document

pytestmark = pytest.mark.integration
V1, V2 = "docket_chunks_v1", "docket_chunks_v2"


@pytest.fixture(scope="module")
async def versions(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    # A database of its own: versions are built, switched and documents deleted here.
    tmp = tmp_path_factory.mktemp("versions")
    url, engine = fresh_sqlite(tmp)
    async for s in start_stack(temporal_env, url, engine, tmp):
        yield s


async def admin(s: Stack, action: Literal["status", "rebuild", "switch", "rollback"], version: str = "") -> IndexStatus:
    status: IndexStatus = await s.client.execute_workflow(
        names.INDEX_WORKFLOW,
        IndexAdminInput(action=action, version=version, actor="alice"),
        id=f"index-{action}-{uuid.uuid4().hex[:10]}",
        task_queue=s.task_queue,
        result_type=IndexStatus,
    )
    return status


async def test_rebuild_rollback_and_switch(versions: Stack) -> None:
    status = await admin(versions, "status")
    assert status.backend == "edge" and status.active == V1 and [v.name for v in status.versions] == [V1]
    assert status.versions[0].points > 0

    rebuilt = await admin(versions, "rebuild")
    assert rebuilt.active == V2 and rebuilt.previous == V1
    points = {v.name: v.points for v in rebuilt.versions}
    assert points[V1] == points[V2] > 0
    assert f"switched from {V1} to {V2}" in rebuilt.message

    rolled = await admin(versions, "rollback")
    assert (rolled.active, rolled.previous) == (V1, V2)
    assert [v.name for v in rolled.versions if v.active] == [V1]

    switched = await admin(versions, "switch", V2)
    assert (switched.active, switched.previous) == (V2, V1)
    assert versions.index.store.active() == V2  # the worker's own index moved, not just the report


async def test_switch_catches_the_target_up_with_the_database(versions: Stack) -> None:
    status = await admin(versions, "status")
    if len(status.versions) < 2:
        status = await admin(versions, "rebuild")
    target = status.active
    assert target is not None
    other = next(v.name for v in status.versions if v.name != target)
    assert (await admin(versions, "switch", other)).active == other
    assert chunk_ids(versions, "doc-travel-policy", target) != []

    # While `other` is live: delete a document and add one, in one IngestWorkflow run.
    text = document("doc-lisbon", "The Lisbon shared-service centre takes over MER-US payables in 2027.")
    uploads = ingest.stage_uploads(versions.engine, "meridian", "alice", [("doc-lisbon.md", text)])
    result = await versions.client.execute_workflow(
        names.INGEST_WORKFLOW,
        IngestInput(tenant="meridian", principal_id="alice", upload_ids=uploads, delete_doc_ids=["doc-travel-policy"]),
        id=f"ingest-catchup-{uuid.uuid4().hex[:10]}",
        task_queue=versions.task_queue,
        result_type=IndexDocumentsResult,
    )
    assert result.denied is False and result.changed == ["doc-lisbon"] and result.deleted == ["doc-travel-policy"]
    assert result.version == other
    # A deletion reaches every version at once; an addition only the live one until the next switch.
    assert chunk_ids(versions, "doc-travel-policy", target) == []
    assert chunk_ids(versions, "doc-lisbon", other) == ["doc-lisbon#0"]
    assert chunk_ids(versions, "doc-lisbon", target) == []

    back = await admin(versions, "switch", target)
    assert back.active == target and "1 documents caught up" in back.message
    assert chunk_ids(versions, "doc-lisbon", target) == ["doc-lisbon#0"]
    assert chunk_ids(versions, "doc-travel-policy", target) == []


async def test_switch_to_an_unknown_version_fails_clearly_and_changes_nothing(versions: Stack) -> None:
    before = (await admin(versions, "status")).active
    with pytest.raises(WorkflowFailureError) as failed:
        await admin(versions, "switch", "docket_chunks_v99")
    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError) and cause.type == "IndexError" and cause.non_retryable
    assert "docket_chunks_v99 does not exist" in cause.message
    assert (await admin(versions, "status")).active == before


# ------------------------------------------------------------------------------------- the stores themselves


@pytest.fixture(params=["edge", "qdrant"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    s: VectorStore = EdgeStore(tmp_path / "edge") if request.param == "edge" else QdrantStore()
    yield s
    s.close()


def point(tenant: str, doc_id: str, chunk: int, text: str) -> ChunkPoint:
    payload = {"tenant": tenant, "doc_id": doc_id, "chunk_id": f"{doc_id}#{chunk}", "entities": [], "text": text}
    return ChunkPoint(id=point_id(tenant, doc_id, 1, chunk), sparse=sparse_vector(text), payload=payload)


def test_store_switch_and_rollback(store: VectorStore) -> None:
    assert store.active() is None and store.previous() is None
    for name in (V1, V2):
        store.create_version(name, embedder="", dim=0)
    assert store.switch(V1) is None
    assert store.switch(V2) == V1
    assert (store.active(), store.previous()) == (V2, V1)
    previous = store.previous()
    assert previous is not None and store.switch(previous) == V2  # a rollback is a switch to the previous
    assert (store.active(), store.previous()) == (V1, V2)
    assert [(v.name, v.active) for v in store.versions()] == [(V1, True), (V2, False)]
    with pytest.raises(IndexVersionError, match="does not exist"):
        store.switch("docket_chunks_v7")
    with pytest.raises(IndexVersionError, match="active"):
        store.drop_version(V1)
    assert (store.active(), store.previous()) == (V1, V2)
    with pytest.raises(IndexVersionError, match="already exists"):
        store.create_version(V2, embedder="", dim=0)


def test_store_delete_by_filter_stays_in_its_tenant(store: VectorStore) -> None:
    store.create_version(V1, embedder="", dim=0)
    store.switch(V1)
    points = [point(t, d, i, f"{t} {d} chunk {i}") for t in ("meridian", "globex") for d in ("a", "b") for i in (0, 1)]
    store.upsert(V1, points)
    store.upsert(V1, points)  # deterministic ids: writing again overwrites
    assert store.count(V1, ChunkFilter("meridian")) == 4 and store.count(V1, ChunkFilter("globex")) == 4
    store.delete(V1, ChunkFilter("meridian", doc_id="a"))
    assert sorted(r["chunk_id"] for r in store.scroll(V1, ChunkFilter("meridian"), ["chunk_id"])) == ["b#0", "b#1"]
    assert store.count(V1, ChunkFilter("globex", doc_id="a")) == 2  # the same doc id in another tenant stays
    hits = store.search(
        V1, ChunkFilter("globex"), sparse=sparse_vector("chunk", query=True), dense=None, limit=10, prefetch=20
    )
    assert {h.payload["tenant"] for h in hits} == {"globex"} and len(hits) == 4


@pytest.mark.parametrize("tenant", ["", "   "])
def test_a_filter_without_tenant_cannot_be_built(tenant: str) -> None:
    with pytest.raises(TenantFilterMissingError):
        ChunkFilter(tenant)
