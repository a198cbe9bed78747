"""Document index and lexical search over Qdrant (local mode by default, a server via QDRANT_URL).

Every search carries a tenant filter; a search without one raises (fails closed). Clearance and entity
filters come from the authorization decision. Dense vectors and fusion arrive with the retrieval issue; the
collection already uses a named sparse vector so adding a dense one is additive.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import Counter
from dataclasses import dataclass

from qdrant_client import QdrantClient, models
from sqlalchemy import Engine, select
from sqlmodel import Session

from docket.calendar import MONTHS_LOWER as MONTHS
from docket.contracts import Passage, RetrievalQuery, RetrieveResult
from docket.db import Document
from docket.errors import TenantFilterMissingError
from docket.ingest import CLEARANCES

COLLECTION = "docket_chunks"
SPARSE = "lexical"
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


def sparse_vector(text: str, *, query: bool = False) -> models.SparseVector:
    """Term-frequency sparse vector (saturated like BM25's tf part); Qdrant's IDF modifier supplies the idf."""
    counts = Counter(tokens(text))
    merged: dict[int, float] = {}
    for tok, n in counts.items():
        weight = 1.0 if query else (n * 2.2) / (n + 1.2)
        idx = _token_index(tok)
        merged[idx] = merged.get(idx, 0.0) + weight
    return models.SparseVector(indices=list(merged), values=list(merged.values()))


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


# Retrieved text is untrusted: sentences that read as instructions to a model never reach an answer or a prompt.
INJECTION = re.compile(
    r"ignore (?:all |any )?(?:previous|prior|above|earlier) instructions|disregard (?:the |all )?(?:rules|instructions)"
    r"|access rules no longer apply|system prompt|you are now|reveal (?:the )?\w+ (?:figures|data|secrets)",
    re.IGNORECASE,
)


def best_sentences(text: str, query_tokens: set[str], limit: int = SNIPPET_CHARS) -> str:
    """The extractive answer: the chunk's sentences that share the most terms with the query, in order."""
    body = " ".join(line for line in text.splitlines() if line.strip() and not line.startswith("#"))
    sentences = [
        s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(body.split())) if s.strip() and not INJECTION.search(s)
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


@dataclass
class DocumentIndex:
    """The chunk index. Local mode allows one process per path, so only the worker opens it."""

    client: QdrantClient
    remote: bool = False

    @classmethod
    def open(cls, *, url: str = "", api_key: str = "", path: str = "") -> DocumentIndex:
        if url:
            index = cls(QdrantClient(url=url, api_key=api_key or None), remote=True)
        else:
            index = cls(QdrantClient(path=path) if path else QdrantClient(location=":memory:"))
        index.ensure_collection()
        return index

    def ensure_collection(self) -> None:
        if self.client.collection_exists(COLLECTION):
            return
        self.client.create_collection(
            COLLECTION,
            vectors_config={},
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        )
        if self.remote:
            # Local mode filters by brute force and warns that indexes do nothing; a server needs them.
            self.client.create_payload_index(COLLECTION, "tenant", models.PayloadSchemaType.KEYWORD)
            self.client.create_payload_index(COLLECTION, "doc_id", models.PayloadSchemaType.KEYWORD)

    def close(self) -> None:
        self.client.close()

    def index_document(self, doc: Document) -> int:
        """Replace a document's chunks; ids derive from (tenant, doc id, version, chunk), so re-runs are idempotent."""
        self.delete_document(doc.tenant, doc.doc_id)
        chunks = chunk_text(doc.body)
        points = []
        for i, text in enumerate(chunks):
            chunk_id = f"{doc.doc_id}#{i}"
            pid = uuid.uuid5(POINT_NAMESPACE, f"{doc.tenant}/{doc.doc_id}/{doc.version}/{i}")
            points.append(
                models.PointStruct(
                    id=str(pid),
                    # The title counts for matching; the stored text (and so every snippet) is the body only.
                    vector={SPARSE: sparse_vector(f"{doc.title}\n{text}")},
                    payload={
                        "tenant": doc.tenant,
                        "doc_id": doc.doc_id,
                        "title": doc.title,
                        "chunk_id": chunk_id,
                        "classification_level": CLEARANCES.index(doc.classification),
                        "entities": list(doc.entities),
                        "version": doc.version,
                        "text": text[: CHUNK_CHARS * 2],
                    },
                )
            )
        if points:
            self.client.upsert(COLLECTION, points=points, wait=True)
        return len(points)

    def delete_document(self, tenant: str, doc_id: str) -> None:
        self.client.delete(
            COLLECTION,
            points_selector=models.FilterSelector(
                filter=models.Filter(
                    must=[
                        models.FieldCondition(key="tenant", match=models.MatchValue(value=tenant)),
                        models.FieldCondition(key="doc_id", match=models.MatchValue(value=doc_id)),
                    ]
                )
            ),
            wait=True,
        )

    def search(self, query: RetrievalQuery) -> RetrieveResult:
        if not query.tenant:
            raise TenantFilterMissingError(
                "document search without a tenant filter refused",
                hint="every search must name the tenant of the asker",
            )
        if query.max_clearance not in CLEARANCES:
            # POL-007 lets this principal read no document at all (or the value is unknown): fail closed.
            return RetrieveResult(passages=[], mode="lexical")
        max_level = CLEARANCES.index(query.max_clearance)
        must: list[models.Condition] = [
            models.FieldCondition(key="tenant", match=models.MatchValue(value=query.tenant)),
            models.FieldCondition(key="classification_level", range=models.Range(lte=max_level)),
        ]
        # Documents about an entity the asker may not read are never candidates (POL-003, POL-005); a document
        # tagged with several entities is excluded as soon as one of them is off limits.
        must_not: list[models.Condition] = (
            [models.FieldCondition(key="entities", match=models.MatchAny(any=list(query.exclude_entities)))]
            if query.exclude_entities
            else []
        )
        flt = models.Filter(must=must, must_not=must_not)
        if query.entity_tagged_only:
            flt = models.Filter(
                must=[
                    *must,
                    models.FieldCondition(
                        key="entities", match=models.MatchAny(any=list(query.entities) or ["\x00none"])
                    ),
                ],
                must_not=must_not,
            )
        elif query.entities:
            # A document tagged with entities is only relevant (and only shown) for those entities; untagged
            # documents (policies, calendars) apply to all.
            flt = models.Filter(
                must=[
                    *must,
                    models.Filter(
                        should=[
                            models.FieldCondition(key="entities", match=models.MatchAny(any=list(query.entities))),
                            models.IsEmptyCondition(is_empty=models.PayloadField(key="entities")),
                        ]
                    ),
                ],
                must_not=must_not,
            )
        vec = sparse_vector(query.query, query=True)
        if not vec.indices:
            return RetrieveResult(passages=[], mode="lexical")
        hits = self.client.query_points(
            COLLECTION, query=vec, using=SPARSE, query_filter=flt, limit=query.limit * 4, with_payload=True
        ).points
        period_patterns = [_month_pattern(m) for m in query.months]
        query_tokens = set(tokens(query.query))
        passages: list[Passage] = []
        for h in hits:
            if h.payload is None:
                continue
            text = str(h.payload["text"])
            if period_patterns and not any(p.search(text.lower()) for p in period_patterns):
                continue
            if query.min_term_coverage:
                # Share of the query's terms the passage (or its title) contains: one shared word ("memo") is
                # not an answer to "what does the board memo say".
                found = set(tokens(f"{h.payload['title']} {text}"))
                if len(query_tokens & found) < query.min_term_coverage * len(query_tokens):
                    continue
            passages.append(
                Passage(
                    doc_id=str(h.payload["doc_id"]),
                    title=str(h.payload["title"]),
                    chunk_id=str(h.payload["chunk_id"]),
                    snippet=best_sentences(text, query_tokens),
                    score=round(float(h.score), 4),
                )
            )
            if len(passages) >= query.limit:
                break
        return RetrieveResult(passages=passages, mode="lexical")


def sync_index(
    engine: Engine, index: DocumentIndex, tenant: str | None = None, doc_ids: list[str] | None = None
) -> tuple[int, int]:
    """Index documents whose stored content changed since they were last indexed. Returns (documents, chunks)."""
    with Session(engine) as session:
        stmt = select(Document)
        if tenant:
            stmt = stmt.where(Document.tenant == tenant)  # type: ignore[arg-type]
        docs = list(session.execute(stmt).scalars())
        n_docs = n_chunks = 0
        for doc in docs:
            if doc_ids and doc.doc_id not in doc_ids:
                continue
            if doc.indexed_sha256 == doc.sha256 and not doc_ids:
                continue
            n_chunks += index.index_document(doc)
            doc.indexed_sha256 = doc.sha256
            n_docs += 1
        session.commit()
    return n_docs, n_chunks
