"""Document index (embedded Qdrant Edge, lexical): tenant and clearance filters, re-indexing, ranking."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlmodel import Session

from activities.authorize.engine import Authorizer
from activities.classify.rules import RuleClassifier
from activities.plan.engine import plan
from activities.retrieve.engine import SNIPPET_CHARS, DocumentIndex, chunk_text, sync_index
from activities.retrieve.store import ChunkFilter
from docket import ingest
from docket.catalog import Catalog
from docket.contracts import RetrievalQuery
from docket.contracts import required_action as action_for
from docket.db import Document, Principal
from docket.errors import TenantFilterMissingError

AS_OF = date(2026, 11, 21)


def documents(engine: Engine) -> list[Document]:
    with Session(engine) as s:
        docs = list(s.execute(select(Document)).scalars())
        for d in docs:
            s.expunge(d)
    return docs


@pytest.fixture(scope="module")
def index(pack_engine: Engine) -> Iterator[DocumentIndex]:
    idx = DocumentIndex.open()
    # Index straight from the stored documents; the shared database stays untouched.
    for doc in documents(pack_engine):
        idx.index_document(doc)
    yield idx
    idx.close()


@pytest.fixture(scope="module")
def tenant_of(pack_engine: Engine) -> dict[str, str]:
    return {d.doc_id: d.tenant for d in documents(pack_engine)}


@pytest.fixture(scope="module")
def classification_of(pack_engine: Engine) -> dict[str, str]:
    return {d.doc_id: d.classification for d in documents(pack_engine)}


def search(index: DocumentIndex, tenant: str, query: str, clearance: str = "restricted", **kw: object) -> list[str]:
    q = RetrievalQuery(tenant=tenant, query=query, max_clearance=clearance, limit=10, **kw)
    return [p.doc_id for p in index.search(q).passages]


PROBES = [
    "board memo divestment LATAM entities",
    "Globex strategy memo acquire logistics start-up GLX-CANARY-7731",
    "revenue recognition policy",
    "payroll bonus policy",
    "close commentary freight logistics",
]


@pytest.mark.parametrize("query", PROBES)
def test_tenants_never_see_each_others_documents(index: DocumentIndex, tenant_of: dict[str, str], query: str) -> None:
    for tenant in ("meridian", "globex"):
        found = search(index, tenant, query)
        assert all(tenant_of[d] == tenant for d in found), (tenant, found)


def test_tenant_filter_controls(index: DocumentIndex) -> None:
    # The probes do find each tenant's own documents, so the isolation test above is not vacuous.
    assert search(index, "globex", PROBES[1])[:1] == ["doc-glx-strategy"]
    assert search(index, "meridian", PROBES[0])[:1] == ["doc-board-memo"]
    assert "doc-glx-strategy" not in search(index, "meridian", PROBES[1])
    assert "doc-board-memo" not in search(index, "globex", PROBES[0])


@pytest.mark.parametrize("query", [*PROBES, "What does the Meridian board memo say?"])
def test_internal_clearance_never_sees_restricted_documents(
    index: DocumentIndex, classification_of: dict[str, str], query: str
) -> None:
    found = search(index, "meridian", query, clearance="internal")
    assert "doc-board-memo" not in found
    assert all(classification_of[d] in {"public", "internal"} for d in found)


def test_public_clearance_sees_only_public_documents(index: DocumentIndex, classification_of: dict[str, str]) -> None:
    found = search(index, "meridian", "policy calendar close travel flights memo revenue", clearance="public")
    assert found
    assert {classification_of[d] for d in found} == {"public"}


def test_unknown_clearance_falls_back_to_public(index: DocumentIndex, classification_of: dict[str, str]) -> None:
    found = search(index, "meridian", "board memo divestment policy close", clearance="top-secret")
    assert all(classification_of[d] == "public" for d in found)


def test_search_without_tenant_is_refused(index: DocumentIndex) -> None:
    query = RetrievalQuery(tenant="", query="board memo", max_clearance="restricted", limit=3)
    with pytest.raises(TenantFilterMissingError):
        index.search(query)


def test_entity_filter_keeps_untagged_and_own_documents(index: DocumentIndex, pack_engine: Engine) -> None:
    tags = {d.doc_id: d.entities for d in documents(pack_engine)}
    found = search(
        index, "meridian", "close commentary revenue fell costs policy", clearance="internal", entities=["MER-US"]
    )
    assert found
    assert all(tags[d] in ([], ["MER-US"]) for d in found)
    assert "doc-close-de-2026-03" not in found


def test_snippets_are_short(index: DocumentIndex) -> None:
    q = RetrievalQuery(tenant="meridian", query="revenue recognition policy", max_clearance="internal", limit=3)
    passages = index.search(q).passages
    assert passages
    assert all(0 < len(p.snippet) <= SNIPPET_CHARS for p in passages)
    assert all(p.chunk_id.startswith(p.doc_id + "#") for p in passages)


def test_stopword_only_query_finds_nothing(index: DocumentIndex) -> None:
    assert search(index, "meridian", "what is the") == []


# ----------------------------------------------------------------- ranking for figure questions


@pytest.fixture
def retrieval_for(
    principal: Callable[[str], Principal], catalog: Catalog, classifier: RuleClassifier, authorizer: Authorizer
) -> Callable[[str, str], RetrievalQuery]:
    def run(who: str, question: str) -> RetrievalQuery:
        cls = classifier.classify(question, AS_OF)
        decision = authorizer.decide(principal(who), catalog, action_for(cls), cls)
        p = plan("meridian", question, cls, decision, catalog)
        assert p.retrieval is not None
        return p.retrieval

    return run


def test_bob_cogs_question_cites_the_de_close_commentary_first(
    index: DocumentIndex, retrieval_for: Callable[[str, str], RetrievalQuery]
) -> None:
    query = retrieval_for("bob", "Show me COGS for MER-DE in March 2026")
    assert query.entity_tagged_only
    assert query.months == ["2026-03"]
    passages = index.search(query).passages
    assert passages
    assert passages[0].doc_id == "doc-close-de-2026-03"


def test_group_october_question_cites_the_brazil_delay(
    index: DocumentIndex, retrieval_for: Callable[[str, str], RetrievalQuery]
) -> None:
    passages = index.search(retrieval_for("alice", "What was total revenue for the group in October 2026?")).passages
    assert [p.doc_id for p in passages][:1] == ["doc-br-late"]


def test_month_filter_drops_documents_about_other_months(index: DocumentIndex) -> None:
    query = RetrievalQuery(
        tenant="meridian",
        query="MER-DE close commentary revenue cost of goods sold",
        entities=["MER-DE"],
        max_clearance="internal",
        entity_tagged_only=True,
        months=["2026-04"],
    )
    assert index.search(query).passages == []


# ----------------------------------------------------------------- re-indexing


def point_payloads(index: DocumentIndex, tenant: str, doc_id: str) -> list[dict[str, object]]:
    flt = ChunkFilter(tenant=tenant, doc_id=doc_id)
    return list(index.store.scroll(index.ensure_active(), flt, ("doc_id", "chunk_id", "version", "tenant")))


def make_doc(body: str, version: int, tenant: str = "acme") -> Document:
    return Document(
        tenant=tenant,
        doc_id="doc-notes",
        title="Notes",
        classification="internal",
        entities=[],
        accounts=[],
        body=body,
        sha256=f"v{version}",
        version=version,
    )


def test_reindexing_a_changed_document_replaces_its_chunks() -> None:
    idx = DocumentIndex.open()
    try:
        long_body = "\n\n".join(f"Paragraph {i} about zeppelin maintenance. " + "filler words " * 50 for i in range(6))
        first = idx.index_document(make_doc(long_body, 1))
        assert first == len(chunk_text("Notes\n\n" + long_body)) > 2
        short_body = "The notes now cover submarine cables only."
        second = idx.index_document(make_doc(short_body, 2))
        payloads = point_payloads(idx, "acme", "doc-notes")
        assert second == 1
        assert len(payloads) == 1
        assert {p["version"] for p in payloads} == {2}
        assert {p["chunk_id"] for p in payloads} == {"doc-notes#0"}
        old = RetrievalQuery(tenant="acme", query="zeppelin maintenance", max_clearance="internal")
        assert idx.search(old).passages == []
        new = RetrievalQuery(tenant="acme", query="submarine cables", max_clearance="internal")
        assert [p.doc_id for p in idx.search(new).passages] == ["doc-notes"]
    finally:
        idx.close()


def test_reindexing_the_same_version_is_idempotent() -> None:
    idx = DocumentIndex.open()
    try:
        idx.index_document(make_doc("One paragraph about tariffs.", 1))
        idx.index_document(make_doc("One paragraph about tariffs.", 1))
        assert len(point_payloads(idx, "acme", "doc-notes")) == 1
    finally:
        idx.close()


def test_same_doc_id_in_two_tenants_stays_apart() -> None:
    idx = DocumentIndex.open()
    try:
        idx.index_document(make_doc("Acme tariffs rose.", 1, tenant="acme"))
        idx.index_document(make_doc("Initech tariffs fell.", 1, tenant="initech"))
        idx.index_document(make_doc("Initech tariffs fell sharply.", 2, tenant="initech"))
        assert len(point_payloads(idx, "acme", "doc-notes")) == 1
        acme = idx.search(RetrievalQuery(tenant="acme", query="tariffs", max_clearance="internal")).passages
        assert [p.snippet for p in acme] == ["Acme tariffs rose."]
    finally:
        idx.close()


def test_sync_index_only_indexes_what_changed(empty_engine: Engine, pack_copy: Path, tmp_path: Path) -> None:
    ingest.load_pack(empty_engine, pack_copy)
    idx = DocumentIndex.open(path=str(tmp_path / "qdrant"))
    try:
        n_docs, n_chunks = sync_index(empty_engine, idx)
        assert n_docs == len(list((pack_copy / "documents").glob("*.md")))
        assert n_chunks >= n_docs
        assert sync_index(empty_engine, idx) == (0, 0)
        doc = pack_copy / "documents" / "doc-fx-policy.md"
        doc.write_text(doc.read_text(encoding="utf-8") + "\nHedging uses quarterly forwards.\n", encoding="utf-8")
        ingest.load_documents(empty_engine, pack_copy / "documents")
        assert sync_index(empty_engine, idx)[0] == 1
        q = RetrievalQuery(tenant="meridian", query="hedging quarterly forwards", max_clearance="internal")
        assert [p.doc_id for p in idx.search(q).passages][:1] == ["doc-fx-policy"]
        assert all(p["version"] == 2 for p in point_payloads(idx, "meridian", "doc-fx-policy"))
    finally:
        idx.close()
