"""An independent ledger oracle: sums recomputed straight from the pack's CSV files with the csv module.

It shares no code with Docket (no database, no catalog, no engine), so a figure the product computes can be
checked against a figure computed a different way. Conventions, taken from the data pack itself:

- an account's subtree is the account plus every account whose `parent` chain (accounts.csv) reaches it;
- a (tenant, entity, month) cell is *missing* when gl_balances.csv has no row at all for it;
- a total is the sum over the submitted cells only; with every cell missing there is no figure (None).
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

DEMO_PACK = Path(__file__).resolve().parents[2] / "examples" / "meridian"


@dataclass(frozen=True)
class OracleSum:
    """A recomputed total and the cells it could not include."""

    total: int | None
    missing: tuple[tuple[str, str], ...]
    rows: int


class LedgerOracle:
    """Reads accounts.csv, entities.csv and gl_balances.csv of one pack folder."""

    def __init__(self, folder: Path = DEMO_PACK) -> None:
        self.folder = Path(folder)
        with (self.folder / "accounts.csv").open(newline="", encoding="utf-8") as fh:
            self.parent: dict[str, str] = {row["account"]: row["parent"] for row in csv.DictReader(fh)}
        with (self.folder / "entities.csv").open(newline="", encoding="utf-8") as fh:
            self.entities: dict[tuple[str, str], dict[str, str]] = {
                (row["tenant"], row["entity"]): row for row in csv.DictReader(fh)
            }
        # (tenant, entity, account, month) -> amount
        self.balances: dict[tuple[str, str, str, str], int] = {}
        self.cells: set[tuple[str, str, str]] = set()
        with (self.folder / "gl_balances.csv").open(newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                key = (row["tenant"], row["entity"], row["account"], row["period"])
                self.balances[key] = self.balances.get(key, 0) + int(row["amount"])
                self.cells.add((row["tenant"], row["entity"], row["period"]))

    def subtree(self, account: str) -> set[str]:
        """The account and every account whose parent chain reaches it."""
        children: dict[str, list[str]] = defaultdict(list)
        for code, parent in self.parent.items():
            if parent:
                children[parent].append(code)
        out: set[str] = set()
        stack = [account]
        while stack:
            code = stack.pop()
            if code in out:
                continue
            out.add(code)
            stack.extend(children.get(code, []))
        return out

    def entities_of(self, tenant: str, region: str | None = None) -> list[str]:
        return sorted(e for (t, e), row in self.entities.items() if t == tenant and region in (None, row["region"]))

    def is_missing(self, tenant: str, entity: str, month: str) -> bool:
        return (tenant, entity, month) not in self.cells

    def sum(
        self,
        tenant: str,
        entities: Iterable[str],
        account: str,
        months: Iterable[str],
        exclude: Iterable[str] = (),
    ) -> OracleSum:
        """Sum of account's subtree (minus excluded subtrees) over the submitted (entity, month) cells."""
        ents = list(entities)
        mons = list(months)
        excluded: set[str] = set()
        for x in exclude:
            excluded |= self.subtree(x)
        accounts = self.subtree(account) - excluded
        missing = tuple((e, m) for e in ents for m in mons if self.is_missing(tenant, e, m))
        if len(missing) == len(ents) * len(mons):
            return OracleSum(total=None, missing=missing, rows=0)
        total = 0
        rows = 0
        for (t, e, a, m), amount in self.balances.items():
            if t == tenant and e in ents and m in mons and a in accounts:
                total += amount
                rows += 1
        return OracleSum(total=total, missing=missing, rows=rows)

    def total(
        self,
        tenant: str,
        entities: Iterable[str],
        account: str,
        months: Iterable[str],
        exclude: Iterable[str] = (),
    ) -> int:
        """Like sum(), for figures that must exist: fails loudly when every cell is missing."""
        result = self.sum(tenant, entities, account, months, exclude)
        if result.total is None:
            raise LookupError(f"no ledger data for {list(entities)} {account} {list(months)}")
        return result.total


def months_between(first: str, last: str) -> list[str]:
    """Inclusive list of YYYY-MM months from first to last."""
    y, m = (int(x) for x in first.split("-"))
    ly, lm = (int(x) for x in last.split("-"))
    out = []
    while (y, m) <= (ly, lm):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


# ---------------------------------------------------------------- derived figures, by their textbook definitions
# Exact rational arithmetic (fractions), rounded half up at the end: a second way to the product's figures.


def round_half_up(value: Fraction, places: int = 1) -> float:
    """Half away from zero, as people round: 0.45 → 0.5 and -0.45 → -0.5."""
    scale = 10**places
    magnitude = abs(value) * scale
    whole = magnitude.numerator // magnitude.denominator
    if magnitude - whole >= Fraction(1, 2):
        whole += 1
    return (whole if value >= 0 else -whole) / scale


def growth_pct(current: int, prior: int) -> float:
    """(current - prior) / |prior|, in percent to one decimal: growth from a negative figure is still growth."""
    return round_half_up(Fraction(current - prior, abs(prior)) * 100)


def margin_pct(revenue: int | Fraction, costs: int | Fraction) -> float:
    """(revenue - costs) / revenue, in percent to one decimal."""
    return round_half_up(Fraction(revenue - costs) / Fraction(revenue) * 100)


def slope(values: list[int]) -> int:
    """Ordinary least-squares slope of values against 0, 1, 2, …, to the nearest unit (half away from zero)."""
    n = len(values)
    xs = [Fraction(x) for x in range(n)]
    mean_x = sum(xs) / n
    mean_y = Fraction(sum(values), n)
    num = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, values, strict=True))
    den = sum((x - mean_x) ** 2 for x in xs)
    s = num / den
    mag = abs(s)
    whole = mag.numerator // mag.denominator
    if mag - whole >= Fraction(1, 2):
        whole += 1
    return whole if s >= 0 else -whole
