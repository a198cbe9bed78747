"""The document index: chunking, sparse + dense vectors, hybrid search, versions, and sync with the database.

Every search carries a tenant filter; a search without one raises (fails closed). Clearance and entity
filters come from the authorization decision and become payload filters. Search is hybrid (dense + sparse,
fused with reciprocal rank fusion by the engine's query API) when an embedder built the active index version
and embeds the query; otherwise lexical, and the result says why. docs/retrieval.md has the design.
"""

from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import Session

from activities.retrieve.embed import Embedder, EmbedderUnavailableError
from activities.retrieve.safety import NEUTRALIZED, neutralize, spotlight
from activities.retrieve.store import (
    ChunkFilter,
    ChunkPoint,
    EdgeStore,
    IndexVersionError,
    QdrantStore,
    SparseVec,
    VectorStore,
    VersionInfo,
    version_name,
)
from docket.calendar import MONTHS_LOWER as MONTHS
from docket.contracts import NeutralizedPassage, Passage, RetrievalQuery, RetrieveResult
from docket.db import Document, Tenant
from docket.errors import TenantFilterMissingError
from docket.ingest import CLEARANCES

log = logging.getLogger(__name__)

CHUNK_CHARS = 800
CHUNK_OVERLAP = 120
SNIPPET_CHARS = 300
POINT_NAMESPACE = uuid.UUID("6f1c2a52-2b7e-4f55-9a43-5d0c8f1e7d10")

_STOPWORD_TEXT = """
a an and are as at be by did do does for from had has have how i in is it its me of on or our show tell say says
said about give that the their there this to was we were what when where which who why will with you your
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def tokens(text: str) -> list[str]:
    """Lowercased word tokens with light stemming; entity codes like MER-DE stay whole."""
    out: list[str] = []
    for tok in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", text.lower()):
        if tok in STOPWORDS or len(tok) < 2:
            continue
        if len(tok) > 4 and tok.endswith("ies"):
            tok = tok[:-3] + "y"
        elif len(tok) > 3 and tok.endswith("s") and not tok.endswith("ss"):
            tok = tok[:-1]
        out.append(tok)
    return out


def _token_index(tok: str) -> int:
    return int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=4).digest(), "big")


def sparse_vector(text: str, *, query: bool = False) -> SparseVec:
    """Term-frequency sparse vector (saturated like BM25's tf part); Qdrant's IDF modifier supplies the idf."""
    counts = Counter(tokens(text))
    merged: dict[int, float] = {}
    for tok, n in counts.items():
        weight = 1.0 if query else (n * 2.2) / (n + 1.2)
        idx = _token_index(tok)
        merged[idx] = merged.get(idx, 0.0) + weight
    return SparseVec(indices=list(merged), values=list(merged.values()))


def chunk_text(body: str) -> list[str]:
    """Paragraph-aligned chunks of about CHUNK_CHARS with CHUNK_OVERLAP characters carried over."""
    paras = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    chunks: list[str] = []
    current = ""
    for para in paras:
        if current and len(current) + len(para) + 2 > CHUNK_CHARS:
            chunks.append(current)
            current = current[-CHUNK_OVERLAP:] + "\n\n" + para
        else:
            current = f"{current}\n\n{para}" if current else para
        while len(current) > CHUNK_CHARS * 1.5:
            chunks.append(current[:CHUNK_CHARS])
            current = current[CHUNK_CHARS - CHUNK_OVERLAP :]
    if current:
        chunks.append(current)
    return chunks


def _month_pattern(month: str) -> re.Pattern[str]:
    """How a ledger month ('2026-10') is written in prose: '2026-10', 'October 2026', 'September and October 2026'."""
    year, mm = month.split("-")
    name = MONTHS[int(mm) - 1]
    return re.compile(rf"\b{month}\b|\b{name}(?:,? (?:and|or|to) [a-z]+)? {year}\b")


def best_sentences(text: str, query_tokens: set[str], limit: int = SNIPPET_CHARS) -> str:
    """The extractive answer: the chunk's sentences that share the most terms with the query, in order."""
    body = " ".join(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    sentences = [
        s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(body.split())) if s.strip() and NEUTRALIZED not in s
    ]
    if not sentences:
        return ""
    ranked = sorted(range(len(sentences)), key=lambda i: (-len(query_tokens & set(tokens(sentences[i]))), i))
    chosen: list[int] = []
    size = 0
    for i in ranked:
        if size + len(sentences[i]) > limit and chosen:
            break
        chosen.append(i)
        size += len(sentences[i]) + 1
    out = " ".join(sentences[i] for i in sorted(chosen))
    return out if len(out) <= limit else out[: limit - 1].rsplit(" ", 1)[0] + "…"


# Stored chunk text is capped: a chunk is at most 1.5 x CHUNK_CHARS by construction, this guards odd input.
MAX_STORED_CHARS = CHUNK_CHARS * 2
SEARCH_MODES = ("auto", "hybrid", "dense", "lexical")


def point_id(tenant: str, doc_id: str, version: int, chunk: int) -> str:
    """Deterministic point id: re-indexing the same document version overwrites, never duplicates."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{tenant}/{doc_id}/{version}/{chunk}"))


@dataclass
class DocumentIndex:
    """The chunk index: a vector store plus (optionally) the embedder that writes and queries dense vectors.

    Local stores allow one process per path, so only the worker opens the index.
    """

    store: VectorStore
    embedder: Embedder | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None
    _meta: dict[str, VersionInfo] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        *,
        url: str = "",
        api_key: str = "",
        path: str = "",
        backend: str = "edge",
        embedder: Embedder | None = None,
    ) -> DocumentIndex:
        """A Qdrant server when `url` is set; else the embedded engine (`edge`, or qdrant-client's `qdrant` local
        mode) at `path`, or in a temporary folder removed on close when no path is given."""
        tmp: tempfile.TemporaryDirectory[str] | None = None
        store: VectorStore
        if url:
            store = QdrantStore(url=url, api_key=api_key)
        elif backend == "qdrant":
            store = QdrantStore(path=path)
        elif backend == "edge":
            if not path:
                tmp = tempfile.TemporaryDirectory(prefix="docket-index-")
                path = tmp.name
            store = EdgeStore(Path(path))
        else:
            raise IndexVersionError(f"unknown index backend {backend!r}", hint="DOCKET_INDEX_BACKEND is edge or qdrant")
        index = cls(store=store, embedder=embedder, _tmp=tmp)
        index.ensure_active()
        return index

    # versions -----------------------------------------------------------------------------------------
    @property
    def embedder_name(self) -> str:
        return self.embedder.name if self.embedder is not None else ""

    def ensure_active(self) -> str:
        """The active version's name; a fresh store gets v1, built for this index's embedder."""
        active = self.store.active()
        if active is None:
            info = self.create_version()
            self.store.switch(info.name)
            active = info.name
        return active

    def create_version(self) -> VersionInfo:
        numbers = [v.number for v in self.store.versions()]
        name = version_name(max(numbers, default=0) + 1)
        dim = self.embedder.dim if self.embedder is not None else 0
        # Names can come back after a version is dropped: never trust cached metadata for a new one.
        self._meta.pop(name, None)
        return self.store.create_version(name, embedder=self.embedder_name, dim=dim)

    def version_info(self, name: str) -> VersionInfo:
        if name not in self._meta:
            found = {v.name: v for v in self.store.versions()}
            if name not in found:
                raise IndexVersionError(f"index version {name} does not exist", hint="`docket index status`")
            self._meta[name] = found[name]
        return self._meta[name]

    def dense_ready(self, version: str) -> bool:
        """Dense vectors are written and searched only when this version was built by the same embedder."""
        info = self.version_info(version)
        return (
            self.embedder is not None
            and bool(info.dim)
            and info.embedder == self.embedder.name
            and info.dim == self.embedder.dim
        )

    def close(self) -> None:
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # writing ------------------------------------------------------------------------------------------
    def index_document(self, doc: Document, version: str | None = None) -> int:
        """Replace a document's chunks in a version (the active one by default). Returns the chunk count."""
        version = version or self.ensure_active()
        chunks = chunk_text(doc.body)
        dense: list[list[float]] | None = None
        if chunks and self.dense_ready(version):
            assert self.embedder is not None
            # The title counts for matching; the stored text (and so every snippet) is the body only.
            dense = self.embedder.embed_documents([f"{doc.title}\n{text}" for text in chunks])
        points = []
        title_findings = len(neutralize(doc.title)[1])
        for i, text in enumerate(chunks):
            findings = neutralize(text)[1]
            points.append(
                ChunkPoint(
                    id=point_id(doc.tenant, doc.doc_id, doc.version, i),
                    sparse=sparse_vector(f"{doc.title}\n{text}"),
                    dense=dense[i] if dense is not None else None,
                    payload={
                        "tenant": doc.tenant,
                        "doc_id": doc.doc_id,
                        "title": doc.title,
                        "chunk_id": f"{doc.doc_id}#{i}",
                        "classification_level": CLEARANCES.index(doc.classification),
                        "entities": list(doc.entities),
                        "accounts": list(doc.accounts),
                        "version": doc.version,
                        "sha256": doc.sha256,
                        # Recorded at ingestion so operators can list poisoned documents without searching.
                        "injection_findings": len(findings) + title_findings,
                        "text": text[:MAX_STORED_CHARS],
                    },
                )
            )
        # Old chunks go first: a shorter new version must not leave stale tail chunks behind.
        self.store.delete(version, ChunkFilter(tenant=doc.tenant, doc_id=doc.doc_id))
        self.store.upsert(version, points)
        return len(points)

    def delete_document(self, tenant: str, doc_id: str, versions: list[str] | None = None) -> None:
        """Remove a document from every version (a rollback must not bring deleted text back)."""
        for name in versions or [v.name for v in self.store.versions()]:
            self.store.delete(name, ChunkFilter(tenant=tenant, doc_id=doc_id))

    def _chunks(
        self, version: str, tenant: str, doc_ids: list[str] | None, fields: tuple[str, ...]
    ) -> Iterator[dict[str, Any]]:
        """Payload fields of a tenant's chunks in a version: of some documents only, when given (one filtered
        scroll each, so ingesting one document never reads the tenant's whole index)."""
        targets: list[str | None] = list(doc_ids) if doc_ids else [None]
        for doc_id in targets:
            yield from self.store.scroll(version, ChunkFilter(tenant=tenant, doc_id=doc_id), fields)

    def indexed_documents(self, version: str, tenant: str, doc_ids: list[str] | None = None) -> dict[str, str]:
        """doc_id → sha256 of what a version holds for a tenant (for some documents only, when given)."""
        return {
            str(r["doc_id"]): str(r.get("sha256") or "")
            for r in self._chunks(version, tenant, doc_ids, ("doc_id", "sha256"))
        }

    def findings(self, version: str, tenant: str, doc_ids: list[str] | None = None) -> list[str]:
        """Chunk ids of a tenant (or of some documents) whose text had instruction-like content when indexed."""
        rows = self._chunks(version, tenant, doc_ids, ("chunk_id", "injection_findings"))
        return sorted(str(r["chunk_id"]) for r in rows if r.get("injection_findings"))

    # searching ----------------------------------------------------------------------------------------
    def search(self, query: RetrievalQuery, mode: str = "auto") -> RetrieveResult:
        """Passages of the asker's tenant they may see, best first. `mode` forces dense/lexical for evaluation."""
        if not query.tenant:
            raise TenantFilterMissingError(
                "document search without a tenant filter refused",
                hint="every search must name the tenant of the asker",
            )
        if mode not in SEARCH_MODES:
            raise ValueError(f"mode must be one of {SEARCH_MODES}")
        version = self.ensure_active()
        notes: list[str] = []
        use_dense = mode in ("auto", "hybrid", "dense") and self.dense_ready(version)
        if mode in ("auto", "hybrid") and not use_dense:
            if self.embedder is None:
                notes.append("lexical search only: no embedder is configured (DOCKET_EMBEDDER)")
            else:
                built = self.version_info(version).embedder or "no embedder"
                notes.append(
                    f"lexical search only: index {version} was built with {built}, queries embed with "
                    f"{self.embedder.name}; run `docket index rebuild`"
                )
        if mode == "dense" and not use_dense:
            raise IndexVersionError(f"index {version} has no dense vectors from {self.embedder_name or 'an embedder'}")
        use_sparse = mode != "dense"
        effective = "hybrid" if use_dense and use_sparse else ("dense" if use_dense else "lexical")
        if query.max_clearance not in CLEARANCES:
            # POL-007 lets this principal read no document at all (or the value is unknown): fail closed.
            return RetrieveResult(passages=[], mode=effective, notes=notes)
        flt = ChunkFilter(
            tenant=query.tenant,
            max_level=CLEARANCES.index(query.max_clearance),
            # Documents about an entity the asker may not read are never candidates (POL-003, POL-005); a document
            # tagged with several entities is excluded as soon as one of them is off limits.
            exclude_entities=list(query.exclude_entities),
            # For figure questions only documents about a requested entity support the answer; otherwise a
            # document tagged with entities is only shown for those, untagged ones (policies) apply to all.
            entities_any=list(query.entities) if query.entity_tagged_only else None,
            entities_or_untagged=list(query.entities) if query.entities and not query.entity_tagged_only else None,
        )
        sparse = sparse_vector(query.query, query=True)
        if not sparse.indices:
            # Only stopwords: nothing to match on, and a dense neighbour of "what is it" is noise.
            return RetrieveResult(passages=[], mode=effective, notes=notes)
        dense: list[float] | None = None
        if use_dense:
            assert self.embedder is not None
            try:
                dense = self.embedder.embed_query(query.query)
            except EmbedderUnavailableError as exc:
                if mode == "dense":
                    raise
                # Retrieval degrades rather than fails the request; the result says so.
                log.warning("embedder unavailable, searching lexically: %s", exc.message)
                notes.append(f"lexical search only: the embedder is unavailable ({exc.message})")
                effective = "lexical"
        hits = self.store.search(
            version,
            flt,
            sparse=sparse if use_sparse else None,
            dense=dense,
            limit=query.limit * 4,
            prefetch=max(20, query.limit * 8),
        )
        period_patterns = [_month_pattern(m) for m in query.months]
        query_tokens = set(tokens(query.query))
        passages: list[Passage] = []
        neutralized: list[NeutralizedPassage] = []
        for h in hits:
            raw = str(h.payload["text"])[:MAX_STORED_CHARS]
            if period_patterns and not any(p.search(raw.lower()) for p in period_patterns):
                continue
            if query.min_term_coverage:
                # Share of the query's terms the passage (or its title) contains: one shared word ("memo") is
                # not an answer to "what does the board memo say".
                found = set(tokens(f"{h.payload['title']} {raw}"))
                if len(query_tokens & found) < query.min_term_coverage * len(query_tokens):
                    continue
            text, findings = neutralize(raw)
            # Titles come from front matter anyone with upload rights writes: as untrusted as the body.
            title, title_findings = neutralize(str(h.payload["title"]))
            chunk_id = str(h.payload["chunk_id"])
            neutralized.extend(
                NeutralizedPassage(doc_id=str(h.payload["doc_id"]), chunk_id=chunk_id, excerpt=f.excerpt)
                for f in [*title_findings, *findings]
            )
            passages.append(
                Passage(
                    doc_id=str(h.payload["doc_id"]),
                    title=spotlight(title),
                    chunk_id=chunk_id,
                    snippet=spotlight(best_sentences(text, query_tokens)),
                    score=round(float(h.score), 4),
                )
            )
            if len(passages) >= query.limit:
                break
        return RetrieveResult(passages=passages, mode=effective, notes=notes, neutralized=neutralized)


def _tenants(session: Session, tenant: str | None) -> list[str]:
    if tenant:
        return [tenant]
    ids = {str(t) for t in session.execute(select(Tenant.id)).scalars()}  # type: ignore[call-overload]
    ids |= {str(t) for t in session.execute(select(Document.tenant)).scalars()}  # type: ignore[call-overload]
    return sorted(ids)


@dataclass
class SyncReport:
    documents: int = 0
    chunks: int = 0
    deleted: int = 0
    doc_ids: list[str] = field(default_factory=list)


def sync_version(
    engine: Engine,
    index: DocumentIndex,
    *,
    version: str | None = None,
    tenant: str | None = None,
    doc_ids: list[str] | None = None,
    force: bool = False,
) -> SyncReport:
    """Make a version hold exactly the stored documents: index new or changed ones, drop deleted ones.

    Idempotent: a second run finds nothing to do. `doc_ids` limits the run to those documents; `force`
    re-indexes them even when unchanged (a rebuild).
    """
    version = version or index.ensure_active()
    report = SyncReport()
    with Session(engine) as session:
        for t in _tenants(session, tenant):
            stmt = select(Document).where(Document.tenant == t)  # type: ignore[arg-type]
            if doc_ids:
                # One document's ingestion reads that document, not the tenant's whole corpus.
                stmt = stmt.where(Document.doc_id.in_(doc_ids))  # type: ignore[attr-defined]
            docs = {d.doc_id: d for d in session.execute(stmt).scalars()}
            held = index.indexed_documents(version, t, doc_ids)
            for doc_id, doc in sorted(docs.items()):
                if doc_ids and doc_id not in doc_ids:
                    continue
                if not force and held.get(doc_id) == doc.sha256:
                    continue
                report.chunks += index.index_document(doc, version)
                report.documents += 1
                report.doc_ids.append(doc_id)
                doc.indexed_sha256 = doc.sha256
            for doc_id in sorted(set(held) - set(docs)):
                if doc_ids and doc_id not in doc_ids:
                    continue
                index.delete_document(t, doc_id, [version])
                report.deleted += 1
        session.commit()
    return report


def sync_index(
    engine: Engine, index: DocumentIndex, tenant: str | None = None, doc_ids: list[str] | None = None
) -> tuple[int, int]:
    """Index stored documents the active version lacks or holds stale. Returns (documents, chunks)."""
    report = sync_version(engine, index, tenant=tenant, doc_ids=doc_ids)
    return report.documents, report.chunks


def build_version(engine: Engine, index: DocumentIndex) -> tuple[VersionInfo, SyncReport]:
    """Blue/green, step 1: a new version built from every stored document with this index's embedder."""
    info = index.create_version()
    report = sync_version(engine, index, version=info.name, force=True)
    return info, report


def switch_version(engine: Engine, index: DocumentIndex, name: str) -> tuple[str | None, SyncReport]:
    """Blue/green, step 2 (and rollback): catch the target up with the database, then move the alias.

    The catch-up means a switch or rollback changes how documents are searched, never which documents (or
    which classification of them) are searchable: a document deleted or reclassified since the target was
    built is fixed in the target before it goes live.
    """
    index.version_info(name)
    report = sync_version(engine, index, version=name)
    previous = index.store.switch(name)
    return previous, report


def rollback_version(engine: Engine, index: DocumentIndex) -> tuple[str | None, SyncReport]:
    """Switch back to the version that was active before the last switch."""
    target = index.store.previous()
    if not target or target == index.store.active():
        raise IndexVersionError("there is no previous index version to roll back to", hint="`docket index status`")
    return switch_version(engine, index, target)
