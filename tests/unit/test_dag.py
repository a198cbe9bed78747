"""The task DAG: plans per intent template, compute tasks, and the task-result store, over the demo pack.

Every figure is checked against tests/support/oracle.py (the CSV recomputed with the csv module and fractions),
never against the product's own output.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from fractions import Fraction
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

from activities.authorize.engine import Authorizer
from activities.classify.rules import RuleClassifier
from activities.data.engine import compute, run_task
from activities.plan.engine import plan
from docket import ingest
from docket.catalog import Catalog, load_catalog
from docket.contracts import Action, DataTask, Fact, LedgerQueryResult, MissingData, PeriodRef, Plan, period_from_label
from docket.contracts import required_action as action_for
from docket.dataversion import data_version, run_cached, task_counts
from docket.db import LedgerBalance, Principal, table_of
from docket.errors import DataChangedError, InvalidTaskError
from docket.periods import shift_period
from tests.support.oracle import LedgerOracle, growth_pct, margin_pct, months_between, round_half_up, slope
from tests.unit.conftest import migrated_engine

AS_OF = date(2026, 11, 21)
Planner = Callable[[str, str], Plan]


@pytest.fixture
def make_plan(
    principal: Callable[[str], Principal], catalog: Catalog, classifier: RuleClassifier, authorizer: Authorizer
) -> Planner:
    def run(who: str, question: str) -> Plan:
        cls = classifier.classify(question, AS_OF).model_copy(update={"confidence": 0.99})
        decision = authorizer.decide(principal(who), catalog, action_for(cls), cls)
        assert decision.allowed, decision.reasons
        return plan("meridian", question, cls, decision, catalog, "v-test")

    return run


def execute(engine: Engine, catalog: Catalog, p: Plan) -> dict[str, LedgerQueryResult]:
    """The DAG in plan order (topological): what the workflow does, without Temporal."""
    results: dict[str, LedgerQueryResult] = {}
    for t in p.tasks:
        assert all(d in results for d in t.depends_on), f"{t.task_id} listed before its operands"
        results[t.task_id] = (
            run_task(engine, catalog, t) if t.kind == "sum" else compute(t, [results[d] for d in t.depends_on])
        )
    return results


def facts(results: dict[str, LedgerQueryResult]) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for r in results.values():
        for f in ([r.fact] if r.fact else []) + r.facts:
            out[f.label] = f.value
    return out


def test_growth_yoy(make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle) -> None:
    p = make_plan("grace", "What is the yoy growth of revenue for MER-JP in September 2026?")
    assert p.template == "growth" and p.assumptions == [] and p.data_version == "v-test"
    got = facts(execute(pack_engine, catalog, p))
    now, then = (oracle.total("meridian", ["MER-JP"], "4", [m]) for m in ("2026-09", "2025-09"))
    assert got == {
        "revenue MER-JP 2026-09": now,
        "revenue MER-JP 2025-09": then,
        "revenue yoy growth pct MER-JP 2026-09": growth_pct(now, then),
        "revenue yoy change MER-JP 2026-09": now - then,
    }


def test_growth_without_basis_assumes_yoy_and_says_so(make_plan: Planner) -> None:
    p = make_plan("alice", "What was revenue growth for MER-US in Q3 2026?")
    assert [t.period.label for t in p.tasks if t.kind == "sum"] == ["2026-Q3", "2025-Q3"]
    assert len(p.assumptions) == 1 and "year over year" in p.assumptions[0]


@pytest.mark.parametrize(
    ("question", "prior"),
    [
        ("What was the qoq growth of revenue for MER-US in Q2 2026?", "2026-Q1"),
        ("What was the month-over-month growth of revenue for MER-US in January 2026?", "2025-12"),
        ("What was the growth of revenue for MER-US from Q1 2026 to Q2 2026?", "2026-Q1"),
    ],
)
def test_growth_bases(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle, question: str, prior: str
) -> None:
    p = make_plan("alice", question)
    growth = next(t for t in p.tasks if t.kind == "growth_pct")
    assert growth.basis == prior
    cur_months = growth.period.months
    prior_months = period_from_label(prior).months
    got = execute(pack_engine, catalog, p)[growth.task_id].fact
    assert got is not None
    now = oracle.total("meridian", ["MER-US"], "4", cur_months)
    then = oracle.total("meridian", ["MER-US"], "4", prior_months)
    assert got.value == growth_pct(now, then)


def test_trend_over_six_months(make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle) -> None:
    p = make_plan("alice", "What was the revenue trend for MER-US over the last 6 months?")
    months = months_between("2026-05", "2026-10")
    assert [t.period.label for t in p.tasks if t.kind == "sum"] == months
    results = execute(pack_engine, catalog, p)
    series = [oracle.total("meridian", ["MER-US"], "4", [m]) for m in months]
    trend = next(r for r in results.values() if r.fact and r.fact.kind == "trend")
    assert trend.fact is not None
    assert trend.fact.value == slope(series)
    assert trend.fact.unit == "USD/month"
    assert trend.fact.detail == ("up" if slope(series) > 0 else "down")
    change = next(f for f in trend.facts if "change pct" in f.label)
    assert change.value == round_half_up(Fraction(series[-1] - series[0], abs(series[0])) * 100)


def test_trend_with_one_month_named_uses_a_six_month_window(make_plan: Planner) -> None:
    p = make_plan("bob", "Show the trend of COGS for MER-DE in March 2026")
    assert [t.period.label for t in p.tasks if t.kind == "sum"] == months_between("2025-10", "2026-03")
    assert p.assumptions and "6 months ending 2026-03" in p.assumptions[0]


def test_variance_ranks_child_accounts(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle
) -> None:
    p = make_plan("bob", "Why did COGS for MER-DE change in March 2026?")
    assert p.assumptions and "previous month (2026-02)" in p.assumptions[0]
    got = facts(execute(pack_engine, catalog, p))
    now, then = (oracle.total("meridian", ["MER-DE"], "5.2", [m]) for m in ("2026-03", "2026-02"))
    assert got["cogs variance vs 2026-02 MER-DE 2026-03"] == now - then
    assert got["cogs variance pct vs 2026-02 MER-DE 2026-03"] == growth_pct(now, then)
    children = {"materials": "5.2.1", "freight and logistics": "5.2.2", "manufacturing overhead": "5.2.3"}
    changes = {
        name: oracle.total("meridian", ["MER-DE"], code, ["2026-03"])
        - oracle.total("meridian", ["MER-DE"], code, ["2026-02"])
        for name, code in children.items()
    }
    for name, change in changes.items():
        assert got[f"{name} variance vs 2026-02 MER-DE 2026-03"] == change
    # The contributions add up to the total change: COGS has no balances of its own.
    assert sum(changes.values()) == now - then
    results = execute(pack_engine, catalog, p)
    ranked = [f for r in results.values() for f in r.facts if f.kind == "contribution"]
    assert [f.label.split(" variance")[0] for f in ranked] == sorted(changes, key=lambda n: -abs(changes[n]))
    assert ranked[0].detail.startswith("contributor 1 of 3")


def test_group_variance_is_consolidation_and_ranks_entities(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, classifier: RuleClassifier
) -> None:
    question = "Explain the variance in revenue for the group in September 2026 vs August 2026"
    assert action_for(classifier.classify(question, AS_OF)) == Action.CONSOLIDATE
    p = make_plan("alice", question)
    variance = next(t for t in p.tasks if t.kind == "variance")
    assert variance.entity_label == "group" and len(variance.depends_on) == 2 + 2 * 10
    result = execute(pack_engine, catalog, p)[variance.task_id]
    assert result.fact is not None
    # MER-BR has no September rows: its change cannot be ranked, and the fact says so.
    assert "MER-BR" in result.fact.detail
    assert all(f.entity != "MER-BR" for f in result.facts)


def test_scenario_example(make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle) -> None:
    p = make_plan(
        "alice", "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?"
    )
    got = facts(execute(pack_engine, catalog, p))
    revenue, cogs, materials = (oracle.total("meridian", ["MER-US"], a, ["2026-10"]) for a in ("4", "5.2", "5.2.1"))
    assert got["gross margin pct MER-US 2026-10"] == margin_pct(revenue, cogs) == 60.0
    assert (
        got["scenario gross margin pct MER-US 2026-10"] == margin_pct(revenue, cogs + Fraction(materials, 10)) == 57.2
    )
    assert got["scenario cogs MER-US 2026-10"] == cogs + round_half_up(Fraction(materials, 10), 0)
    # Both margins share the ledger sums: revenue, COGS and materials are read once each.
    assert sorted(t.account for t in p.tasks if t.kind == "sum") == ["4", "5.2", "5.2.1"]


def test_scenario_on_an_account(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle
) -> None:
    p = make_plan("alice", "What happens to COGS for MER-US in October 2026 if freight rises 20%?")
    got = facts(execute(pack_engine, catalog, p))
    cogs, freight = (oracle.total("meridian", ["MER-US"], a, ["2026-10"]) for a in ("5.2", "5.2.2"))
    assert got["scenario cogs MER-US 2026-10"] == cogs + round_half_up(Fraction(freight, 5), 0)


def test_derived_metrics_lookup(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle
) -> None:
    p = make_plan("alice", "What were gross profit and operating income for MER-US in October 2026?")
    got = facts(execute(pack_engine, catalog, p))
    revenue, cogs, opex = (oracle.total("meridian", ["MER-US"], a, ["2026-10"]) for a in ("4", "5.2", "5"))
    assert got["gross profit MER-US 2026-10"] == revenue - cogs
    assert got["operating income MER-US 2026-10"] == revenue - opex


def test_operating_income_for_an_analyst_leaves_payroll_out(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle
) -> None:
    p = make_plan("carol", "What was operating income for MER-CA in May 2026?")
    got = facts(execute(pack_engine, catalog, p))
    revenue = oracle.total("meridian", ["MER-CA"], "4", ["2026-05"])
    opex = oracle.total("meridian", ["MER-CA"], "5", ["2026-05"], exclude=["5.1"])
    payroll = oracle.total("meridian", ["MER-CA"], "5.1", ["2026-05"])
    assert got["operating income excl. payroll MER-CA 2026-05"] == revenue - opex
    # Neither the payroll figure nor the full operating income (from which payroll could be derived) is there.
    assert payroll not in got.values() and revenue - opex - payroll not in got.values()


def test_period_comparison_of_a_margin_is_in_points(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle
) -> None:
    p = make_plan("alice", "Compare gross margin for MER-US in Q3 2026 versus Q2 2026")
    got = facts(execute(pack_engine, catalog, p))
    q3, q2 = (months_between("2026-07", "2026-09"), months_between("2026-04", "2026-06"))
    m3 = margin_pct(oracle.total("meridian", ["MER-US"], "4", q3), oracle.total("meridian", ["MER-US"], "5.2", q3))
    m2 = margin_pct(oracle.total("meridian", ["MER-US"], "4", q2), oracle.total("meridian", ["MER-US"], "5.2", q2))
    assert got["gross margin pct change vs 2026-Q2 MER-US 2026-Q3"] == round_half_up(
        Fraction(str(m3)) - Fraction(str(m2))
    )


def test_growth_with_a_missing_period_is_unavailable_not_zero(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog
) -> None:
    p = make_plan("ivan", "What was revenue growth for MER-BR in October 2026 year over year?")
    results = execute(pack_engine, catalog, p)
    growth = next(r for t, r in zip(p.tasks, results.values(), strict=True) if t.kind == "growth_pct")
    assert growth.fact is None and "could not be computed" in growth.unavailable


def test_plans_are_pure_and_tasks_deduplicated(make_plan: Planner) -> None:
    q = "Run a scenario: what happens to MER-US gross margin in October 2026 if materials cost rises 10%?"
    a, b = make_plan("alice", q), make_plan("alice", q)
    assert a == b
    ids = [t.task_id for t in a.tasks]
    assert len(ids) == len(set(ids))


def test_group_scenario_is_planned_per_entity(make_plan: Planner) -> None:
    # A scenario is not consolidation (POL-002): no total across entities is planned under the scenario action.
    p = make_plan("alice", "What happens to group gross margin in October 2026 if materials cost rises 10%?")
    assert p.tasks and all(t.entity_label != "group" for t in p.tasks)


def test_shift_period_labels() -> None:
    q2 = period_from_label("2026-Q2")
    assert shift_period(q2, 12).label == "2025-Q2" and shift_period(q2, 3).label == "2026-Q1"
    assert shift_period(period_from_label("2026-Q1"), 3).label == "2025-Q4"
    assert shift_period(period_from_label("2026-01"), 1).label == "2025-12"
    assert shift_period(period_from_label("2025"), 12).months == months_between("2024-01", "2024-12")


def _task(kind: str, deps: list[str]) -> DataTask:
    return DataTask(
        task_id="t-x",
        kind=kind,  # type: ignore[arg-type]
        metric="m",
        account="4",
        entity_label="MER-US",
        entities=["MER-US"],
        period=PeriodRef(label="2026-10", months=["2026-10"]),
        depends_on=deps,
    )


def test_compute_refuses_operands_out_of_order(pack_engine: Engine, catalog: Catalog) -> None:
    a = run_task(pack_engine, catalog, _task("sum", []).model_copy(update={"task_id": "t-a"}))
    with pytest.raises(InvalidTaskError):
        compute(_task("difference", ["t-b", "t-a"]), [a, a])


def test_zero_denominator_is_unavailable(pack_engine: Engine, catalog: Catalog) -> None:
    a = run_task(pack_engine, catalog, _task("sum", []).model_copy(update={"task_id": "t-a"}))
    zero = LedgerQueryResult(task_id="t-z", fact=a.fact.model_copy(update={"value": 0}) if a.fact else None)
    result = compute(_task("growth_pct", ["t-a", "t-z"]), [a, zero])
    assert result.fact is None and "zero" in result.unavailable


# ---------------------------------------------------------------- the task-result store


def test_results_are_stored_once_and_reused(tmp_path: Path) -> None:
    engine = migrated_engine(tmp_path / "db")
    ingest.load_pack(engine, Path(__file__).resolve().parents[2] / "examples" / "meridian")
    catalog = load_catalog(engine, "meridian")
    version = data_version(engine, "meridian")
    t = _task("sum", []).model_copy(update={"task_id": "t-store"})
    calls: list[int] = []

    def once() -> LedgerQueryResult:
        calls.append(1)
        return run_task(engine, catalog, t)

    first = run_cached(engine, "meridian", t, version, once)
    again = run_cached(engine, "meridian", t, version, once)
    assert len(calls) == 1 and not first.reused and again.reused
    assert again.model_copy(update={"reused": False}) == first
    assert task_counts(engine, "meridian")["t-store"] == (1, 1)
    # Another tenant's key is another result.
    run_cached(engine, "globex", t.model_copy(update={"entities": ["GLX-US"]}), data_version(engine, "globex"), once)
    assert len(calls) == 2


def test_loading_the_same_data_keeps_the_version_and_a_change_invalidates(tmp_path: Path, pack_copy: Path) -> None:
    engine = migrated_engine(tmp_path / "db")
    ingest.load_pack(engine, pack_copy)
    version = data_version(engine, "meridian")
    ingest.load_pack(engine, pack_copy)
    assert data_version(engine, "meridian") == version
    t = _task("sum", []).model_copy(update={"task_id": "t-v"})
    catalog = load_catalog(engine, "meridian")
    run_cached(engine, "meridian", t, version, lambda: run_task(engine, catalog, t))
    # A restated balance, loaded as a new file: a new version, and a task pinned to the old one fails for good.
    csv = pack_copy / "gl_balances.csv"
    csv.write_text(csv.read_text().replace("meridian,MER-US,4.1,2026-10,", "meridian,MER-US,4.1,2026-10,1", 1))
    ingest.load_pack(engine, pack_copy)
    assert data_version(engine, "meridian") != version
    with pytest.raises(DataChangedError):
        run_cached(engine, "meridian", t, version, lambda: run_task(engine, catalog, t))


def test_version_is_computed_for_data_loaded_before_versions(tmp_path: Path, pack_copy: Path) -> None:
    engine = migrated_engine(tmp_path / "db")
    ingest.load_pack(engine, pack_copy)
    loaded = data_version(engine, "meridian")
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM data_versions")
    # Computed from the data itself, so the same data gives the version its load gave.
    version = data_version(engine, "meridian")
    assert version == loaded
    with engine.begin() as conn:
        conn.execute(update(table_of(LedgerBalance)).values(amount=table_of(LedgerBalance).c.amount + 1))
    # A direct write that bypassed ingestion is not seen until a load refreshes the version: documented.
    assert data_version(engine, "meridian") == version


def test_a_load_that_commits_while_a_task_computes_is_not_stored_under_the_old_version(
    tmp_path: Path, pack_copy: Path
) -> None:
    engine = migrated_engine(tmp_path / "db")
    ingest.load_pack(engine, pack_copy)
    version = data_version(engine, "meridian")
    catalog = load_catalog(engine, "meridian")
    t = _task("sum", []).model_copy(update={"task_id": "t-race"})
    csv = pack_copy / "gl_balances.csv"

    def compute_while_a_load_commits() -> LedgerQueryResult:
        csv.write_text(csv.read_text().replace("meridian,MER-US,4.1,2026-10,", "meridian,MER-US,4.1,2026-10,1", 1))
        ingest.load_pack(engine, pack_copy)
        return run_task(engine, catalog, t)

    with pytest.raises(DataChangedError):
        run_cached(engine, "meridian", t, version, compute_while_a_load_commits)
    assert task_counts(engine, "meridian") == {}


def test_results_of_older_task_code_are_not_served(tmp_path: Path) -> None:
    engine = migrated_engine(tmp_path / "db")
    ingest.load_pack(engine, Path(__file__).resolve().parents[2] / "examples" / "meridian")
    version = data_version(engine, "meridian")
    t = _task("sum", []).model_copy(update={"task_id": "t-code"})
    old = LedgerQueryResult(task_id="t-code", rows=1)
    run_cached(engine, "meridian", t, version, lambda: old, code=1)
    fresh = run_cached(engine, "meridian", t, version, lambda: old.model_copy(update={"rows": 2}), code=2)
    assert fresh.rows == 2 and not fresh.reused


def test_like_for_like_group_variance(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle
) -> None:
    # MER-BR has August but not September: the group totals are not comparable, the entities with both are.
    p = make_plan("alice", "Explain the variance in revenue for the group in September 2026 vs August 2026")
    got = facts(execute(pack_engine, catalog, p))
    both = [e for e in oracle.entities_of("meridian") if e != "MER-BR"]
    now = sum(oracle.total("meridian", [e], "4", ["2026-09"]) for e in both)
    then = sum(oracle.total("meridian", [e], "4", ["2026-08"]) for e in both)
    assert got["revenue variance vs 2026-08 group 2026-09"] == now - then
    assert got["revenue variance pct vs 2026-08 group 2026-09"] == round_half_up(Fraction(now - then, then) * 100)


def test_growth_from_a_negative_figure_is_growth(make_plan: Planner, pack_engine: Engine, catalog: Catalog) -> None:
    a = LedgerQueryResult(task_id="t-a", fact=_fact_of(1_185_677))
    b = LedgerQueryResult(task_id="t-b", fact=_fact_of(-396_067))
    result = compute(_task("growth_pct", ["t-a", "t-b"]).model_copy(update={"unit": "%"}), [a, b])
    assert result.fact is not None and result.fact.value == round_half_up(Fraction(1_185_677 + 396_067, 396_067) * 100)
    assert result.fact.value > 0


def test_exact_rounding_of_percentages() -> None:
    # 2,000 → 2,009 is exactly 0.45 %: 0.5 %, where float arithmetic gives 0.4.
    a = LedgerQueryResult(task_id="t-a", fact=_fact_of(2009))
    b = LedgerQueryResult(task_id="t-b", fact=_fact_of(2000))
    result = compute(_task("growth_pct", ["t-a", "t-b"]).model_copy(update={"unit": "%"}), [a, b])
    assert result.fact is not None and result.fact.value == 0.5


def test_growth_of_totals_that_are_not_like_for_like_is_unavailable() -> None:
    a = LedgerQueryResult(task_id="t-a", fact=_fact_of(100), missing=[MissingData(entity="MER-BR", period="2026-10")])
    b = LedgerQueryResult(task_id="t-b", fact=_fact_of(90))
    result = compute(_task("growth_pct", ["t-a", "t-b"]).model_copy(update={"unit": "%"}), [a, b])
    assert result.fact is None and "same entities and months" in result.unavailable


def test_margin_trend_moves_in_points(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog, oracle: LedgerOracle
) -> None:
    p = make_plan("alice", "What was the gross margin trend for MER-US over the last 6 months?")
    results = execute(pack_engine, catalog, p)
    trend = next(r for r in results.values() if r.fact and r.fact.kind == "trend")
    assert trend.fact is not None and trend.fact.unit == "pp/month"
    months = months_between("2026-05", "2026-10")
    margins = [
        Fraction(
            str(
                margin_pct(
                    oracle.total("meridian", ["MER-US"], "4", [m]), oracle.total("meridian", ["MER-US"], "5.2", [m])
                )
            )
        )
        for m in months
    ]
    n = len(margins)
    mx = Fraction(n - 1, 2)
    my = sum(margins, Fraction(0)) / n
    expected = sum(((x - mx) * (y - my) for x, y in enumerate(margins)), Fraction(0)) / sum(
        ((x - mx) ** 2 for x in range(n)), Fraction(0)
    )
    assert trend.fact.value == round_half_up(expected)
    [change] = trend.facts
    assert change.unit == "pp" and change.value == round_half_up(margins[-1] - margins[0])


def _fact_of(value: int) -> Fact:
    return Fact(label="x", value=value, unit="USD", entity="MER-US", account="4", period="2026-10", source="s")


def test_derived_figures_are_held_to_like_for_like_too(
    make_plan: Planner, pack_engine: Engine, catalog: Catalog
) -> None:
    # Group gross profit: MER-BR has October 2025 but not October 2026. The two gross profits inherit their sums'
    # missing cells, so their growth is refused exactly as revenue's would be.
    p = make_plan("alice", "What was the yoy growth of gross profit for the group in October 2026?")
    results = execute(pack_engine, catalog, p)
    growth = next(results[t.task_id] for t in p.tasks if t.kind == "growth_pct")
    assert growth.fact is None and "same entities and months" in growth.unavailable
    profits = [results[t.task_id] for t in p.tasks if t.kind == "difference" and "gross profit" in t.metric]
    assert profits and all(r.fact is not None for r in profits)
    assert any(m.key == "MER-BR 2026-10" for r in profits for m in r.missing)
