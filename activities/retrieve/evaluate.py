"""Retrieval quality on the labelled set: recall@5 and MRR@10 of lexical, dense and hybrid search, per query style.

    docket eval retrieval [--embedder auto|local|none] [--min-recall 0.90]

The corpus is the 13 demo documents plus the 41 documents of examples/retrieval/, indexed into a throwaway
embedded index (Qdrant Edge) exactly as the worker indexes them (`DocumentIndex.index_document`). The queries are
examples/retrieval/queries.jsonl: `{id, tenant, query, relevant: [doc ids], note}`; every query searches its own
tenant with clearance "restricted" (some answers are in restricted documents), so the numbers measure ranking,
not authorization.

- recall@5: share of queries for which a relevant document is among the documents of the top-5 passages of a
  `limit=5` search (doc-level: any chunk of a relevant document counts);
- MRR@10: mean of 1 / rank of the first passage from a relevant document in a `limit=10` search (0 when none).
  The engine sizes its candidate lists from the limit, so this is a second search rather than a longer reading
  of the first: recall@5 stays exactly what a `limit=5` request sees.

Without an embedder only lexical search exists; dense and hybrid are reported as n/a.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from activities.retrieve.embed import Embedder, LocalEmbedder, local_model_available
from activities.retrieve.engine import DocumentIndex, chunk_text
from docket.contracts import RetrievalQuery
from docket.db import Document
from docket.ingest import parse_document

ROOT = Path(__file__).resolve().parents[2]
DEMO_DOCUMENTS = ROOT / "examples" / "meridian" / "documents"
EXTRA_DOCUMENTS = ROOT / "examples" / "retrieval" / "documents"
DOCUMENT_FOLDERS = (DEMO_DOCUMENTS, EXTRA_DOCUMENTS)
QUERIES = ROOT / "examples" / "retrieval" / "queries.jsonl"

MODES = ("lexical", "dense", "hybrid")
STYLES = ("keyword", "paraphrase", "analyst")
RECALL_K = 5
MRR_K = 10
# Answers may sit in restricted documents; the evaluation scores ranking, authorization is tested elsewhere.
CLEARANCE = "restricted"


@dataclass(frozen=True)
class LabelledQuery:
    id: str
    tenant: str
    query: str
    relevant: tuple[str, ...]
    note: str

    @property
    def style(self) -> str:
        return query_style(self.note)


def query_style(note: str) -> str:
    """The style a note names after its target set ("new policy; paraphrase: …"), or "other" (best effort)."""
    _, sep, rest = note.partition(";")
    words = rest.strip().split() if sep else []
    head = words[0].rstrip(",:;").lower() if words else ""
    return head if head in STYLES else "other"


def load_queries(path: Path = QUERIES) -> list[LabelledQuery]:
    queries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        queries.append(
            LabelledQuery(
                id=str(row["id"]),
                tenant=str(row["tenant"]),
                query=str(row["query"]),
                relevant=tuple(str(r) for r in row["relevant"]),
                note=str(row.get("note", "")),
            )
        )
    return queries


def load_corpus(folders: Sequence[Path] = DOCUMENT_FOLDERS) -> list[Document]:
    """Every *.md of the folders as stored documents (version 1), as `docket ingest documents` would store them."""
    docs: list[Document] = []
    seen: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.md")):
            parsed = parse_document(path)
            key = f"{parsed['tenant']}/{parsed['doc_id']}"
            if key in seen:
                # Indexing would silently keep only the later file and skew every number.
                raise ValueError(f"document {key} is in both {seen[key]} and {path}")
            seen[key] = path
            sha = hashlib.sha256(json.dumps(parsed, sort_keys=True).encode()).hexdigest()
            docs.append(Document(**parsed, sha256=sha, version=1))
    return docs


class _QueryCache:
    """The embedder under test, with query vectors remembered: each mode and cutoff re-asks the same questions.

    Queries still go through `embed_query` (some models embed a query differently from a passage).
    """

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self._vectors: dict[str, list[float]] = {}

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        if text not in self._vectors:
            self._vectors[text] = self.inner.embed_query(text)
        return self._vectors[text]


def build_index(docs: Sequence[Document], embedder: Embedder | None) -> DocumentIndex:
    """A throwaway embedded index (removed on close) holding the documents, indexed as the worker indexes them."""
    index = DocumentIndex.open(embedder=embedder)
    for doc in docs:
        index.index_document(doc)
    return index


@dataclass
class StyleScore:
    queries: int
    hits: int

    @property
    def recall(self) -> float:
        return self.hits / self.queries if self.queries else 0.0


@dataclass
class ModeScore:
    mode: str
    # False when the mode needs an embedder and there is none: every figure below is then meaningless.
    available: bool
    queries: int = 0
    hits: int = 0
    recall_at_5: float | None = None
    mrr_at_10: float | None = None
    by_style: dict[str, StyleScore] = field(default_factory=dict)


@dataclass
class Miss:
    """A query with no relevant document in a mode's top 5."""

    query_id: str
    mode: str
    tenant: str
    style: str
    query: str
    relevant: list[str]
    retrieved: list[str]
    # Rank of the first relevant passage within the top 10, if it made it there at all.
    rank_at_10: int | None


@dataclass
class RetrievalEvalReport:
    embedder: str
    documents: int
    chunks: int
    queries: int
    styles: dict[str, int]
    modes: dict[str, ModeScore]
    misses: list[Miss] = field(default_factory=list)

    def recall(self, mode: str) -> float | None:
        return self.modes[mode].recall_at_5

    @property
    def headline_mode(self) -> str:
        """The mode the worker would run: hybrid with an embedder, lexical without."""
        return "hybrid" if self.modes["hybrid"].available else "lexical"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _first_relevant_rank(doc_ids: Sequence[str], relevant: set[str]) -> int | None:
    return next((rank for rank, d in enumerate(doc_ids, start=1) if d in relevant), None)


def score_index(
    index: DocumentIndex, queries: Sequence[LabelledQuery], *, documents: int, chunks: int
) -> RetrievalEvalReport:
    """Run every query in every mode the index supports and score the rankings."""
    have_dense = index.embedder is not None
    styles: dict[str, int] = {}
    for q in queries:
        styles[q.style] = styles.get(q.style, 0) + 1
    modes: dict[str, ModeScore] = {}
    misses: list[Miss] = []
    for mode in MODES:
        if mode != "lexical" and not have_dense:
            modes[mode] = ModeScore(mode=mode, available=False)
            continue
        score = ModeScore(mode=mode, available=True, queries=len(queries))
        reciprocal = 0.0
        for q in queries:
            relevant = set(q.relevant)
            top5 = _search(index, q, mode, RECALL_K)
            top10 = _search(index, q, mode, MRR_K)
            rank = _first_relevant_rank(top10, relevant)
            reciprocal += 1.0 / rank if rank else 0.0
            hit = bool(relevant & set(top5))
            score.hits += hit
            style = score.by_style.setdefault(q.style, StyleScore(queries=0, hits=0))
            style.queries += 1
            style.hits += hit
            if not hit:
                misses.append(
                    Miss(
                        query_id=q.id,
                        mode=mode,
                        tenant=q.tenant,
                        style=q.style,
                        query=q.query,
                        relevant=list(q.relevant),
                        retrieved=_unique(top5),
                        rank_at_10=rank,
                    )
                )
        score.recall_at_5 = score.hits / len(queries) if queries else 0.0
        score.mrr_at_10 = reciprocal / len(queries) if queries else 0.0
        modes[mode] = score
    return RetrievalEvalReport(
        embedder=index.embedder_name or "none",
        documents=documents,
        chunks=chunks,
        queries=len(queries),
        styles=styles,
        modes=modes,
        misses=misses,
    )


def _search(index: DocumentIndex, q: LabelledQuery, mode: str, limit: int) -> list[str]:
    query = RetrievalQuery(tenant=q.tenant, query=q.query, max_clearance=CLEARANCE, limit=limit)
    result = index.search(query, mode=mode)
    if result.mode != mode:
        # A silent fallback (say, hybrid answered lexically) would credit one mode with another's ranking.
        raise RuntimeError(f"asked for {mode} search, got {result.mode}: {result.notes}")
    return [p.doc_id for p in result.passages]


def _unique(doc_ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(doc_ids))


def default_embedder() -> Embedder | None:
    """The local MiniLM model when its package is installed, else none (lexical only)."""
    return LocalEmbedder() if local_model_available() else None


def evaluate(
    embedder: Embedder | Literal["auto"] | None = "auto",
    *,
    queries: Path = QUERIES,
    folders: Sequence[Path] = DOCUMENT_FOLDERS,
) -> RetrievalEvalReport:
    """Index the corpus with `embedder` ("auto": the local model when installed; None: lexical only) and score it."""
    if isinstance(embedder, str) and embedder != "auto":
        raise ValueError(f"embedder must be an Embedder, None or 'auto', not {embedder!r}")
    chosen = default_embedder() if isinstance(embedder, str) else embedder
    docs = load_corpus(folders)
    labelled = load_queries(queries)
    known = {(d.tenant, d.doc_id) for d in docs}
    unknown = [(q.id, r) for q in labelled for r in q.relevant if (q.tenant, r) not in known]
    if unknown:
        # A label pointing at a document of another tenant (or none) could never be found: fix the data, not the score.
        raise ValueError(f"labelled relevant documents missing from the query's tenant: {unknown[:5]}")
    index = build_index(docs, _QueryCache(chosen) if chosen is not None else None)
    try:
        return score_index(index, labelled, documents=len(docs), chunks=sum(len(chunk_text(d.body)) for d in docs))
    finally:
        index.close()


# ---------------------------------------------------------------- rendering


def _ratio(hits: int, n: int) -> str:
    return f"{hits / n:.3f} ({hits}/{n})" if n else "-"


def format_report(report: RetrievalEvalReport, *, misses: bool = True) -> str:
    """Markdown: one row per mode (recall@5, MRR@10, recall@5 per query style), then the misses."""
    styles = [s for s in (*STYLES, "other") if report.styles.get(s)]
    style_counts = ", ".join(f"{s} {report.styles[s]}" for s in styles)
    lines = [
        f"Corpus: {report.documents} documents, {report.chunks} chunks; {report.queries} labelled queries "
        f"({style_counts}); embedder `{report.embedder}`. Every query searches its own tenant with clearance "
        f"`{CLEARANCE}`.",
        "",
        "| mode | recall@5 | MRR@10 | " + " | ".join(f"{s} recall@5" for s in styles) + " |",
        "|---|---:|---:|" + "---:|" * len(styles),
    ]
    for mode in MODES:
        m = report.modes[mode]
        if not m.available:
            lines.append(f"| {mode} | n/a (no embedder) | n/a | " + " | ".join("n/a" for _ in styles) + " |")
            continue
        by_style = [_ratio(m.by_style[s].hits, m.by_style[s].queries) if s in m.by_style else "-" for s in styles]
        lines.append(
            f"| {mode} | {_ratio(m.hits, m.queries)} | {m.mrr_at_10 or 0.0:.3f} | " + " | ".join(by_style) + " |"
        )
    if misses:
        lines += ["", _format_misses(report)]
    return "\n".join(lines)


def _format_misses(report: RetrievalEvalReport) -> str:
    if not report.misses:
        return "No misses: every query found a relevant document in the top 5 in every mode."
    by_query: dict[str, list[Miss]] = {}
    for miss in report.misses:
        by_query.setdefault(miss.query_id, []).append(miss)
    lines = [
        "Misses (no relevant document in the top 5); rank@10 is where the first relevant passage came in a top-10 "
        "search, `-` if it did not:",
        "",
        "| query | style | missed by (rank@10) | query text | relevant | top-5 documents of the first mode listed |",
        "|---|---|---|---|---|---|",
    ]
    for qid, group in sorted(by_query.items()):
        first = group[0]
        modes = ", ".join(f"{m.mode} ({m.rank_at_10 or '-'})" for m in group)
        text = first.query.replace("|", "\\|")
        lines.append(
            f"| {qid} | {first.style} | {modes} | {text} | {', '.join(first.relevant)} | "
            f"{', '.join(first.retrieved) or '(none)'} |"
        )
    return "\n".join(lines)
