"""Ledger tasks: sums over (entity set, account subtree, months), with missing cells reported, never zeroed."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

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
FLAT_SLOPE = 0.005
# How many contributors a variance names.
TOP_CONTRIBUTORS = 3


def pct(value: float) -> float:
    """Percentages are reported to one decimal (half away from zero, as people round)."""
    q = Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return float(q)


def whole(value: float) -> int:
    """Money to the unit, half away from zero (Python's round() rounds halves to even)."""
    return int(Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


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


def _operand_values(task: DataTask, inputs: list[LedgerQueryResult]) -> tuple[list[float], list[Fact]]:
    """Operand values with the task's shocks applied, and a fact per shocked operand ("scenario cogs …")."""
    # The last len(shocks) inputs are the shocks' components (the planner's convention), the rest the operands.
    n = len(inputs) - len(task.shocks)
    values = [float(r.fact.value) if r.fact is not None else 0.0 for r in inputs[:n]]
    shocked: dict[int, list[str]] = {}
    for shock, comp in zip(task.shocks, inputs[n:], strict=True):
        component = comp.fact
        if comp.task_id != shock.component or component is None:
            raise InvalidTaskError(f"task {task.task_id}: shock component {shock.component} is not operand {n}")
        values[shock.operand] += float(component.value) * shock.change_pct / 100
        shocked.setdefault(shock.operand, []).append(f"{shock.label} {shock.change_pct:+g}%")
    extra: list[Fact] = []
    for i, changes in shocked.items():
        base = inputs[i].fact
        assert base is not None
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
    """A compute task's figure from its operands' results (in depends_on order); no I/O, no clock."""
    if [r.task_id for r in inputs] != task.depends_on:
        raise InvalidTaskError(f"task {task.task_id}: operands {[r.task_id for r in inputs]} != {task.depends_on}")
    # A variance needs its two totals (a contributor without data is left out of the ranking); a trend needs two
    # points (a month without data is a gap in the series); every other kind needs every operand.
    required = inputs[:2] if task.kind == "variance" else [] if task.kind == "trend" else inputs
    empty = [r for r in required if r.fact is None]
    if task.kind == "trend" and sum(r.fact is not None for r in inputs) < 2:
        empty = [r for r in inputs if r.fact is None]
    if empty:
        names = sorted({r.unavailable or "no ledger rows" for r in empty})
        return LedgerQueryResult(
            task_id=task.task_id,
            unavailable=f"{task.metric} {task.entity_label} {task.period.label} could not be computed: an operand "
            f"has no figure ({'; '.join(names)})",
        )
    values, extra = _operand_values(task, inputs)
    labels = [r.fact.label for r in inputs if r.fact is not None]
    result = LedgerQueryResult(task_id=task.task_id, facts=extra)
    if task.kind == "total":
        result.fact = _fact(task, whole(sum(values)), "sum of " + ", ".join(labels))
    elif task.kind == "difference":
        a, b = values
        # A change in points is read at the precision of the percentages it compares.
        change = pct(a - b) if task.unit in ("pp", "%") else whole(a - b)
        result.fact = _fact(task, change, f"{labels[0]} - {labels[1]}")
    elif task.kind in ("margin_pct", "growth_pct"):
        a, b = values
        denominator = a if task.kind == "margin_pct" else b
        if denominator == 0:
            result.unavailable = f"{task.metric} {task.entity_label} {task.period.label}: the denominator is zero"
            return result
        formula = f"({labels[0]} - {labels[1]}) / {labels[0 if task.kind == 'margin_pct' else 1]} * 100"
        result.fact = _fact(task, pct((a - b) / denominator * 100), formula)
    elif task.kind == "trend":
        result.fact, more = _trend(task, inputs)
        result.facts.extend(more)
    elif task.kind == "variance":
        result.fact, more = _variance(task, values, inputs)
        result.facts.extend(more)
    else:
        raise InvalidTaskError(f"task {task.task_id}: kind {task.kind!r} is not a compute task")
    return result


def _trend(task: DataTask, inputs: list[LedgerQueryResult]) -> tuple[Fact, list[Fact]]:
    """Least-squares slope per period through the series (a period without data is a gap, not a zero); the
    direction from the slope relative to the mean."""
    points = [(x, float(r.fact.value), r.fact.label) for x, r in enumerate(inputs) if r.fact is not None]
    n = len(points)
    mx = sum(x for x, _, _ in points) / n
    my = sum(y for _, y, _ in points) / n
    slope = sum((x - mx) * (y - my) for x, y, _ in points) / sum((x - mx) ** 2 for x, _, _ in points)
    direction = "flat" if my == 0 or abs(slope) < FLAT_SLOPE * abs(my) else "up" if slope > 0 else "down"
    gaps = len(inputs) - n
    source = f"least-squares slope over {n} periods: {points[0][2]} ... {points[-1][2]}" + (
        f" ({gaps} without data left out)" if gaps else ""
    )
    trend = _fact(task, whole(slope), source, detail=direction)
    more: list[Fact] = []
    first, last = points[0], points[-1]
    if first[1] != 0:
        metric = task.metric.removesuffix(" trend slope")
        more.append(
            _fact(
                task,
                pct((last[1] - first[1]) / abs(first[1]) * 100),
                f"({last[2]} - {first[2]}) / {first[2]} * 100",
                label=f"{metric} change pct {task.entity_label} {task.period.label}",
                unit="%",
                detail=f"first to last of {n} periods",
            )
        )
    return trend, more


def _variance(task: DataTask, values: list[float], inputs: list[LedgerQueryResult]) -> tuple[Fact, list[Fact]]:
    """The change a - b, its percentage, and the largest contributors among the (current, prior) pairs after it."""
    current, prior = values[0], values[1]
    delta = whole(current - prior)
    first, second = inputs[0].fact, inputs[1].fact
    assert first is not None and second is not None
    where = f"vs {task.basis} {task.entity_label} {task.period.label}"
    fact = _fact(task, delta, f"{first.label} - {second.label}", label=f"{task.metric} variance {where}")
    more: list[Fact] = []
    if prior != 0:
        more.append(
            _fact(
                task,
                pct((current - prior) / abs(prior) * 100),
                f"({first.label} - {second.label}) / {second.label} * 100",
                label=f"{task.metric} variance pct {where}",
                unit="%",
            )
        )
    pairs: list[tuple[int, Fact, Fact]] = []
    unranked: list[str] = []
    for cur_r, prior_r in zip(inputs[2::2], inputs[3::2], strict=True):
        cur, pri = cur_r.fact, prior_r.fact
        if cur is None or pri is None:
            known = cur or pri
            unranked.append(known.entity if known and known.entity != task.entity_label else cur_r.task_id)
            continue
        pairs.append((whole(float(cur.value) - float(pri.value)), cur, pri))
    # Largest movements first, whatever their sign; ties in the order the plan lists them.
    ranked = sorted(pairs, key=lambda p: -abs(p[0]))[:TOP_CONTRIBUTORS]
    for rank, (change, cur, pri) in enumerate(ranked, start=1):
        name = cur.label.removesuffix(f" {cur.entity} {cur.period}")
        share = f", {pct(change / delta * 100)}% of the variance" if delta else ""
        more.append(
            Fact(
                label=f"{name} variance vs {task.basis} {cur.entity} {cur.period}",
                value=change,
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
    if unranked:
        fact.detail = f"not ranked, no data in one of the periods: {', '.join(unranked)}"
    return fact, more
