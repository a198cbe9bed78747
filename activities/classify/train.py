"""Train layer 2 (intent and complexity) on the train split and export it as a pure-JSON artifact.

    docket train classifier [--seed 7] [--dataset activities/classify/data/requests.jsonl] [--out …]

scikit-learn is a training-time dependency only (the `train` extra); activities/classify/model.py reads the
artifact without it. The export is reproducible byte for byte: features come from model.features (sorted),
idf values and coefficients are rounded to 6 decimals, training runs on one BLAS thread, and the JSON is written
with sorted keys and fixed separators. Re-running with the same dataset, seed and library versions rewrites the
committed artifact unchanged (`git diff --exit-code activities/classify/artifacts/`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from activities.classify.dataset import DATASET
from activities.classify.model import DEFAULT_MODEL, FORMAT, features, weigh

KIND = "intent-lr"
# Regularisation and vocabulary cut-off, chosen by 5-fold cross-validation on the train split only
# (docs/classifier.md); the test split never informs them.
C = 100.0
MIN_DF = 2
DECIMALS = 6


def read_rows(dataset: Path, split: str | None = None) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in dataset.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if split in (None, "all") or r["split"] == split]


def _round(x: float) -> float:
    # -0.0 and 0.0 must print the same for the bytes to be stable.
    return round(float(x), DECIMALS) + 0.0


def vocabulary(texts: Sequence[str], min_df: int = MIN_DF) -> dict[str, float]:
    """Features seen in at least min_df training texts, with their smoothed idf (as scikit-learn computes it)."""
    df: dict[str, int] = {}
    for text in texts:
        for f in features(text):
            df[f] = df.get(f, 0) + 1
    n = len(texts)
    return {f: _round(math.log((1 + n) / (1 + d)) + 1.0) for f, d in sorted(df.items()) if d >= min_df}


def several(row: dict[str, Any]) -> str:
    """Whether a labelled request asks for several figures: more than one entity or more than one period."""
    slots = row["slots"]
    return "several" if len(slots["entities"]) > 1 or len(slots["periods"]) > 1 else "one"


def complexity_table(
    intents: Sequence[str], multiplicity: Sequence[str], complexities: Sequence[str]
) -> dict[str, dict[str, str]]:
    """Complexity for each (intent, one/several) seen in training; labels that break the taxonomy are an error."""
    table: dict[str, dict[str, str]] = {}
    for i, m, c_ in zip(intents, multiplicity, complexities, strict=True):
        seen = table.setdefault(i, {}).setdefault(m, c_)
        if seen != c_:
            raise ValueError(f"labels disagree: {i} with {m} figure(s) is both {seen} and {c_}")
    for by_m in table.values():
        # An intent seen with only one multiplicity has the same complexity with the other.
        only = next(iter(by_m.values()))
        for m in ("one", "several"):
            by_m.setdefault(m, only)
    return {i: dict(sorted(by_m.items())) for i, by_m in sorted(table.items())}


def fit(
    texts: Sequence[str],
    intents: Sequence[str],
    complexities: Sequence[str],
    multiplicity: Sequence[str],
    seed: int,
    c: float = C,
) -> dict[str, Any]:
    """Fit the intent head and the multiplicity head; returns the artifact body (without provenance)."""
    import numpy as np
    from scipy.sparse import csr_matrix  # type: ignore[import-untyped]
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    idf = vocabulary(texts)
    names = sorted(idf)
    column = {f: j for j, f in enumerate(names)}
    data: list[float] = []
    indices: list[int] = []
    indptr = [0]
    for text in texts:
        vec = weigh(features(text), idf)
        for f in sorted(vec, key=column.__getitem__):
            indices.append(column[f])
            data.append(vec[f])
        indptr.append(len(indices))
    x = csr_matrix((np.array(data), np.array(indices), np.array(indptr)), shape=(len(texts), len(names)))

    def head(labels: Sequence[str]) -> dict[str, Any]:
        # Balanced class weights: how many requests of each intent the dataset has reflects the generator's
        # targets, not traffic, and the rare intents (documents, out of scope) must not be under-predicted.
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=10_000, tol=1e-8, random_state=seed)
        # lbfgs is deterministic for fixed inputs; one BLAS thread removes summation-order differences.
        with threadpool_limits(limits=1):
            clf.fit(x, np.array(labels))
        coef, intercept = [list(row) for row in clf.coef_], list(clf.intercept_)
        if len(clf.classes_) == 2:
            # scikit-learn keeps one row for two classes (the second class's logit); the artifact always has one
            # row per class so inference is a softmax either way: softmax([0, z]) = sigmoid(z).
            coef, intercept = [[0.0] * len(coef[0]), coef[0]], [0.0, intercept[0]]
        return {
            "classes": [str(k) for k in clf.classes_],
            "coef": [[_round(w) for w in row] for row in coef],
            "intercept": [_round(b) for b in intercept],
        }

    return {
        "features": names,
        "idf": [idf[f] for f in names],
        "intent": head(intents),
        # Complexity is fixed by intent except for a lookup, where one figure is SIMPLE and several (entities or
        # periods) MODERATE. "Several" is labelled on every request, so this head learns it from all of them
        # rather than from the lookups alone.
        "multiplicity": head(multiplicity),
        "complexity_given_intent": complexity_table(intents, multiplicity, complexities),
    }


def train(dataset: Path = DATASET, seed: int = 7) -> dict[str, Any]:
    """The artifact as a dict: feature index, idf, both heads, and how it was made."""
    import sklearn  # type: ignore[import-untyped]

    rows = read_rows(dataset, "train")
    body = fit(
        [r["text"] for r in rows],
        [r["intent"] for r in rows],
        [r["complexity"] for r in rows],
        [several(r) for r in rows],
        seed,
    )
    return {
        "format": FORMAT,
        "kind": KIND,
        **body,
        "training": {
            "algorithm": "multinomial logistic regression (scikit-learn LogisticRegression, lbfgs, L2, balanced)",
            "C": C,
            "min_df": MIN_DF,
            "features": "word 1-2-grams, in-word char 2-5-grams of model.normalise(text); sublinear tf-idf; L2",
            "seed": seed,
            "dataset": dataset.name,
            "dataset_sha256": hashlib.sha256(dataset.read_bytes()).hexdigest(),
            "train_rows": len(rows),
            "sklearn": sklearn.__version__,
        },
    }


def dumps(artifact: dict[str, Any]) -> bytes:
    """Stable bytes: sorted keys, fixed separators, one trailing newline."""
    return (json.dumps(artifact, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n").encode()


def write(artifact: dict[str, Any], out: Path = DEFAULT_MODEL) -> str:
    """Write the artifact; returns its sha256."""
    raw = dumps(artifact)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw)
    return hashlib.sha256(raw).hexdigest()
