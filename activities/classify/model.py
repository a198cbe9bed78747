"""Layer 2 of the classifier at run time: a linear model over tf-idf features, in pure Python.

The artifact (artifacts/intent-model.json) is written by activities/classify/train.py with scikit-learn; this
module only reads it, so the worker needs neither scikit-learn nor numpy and the model loads in milliseconds.
`features` and `weigh` are the one definition of the feature space: training imports them, so training and
inference cannot disagree about what a question looks like.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path

from docket.contracts import Complexity, Intent

DEFAULT_MODEL = Path(__file__).with_name("artifacts") / "intent-model.json"
FORMAT = 1

# Entity codes such as MER-US or GLX-UK become one placeholder: the intent of "revenue for MER-US" does not
# depend on which entity is named, and a tenant's codes must not be learnt as intent cues. The lookarounds keep
# hyphenated words ("year-to-date", "asia-pacific") intact.
ENTITY_CODE = re.compile(r"(?<![\w-])[A-Za-z]{2,5}-[A-Za-z]{2,3}(?![\w-])")
ENTITY_TOKEN = "entcode"
# Month names are period slots like the digits of a year: which month is asked about says nothing about intent.
MONTH = re.compile(
    r"\b(?:january|february|march|april|may|june|july|august|september|october|november|december"
    r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\b\.?"
)
MONTH_TOKEN = "mmm"
DIGIT = re.compile(r"\d")
WORD = re.compile(r"[a-z0]+|%")
CHAR_NGRAMS = (2, 3, 4, 5)


def normalise(text: str) -> str:
    """Lowercase; entity codes, month names and digits → placeholders (they are slots, not intent); & → and."""
    text = ENTITY_CODE.sub(ENTITY_TOKEN, text)
    text = MONTH.sub(MONTH_TOKEN, text.lower().replace("&", " and "))
    return " ".join(DIGIT.sub("0", text).split())


@functools.lru_cache(maxsize=8192)
def _word_grams(word: str) -> tuple[str, ...]:
    """A word's own features: itself and its character n-grams (padded with spaces). Cached: words repeat."""
    padded = f" {word} "
    grams = ["w:" + word]
    for n in CHAR_NGRAMS:
        grams += ["c:" + padded[i : i + n] for i in range(len(padded) - n + 1)]
    return tuple(grams)


def features(text: str) -> dict[str, int]:
    """Raw counts of word unigrams (w:), word bigrams (b:) and character 2-5-grams inside words (c:).

    Character n-grams carry the robustness to typos ("comapre" still shares " co", "com", "are "); keeping them
    inside word boundaries (scikit-learn's char_wb) stops them from memorising word pairs of the templates.
    """
    words = WORD.findall(normalise(text))
    counts: dict[str, int] = {}
    for w in words:
        for key in _word_grams(w):
            counts[key] = counts.get(key, 0) + 1
    for a, b in itertools.pairwise(words):
        key = f"b:{a} {b}"
        counts[key] = counts.get(key, 0) + 1
    return counts


# 1 + ln(count) for the counts short questions have; computed, not approximated, so it equals the formula.
_SUBLINEAR = [0.0] + [1.0 + math.log(c) for c in range(1, 32)]


def _tf(count: int) -> float:
    return _SUBLINEAR[count] if count < len(_SUBLINEAR) else 1.0 + math.log(count)


def weigh(counts: dict[str, int], idf: dict[str, float]) -> dict[str, float]:
    """Sublinear tf x idf over the known features, L2-normalised (unknown features carry no weight)."""
    vec = {f: _tf(c) * idf[f] for f, c in counts.items() if f in idf}
    norm = math.sqrt(sum(v * v for v in vec.values()))
    if norm == 0.0:
        return {}
    return {f: v / norm for f, v in vec.items()}


def softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


@dataclass
class Prediction:
    intent: Intent
    intent_p: float
    complexity: Complexity
    complexity_p: float


@dataclass(frozen=True)
class _Head:
    """One multinomial logistic regression: classes, per feature one weight per class, intercepts."""

    classes: tuple[str, ...]
    weights: dict[str, tuple[float, ...]]
    intercept: tuple[float, ...]


def _head(spec: dict[str, object], names: list[str]) -> _Head:
    classes = spec["classes"]
    coef = spec["coef"]
    intercept = spec["intercept"]
    assert isinstance(classes, list) and isinstance(coef, list) and isinstance(intercept, list)
    # Stored class-major (one row per class, as scikit-learn keeps it); transposed once to feature-major so a
    # prediction touches only the rows of the features the question has.
    by_feature = {name: tuple(float(row[j]) for row in coef) for j, name in enumerate(names)}
    return _Head(tuple(str(c) for c in classes), by_feature, tuple(float(b) for b in intercept))


class IntentModel:
    """Intent and complexity from the text of a question; slots are not its business (they stay rules).

    Two heads: intent, and multiplicity (does the question ask for one figure or several: more than one entity
    or period). Complexity follows from them through the taxonomy, as the artifact's complexity_given_intent
    table records it (read off the training labels): fixed for every intent but a lookup, where one figure is
    SIMPLE and several are MODERATE. The complexity returned is the one for the predicted intent; its
    probability is the marginal over intents and multiplicity, so an unsure intent makes an unsure complexity.
    """

    def __init__(
        self,
        idf: dict[str, float],
        intent: _Head,
        multiplicity: _Head,
        complexity_given_intent: dict[str, dict[str, str]],
        version: str,
    ) -> None:
        self.idf = idf
        self.intent = intent
        self.multiplicity = multiplicity
        self.complexity_given_intent = complexity_given_intent
        self.version = version
        # Per known feature: its idf, then both heads' weights side by side. Scoring is one lookup per feature,
        # a transpose and one C-level dot product per class (three times faster in pure Python than updating
        # every class per feature).
        self._table = {f: (v, *intent.weights[f], *multiplicity.weights[f]) for f, v in idf.items()}
        self._intercepts = intent.intercept + multiplicity.intercept
        self._split = len(intent.classes)

    @classmethod
    def load(cls, path: Path = DEFAULT_MODEL) -> IntentModel:
        raw = path.read_bytes()
        spec = json.loads(raw)
        if spec.get("format") != FORMAT:
            raise ValueError(
                f"{path}: model format {spec.get('format')!r}, this code reads format {FORMAT}; "
                "retrain with `docket train classifier`"
            )
        names: list[str] = spec["features"]
        idf = {name: float(v) for name, v in zip(names, spec["idf"], strict=True)}
        table = {
            str(i): {str(m): str(c) for m, c in by_m.items()} for i, by_m in spec["complexity_given_intent"].items()
        }
        version = f"{spec['kind']}-{hashlib.sha256(raw).hexdigest()[:12]}"
        return cls(idf, _head(spec["intent"], names), _head(spec["multiplicity"], names), table, version)

    def scores(self, text: str) -> tuple[list[float], list[float]]:
        """Class probabilities of both heads, in the order of their classes.

        The same arithmetic as `weigh` followed by a dot product per class, with the L2 division moved after
        the sums (it is linear); tests pin the two to agree within 1e-12.
        """
        xs: list[float] = []
        rows: list[tuple[float, ...]] = []
        for f, count in features(text).items():
            row = self._table.get(f)
            if row is not None:
                xs.append(_tf(count) * row[0])
                rows.append(row)
        if not rows:
            logits = list(self._intercepts)
        else:
            norm = math.sqrt(sum(map(operator.mul, xs, xs)))
            columns = list(zip(*rows, strict=True))[1:]
            logits = [
                b + sum(map(operator.mul, xs, col)) / norm for b, col in zip(self._intercepts, columns, strict=True)
            ]
        return softmax(logits[: self._split]), softmax(logits[self._split :])

    def predict(self, text: str) -> Prediction:
        ip, mp_list = self.scores(text)
        mp = dict(zip(self.multiplicity.classes, mp_list, strict=True))
        marginal: dict[str, float] = {}
        by_intent: dict[str, dict[str, float]] = {}
        for intent, p in zip(self.intent.classes, ip, strict=True):
            dist: dict[str, float] = {}
            for m, q in mp.items():
                c = self.complexity_given_intent[intent][m]
                dist[c] = dist.get(c, 0.0) + q
            by_intent[intent] = dist
            for c, q in dist.items():
                marginal[c] = marginal.get(c, 0.0) + p * q
        i = max(range(len(ip)), key=ip.__getitem__)
        best = by_intent[self.intent.classes[i]]
        complexity = max(best, key=best.__getitem__)
        return Prediction(
            intent=Intent(self.intent.classes[i]),
            intent_p=ip[i],
            complexity=Complexity(complexity),
            complexity_p=marginal[complexity],
        )
