"""Reliability of the confidence score on the labelled request set: is a request scored 0.9 right 90 % of the time?

    docket eval confidence [--split test] [--json] [--write-docs]

Every request of a split of activities/classify/data/requests.jsonl is classified by the layered classifier exactly
as `docket eval classifier` builds it (rules → trained model, no LLM, over the demo catalog) and scored by
`engine.score` as it would be before any data is read: full coverage, one figure computed, one passage found, the
wording validated, no assumption. What is left of the formula is the classification factor and the method factor,
which is what the labelled set can check; the data factors need a ledger with known gaps, not labels.

A request is CORRECT when:

- the result asks for clarification and the label says it should: the request is out of scope, or it lacks a slot
  its intent needs (a metric, an entity or a period; document questions need none). Asking is then the right
  outcome whatever intent was guessed, since the asker's reply is classified again. Asking about a request whose
  label has every slot is wrong: the asker is made to repeat what they said.
- otherwise, the predicted intent equals the label and every slot the figures depend on equals its label:
  accounts, entities, periods, exclusions (the slot exact match of `docket eval classifier`), derived metrics,
  scenario shocks and the growth basis. The comparison axis is left out: the planner reads it only to add a
  change row to a two-period comparison, so a wrong axis does not make the figures wrong. The report still gives
  the accuracy counting it (`strict_accuracy`).

Complexity is not judged: it decides which action the request needs to be authorized for, not what the answer says.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

from activities.classify.dataset import DATASET
from activities.classify.evaluate import (
    EXTRA_FIELDS,
    SLOT_FIELDS,
    Classify,
    layered_classifier,
    load_demo_catalog,
    slot_values,
)
from activities.classify.model import DEFAULT_MODEL, IntentModel
from activities.confidence.engine import ANSWER_AT, QUALIFY_AT, score
from activities.plan.engine import TEMPLATES
from docket.catalog import Catalog
from docket.contracts import ClassifyResult, Intent, ScoreInput

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "confidence.md"

# Edges chosen around the bands (0.5 and 0.8 are the engine's thresholds) and finer above 0.8, where almost every
# request lands and where "answered" has to mean something. The last bin is closed so that 1.0 has a bin.
BINS: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.5, 0.8), (0.8, 0.9), (0.9, 0.95), (0.95, 1.0))
BANDS: tuple[tuple[Literal["low", "medium", "high"], float, float], ...] = (
    ("low", 0.0, QUALIFY_AT),
    ("medium", QUALIFY_AT, ANSWER_AT),
    ("high", ANSWER_AT, 1.0),
)
# The slots a wrong value of changes the figures computed (see the module docstring for comparison_axis).
JUDGED_FIELDS = (*SLOT_FIELDS, "derived", "shocks", "growth_basis")
STRICT_FIELDS = (*SLOT_FIELDS, *EXTRA_FIELDS)
METHODS = ("rule", "ml", "llm", "fallback")


def bin_index(confidence: float) -> int:
    """The bin of BINS that holds confidence: [lower, upper), the last one [lower, 1.0]."""
    if not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence {confidence} is outside [0, 1]")
    for k, (_, upper) in enumerate(BINS[:-1]):
        if confidence < upper:
            return k
    return len(BINS) - 1


# ---------------------------------------------------------------- the table


@dataclass
class Bin:
    """One row of the reliability table; gap = mean confidence - accuracy (positive: over-confident)."""

    lower: float
    upper: float
    n: int
    mean_confidence: float | None
    accuracy: float | None
    gap: float | None


@dataclass
class Band:
    """Accuracy of one band of the engine; over_confident when it is right less often than its lower bound says."""

    band: str
    lower: float
    upper: float
    n: int
    mean_confidence: float | None
    accuracy: float | None
    over_confident: bool


@dataclass
class Reliability:
    n: int
    accuracy: float
    mean_confidence: float
    # Expected calibration error: the sum over bins of n_bin / n * |accuracy - mean confidence|.
    ece: float
    bins: list[Bin]
    bands: list[Band]


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def reliability(points: Iterable[tuple[float, bool]]) -> Reliability:
    """The reliability table of (confidence, correct) pairs."""
    pts = list(points)
    binned: list[list[tuple[float, bool]]] = [[] for _ in BINS]
    for conf, ok in pts:
        binned[bin_index(conf)].append((conf, ok))
    n = len(pts)
    bins: list[Bin] = []
    ece = 0.0
    for (lower, upper), members in zip(BINS, binned, strict=True):
        mean_conf = _mean([c for c, _ in members])
        acc = _mean([float(ok) for _, ok in members])
        gap = None if mean_conf is None or acc is None else mean_conf - acc
        if gap is not None:
            ece += len(members) / n * abs(gap)
        bins.append(Bin(lower, upper, len(members), _r(mean_conf), _r(acc), _r(gap)))
    bands: list[Band] = []
    for name, lower, upper in BANDS:
        members = [(c, ok) for c, ok in pts if lower <= c < upper or (upper == 1.0 and c == 1.0)]
        acc = _mean([float(ok) for _, ok in members])
        bands.append(
            Band(
                name,
                lower,
                upper,
                len(members),
                _r(_mean([c for c, _ in members])),
                _r(acc),
                over_confident=acc is not None and acc < lower,
            )
        )
    return Reliability(
        n=n,
        accuracy=round(sum(ok for _, ok in pts) / n, 4) if n else 0.0,
        mean_confidence=round(sum(c for c, _ in pts) / n, 4) if n else 0.0,
        ece=round(ece, 4),
        bins=bins,
        bands=bands,
    )


# ---------------------------------------------------------------- judging one request


def label_needs_clarification(row: Mapping[str, Any]) -> bool:
    """Whether the labelled request should be asked about rather than answered (see the module docstring)."""
    if row["intent"] == Intent.OUT_OF_SCOPE.value:
        return True
    if row["intent"] == Intent.DOCUMENT_QUESTION.value:
        return False
    s = row["slots"]
    return (not s["accounts"] and not s["derived"]) or not s["entities"] or not s["periods"]


def is_correct(row: Mapping[str, Any], result: ClassifyResult, fields: Sequence[str] = JUDGED_FIELDS) -> bool:
    if result.clarifications:
        return label_needs_clarification(row)
    got = slot_values(result)
    want = row["slots"]
    return result.intent.value == row["intent"] and all(got[f] == want[f] for f in fields if f in want)


def pre_data_confidence(result: ClassifyResult) -> float:
    """The score a request gets before any data is read: every data factor at its best."""
    scored = score(
        ScoreInput(
            classification=result,
            expected_cells=1,
            missing=[],
            facts=1,
            generation_validated=True,
            passages=1,
            template=TEMPLATES.get(result.intent, ""),
        )
    )
    return scored.confidence.score


@dataclass
class Judged:
    id: str
    text: str
    method: str
    confidence: float
    correct: bool
    strict_correct: bool
    asked: bool
    intent: tuple[str, str]  # label, predicted


# ---------------------------------------------------------------- the report


@dataclass
class CalibrationReport:
    """What `docket eval confidence` prints."""

    split: str
    n: int
    dataset_sha256: str
    model_version: str
    overall: Reliability
    by_method: dict[str, Reliability]
    # Only the results that do not ask for clarification: the readings Docket would run.
    readings: Reliability
    strict_accuracy: float  # counting the comparison axis too
    asked: int  # results that ask for clarification
    asked_correct: int
    # Requests scored high (answered before any data is read) that are wrong.
    high_misses: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render_markdown(self) -> str:
        r = self
        lines = [
            f"Split `{r.split}`: {r.n} requests · model `{r.model_version}` · dataset sha256 `{r.dataset_sha256[:12]}`",
            "",
            *_table(r.overall),
            "",
            f"Expected calibration error (ECE, bins weighted by n): **{r.overall.ece:.3f}**. "
            f"Accuracy {_pct(r.overall.accuracy)} at a mean confidence of {_pct(r.overall.mean_confidence)}; "
            f"counting the comparison axis as well, {_pct(r.strict_accuracy)}.",
            "",
            "| band | score | requests | mean confidence | accuracy | right at least as often as its lower bound |",
            "|---|---|---:|---:|---:|---|",
        ]
        for b in r.overall.bands:
            verdict = "-" if b.accuracy is None else "**no: over-confident**" if b.over_confident else "yes"
            bound = f"≥ {b.lower:g}" if b.upper == 1.0 else _bin_name(b.lower, b.upper)
            lines.append(
                f"| {b.band} | {bound} | {b.n} | {_opt_pct(b.mean_confidence)} | {_opt_pct(b.accuracy)} | {verdict} |"
            )
        lines += [
            "",
            f"{r.asked} results ask for clarification; {r.asked_correct} of them should (the label is out of scope "
            "or lacks a slot). Without them, the readings Docket would run:",
            "",
            *_table(r.readings),
            "",
            f"ECE of the readings: **{r.readings.ece:.3f}**.",
            "",
            "Per classification method (the layer that decided the intent; `fallback`: the LLM layer's requests, "
            "with no LLM configured):",
            "",
            "| method | requests | accuracy | mean confidence | ECE | "
            + " | ".join(_bin_name(lo, hi) for lo, hi in BINS)
            + " |",
            "|---|---:|---:|---:|---:|" + "---|" * len(BINS),
        ]
        for method, rel in r.by_method.items():
            # Accuracy per bin, with how many requests it is over: a percentage of 3 requests says little.
            cells = ["-" if b.accuracy is None else f"{_pct(b.accuracy)} of {b.n}" for b in rel.bins]
            lines.append(
                f"| {method} | {rel.n} | {_pct(rel.accuracy)} | {_pct(rel.mean_confidence)} | {rel.ece:.3f} | "
                + " | ".join(cells)
                + " |"
            )
        return "\n".join(lines)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def _opt_pct(x: float | None) -> str:
    return "-" if x is None else _pct(x)


def _bin_name(lower: float, upper: float) -> str:
    return f"[{lower:g}, {upper:g}]" if upper == 1.0 else f"[{lower:g}, {upper:g})"


def _table(rel: Reliability) -> list[str]:
    lines = [
        "| confidence | requests | mean confidence | accuracy | gap (confidence - accuracy) |",
        "|---|---:|---:|---:|---:|",
    ]
    for b in rel.bins:
        gap = "-" if b.gap is None else f"{100 * b.gap:+.1f} pts"
        lines.append(
            f"| {_bin_name(b.lower, b.upper)} | {b.n} | {_opt_pct(b.mean_confidence)} | {_opt_pct(b.accuracy)} | "
            f"{gap} |"
        )
    return lines


def calibrate(
    dataset: Path = DATASET,
    split: str = "test",
    model_path: Path = DEFAULT_MODEL,
    catalog: Catalog | None = None,
) -> CalibrationReport:
    """The reliability of the pre-data confidence on one split of the labelled set ("all" for every request)."""
    raw = dataset.read_bytes()
    rows = [json.loads(line) for line in raw.decode("utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if split == "all" or r["split"] == split]
    catalog = catalog or load_demo_catalog()
    model = IntentModel.load(model_path)
    judged = asyncio.run(_judge(rows, layered_classifier(catalog, model)))
    return build_report(judged, split, hashlib.sha256(raw).hexdigest(), model.version)


async def _judge(rows: list[dict[str, Any]], classify: Classify) -> list[Judged]:
    judged: list[Judged] = []
    for row in rows:
        result = await classify(row["text"], date.fromisoformat(row["as_of"]))
        judged.append(
            Judged(
                id=row["id"],
                text=row["text"],
                method=result.method,
                confidence=pre_data_confidence(result),
                correct=is_correct(row, result),
                strict_correct=is_correct(row, result, STRICT_FIELDS),
                asked=bool(result.clarifications),
                intent=(row["intent"], result.intent.value),
            )
        )
    return judged


def build_report(judged: Sequence[Judged], split: str, dataset_sha256: str, model_version: str) -> CalibrationReport:
    def table(js: Iterable[Judged]) -> Reliability:
        return reliability((j.confidence, j.correct) for j in js)

    n = len(judged)
    asked = [j for j in judged if j.asked]
    return CalibrationReport(
        split=split,
        n=n,
        dataset_sha256=dataset_sha256,
        model_version=model_version,
        overall=table(judged),
        by_method={m: table(j for j in judged if j.method == m) for m in METHODS if any(j.method == m for j in judged)},
        readings=table(j for j in judged if not j.asked),
        strict_accuracy=round(sum(j.strict_correct for j in judged) / n, 4) if n else 0.0,
        asked=len(asked),
        asked_correct=sum(j.correct for j in asked),
        high_misses=[
            {"id": j.id, "text": j.text, "method": j.method, "confidence": j.confidence, "intent": list(j.intent)}
            for j in judged
            if j.confidence >= ANSWER_AT and not j.correct
        ],
    )


DOCS_BEGIN = "<!-- confidence-calibration:begin -->"
DOCS_END = "<!-- confidence-calibration:end -->"


def write_docs_section(path: Path, report: CalibrationReport) -> None:
    """Replace the table between the markers of docs/confidence.md with this run's."""
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(DOCS_BEGIN) + r".*?" + re.escape(DOCS_END), re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"{path} has no {DOCS_BEGIN} … {DOCS_END} section to replace")
    section = f"{DOCS_BEGIN}\n{report.render_markdown()}\n{DOCS_END}"
    path.write_text(pattern.sub(lambda _: section, text), encoding="utf-8")
