"""The planner: a pure function from (classification, authorization, catalog) to a DAG of data tasks.

One template per intent (docs/planner.md has a worked example of each):

- lookup / comparison: a ledger sum per (entity set, account subtree, period); derived metrics on top
- growth: the period and the comparison period (yoy, qoq, mom), their growth % and change
- trend: one sum per month of the window and a least-squares trend over them
- variance: the period and the comparison period, and the same pair for each contributor (child accounts for
  one entity, entities for a consolidated total), ranked by how much of the change they explain
- scenario: the derived metric as it is and with the shocks applied to its operands
- document: no tasks, only the document search

Tasks are keyed by a hash of their content, so the same figure asked for twice is the same task (it runs once per
plan and is stored under that key, docket/dataversion.py). Tasks are listed in topological order. A total across
entities is consolidation (POL-002): it is planned only when the request was authorized to consolidate;
otherwise every entity gets its own figures.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from docket.catalog import Catalog
from docket.contracts import (
    Action,
    AuthorizeResult,
    ClassifyResult,
    DataTask,
    Intent,
    PeriodRef,
    Plan,
    RetrievalQuery,
    Shock,
    TaskKind,
    TaskShock,
    required_action,
)
from docket.periods import SHIFT, Comparison, comparisons, shift_period, trend_window

TEMPLATES = {
    Intent.METRIC_LOOKUP: "lookup",
    Intent.COMPARISON: "comparison",
    Intent.GROWTH: "growth",
    Intent.TREND: "trend",
    Intent.VARIANCE_EXPLANATION: "variance",
    Intent.SCENARIO: "scenario",
    Intent.DOCUMENT_QUESTION: "document",
}


@dataclass(frozen=True)
class Derived:
    name: str  # as it reads in a fact label
    kind: TaskKind
    operands: tuple[str, str]  # how the operand sums are labelled; their accounts: catalog.DERIVED_OPERANDS
    unit: str


DERIVED = {
    "gross_profit": Derived("gross profit", "difference", ("revenue", "cogs"), "USD"),
    "gross_margin_pct": Derived("gross margin pct", "margin_pct", ("revenue", "cogs"), "%"),
    "operating_income": Derived("operating income", "difference", ("revenue", "operating costs"), "USD"),
}


def task_id(task: DataTask) -> str:
    # Defaults are left out, so a field added later with a default keeps every existing task's id.
    body = task.model_dump(exclude={"task_id"}, exclude_defaults=True, mode="json")
    return "t-" + hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class _Builder:
    catalog: Catalog
    masked: list[str]
    excluded: list[str]
    tasks: dict[str, DataTask] = field(default_factory=dict)
    assumptions: list[str] = field(default_factory=list)

    def add(self, task: DataTask) -> str:
        tid = task_id(task)
        if tid not in self.tasks:  # the same figure needed twice is one task
            self.tasks[tid] = task.model_copy(update={"task_id": tid})
        return tid

    def leaf_exclusions(self, account: str) -> list[str]:
        """Parts of the account left out: what the asker excluded, and what is masked for them (POL-008)."""
        subtree = self.catalog.subtree(account)
        return sorted({x for x in [*self.excluded, *self.masked] if x in subtree and x != account})

    def metric_label(self, metric: str, account: str) -> str:
        excl = self.leaf_exclusions(account)
        names = ", ".join(self.catalog.accounts[x].name.lower() for x in excl)
        return f"{metric} excl. {names}" if excl else metric

    def sum(self, metric: str, account: str, entity_label: str, entities: list[str], period: PeriodRef) -> str:
        return self.add(
            DataTask(
                task_id="",
                metric=self.metric_label(metric, account),
                account=account,
                exclude_accounts=self.leaf_exclusions(account),
                entity_label=entity_label,
                entities=entities,
                period=period,
            )
        )

    def compute(
        self,
        kind: TaskKind,
        metric: str,
        account: str,
        entity_label: str,
        entities: list[str],
        period: PeriodRef,
        deps: list[str],
        unit: str,
        *,
        shocks: list[TaskShock] | None = None,
        basis: str = "",
    ) -> str:
        return self.add(
            DataTask(
                task_id="",
                kind=kind,
                metric=metric,
                account=account,
                entity_label=entity_label,
                entities=entities,
                period=period,
                depends_on=deps,
                unit=unit,
                shocks=shocks or [],
                basis=basis,
            )
        )

    def derived(
        self, key: str, entity_label: str, entities: list[str], period: PeriodRef, *, shocks: list[Shock]
    ) -> tuple[str, Derived, list[str]] | None:
        """The derived metric's task (with `shocks` applied, when given) and its operand tasks; None if the catalog
        lacks an operand account."""
        spec = DERIVED[key]
        accounts = self.catalog.derived_accounts(key)
        if None in accounts:
            return None
        operands = [
            self.sum(role, acct, entity_label, entities, period)
            for role, acct in zip(spec.operands, accounts, strict=True)
            if acct is not None
        ]
        left_out = sorted({x for a in accounts if a is not None for x in self.leaf_exclusions(a)})
        name = spec.name + (
            f" excl. {', '.join(self.catalog.accounts[x].name.lower() for x in left_out)}" if left_out else ""
        )
        # A shock's component is the figure the change is a percentage of; the last len(shocks) operands of a
        # task are its shocks' components, in order (activities/data/engine.py relies on it).
        deps = list(operands)
        applied: list[TaskShock] = []
        for shock in shocks:
            operand = next(
                (i for i, a in enumerate(accounts) if a is not None and shock.account in self.catalog.subtree(a)),
                None,
            )
            if operand is None or shock.account in self.masked:
                continue
            component = self.sum(shock.label, shock.account, entity_label, entities, period)
            deps.append(component)
            applied.append(
                TaskShock(operand=operand, component=component, change_pct=shock.change_pct, label=shock.label)
            )
        if applied:
            name = "scenario " + name
        tid = self.compute(
            spec.kind, name, accounts[0] or "", entity_label, entities, period, deps, spec.unit, shocks=applied
        )
        return tid, spec, operands


def _entity_sets(cls: ClassifyResult, consolidate: bool) -> list[tuple[str, list[str]]]:
    slots = cls.slots
    if slots.entity_scope == "group" and consolidate:
        return [("group", list(slots.entities))]
    return [(e, [e]) for e in slots.entities]


def plan(
    tenant: str,
    question: str,
    classification: ClassifyResult,
    authorization: AuthorizeResult,
    catalog: Catalog,
    data_version: str = "",
) -> Plan:
    slots = classification.slots
    intent = classification.intent
    b = _Builder(catalog, masked=[m.account for m in authorization.masked], excluded=list(slots.exclude_accounts))
    unsupported = ""
    if intent in TEMPLATES and intent != Intent.DOCUMENT_QUESTION:
        # A total across entities only under the consolidate action the authorizer decided on (POL-002).
        action = authorization.action or required_action(classification).value
        unsupported = _plan_figures(b, classification, action == Action.CONSOLIDATE.value)
    tasks = list(b.tasks.values())
    if unsupported:
        return Plan(unsupported=unsupported, template=TEMPLATES.get(intent, ""), data_version=data_version)
    months = sorted({m for t in tasks if t.kind == "sum" for m in t.period.months})
    # Context for the wording: the question plus the catalog names of what it is about, so a search for
    # "COGS" also finds "cost of goods sold".
    terms = [question]
    terms += [catalog.accounts[a].name for a in slots.accounts if a in catalog.accounts]
    terms += [catalog.entities[e].name for e in slots.entities[:5] if e in catalog.entities]
    if slots.entity_scope != "group":
        terms += slots.entities[:5]
    retrieval = RetrievalQuery(
        tenant=tenant,
        query=" ".join(terms),
        entities=list(slots.entities),
        max_clearance=authorization.clearance,
        limit=3,
        entity_tagged_only=bool(tasks),
        months=months if tasks else [],
        exclude_entities=sorted(set(catalog.entities) - set(authorization.readable_entities)),
        # A document question is answered only by passages that share most of its terms.
        min_term_coverage=0.0 if tasks else 0.6,
    )
    return Plan(
        tasks=tasks,
        retrieval=retrieval,
        data_version=data_version if tasks else "",
        template=TEMPLATES.get(intent, ""),
        assumptions=b.assumptions,
    )


def _comparison_periods(b: _Builder, cls: ClassifyResult) -> list[Comparison]:
    """docket.periods.comparisons, with each assumption recorded on the plan."""
    pairs = comparisons(cls)
    b.assumptions += [c.assumption for c in pairs if c.assumption]
    return pairs


def _metrics(b: _Builder, cls: ClassifyResult) -> list[tuple[str, str]]:
    """(metric, account) of every account the question names."""
    return list(zip(cls.slots.metrics, cls.slots.accounts, strict=True))


def _plan_figures(b: _Builder, cls: ClassifyResult, consolidate: bool) -> str:
    """Add the intent's tasks to b; the reason it cannot be planned, or ""."""
    slots = cls.slots
    intent = cls.intent
    sets = _entity_sets(cls, consolidate)
    if intent in (Intent.METRIC_LOOKUP, Intent.COMPARISON):
        for metric, account in _metrics(b, cls):
            for label, ents in sets:
                for period in slots.periods:
                    b.sum(metric, account, label, ents, period)
        for key in slots.derived:
            for label, ents in sets:
                for period in slots.periods:
                    if b.derived(key, label, ents, period, shocks=[]) is None:
                        return f"derived metric {key} (the chart of accounts lacks one of its accounts)"
        if intent == Intent.COMPARISON and slots.growth_basis and len(slots.periods) == 1:
            # "September 2026 vs the same month last year": the second period comes from the basis.
            period = slots.periods[0]
            slots = slots.model_copy(update={"periods": [period, shift_period(period, SHIFT[slots.growth_basis])]})
            cls = cls.model_copy(update={"slots": slots})
            for metric, account in _metrics(b, cls):
                for label, ents in sets:
                    b.sum(metric, account, label, ents, slots.periods[1])
            for key in slots.derived:
                for label, ents in sets:
                    b.derived(key, label, ents, slots.periods[1], shocks=[])
        if intent == Intent.COMPARISON and slots.comparison_axis == "period" and len(slots.periods) == 2:
            # Two periods compared: also the change between them, per entity set and metric (in points for a
            # percentage).
            later, earlier = sorted(slots.periods, key=lambda p: p.months[0])[::-1]
            for label, ents in sets:
                for metric, account in _metrics(b, cls):
                    cur = b.sum(metric, account, label, ents, later)
                    prior = b.sum(metric, account, label, ents, earlier)
                    name = b.metric_label(metric, account)
                    b.compute(
                        "difference",
                        f"{name} change vs {earlier.label}",
                        account,
                        label,
                        ents,
                        later,
                        [cur, prior],
                        "USD",
                        basis=earlier.label,
                    )
                for key in slots.derived:
                    now = b.derived(key, label, ents, later, shocks=[])
                    then = b.derived(key, label, ents, earlier, shocks=[])
                    assert now is not None and then is not None  # planned above for both periods
                    task = b.tasks[now[0]]
                    b.compute(
                        "difference",
                        f"{task.metric} change vs {earlier.label}",
                        task.account,
                        label,
                        ents,
                        later,
                        [now[0], then[0]],
                        "pp" if task.unit == "%" else "USD",
                        basis=earlier.label,
                    )
        return ""
    if intent == Intent.GROWTH:
        return _plan_growth(b, cls, sets)
    if intent == Intent.TREND:
        return _plan_trend(b, cls, sets)
    if intent == Intent.VARIANCE_EXPLANATION:
        return _plan_variance(b, cls, sets)
    if intent == Intent.SCENARIO:
        return _plan_scenario(b, cls, sets)
    return f"intent {intent.value}"


def _plan_growth(b: _Builder, cls: ClassifyResult, sets: list[tuple[str, list[str]]]) -> str:
    for comparison in _comparison_periods(b, cls):
        cur_p, prior_p, basis = comparison.current, comparison.prior, comparison.basis
        word = basis if basis in SHIFT else f"vs {prior_p.label}"
        for label, ents in sets:
            for metric, account in _metrics(b, cls):
                cur = b.sum(metric, account, label, ents, cur_p)
                prior = b.sum(metric, account, label, ents, prior_p)
                name = b.metric_label(metric, account)
                pretty = word if basis in SHIFT else ""
                growth_metric = f"{name} {pretty} growth pct".replace("  ", " ")
                b.compute(
                    "growth_pct", growth_metric, account, label, ents, cur_p, [cur, prior], "%", basis=prior_p.label
                )
                b.compute(
                    "difference",
                    f"{name} {pretty} change".replace("  ", " "),
                    account,
                    label,
                    ents,
                    cur_p,
                    [cur, prior],
                    "USD",
                    basis=prior_p.label,
                )
            for key in cls.slots.derived:
                now = b.derived(key, label, ents, cur_p, shocks=[])
                then = b.derived(key, label, ents, prior_p, shocks=[])
                if now is None or then is None:
                    return f"derived metric {key} (the chart of accounts lacks one of its accounts)"
                spec = now[1]
                pretty = word if basis in SHIFT else ""
                if spec.unit == "%":
                    # A margin grows in points, not in percent of itself.
                    b.compute(
                        "difference",
                        f"{spec.name} {pretty} change".replace("  ", " "),
                        b.tasks[now[0]].account,
                        label,
                        ents,
                        cur_p,
                        [now[0], then[0]],
                        "pp",
                        basis=prior_p.label,
                    )
                else:
                    b.compute(
                        "growth_pct",
                        f"{spec.name} {pretty} growth pct".replace("  ", " "),
                        b.tasks[now[0]].account,
                        label,
                        ents,
                        cur_p,
                        [now[0], then[0]],
                        "%",
                        basis=prior_p.label,
                    )
    return ""


def _plan_trend(b: _Builder, cls: ClassifyResult, sets: list[tuple[str, list[str]]]) -> str:
    window, assumption = trend_window(cls)
    if assumption:
        b.assumptions.append(assumption)
    months = window.months
    for label, ents in sets:
        for metric, account in _metrics(b, cls):
            series = [b.sum(metric, account, label, ents, PeriodRef(label=m, months=[m])) for m in months]
            name = b.metric_label(metric, account)
            b.compute("trend", f"{name} trend slope", account, label, ents, window, series, "USD/month")
        for key in cls.slots.derived:
            points = [b.derived(key, label, ents, PeriodRef(label=m, months=[m]), shocks=[]) for m in months]
            if any(p is None for p in points):
                return f"derived metric {key} (the chart of accounts lacks one of its accounts)"
            first = points[0]
            assert first is not None
            unit = "pp/month" if first[1].unit == "%" else "USD/month"
            b.compute(
                "trend",
                f"{first[1].name} trend slope",
                b.tasks[first[0]].account,
                label,
                ents,
                window,
                [p[0] for p in points if p is not None],
                unit,
            )
    return ""


def _plan_variance(b: _Builder, cls: ClassifyResult, sets: list[tuple[str, list[str]]]) -> str:
    if cls.slots.derived and not cls.slots.accounts:
        return "variance of a derived metric (ask for the variance of its accounts, e.g. revenue and COGS)"
    for comparison in _comparison_periods(b, cls):
        cur_p, prior_p = comparison.current, comparison.prior
        for label, ents in sets:
            for metric, account in _metrics(b, cls):
                deps = [b.sum(metric, account, label, ents, cur_p), b.sum(metric, account, label, ents, prior_p)]
                excluded = set(b.leaf_exclusions(account))
                if len(ents) > 1:
                    # A consolidated total moves because its entities do.
                    for e in ents:
                        deps += [b.sum(metric, account, e, [e], cur_p), b.sum(metric, account, e, [e], prior_p)]
                else:
                    children = [
                        c for c, a in sorted(b.catalog.accounts.items()) if a.parent == account and c not in excluded
                    ]
                    for child in children:
                        cname = b.catalog.accounts[child].name.lower()
                        deps += [b.sum(cname, child, label, ents, cur_p), b.sum(cname, child, label, ents, prior_p)]
                b.compute(
                    "variance",
                    b.metric_label(metric, account),
                    account,
                    label,
                    ents,
                    cur_p,
                    deps,
                    "USD",
                    basis=prior_p.label,
                )
    return ""


def _plan_scenario(b: _Builder, cls: ClassifyResult, sets: list[tuple[str, list[str]]]) -> str:
    slots = cls.slots
    if not slots.shocks:
        return "scenario without a change to apply (say, for example, 'if materials cost rises 10%')"
    shocks = list(slots.shocks)
    for s in shocks:
        if s.account in b.masked:
            b.assumptions.append(f"the change to {s.label} is left out: it is masked for you")
    for label, ents in sets:
        for period in slots.periods:
            for key in slots.derived:
                base = b.derived(key, label, ents, period, shocks=[])
                shocked = b.derived(key, label, ents, period, shocks=shocks)
                if base is None or shocked is None:
                    return f"derived metric {key} (the chart of accounts lacks one of its accounts)"
                if shocked[0] == base[0]:
                    b.assumptions.append(
                        f"none of the changes touches {base[1].name}'s accounts: the scenario leaves it unchanged"
                    )
            for metric, account in _metrics(b, cls):
                current = b.sum(metric, account, label, ents, period)
                deps = [current]
                applied: list[TaskShock] = []
                for s in shocks:
                    if s.account in b.catalog.subtree(account) and s.account not in b.masked:
                        component = b.sum(s.label, s.account, label, ents, period)
                        deps.append(component)
                        applied.append(
                            TaskShock(operand=0, component=component, change_pct=s.change_pct, label=s.label)
                        )
                if applied:
                    name = b.metric_label(metric, account)
                    b.compute("total", f"scenario {name}", account, label, ents, period, deps, "USD", shocks=applied)
    return ""
