"""The expected figures of tests/questions/meridian.jsonl, evaluated from their specs with the independent oracle.

A question (one JSON object a line) has ``id``, ``principal``, ``tenant`` (default meridian), ``as_of`` (default
2026-11-21), ``question``, the expected ``intent`` and ``outcome``, and optionally: ``facts`` (label → spec, each
must be in the result with exactly the oracle's value), ``absent`` (labels that must not be), ``missing`` (cells
the result must name, no more), ``cites`` (doc ids among the citations), ``masked`` (accounts masked for the
asker), ``policy`` (the first policy a denial names), ``must_not_contain`` (strings) and ``hidden`` (specs of
figures that must not appear anywhere in the result), ``rules`` (access rules it exercises without being denied)
and ``tags`` (what else it covers). check() compares one result with all of it.

A question never carries a number the product printed: each expected fact is a small expression over ledger sums
that tests/support/oracle.py recomputes from the CSV files. The spec language (JSON):

- ``{"sum": {"entities": ["MER-US"] | "group" | "region:EMEA", "account": "4", "period": "2026-Q2",
  "exclude": ["5.1"], "tenant": "meridian"}}``: a ledger sum over the submitted cells (``"months": [...]`` instead
  of ``period``; the period is a month, ``YYYY-Qn``, ``YYYY-Hn``, a year or a range ``first..last``); USD.
- ``{"add": [a, b, ...]}``, ``{"difference": [a, b]}``, ``{"scale": [a, "0.1"]}``: exact arithmetic in USD; a
  difference of two percentages is a change in points ("pp"), rounded to one decimal.
- ``{"round": a}``: to a whole USD, half away from zero (a scenario figure with a percentage applied).
- ``{"growth_pct": [current, prior]}``, ``{"margin_pct": [revenue, costs]}``,
  ``{"pct_change": [new, base]}`` (over ``|base|``): percent to one decimal, half up.
- ``{"slope": [a, b, ...]}`` or ``{"slope": {"per_month": <sum args over a range>}}``: least-squares slope per
  month, whole USD ("USD/month").

Percentages are rounded with oracle.round_half_up: to one decimal, half away from zero.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from tests.support.oracle import (
    DEMO_PACK,
    LedgerOracle,
    growth_pct,
    margin_pct,
    months_between,
    round_half_up,
    slope,
)

Spec = Mapping[str, Any]
QUESTIONS_FILE = Path(__file__).resolve().parents[1] / "questions" / "meridian.jsonl"


class SpecError(ValueError):
    """A spec that cannot be evaluated (unknown operation, no data at all, ambiguous rounding)."""


@dataclass(frozen=True)
class Figure:
    """An expected figure: its exact value and the unit the product must report it in."""

    value: Fraction
    unit: str  # USD, %, pp, USD/month

    @property
    def number(self) -> int | float:
        """The value as the result contract carries it: whole USD, or a percentage to one decimal."""
        if self.unit in ("USD", "USD/month"):
            if self.value.denominator != 1:
                raise SpecError(f"{self.value} USD is not whole: wrap the spec in round")
            return int(self.value)
        return float(self.value)


def period_months(label: str) -> list[str]:
    """The months of a period label: 2026-03, 2026-Q2, 2026-H1, 2025, 2026-05..2026-10."""
    if ".." in label:
        first, last = label.split("..")
        return months_between(first, last)
    if len(label) == 4 and label.isdigit():
        return months_between(f"{label}-01", f"{label}-12")
    year, _, part = label.partition("-")
    if part.startswith("Q"):
        q = int(part[1:])
        return months_between(f"{year}-{q * 3 - 2:02d}", f"{year}-{q * 3:02d}")
    if part.startswith("H"):
        h = int(part[1:])
        return months_between(f"{year}-{h * 6 - 5:02d}", f"{year}-{h * 6:02d}")
    return [label]


def percent(value: Fraction) -> Fraction:
    """A percentage to one decimal, half away from zero (oracle.round_half_up)."""
    return Fraction(str(round_half_up(value)))


def whole(value: Fraction) -> Fraction:
    """Half away from zero, as money is rounded."""
    mag = abs(value)
    whole = mag.numerator // mag.denominator
    if mag - whole >= Fraction(1, 2):
        whole += 1
    return Fraction(whole if value >= 0 else -whole)


class QuestionOracle:
    """Evaluates specs over one LedgerOracle."""

    def __init__(self, oracle: LedgerOracle | None = None) -> None:
        self.oracle = oracle or LedgerOracle()

    # ------------------------------------------------------------------ ledger sums

    def entities(self, tenant: str, entities: str | Sequence[str]) -> list[str]:
        if entities == "group":
            return self.oracle.entities_of(tenant)
        if isinstance(entities, str):
            if not entities.startswith("region:"):
                raise SpecError(f"entities {entities!r}: a list, 'group' or 'region:NAME'")
            return self.oracle.entities_of(tenant, entities.removeprefix("region:"))
        return list(entities)

    def months(self, args: Spec) -> list[str]:
        if "months" in args:
            return list(args["months"])
        return period_months(str(args["period"]))

    def ledger_sum(self, args: Spec) -> int:
        tenant = str(args.get("tenant", "meridian"))
        ents = self.entities(tenant, args["entities"])
        months = self.months(args)
        result = self.oracle.sum(tenant, ents, str(args["account"]), months, [str(x) for x in args.get("exclude", [])])
        if result.total is None:
            raise SpecError(f"no ledger data at all for {ents} {args['account']} {months}")
        return result.total

    def missing(self, args: Spec) -> list[str]:
        """The cells of a sum spec with no ledger rows, as the product names them ("MER-BR 2026-10")."""
        tenant = str(args.get("tenant", "meridian"))
        ents = self.entities(tenant, args["entities"])
        return [f"{e} {m}" for e in ents for m in self.months(args) if self.oracle.is_missing(tenant, e, m)]

    # ------------------------------------------------------------------ expressions

    def figure(self, spec: Spec) -> Figure:
        if len(spec) != 1:
            raise SpecError(f"a spec has exactly one operation: {dict(spec)}")
        ((op, arg),) = spec.items()
        if op == "sum":
            return Figure(Fraction(self.ledger_sum(arg)), "USD")
        if op == "slope":
            series = self._series(arg)
            return Figure(Fraction(slope([self._int(x) for x in series])), "USD/month")
        parts = [self.figure(x) for x in arg] if op not in ("round", "scale") else []
        if op == "add":
            self._units(op, parts, "USD")
            return Figure(sum((p.value for p in parts), Fraction(0)), "USD")
        if op == "difference":
            a, b = self._two(op, parts)
            if a.unit == b.unit == "%":
                return Figure(percent(a.value - b.value), "pp")
            self._units(op, parts, "USD")
            return Figure(a.value - b.value, "USD")
        if op == "scale":
            base, factor = arg
            inner = self.figure(base)
            self._units(op, [inner], "USD")
            return Figure(inner.value * Fraction(str(factor)), "USD")
        if op == "round":
            inner = self.figure(arg)
            self._units(op, [inner], "USD")
            return Figure(whole(inner.value), "USD")
        if op in ("growth_pct", "margin_pct", "pct_change"):
            a, b = self._two(op, parts)
            self._units(op, parts, "USD")
            if op == "growth_pct":
                if a.value.denominator == b.value.denominator == 1:
                    return Figure(Fraction(str(growth_pct(int(a.value), int(b.value)))), "%")
                return Figure(percent((a.value - b.value) / abs(b.value) * 100), "%")
            if op == "margin_pct":
                return Figure(Fraction(str(margin_pct(a.value, b.value))), "%")
            return Figure(percent((a.value - b.value) / abs(b.value) * 100), "%")
        raise SpecError(f"unknown operation {op!r}")

    def _series(self, arg: Any) -> list[Figure]:
        if isinstance(arg, Mapping):
            per_month = dict(arg["per_month"])
            months = self.months(per_month)
            per_month.pop("period", None)
            return [self.figure({"sum": per_month | {"months": [m]}}) for m in months]
        return [self.figure(x) for x in arg]

    def series_values(self, spec: Spec) -> list[int]:
        """The points of a slope spec (for the direction of a trend)."""
        return [self._int(x) for x in self._series(spec["slope"])]

    @staticmethod
    def _int(f: Figure) -> int:
        if f.unit != "USD" or f.value.denominator != 1:
            raise SpecError(f"a series point must be whole USD, not {f}")
        return int(f.value)

    @staticmethod
    def _two(op: str, parts: list[Figure]) -> tuple[Figure, Figure]:
        if len(parts) != 2:
            raise SpecError(f"{op} takes two operands, not {len(parts)}")
        return parts[0], parts[1]

    @staticmethod
    def _units(op: str, parts: list[Figure], unit: str) -> None:
        if any(p.unit != unit for p in parts):
            raise SpecError(f"{op} needs {unit} operands: {[p.unit for p in parts]}")


# A trend whose slope moves less than this share of the series' mean per month reads "flat" (docs/planner.md).
FLAT_SHARE = Fraction(5, 1000)


def trend_direction(values: list[int]) -> str:
    """up / down / flat, from the exact least-squares slope relative to the series' mean."""
    n = len(values)
    mean_x = Fraction(n - 1, 2)
    mean_y = Fraction(sum(values), n)
    num = sum(((x - mean_x) * (y - mean_y) for x, y in enumerate(values)), Fraction(0))
    den = sum(((x - mean_x) ** 2 for x in range(n)), Fraction(0))
    s = num / den
    if mean_y == 0 or abs(s) < FLAT_SHARE * abs(mean_y):
        return "flat"
    return "up" if s > 0 else "down"


# ---------------------------------------------------------------- questions and their results


def load_questions(path: Path = QUESTIONS_FILE) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_principals(pack: Path = DEMO_PACK) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in json.loads((pack / "principals.json").read_text(encoding="utf-8"))}


def consolidators(principals: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """ACCESS_RULES.md POL-002: only the CFO and the finance director ever see a consolidated ("group") figure."""
    return {pid for pid, p in principals.items() if {"cfo", "finance_director"} & set(p["roles"])}


@dataclass(frozen=True)
class Mismatch:
    qid: str
    question: str
    field: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        return f"{self.qid} [{self.question}] {self.field}: expected {self.expected!r}, got {self.got!r}"


def _same(fig: Figure, value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if fig.unit in ("USD", "USD/month"):
        return value == fig.number
    # Percentages and points are reported to one decimal.
    return round(float(value), 1) == round(float(fig.number), 1)


def check(
    oracle: QuestionOracle, q: Mapping[str, Any], status: int, body: Mapping[str, Any], allowed_group: set[str]
) -> list[Mismatch]:
    """Everything wrong with one result (HTTP status and JSON body) compared with what its question expects.

    allowed_group: the principals who may see a consolidated figure (consolidators()).
    """
    out: list[Mismatch] = []

    def miss(field: str, expected: Any, got: Any) -> None:
        out.append(Mismatch(q["id"], q["question"], field, expected, got))

    if status != 200 or body.get("status") != "completed":
        miss("status", "200 completed", f"{status} {body.get('status')} {body.get('stage') or ''}".strip())
        return out
    if body["outcome"] != q["outcome"]:
        miss("outcome", q["outcome"], f"{body['outcome']} ({body['answer'][:160]})")
    intent = (body.get("classification") or {}).get("intent")
    if intent != q["intent"]:
        miss("intent", q["intent"], intent)

    facts: dict[str, list[Mapping[str, Any]]] = {}
    for f in body["facts"]:
        facts.setdefault(f["label"], []).append(f)
    for label, spec in q.get("facts", {}).items():
        fig = oracle.figure(spec)
        found = facts.get(label, [])
        if len(found) != 1:
            miss(f"fact {label}", fig.number, f"{len(found)} facts with this label; labels: {sorted(facts)}")
            continue
        fact = found[0]
        if not _same(fig, fact["value"]):
            miss(f"fact {label}", fig.number, fact["value"])
        if fact["unit"] != fig.unit:
            miss(f"unit of {label}", fig.unit, fact["unit"])
        if "slope" in spec:
            direction = trend_direction(oracle.series_values(spec))
            if fact["detail"] != direction:
                miss(f"direction of {label}", direction, fact["detail"])
        # Money is stated in the answer as the result carries it (the template writes 1,234,567).
        if fig.unit in ("USD", "USD/month") and f"{fig.number:,}" not in body["answer"]:
            miss(f"answer states {label}", f"{fig.number:,}", body["answer"][:160])
    for label in q.get("absent", []):
        if label in facts:
            miss(f"absent fact {label}", "no such fact", facts[label][0]["value"])
    if q["outcome"] in ("denied", "clarification_required") and body["facts"]:
        miss("facts", [], [f["label"] for f in body["facts"]])
    if q["principal"] not in allowed_group:
        grouped = [f["label"] for f in body["facts"] if f["entity"] == "group"]
        if grouped:
            miss("consolidated facts (POL-002)", [], grouped)

    if sorted(body["missing_data"]) != sorted(q.get("missing", [])):
        miss("missing_data", sorted(q.get("missing", [])), sorted(body["missing_data"]))
    cited = [c["doc_id"] for c in body["citations"]]
    for doc in q.get("cites", []):
        if doc not in cited:
            miss("citations", doc, cited)
    authz = body.get("authorization") or {}
    masked = [m["account"] for m in authz.get("masked", [])]
    if masked != q.get("masked", []):
        miss("masked", q.get("masked", []), masked)
    if q["outcome"] == "denied":
        policies = authz.get("policies", [])
        if not policies or policies[0] != q["policy"]:
            miss("policy", q["policy"], policies)
        if q["policy"] not in body["answer"]:
            miss("policy named in the answer", q["policy"], body["answer"][:160])
    if q["outcome"] == "clarification_required":
        asked = body.get("clarifying_questions") or []
        if not asked:
            miss("clarifying_questions", "at least one", asked)
        if "no_period" in q.get("tags", []) and not any("period" in a.lower() for a in asked):
            miss("clarifying_questions", "one asking for the period", asked)

    text = json.dumps(body)
    for needle in q.get("must_not_contain", []):
        if needle in text:
            miss("must_not_contain", needle, "present")
    for spec in q.get("hidden", []):
        value = oracle.figure(spec).number
        for form in (str(value), f"{value:,}"):
            # As a number of its own, not as digits inside a longer one (an id, another amount).
            if re.search(rf"(?<![\d.,]){re.escape(form)}(?![\d]|[.,]\d)", text):
                miss("hidden figure", form, "present")
    return out
