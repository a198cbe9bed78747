"""The retrieval evaluation (activities/retrieve/evaluate.py) on the labelled set.

Lexical search is scored for real over the whole corpus; the dense/hybrid rendering uses a tiny deterministic
embedder (hashed character trigrams) so the test does not pay for loading the MiniLM model, which
test_retrieval_hybrid.py already exercises.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import pytest

from activities.retrieve.evaluate import (
    MODES,
    QUERIES,
    RetrievalEvalReport,
    evaluate,
    format_report,
    load_queries,
    query_style,
)


class TrigramEmbedder:
    """Unit vectors of hashed character trigrams: cheap, deterministic, and similar texts land close together."""

    name = "test:trigram"
    dim = 64

    def _vector(self, text: str) -> list[float]:
        v = [0.0] * self.dim
        t = f"  {text.lower()} "
        for i in range(len(t) - 2):
            v[int.from_bytes(hashlib.blake2b(t[i : i + 3].encode(), digest_size=2).digest(), "big") % self.dim] += 1
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


@pytest.fixture(scope="module")
def lexical() -> RetrievalEvalReport:
    return evaluate(None)


def test_lexical_recall_at_5_on_the_labelled_set(lexical: RetrievalEvalReport) -> None:
    assert lexical.queries == len(load_queries(QUERIES)) >= 100
    assert lexical.documents >= 50
    m = lexical.modes["lexical"]
    assert m.available and m.queries == lexical.queries
    assert m.recall_at_5 is not None and m.recall_at_5 >= 0.85, f"lexical recall@5 {m.recall_at_5}"
    # A first relevant passage at rank 1 counts 1, a miss 0: with most queries found, most are found early.
    assert m.mrr_at_10 is not None and 0.5 <= m.mrr_at_10 <= 1.0
    assert len([x for x in lexical.misses if x.mode == "lexical"]) == m.queries - m.hits
    assert sum(s.queries for s in m.by_style.values()) == m.queries


def test_without_an_embedder_dense_and_hybrid_are_not_available(lexical: RetrievalEvalReport) -> None:
    assert not lexical.modes["dense"].available and not lexical.modes["hybrid"].available
    assert lexical.headline_mode == "lexical"
    text = format_report(lexical)
    assert "| dense | n/a" in text and "| hybrid | n/a" in text


def test_report_has_all_three_modes_with_an_embedder() -> None:
    report = evaluate(TrigramEmbedder())
    assert report.embedder == "test:trigram" and report.headline_mode == "hybrid"
    text = format_report(report)
    for mode in MODES:
        assert report.modes[mode].available
        assert f"| {mode} | " in text
    assert "n/a" not in text
    # Lexical ranking does not depend on the embedder.
    assert report.modes["lexical"].hits >= 0.85 * report.queries


@pytest.mark.parametrize(
    ("note", "style"),
    [
        ("demo; keyword: Brazil ledger missing", "keyword"),
        ("new policy; paraphrase: 30 days", "paraphrase"),
        ("new; analyst question, synonyms", "analyst"),
        ("demo globex; keyword (confidential)", "keyword"),
        ("demo", "other"),
    ],
)
def test_query_style_from_note(note: str, style: str) -> None:
    assert query_style(note) == style


def test_cli_fails_below_min_recall() -> None:
    from typer.testing import CliRunner

    from cli.classifier import eval_app
    from cli.retrieval_eval import retrieval

    assert retrieval.__name__ == "retrieval"  # importing the module registered the command on eval_app
    result = CliRunner().invoke(eval_app, ["retrieval", "--embedder", "none", "--min-recall", "0.99", "--no-misses"])
    assert result.exit_code == 1, result.output
    assert "| lexical | " in result.output and "below --min-recall 0.99" in result.output
