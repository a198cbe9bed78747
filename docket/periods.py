"""Which periods a request reads: the ones it names, and the ones its analysis compares them with.

Shared by the planner (which builds tasks over them) and the authorizer (which decides on exactly the months the
plan will read), so the two can never disagree about a month.
"""

from __future__ import annotations

from dataclasses import dataclass

from docket.contracts import ClassifyResult, Intent, PeriodRef

# Growth and comparison bases: how many months back the comparison period starts.
SHIFT = {"yoy": 12, "qoq": 3, "mom": 1}
BASIS_WORDS = {"yoy": "year over year", "qoq": "quarter over quarter", "mom": "month over month"}
# A trend needs a few points; with fewer months named, it runs over this many months ending at the last one.
TREND_WINDOW = 6
MIN_TREND_MONTHS = 3


def month_shift(label: str, months: int) -> str:
    """'2026-03' moved `months` back ('2025-12' for 3)."""
    y, m = int(label[:4]), int(label[5:7])
    idx = y * 12 + (m - 1) - months
    return f"{idx // 12:04d}-{idx % 12 + 1:02d}"


def shift_period(period: PeriodRef, months: int) -> PeriodRef:
    """The same span `months` earlier, labelled the way the original was (2026-Q2 → 2025-Q2 for 12 months)."""
    shifted = [month_shift(m, months) for m in period.months]
    label = period.label
    if len(label) == 7 and label[4] == "-" and label[5:].isdigit():
        label = shifted[0]
    elif len(label) == 4 and label.isdigit() and months % 12 == 0:
        label = str(int(label) - months // 12)
    elif len(label) == 7 and label[5] in "QH" and months % 12 == 0:
        label = f"{int(label[:4]) - months // 12}{label[4:]}"
    elif len(label) == 7 and label[5] == "Q" and months == 3:
        q, y = int(label[6]), int(label[:4])
        label = f"{y - 1}-Q4" if q == 1 else f"{y}-Q{q - 1}"
    else:
        label = f"{shifted[0]}..{shifted[-1]}" if len(shifted) > 1 else shifted[0]
    return PeriodRef(label=label, months=shifted)


@dataclass(frozen=True)
class Comparison:
    """A period, the period it is compared with, the basis (yoy/qoq/mom, or "" when named or the previous
    period), and the assumption the answer must state when the question left the comparison open ("")."""

    current: PeriodRef
    prior: PeriodRef
    basis: str
    assumption: str = ""


def comparisons(cls: ClassifyResult) -> list[Comparison]:
    """For growth and variance: two periods named compare the later with the earlier; otherwise each period with
    the period its basis names; with no basis, growth is year over year and a variance compares with the
    previous period of the same length (each stated as an assumption)."""
    slots = cls.slots
    periods = sorted(slots.periods, key=lambda p: p.months[0])
    if len(periods) == 2 and not slots.growth_basis:
        return [Comparison(periods[1], periods[0], "")]
    basis = slots.growth_basis
    out: list[Comparison] = []
    for p in periods:
        if basis:
            out.append(Comparison(p, shift_period(p, SHIFT[basis]), basis))
        elif cls.intent == Intent.VARIANCE_EXPLANATION:
            n = len(p.months)
            prior = shift_period(p, n)
            words = "the previous month" if n == 1 else f"the previous {n} months"
            out.append(
                Comparison(
                    p, prior, "", f"{p.label} is compared with {words} ({prior.label}); name a period to compare with"
                )
            )
        else:
            prior = shift_period(p, SHIFT["yoy"])
            out.append(
                Comparison(
                    p,
                    prior,
                    "yoy",
                    f"growth is {BASIS_WORDS['yoy']} ({p.label} vs {prior.label}); say mom or qoq for another basis",
                )
            )
    return out


def trend_window(cls: ClassifyResult) -> tuple[PeriodRef, str]:
    """The months a trend runs over, and the assumption when the question named fewer than MIN_TREND_MONTHS."""
    months = sorted({m for p in cls.slots.periods for m in p.months})
    assumption = ""
    if len(months) < MIN_TREND_MONTHS:
        last = months[-1]
        months = [month_shift(last, k) for k in range(TREND_WINDOW - 1, -1, -1)]
        assumption = (
            f"a trend needs several months: it runs over the {TREND_WINDOW} months ending {last}; "
            "name a range (for example the last 12 months) for another window"
        )
    return PeriodRef(label=f"{months[0]}..{months[-1]}", months=months), assumption


def periods_read(cls: ClassifyResult) -> list[PeriodRef]:
    """Every period the plan of this reading reads: the named ones and what they are compared with."""
    slots = cls.slots
    if not slots.periods:
        return []
    if cls.intent == Intent.TREND:
        return [trend_window(cls)[0]]
    if cls.intent in (Intent.GROWTH, Intent.VARIANCE_EXPLANATION):
        return [p for c in comparisons(cls) for p in (c.current, c.prior)]
    if cls.intent == Intent.COMPARISON and slots.growth_basis and len(slots.periods) == 1:
        return [slots.periods[0], shift_period(slots.periods[0], SHIFT[slots.growth_basis])]
    return list(slots.periods)


def months_read(cls: ClassifyResult) -> list[str]:
    """Every ledger month the plan of this reading reads, sorted."""
    return sorted({m for p in periods_read(cls) for m in p.months})
