"""Embedders: an OpenAI-compatible /v1/embeddings server (a real HTTP stub), selection, and graceful degradation."""

from __future__ import annotations

import pytest

from activities.retrieve.embed import EmbedderUnavailableError, OpenAIEmbedder, build_embedder
from activities.retrieve.engine import DocumentIndex
from docket.contracts import RetrievalQuery
from docket.db import Document
from docket.errors import DocketError
from tests.support.stub_openai import EMBEDDING_DIM, StubOpenAI


def doc(doc_id: str, body: str) -> Document:
    return Document(
        tenant="acme", doc_id=doc_id, title=doc_id, classification="internal", entities=[], accounts=[],
        body=body, sha256=body, version=1,
    )  # fmt: skip


def test_openai_embedder_batches_and_learns_the_dimension(stub: StubOpenAI) -> None:
    stub.embedding_requests.clear()
    emb = OpenAIEmbedder(base_url=stub.base_url, model="stub-embed", batch_size=2)
    assert emb.dim == EMBEDDING_DIM and emb.name == "openai:stub-embed"
    vectors = emb.embed_documents(["a b", "c d", "e f"])
    assert len(vectors) == 3 and all(len(v) == EMBEDDING_DIM for v in vectors)
    # One probe, then two batches of at most two texts.
    assert [len(r["input"]) for r in stub.embedding_requests] == [1, 2, 1]
    assert {r["model"] for r in stub.embedding_requests} == {"stub-embed"}


def test_index_built_with_an_endpoint_searches_hybrid_and_degrades_when_it_fails(stub: StubOpenAI) -> None:
    emb = OpenAIEmbedder(base_url=stub.base_url, model="stub-embed")
    idx = DocumentIndex.open(embedder=emb)
    try:
        idx.index_document(doc("doc-tariffs", "Tariffs on steel imports raised cost of goods sold."))
        idx.index_document(doc("doc-travel", "Economy class for flights under six hours."))
        q = RetrievalQuery(tenant="acme", query="steel tariffs", max_clearance="internal")
        first = idx.search(q)
        assert first.mode == "hybrid" and first.passages[0].doc_id == "doc-tariffs"
        stub.embeddings_status = 503
        degraded = idx.search(q)
        assert degraded.mode == "lexical" and "unavailable" in degraded.notes[0]
        assert degraded.passages[0].doc_id == "doc-tariffs"
        with pytest.raises(EmbedderUnavailableError):
            idx.search(q, mode="dense")
    finally:
        stub.embeddings_status = 200
        idx.close()


def test_an_index_built_by_another_embedder_is_searched_lexically_until_rebuilt(stub: StubOpenAI) -> None:
    idx = DocumentIndex.open()  # built with no embedder: sparse vectors only
    try:
        idx.index_document(doc("doc-tariffs", "Tariffs on steel imports raised cost of goods sold."))
        idx.embedder = OpenAIEmbedder(base_url=stub.base_url, model="stub-embed")
        result = idx.search(RetrievalQuery(tenant="acme", query="steel tariffs", max_clearance="internal"))
        assert result.mode == "lexical" and "docket index rebuild" in result.notes[0]
        # A new version built with this embedder has dense vectors: the blue/green path to hybrid.
        info = idx.create_version()
        assert info.dim == EMBEDDING_DIM and info.embedder == "openai:stub-embed"
        idx.index_document(doc("doc-tariffs", "Tariffs on steel imports raised cost of goods sold."), info.name)
        idx.store.switch(info.name)
        assert idx.search(RetrievalQuery(tenant="acme", query="steel tariffs", max_clearance="internal")).mode == (
            "hybrid"
        )
    finally:
        idx.close()


def test_embedder_selection() -> None:
    assert build_embedder("none") is None
    with pytest.raises(DocketError, match="DOCKET_EMBEDDING_MODEL"):
        build_embedder("openai")
    with pytest.raises(DocketError, match="unknown DOCKET_EMBEDDER"):
        build_embedder("word2vec")
    with pytest.raises(EmbedderUnavailableError, match="unreachable"):
        build_embedder("openai", base_url="http://127.0.0.1:9/v1", model="m", timeout=2)
