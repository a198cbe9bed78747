"""Budgets and cost accounting (docket/usage.py) over a real SQLite file: prices, exactly-once records, limits."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from cli.main import app as cli_app
from docket import db, ingest, usage
from docket.db import ModelUsage, table_of
from docket.errors import ConfigurationError
from docket.settings import Settings
from docket.usage import UsageRecord
from tests.support.oracle import DEMO_PACK
from tests.unit.conftest import migrated_engine

NOW = datetime(2026, 11, 21, 18, 0, tzinfo=UTC)
USAGE = table_of(ModelUsage)


@pytest.fixture
def people(tmp_path: Path) -> Iterator[Engine]:
    """A fresh database with the demo tenants and principals (budgets name real ones)."""
    engine = migrated_engine(tmp_path / "db")
    ingest.load_principals(engine, DEMO_PACK / "principals.json")
    yield engine
    engine.dispose()


def settings(**overrides: object) -> Settings:
    # Unlimited unless a test says otherwise, so each test sees only the limit it is about.
    base: dict[str, object] = {
        "daily_tokens_per_principal": 0,
        "daily_tokens_per_tenant": 0,
        "daily_cost_usd_per_principal": 0,
        "daily_cost_usd_per_tenant": 0,
    }
    return Settings(**{**base, **overrides})


def call(
    wid: str = "req-1",
    *,
    attempt: int = 1,
    n: int = 1,
    principal: str = "carol",
    tenant: str = "meridian",
    model: str = "gpt-4o-mini",
    prompt: int = 100,
    completion: int = 50,
    run_id: str = "run-a",
) -> UsageRecord:
    return UsageRecord(
        workflow_id=wid,
        activity_id="7",
        attempt=attempt,
        call=n,
        tenant=tenant,
        principal_id=principal,
        provider="openai",
        model=model,
        prompt_tokens=prompt,
        completion_tokens=completion,
        run_id=run_id,
    )


def summed(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        rows, tokens = conn.execute(
            select(func.count(), func.coalesce(func.sum(USAGE.c.prompt_tokens + USAGE.c.completion_tokens), 0))
        ).one()
    return int(rows), int(tokens)


# ----------------------------------------------------------------- prices


def test_cost_comes_from_the_price_table() -> None:
    s = Settings()
    # gpt-4o-mini: 0.15 USD per 1M prompt tokens, 0.60 per 1M completion tokens.
    assert usage.cost_usd(s, "gpt-4o-mini", 1_000_000, 0) == pytest.approx(0.15)
    assert usage.cost_usd(s, "gpt-4o-mini", 1000, 500) == pytest.approx(0.00045)
    assert usage.cost_usd(s, "gpt-4o", 2000, 1000) == pytest.approx(0.015)
    # A dated snapshot is priced like its base model, and the longer name is not mistaken for gpt-4o.
    assert usage.cost_usd(s, "gpt-4o-mini-2024-07-18", 1000, 500) == pytest.approx(0.00045)
    assert usage.cost_usd(s, "gpt-4o-2024-08-06", 2000, 1000) == pytest.approx(0.015)
    # The local model costs nothing but is priced; an unknown model costs 0 and is not priced.
    assert usage.cost_usd(s, "gemma-3-270m-q4_k_m", 10_000, 10_000) == 0.0
    assert usage.price_of(s, "gemma-3-270m-q4_k_m") is not None
    assert usage.cost_usd(s, "mystery-model", 10_000, 10_000) == 0.0
    assert usage.price_of(s, "mystery-model") is None
    # Tiny calls stay visible: 7 tokens of the cheapest model.
    assert usage.cost_usd(s, "gpt-4.1-nano", 7, 0) == pytest.approx(7e-7)


def test_the_price_table_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKET_MODEL_PRICES", json.dumps({"house-model": {"prompt": 1.0, "completion": 2.0}}))
    s = Settings()
    assert usage.cost_usd(s, "house-model", 1_000_000, 1_000_000) == pytest.approx(3.0)
    # Setting the table replaces it: the shipped entries are gone.
    assert usage.price_of(s, "gpt-4o") is None
    usage.check_prices(s)


@pytest.mark.parametrize(
    "entry",
    [{"prompt": 1.0}, {"input": 1.0, "output": 2.0}, {"prompt": -1.0, "completion": 1.0}],
    ids=["missing", "typo", "negative"],
)
def test_a_bad_price_entry_is_refused(entry: dict[str, float]) -> None:
    s = Settings(model_prices={"m": entry})
    with pytest.raises(ConfigurationError, match="DOCKET_MODEL_PRICES"):
        usage.check_prices(s)


# ----------------------------------------------------------------- recording


def test_the_same_call_is_recorded_once(empty_engine: Engine) -> None:
    s = settings()
    assert usage.record_usage(empty_engine, s, call(), now=NOW) is True
    # A replayed or re-delivered record of the same call: nothing new.
    assert usage.record_usage(empty_engine, s, call(), now=NOW) is False
    assert usage.record_usage(empty_engine, s, call(), now=NOW + timedelta(minutes=5)) is False
    assert summed(empty_engine) == (1, 150)


def test_a_new_attempt_a_repair_and_a_new_run_each_count(empty_engine: Engine) -> None:
    s = settings()
    assert usage.record_usage(empty_engine, s, call(), now=NOW)
    # Temporal retried the activity: the model really was called again.
    assert usage.record_usage(empty_engine, s, call(attempt=2), now=NOW)
    # The second call of that attempt (a repair).
    assert usage.record_usage(empty_engine, s, call(attempt=2, n=2), now=NOW)
    # A failed request run again under its workflow id starts its activities at attempt 1 again.
    assert usage.record_usage(empty_engine, s, call(run_id="run-b"), now=NOW)
    assert summed(empty_engine) == (4, 600)
    for again in (call(), call(attempt=2), call(attempt=2, n=2), call(run_id="run-b")):
        assert usage.record_usage(empty_engine, s, again, now=NOW) is False
    assert summed(empty_engine) == (4, 600)


def test_a_record_carries_cost_day_and_price_flag(empty_engine: Engine) -> None:
    s = settings()
    late = datetime(2026, 11, 21, 23, 59, 59, tzinfo=UTC)
    usage.record_usage(empty_engine, s, call(prompt=1000, completion=500), now=late)
    usage.record_usage(empty_engine, s, call(n=2, model="mystery-model"), now=late + timedelta(seconds=2))
    with empty_engine.connect() as conn:
        rows = {r.call: r for r in conn.execute(select(USAGE))}
    assert rows[1].cost_usd == pytest.approx(0.00045) and rows[1].priced is True
    assert rows[1].day == date(2026, 11, 21)
    # Two seconds later is the next UTC day: that call counts against the next day's budget.
    assert rows[2].cost_usd == 0.0 and rows[2].priced is False and rows[2].day == date(2026, 11, 22)


def test_records_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="from 1"):
        call(attempt=0)
    with pytest.raises(ValueError, match="negative"):
        call(prompt=-1)
    with pytest.raises(ValueError, match="workflow id"):
        call(wid="")


def test_times_must_carry_a_timezone(empty_engine: Engine) -> None:
    with pytest.raises(ValueError, match="timezone"):
        usage.record_usage(empty_engine, settings(), call(), now=datetime(2026, 11, 21, 12, 0))


# ----------------------------------------------------------------- limits


def test_principal_limit_refuses_once_reached(empty_engine: Engine) -> None:
    s = settings(daily_tokens_per_principal=1000)
    usage.record_usage(empty_engine, s, call(prompt=600, completion=399), now=NOW)
    first = usage.check_budget(empty_engine, s, "meridian", "carol", now=NOW)
    assert first.allowed and first.used_tokens == 999 and first.limit_tokens == 1000
    usage.record_usage(empty_engine, s, call(n=2, prompt=1, completion=0), now=NOW)
    check = usage.check_budget(empty_engine, s, "meridian", "carol", now=NOW)
    assert not check.allowed
    assert (check.scope, check.used_tokens, check.limit_tokens) == ("principal", 1000, 1000)
    assert "carol" in check.reason and "1,000 of the 1,000" in check.reason
    # 18:00 UTC: six hours until the budget resets at midnight.
    assert check.retry_after_seconds == 6 * 3600
    # Somebody else of the tenant is not held by carol's budget.
    assert usage.check_budget(empty_engine, s, "meridian", "ivan", now=NOW).allowed
    # Tomorrow the day starts from zero.
    assert usage.check_budget(empty_engine, s, "meridian", "carol", now=NOW + timedelta(hours=6)).allowed


def test_tenant_limit_covers_every_principal(empty_engine: Engine) -> None:
    s = settings(daily_tokens_per_principal=1000, daily_tokens_per_tenant=1500)
    usage.record_usage(empty_engine, s, call("req-c", prompt=800, completion=0), now=NOW)
    usage.record_usage(empty_engine, s, call("req-i", principal="ivan", prompt=700, completion=0), now=NOW)
    check = usage.check_budget(empty_engine, s, "meridian", "heidi", now=NOW)
    assert not check.allowed
    assert (check.scope, check.used_tokens, check.limit_tokens) == ("tenant", 1500, 1500)
    assert "tenant meridian" in check.reason
    # Another tenant's usage is its own.
    assert usage.check_budget(empty_engine, s, "globex", "ken", now=NOW).allowed
    # A request recorded before budgets knew principals (empty id) is still held by the tenant.
    assert not usage.check_budget(empty_engine, s, "meridian", "", now=NOW).allowed


def test_cost_limit_refuses_too(empty_engine: Engine) -> None:
    s = settings(daily_cost_usd_per_principal=0.01)
    # gpt-4o: 1,000 completion tokens cost 0.01 USD.
    usage.record_usage(empty_engine, s, call(model="gpt-4o", prompt=0, completion=1000), now=NOW)
    check = usage.check_budget(empty_engine, s, "meridian", "carol", now=NOW)
    assert not check.allowed and check.limit_cost_usd == pytest.approx(0.01)
    assert check.used_cost_usd == pytest.approx(0.01) and check.limit_tokens is None
    assert "USD" in check.reason


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(2026, 11, 21, 0, 0, tzinfo=UTC), 86_400),
        (datetime(2026, 11, 21, 23, 59, 0, tzinfo=UTC), 60),
        (datetime(2026, 11, 21, 23, 59, 59, 500_000, tzinfo=UTC), 1),
        # Another zone's wall clock: the reset is still UTC midnight.
        (datetime(2026, 11, 21, 20, 0, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo")), 14_400),
    ],
)
def test_retry_after_is_the_time_to_utc_midnight(empty_engine: Engine, now: datetime, seconds: int) -> None:
    s = settings(daily_tokens_per_principal=1)
    usage.record_usage(empty_engine, s, call(), now=now)
    check = usage.check_budget(empty_engine, s, "meridian", "carol", now=now)
    assert not check.allowed and check.retry_after_seconds == seconds


def test_database_rows_override_the_settings(people: Engine) -> None:
    s = settings(daily_tokens_per_principal=1000, daily_cost_usd_per_principal=1.0)
    usage.record_usage(people, s, call(prompt=1000, completion=0), now=NOW)
    assert not usage.check_budget(people, s, "meridian", "carol", now=NOW).allowed

    # A row for carol raises her token limit; her cost limit (not given) still comes from the settings.
    usage.set_budget(people, "meridian", "carol", daily_tokens=5000, actor="test", now=NOW)
    check = usage.check_budget(people, s, "meridian", "carol", now=NOW)
    assert check.allowed and check.limit_tokens == 5000 and check.limit_cost_usd == pytest.approx(1.0)

    # The tenant's '*' row is every principal's default; carol's own row still wins for tokens.
    usage.set_budget(people, "meridian", "*", daily_tokens=10, daily_cost_usd=0.5, now=NOW)
    assert usage.check_budget(people, s, "meridian", "carol", now=NOW).limit_tokens == 5000
    assert usage.check_budget(people, s, "meridian", "carol", now=NOW).limit_cost_usd == pytest.approx(0.5)
    assert usage.check_budget(people, s, "meridian", "ivan", now=NOW).limit_tokens == 10

    # 0 is no limit; the whole tenant's row holds everyone.
    usage.set_budget(people, "meridian", "carol", daily_tokens=0, daily_cost_usd=0, now=NOW)
    assert usage.check_budget(people, s, "meridian", "carol", now=NOW).allowed
    usage.set_budget(people, "meridian", daily_tokens=1000, now=NOW)
    check = usage.check_budget(people, s, "meridian", "carol", now=NOW)
    assert not check.allowed and check.scope == "tenant"

    # Clearing rows brings the settings back.
    assert usage.clear_budget(people, "meridian") and usage.clear_budget(people, "meridian", "carol")
    assert not usage.clear_budget(people, "meridian", "carol")
    assert usage.check_budget(people, s, "meridian", "carol", now=NOW).limit_tokens == 10
    assert [(r.principal_id, r.daily_tokens) for r in usage.list_budgets(people, "meridian")] == [("*", 10)]


def test_setting_a_budget_checks_what_it_names(people: Engine) -> None:
    with pytest.raises(usage.BudgetError, match="unknown tenant"):
        usage.set_budget(people, "nowhere", daily_tokens=1)
    with pytest.raises(usage.BudgetError, match="not loaded for tenant"):
        usage.set_budget(people, "meridian", "ken", daily_tokens=1)
    with pytest.raises(usage.BudgetError, match="no limit given"):
        usage.set_budget(people, "meridian", "carol")
    with pytest.raises(usage.BudgetError, match="negative"):
        usage.set_budget(people, "meridian", "carol", daily_cost_usd=-1)
    # A limit left out keeps its value.
    usage.set_budget(people, "meridian", "carol", daily_tokens=100, daily_cost_usd=2.0)
    row = usage.set_budget(people, "meridian", "carol", daily_tokens=200)
    assert (row.daily_tokens, row.daily_cost_usd) == (200, 2.0)


# ----------------------------------------------------------------- summaries


def test_summary_adds_up_per_model_and_per_principal(empty_engine: Engine) -> None:
    s = settings(daily_tokens_per_principal=10_000, daily_tokens_per_tenant=100_000)
    usage.record_usage(empty_engine, s, call("a", prompt=1000, completion=500), now=NOW)
    usage.record_usage(empty_engine, s, call("a", n=2, model="gpt-4o", prompt=2000, completion=100), now=NOW)
    usage.record_usage(empty_engine, s, call("b", model="mystery-model", prompt=10, completion=5), now=NOW)
    usage.record_usage(empty_engine, s, call("c", principal="ivan", prompt=300, completion=0), now=NOW)
    # Yesterday and another tenant are not today's meridian usage.
    usage.record_usage(empty_engine, s, call("d", prompt=9999, completion=0), now=NOW - timedelta(days=1))
    usage.record_usage(empty_engine, s, call("e", tenant="globex", principal="ken"), now=NOW)

    mine = usage.usage_summary(empty_engine, s, "meridian", "carol", NOW.date())
    assert (mine.calls, mine.prompt_tokens, mine.completion_tokens) == (3, 3010, 605)
    assert mine.total_tokens == 3615
    assert mine.cost_usd == pytest.approx(0.00045 + (2000 * 2.5 + 100 * 10) / 1e6)
    assert [(m.model, m.calls, m.priced) for m in mine.by_model] == [
        ("gpt-4o", 1, True),
        ("gpt-4o-mini", 1, True),
        ("mystery-model", 1, False),
    ]
    assert mine.priced is False and mine.by_principal == []
    assert mine.limit.scope == "principal" and mine.limit.remaining_tokens == 10_000 - 3615
    assert mine.resets_at == datetime(2026, 11, 22, tzinfo=UTC)

    tenant = usage.usage_summary(empty_engine, s, "meridian", None, NOW.date())
    assert tenant.total_tokens == 3615 + 300 and tenant.limit.scope == "tenant"
    assert [(p.principal_id, p.total_tokens) for p in tenant.by_principal] == [("carol", 3615), ("ivan", 300)]
    assert (
        usage.usage_summary(empty_engine, s, "meridian", "carol", NOW.date() - timedelta(days=1)).total_tokens == 9999
    )


def test_a_principal_view_says_when_the_tenant_limit_stops_them(empty_engine: Engine) -> None:
    s = settings(daily_tokens_per_principal=10_000, daily_tokens_per_tenant=4_000)
    usage.record_usage(empty_engine, s, call("a", prompt=3000, completion=0), now=NOW)
    mine = usage.usage_summary(empty_engine, s, "meridian", "carol", NOW.date())
    assert mine.tenant_limit is not None and mine.tenant_limit.remaining_tokens == 1000 and not mine.exhausted
    # Someone else spends the rest of the tenant's day: carol's own limit is far off, yet she is refused.
    usage.record_usage(empty_engine, s, call("b", principal="ivan", prompt=1000, completion=0), now=NOW)
    mine = usage.usage_summary(empty_engine, s, "meridian", "carol", NOW.date())
    assert not mine.limit.exhausted and mine.tenant_limit is not None and mine.tenant_limit.exhausted
    assert mine.exhausted
    assert not usage.check_budget(empty_engine, s, "meridian", "carol", now=NOW).allowed
    assert usage.usage_summary(empty_engine, s, "meridian", None, NOW.date()).tenant_limit is None


# ----------------------------------------------------------------- command line


def test_cli_sets_lists_and_clears_budgets_and_shows_usage(tmp_path: Path) -> None:
    engine = migrated_engine(tmp_path / "cli")
    ingest.load_principals(engine, DEMO_PACK / "principals.json")
    usage.record_usage(engine, settings(), call(prompt=1200, completion=34), now=datetime.now(UTC))
    engine.dispose()
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli' / 'docket.db'}"}
    runner = CliRunner()

    set_ = runner.invoke(
        cli_app, ["budget", "set", "--tenant", "meridian", "--principal", "carol", "--daily-tokens", "5000"], env=env
    )
    assert set_.exit_code == 0, set_.output
    assert "meridian / carol: 5,000 tokens, default USD per day" in set_.output
    listed = runner.invoke(cli_app, ["budget", "list", "--tenant", "meridian", "--json"], env=env)
    assert [(r["principal_id"], r["daily_tokens"]) for r in json.loads(listed.output)] == [("carol", 5000)]

    shown = runner.invoke(cli_app, ["usage", "--as", "carol"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "tokens:     1,234 (prompt 1,200, completion 34)" in shown.output
    assert "remaining:  3,766 tokens" in shown.output and "from database" in shown.output
    as_json = json.loads(runner.invoke(cli_app, ["usage", "--tenant", "meridian", "--json"], env=env).output)
    [line] = as_json["by_principal"]
    assert (line["principal_id"], line["calls"], line["total_tokens"]) == ("carol", 1, 1234)
    assert line["cost_usd"] == pytest.approx((1200 * 0.15 + 34 * 0.60) / 1e6)

    bad = runner.invoke(
        cli_app, ["budget", "set", "--tenant", "meridian", "--principal", "ken", "--daily-tokens", "1"], env=env
    )
    assert bad.exit_code == 2 and "not loaded for tenant" in bad.output
    assert runner.invoke(cli_app, ["usage"], env=env).exit_code == 2
    assert runner.invoke(cli_app, ["usage", "--as", "carol", "--day", "21/11/2026"], env=env).exit_code == 2
    cleared = runner.invoke(cli_app, ["budget", "clear", "--tenant", "meridian", "--principal", "carol"], env=env)
    assert "removed the budget of meridian / carol" in cleared.output
    final = db.make_engine(env["DATABASE_URL"])
    try:
        assert usage.list_budgets(final, "meridian") == []
    finally:
        final.dispose()
