"""Ledger tasks: sums over (entity set, account subtree, months), with missing cells reported, never zeroed."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

from sqlalchemy import Engine, and_, func, select

from docket.catalog import Catalog
from docket.contracts import DataTask, Fact, LedgerQueryResult, MissingData
from docket.db import LedgerBalance, table_of
from docket.errors import InvalidTaskError

UNIT = "USD"


def run_task(engine: Engine, catalog: Catalog, task: DataTask) -> LedgerQueryResult:
    if task.account not in catalog.accounts:
        raise InvalidTaskError(f"task {task.task_id}: unknown account {task.account}")
    unknown = [e for e in task.entities if e not in catalog.entities]
    if unknown:
        raise InvalidTaskError(f"task {task.task_id}: unknown entities {unknown}")
    # Balances may be booked at any level of the chart; a figure is the whole subtree minus excluded subtrees.
    accounts = catalog.accounts_in(task.account, task.exclude_accounts)
    tenant = catalog.tenant
    lb = table_of(LedgerBalance).c
    scope = and_(lb.tenant == tenant, lb.entity.in_(task.entities), lb.period.in_(task.period.months))
    with engine.connect() as conn:
        # A cell (entity, month) counts as submitted when the entity booked anything in that month.
        submitted = {
            (row[0], row[1])
            for row in conn.execute(select(lb.entity, lb.period).where(scope).group_by(lb.entity, lb.period))
        }
        total, rows = conn.execute(
            select(func.coalesce(func.sum(lb.amount), 0), func.count()).where(scope, lb.account.in_(accounts))
        ).one()
    missing = [
        MissingData(entity=e, period=m) for e in task.entities for m in task.period.months if (e, m) not in submitted
    ]
    if len(missing) == len(task.entities) * len(task.period.months):
        return LedgerQueryResult(task_id=task.task_id, fact=None, rows=0, missing=missing)
    excl = f" excl. {', '.join(task.exclude_accounts)}" if task.exclude_accounts else ""
    source = (
        f"ledger {tenant}: sum of account {task.account}{excl} ({len(accounts)} accounts) over "
        f"{', '.join(task.entities) if len(task.entities) <= 3 else f'{len(task.entities)} entities'}, "
        f"{task.period.months[0]}..{task.period.months[-1]}; {int(rows)} rows"
    )
    fact = Fact(
        label=f"{task.metric} {task.entity_label} {task.period.label}",
        value=int(total),
        unit=UNIT,
        entity=task.entity_label,
        account=task.account,
        period=task.period.label,
        source=source,
        kind="sum",
        task_id=task.task_id,
    )
    return LedgerQueryResult(task_id=task.task_id, fact=fact, rows=int(rows), missing=missing)


# ---------------------------------------------------------------- compute tasks (pure, over operand results)

# A trend whose fitted slope moves less than this share of the series' mean per period is flat.
FLAT_SLOPE = Fraction(1, 200)
# How many contributors a variance names.
TOP_CONTRIBUTORS = 3
# Bump when what a compute task returns changes (arithmetic, labels, facts): results stored by older code are then
# computed afresh instead of served (docket/dataversion.py keys them by this too).
TASK_CODE_VERSION = 3


def _exact(value: float | int) -> Fraction:
    """A figure as an exact number: money is integral, percentages carry one decimal ("57.2" is 572/10)."""
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _half_away(value: Fraction, places: int) -> Fraction:
    scale = Fraction(10) ** places
    magnitude = abs(value) * scale
    units = magnitude.numerator // magnitude.denominator
    if magnitude - units >= Fraction(1, 2):
        units += 1
    return Fraction(units if value >= 0 else -units) / scale


def pct(value: Fraction) -> float:
    """Percentages (and points) to one decimal, half away from zero, computed exactly: 0.45 % stays 0.5 %."""
    return float(_half_away(value, 1))


def whole(value: Fraction) -> int:
    """Money to the unit, half away from zero (Python's round() rounds halves to even)."""
    return int(_half_away(value, 0))


def _fact(
    task: DataTask, value: float | int, source: str, *, label: str = "", detail: str = "", unit: str = ""
) -> Fact:
    return Fact(
        label=label or f"{task.metric} {task.entity_label} {task.period.label}",
        value=value,
        unit=unit or task.unit,
        entity=task.entity_label,
        account=task.account,
        period=task.period.label,
        source=source,
        kind=task.kind,
        task_id=task.task_id,
        detail=detail,
    )


def _gaps(r: LedgerQueryResult) -> Counter[str]:
    """How many months each entity lacks in an operand: two totals compare only when these are equal."""
    return Counter(m.entity for m in r.missing)


def _unlike(a: LedgerQueryResult, b: LedgerQueryResult) -> str:
    """Why two totals are not like for like (their missing cells differ), or ""."""
    if _gaps(a) == _gaps(b):
        return ""
    left = ", ".join(m.key for m in a.missing) or "nothing"
    right = ", ".join(m.key for m in b.missing) or "nothing"
    return f"the totals do not cover the same entities and months (missing {left} against {right})"


def _operand_values(task: DataTask, inputs: list[LedgerQueryResult]) -> tuple[list[Fraction], list[Fact]]:
    """Operand values with the task's shocks applied, and a fact per shocked operand ("scenario cogs …") when the
    task's own figure is something else (a shocked margin)."""
    # The last len(shocks) inputs are the shocks' components (the planner's convention), the rest the operands.
    n = len(inputs) - len(task.shocks)
    values = [_exact(r.fact.value) if r.fact is not None else Fraction(0) for r in inputs[:n]]
    shocked: dict[int, list[str]] = {}
    for shock, comp in zip(task.shocks, inputs[n:], strict=True):
        component = comp.fact
        if comp.task_id != shock.component or component is None:
            raise InvalidTaskError(f"task {task.task_id}: shock component {shock.component} is not operand {n}")
        values[shock.operand] += _exact(component.value) * _exact(shock.change_pct) / 100
        shocked.setdefault(shock.operand, []).append(f"{shock.label} {shock.change_pct:+g}%")
    extra: list[Fact] = []
    for i, changes in shocked.items():
        base = inputs[i].fact
        assert base is not None
        if task.kind == "total":
            continue  # the task's own figure is the shocked total
        metric = base.label.removesuffix(f" {base.entity} {base.period}")
        extra.append(
            Fact(
                label=f"scenario {metric} {base.entity} {base.period}",
                value=whole(values[i]),
                unit=base.unit,
                entity=base.entity,
                account=base.account,
                period=base.period,
                source=f"{base.label} with {', '.join(changes)}",
                kind="scenario",
                task_id=task.task_id,
            )
        )
    return values, extra


def compute(task: DataTask, inputs: list[LedgerQueryResult]) -> LedgerQueryResult:
    """A compute task's figure from its operands' results (in depends_on order); no I/O, no clock.

    Arithmetic is exact (fractions) and rounded once, at the end. Two totals are compared (growth, change,
    variance) only like for like: when their missing cells differ, the figure is unavailable, except a variance
    over entities, which is then taken over the entities with data in both periods.
    """
    if [r.task_id for r in inputs] != task.depends_on:
        raise InvalidTaskError(f"task {task.task_id}: operands {[r.task_id for r in inputs]} != {task.depends_on}")
    what = f"{task.metric} {task.entity_label} {task.period.label}"
    if task.kind == "trend":
        return _trend(task, inputs, what)
    # A variance needs its two totals (a contributor without data is left out of the ranking); every other kind
    # needs every operand.
    required = inputs[:2] if task.kind == "variance" else inputs
    empty = [r for r in required if r.fact is None]
    if empty:
        names = sorted({r.unavailable or "no ledger rows" for r in empty})
        return LedgerQueryResult(
            task_id=task.task_id,
            unavailable=f"{what} could not be computed: an operand has no figure ({'; '.join(names)})",
        )
    values, extra = _operand_values(task, inputs)
    labels = [r.fact.label for r in inputs if r.fact is not None]
    # A figure computed from totals inherits their missing cells, so a comparison of two derived figures (gross
    # profit growth, a margin's change) is held to the same like-for-like rule as one of two sums.
    inherited = list({m.key: m for r in inputs for m in r.missing}.values())
    result = LedgerQueryResult(task_id=task.task_id, facts=extra, missing=inherited)
    if task.kind == "total":
        result.fact = _fact(task, whole(sum(values, Fraction(0))), "sum of " + ", ".join(labels))
    elif task.kind == "difference":
        unlike = _unlike(inputs[0], inputs[1])
        if unlike:
            result.unavailable = f"{what} could not be computed: {unlike}"
            return result
        a, b = values
        # A change in points is read at the precision of the percentages it compares.
        change = pct(a - b) if task.unit in ("pp", "%") else whole(a - b)
        result.fact = _fact(task, change, f"{labels[0]} - {labels[1]}")
    elif task.kind == "margin_pct":
        revenue, costs = values
        if revenue == 0:
            result.unavailable = f"{what} could not be computed: the revenue it divides by is zero"
            return result
        result.fact = _fact(
            task, pct((revenue - costs) / revenue * 100), f"({labels[0]} - {labels[1]}) / {labels[0]} * 100"
        )
    elif task.kind == "growth_pct":
        current, prior = values
        unlike = _unlike(inputs[0], inputs[1])
        if unlike or prior == 0:
            result.unavailable = f"{what} could not be computed: " + (unlike or "the prior figure is zero")
            return result
        # Against the size of the prior figure: from -396,067 to +1,185,677 is growth, not a negative rate.
        result.fact = _fact(
            task, pct((current - prior) / abs(prior) * 100), f"({labels[0]} - {labels[1]}) / |{labels[1]}| * 100"
        )
    elif task.kind == "variance":
        result.fact, more, why = _variance(task, values, inputs)
        result.facts.extend(more)
        if result.fact is None:
            result.unavailable = f"{what} could not be computed: {why}"
    else:
        raise InvalidTaskError(f"task {task.task_id}: kind {task.kind!r} is not a compute task")
    return result


def _trend(task: DataTask, inputs: list[LedgerQueryResult], what: str) -> LedgerQueryResult:
    """Least-squares slope per period through the complete points of the series. A month with missing cells is a
    gap, not a point: a total short of an entity is not comparable with its neighbours. Margins move in points."""
    points = [
        (x, _exact(r.fact.value), r.fact.label) for x, r in enumerate(inputs) if r.fact is not None and not r.missing
    ]
    n = len(points)
    if n < 2:
        return LedgerQueryResult(
            task_id=task.task_id,
            unavailable=f"{what} could not be computed: fewer than two periods with complete data",
        )
    mx = Fraction(sum(x for x, _, _ in points), n)
    my = sum((y for _, y, _ in points), Fraction(0)) / n
    slope = sum(((x - mx) * (y - my) for x, y, _ in points), Fraction(0)) / sum(
        ((x - mx) ** 2 for x, _, _ in points), Fraction(0)
    )
    direction = "flat" if my == 0 or abs(slope) < FLAT_SLOPE * abs(my) else "up" if slope > 0 else "down"
    gaps = len(inputs) - n
    source = f"least-squares slope over {n} periods: {points[0][2]} ... {points[-1][2]}" + (
        f" ({gaps} without complete data left out)" if gaps else ""
    )
    points_unit = task.unit.startswith("pp")
    trend = _fact(task, pct(slope) if points_unit else whole(slope), source, detail=direction)
    result = LedgerQueryResult(task_id=task.task_id, fact=trend)
    first, last = points[0], points[-1]
    metric = task.metric.removesuffix(" trend slope")
    label_end = f"{task.entity_label} {task.period.label}"
    if points_unit:
        result.facts.append(
            _fact(
                task,
                pct(last[1] - first[1]),
                f"{last[2]} - {first[2]}",
                label=f"{metric} change {label_end}",
                unit="pp",
                detail=f"first to last of {n} periods",
            )
        )
    elif first[1] != 0:
        result.facts.append(
            _fact(
                task,
                pct((last[1] - first[1]) / abs(first[1]) * 100),
                f"({last[2]} - {first[2]}) / |{first[2]}| * 100",
                label=f"{metric} change pct {label_end}",
                unit="%",
                detail=f"first to last of {n} periods",
            )
        )
    return result


def _variance(
    task: DataTask, values: list[Fraction], inputs: list[LedgerQueryResult]
) -> tuple[Fact | None, list[Fact], str]:
    """The change a - b, its percentage, and the largest contributors among the (current, prior) pairs after it.

    Totals that are not like for like (an entity missing from one period) are replaced by the sum over the
    contributors with data in both periods, when the contributors are entities; otherwise there is no figure.
    """
    first, second = inputs[0].fact, inputs[1].fact
    assert first is not None and second is not None
    pairs: list[tuple[Fraction, Fraction, Fact, Fact]] = []
    unranked: list[str] = []
    for cur_r, prior_r in zip(inputs[2::2], inputs[3::2], strict=True):
        cur, pri = cur_r.fact, prior_r.fact
        if cur is None or pri is None or _unlike(cur_r, prior_r):
            missing = [*cur_r.missing, *prior_r.missing]
            unranked.append(missing[0].entity if missing else cur_r.task_id)
            continue
        pairs.append((_exact(cur.value), _exact(pri.value), cur, pri))
    current, prior = values[0], values[1]
    detail = ""
    unlike = _unlike(inputs[0], inputs[1])
    if unlike:
        by_entity = bool(pairs) and all(c.entity != task.entity_label for _, _, c, _ in pairs)
        if not by_entity:
            return None, [], unlike
        current = sum((c for c, _, _, _ in pairs), Fraction(0))
        prior = sum((p for _, p, _, _ in pairs), Fraction(0))
        detail = f"like for like: the entities with data in both periods, without {', '.join(sorted(set(unranked)))}"
    elif unranked:
        detail = f"not ranked, no data in one of the periods: {', '.join(sorted(set(unranked)))}"
    where = f"vs {task.basis} {task.entity_label} {task.period.label}"
    delta = current - prior
    source = f"{first.label} - {second.label}" if not unlike else "sum over the contributors of (current - prior)"
    fact = _fact(task, whole(delta), source, label=f"{task.metric} variance {where}", detail=detail)
    more: list[Fact] = []
    if prior != 0:
        more.append(
            _fact(
                task,
                pct(delta / abs(prior) * 100),
                f"variance / |{second.label}| * 100",
                label=f"{task.metric} variance pct {where}",
                unit="%",
            )
        )
    # Largest movements first, whatever their sign; ties in the order the plan lists them.
    ranked = sorted(pairs, key=lambda p: -abs(p[0] - p[1]))[:TOP_CONTRIBUTORS]
    for rank, (c, p, cur, pri) in enumerate(ranked, start=1):
        change = c - p
        name = cur.label.removesuffix(f" {cur.entity} {cur.period}")
        share = f", {pct(change / delta * 100)}% of the variance" if delta else ""
        more.append(
            Fact(
                label=f"{name} variance vs {task.basis} {cur.entity} {cur.period}",
                value=whole(change),
                unit=cur.unit,
                entity=cur.entity,
                account=cur.account,
                period=cur.period,
                source=f"{cur.label} - {pri.label}",
                kind="contribution",
                task_id=task.task_id,
                detail=f"contributor {rank} of {len(pairs)}{share}",
            )
        )
    return fact, more, ""
