"""Budgets and cost accounting for model calls: prices, per-call usage rows, daily limits, summaries.

Every model call is one row of model_usage, keyed by its place in Temporal's execution (workflow id, run id,
activity id, attempt, n-th call of the attempt) and inserted with ON CONFLICT DO NOTHING: a replayed or
re-delivered record of the same call writes nothing, while a new attempt, which really called the model again,
counts once. Budgets are daily (UTC) token and cost limits for a principal and for a tenant: the settings give
defaults, rows of the budgets table override them (docs/generation.md, "Budgets and cost").

The check before a call and the record after it are not one transaction: requests of one principal that run at
the same moment can each pass the check, so a limit can be overshot by what those in-flight requests spend (each
at most DOCKET_MAX_REQUEST_TOKENS). Nothing is reserved up front: a reservation would need releasing on every
failure path, and a budget is a spending guard, not a bill.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import Connection, Engine, Row, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from docket.db import Budget, ModelUsage, Principal, Tenant, insert_ignore, table_of
from docket.errors import ConfigurationError, DocketError
from docket.settings import Settings

# principal_id of a budgets row that covers the whole tenant, and of one that covers each of its principals.
TENANT_ROW = ""
EVERY_PRINCIPAL = "*"
USAGE_KEY = ["workflow_id", "run_id", "activity_id", "attempt", "call"]
MILLION = Decimal(1_000_000)
# Costs are kept to the billionth of a dollar: a 10-token call of the cheapest model is still visible.
COST_QUANTUM = Decimal("0.000000001")
# A dated snapshot of a model (gpt-4o-mini-2024-07-18, gpt-4-0613) is priced like its base model.
SNAPSHOT_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{4})$")

Scope = Literal["principal", "tenant"]


class BudgetError(DocketError):
    type = "BudgetError"


# ---------------------------------------------------------------- prices


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M prompt tokens and per 1M completion tokens."""

    prompt: float
    completion: float


def _price(name: str, entry: Mapping[str, float]) -> ModelPrice:
    hint = (
        'give both prices in USD per 1M tokens, e.g. DOCKET_MODEL_PRICES=\'{"m": {"prompt": 0.15, "completion": 0.6}}\''
    )
    # Exactly these two keys: a typo such as "input" must not price a model at 0 without a word.
    if set(entry) != {"prompt", "completion"}:
        raise ConfigurationError(
            f"DOCKET_MODEL_PRICES: {name!r} has keys {sorted(entry)}, not 'prompt' and 'completion'", hint=hint
        )
    prompt, completion = float(entry["prompt"]), float(entry["completion"])
    if not all(math.isfinite(p) and p >= 0 for p in (prompt, completion)):
        raise ConfigurationError(f"DOCKET_MODEL_PRICES: {name!r} has a negative or non-finite price", hint=hint)
    return ModelPrice(prompt, completion)


def check_prices(settings: Settings) -> None:
    """Raise ConfigurationError for a price table entry without both prices or with a negative one."""
    for name, entry in settings.model_prices.items():
        _price(name, entry)


def price_of(settings: Settings, model: str) -> ModelPrice | None:
    """The model's price, or None when the table does not know it (the call then costs 0, flagged unpriced)."""
    entry = settings.model_prices.get(model)
    if entry is None:
        base = SNAPSHOT_SUFFIX.sub("", model)
        entry = settings.model_prices.get(base) if base != model else None
    return None if entry is None else _price(model, entry)


def cost_usd(settings: Settings, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """What a call cost by the price table; 0 for a model without a price."""
    price = price_of(settings, model)
    if price is None:
        return 0.0
    # Decimal, so the cost of many small calls adds up to what the provider bills, not to a float's guess.
    cost = (
        Decimal(prompt_tokens) * Decimal(str(price.prompt))
        + Decimal(completion_tokens) * Decimal(str(price.completion))
    ) / MILLION
    return float(cost.quantize(COST_QUANTUM))


# ---------------------------------------------------------------- recording


@dataclass(frozen=True)
class UsageRecord:
    """One model call as the generate activity saw it."""

    workflow_id: str
    activity_id: str
    attempt: int
    call: int
    tenant: str
    principal_id: str
    provider: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    # activity.info().workflow_run_id: a failed request re-run under its workflow id starts its activities at
    # attempt 1 again, and those calls really spent tokens too.
    run_id: str = ""

    def __post_init__(self) -> None:
        if not self.workflow_id or not self.activity_id or not self.tenant:
            raise ValueError("a usage record needs a workflow id, an activity id and a tenant")
        if self.attempt < 1 or self.call < 1:
            raise ValueError("attempt and call count from 1")
        if self.prompt_tokens < 0 or self.completion_tokens < 0:
            raise ValueError("token counts cannot be negative")


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.utcoffset() is None:
        # A naive time would be read as local time by some callers and UTC by others: the day must not depend on it.
        raise ValueError("budget times must carry a timezone")
    return now.astimezone(UTC)


def record_usage(engine: Engine, settings: Settings, rec: UsageRecord, *, now: datetime | None = None) -> bool:
    """Count one model call against today's budgets; False when this call was already recorded."""
    now = _utc(now)
    row = {
        "workflow_id": rec.workflow_id,
        "run_id": rec.run_id,
        "activity_id": rec.activity_id,
        "attempt": rec.attempt,
        "call": rec.call,
        "tenant": rec.tenant,
        "principal_id": rec.principal_id,
        "provider": rec.provider,
        "model": rec.model,
        "prompt_tokens": rec.prompt_tokens,
        "completion_tokens": rec.completion_tokens,
        "cost_usd": cost_usd(settings, rec.model, rec.prompt_tokens, rec.completion_tokens),
        "priced": price_of(settings, rec.model) is not None,
        "day": now.date(),
        "recorded_at": now,
    }
    with engine.begin() as conn:
        return insert_ignore(conn, ModelUsage, [row], keys=USAGE_KEY) == 1


# ---------------------------------------------------------------- limits


@dataclass(frozen=True)
class Limit:
    """The daily limits that apply to one scope; None is no limit."""

    scope: Scope
    tokens: int | None
    cost_usd: float | None
    # "database" when a budgets row supplied either limit, else "settings".
    source: Literal["database", "settings"]

    @property
    def bounded(self) -> bool:
        return self.tokens is not None or self.cost_usd is not None


@dataclass(frozen=True)
class Used:
    calls: int
    tokens: int
    cost_usd: float


def _first(*values: float | None) -> tuple[float | None, int]:
    """The first value that is set, and its position (so the caller knows whether a row supplied it)."""
    for i, v in enumerate(values):
        if v is not None:
            return v, i
    return None, len(values)


def _bound(value: float | None) -> float | None:
    return None if value is None or value <= 0 else value


def _limits(conn: Connection, settings: Settings, tenant: str, principal_id: str | None) -> tuple[Limit, Limit]:
    """The principal's limits (own row, then the tenant's '*' row, then settings) and the tenant's."""
    b = table_of(Budget).c
    wanted = [TENANT_ROW, EVERY_PRINCIPAL] + ([principal_id] if principal_id else [])
    found = conn.execute(select(table_of(Budget)).where(b.tenant == tenant, b.principal_id.in_(wanted))).all()
    rows: dict[str, Row[Any]] = {r.principal_id: r for r in found}
    own = rows.get(principal_id) if principal_id else None

    def scope_limit(
        scope: Scope, chain: list[Row[Any] | None], tokens_default: int | None, cost_default: float | None
    ) -> Limit:
        # A row's NULL falls through to the next row, then to the settings: raising one limit for a person
        # must not silently lift the other.
        tokens, t_at = _first(*(None if r is None else r.daily_tokens for r in chain), tokens_default)
        cost, c_at = _first(*(None if r is None else r.daily_cost_usd for r in chain), cost_default)
        bound_tokens = _bound(tokens)
        return Limit(
            scope=scope,
            tokens=None if bound_tokens is None else int(bound_tokens),
            cost_usd=_bound(None if cost is None else float(cost)),
            source="database" if min(t_at, c_at) < len(chain) else "settings",
        )

    principal = scope_limit(
        "principal",
        [own, rows.get(EVERY_PRINCIPAL)],
        settings.daily_tokens_per_principal,
        settings.daily_cost_usd_per_principal,
    )
    whole = scope_limit(
        "tenant", [rows.get(TENANT_ROW)], settings.daily_tokens_per_tenant, settings.daily_cost_usd_per_tenant
    )
    return principal, whole


def _used(conn: Connection, tenant: str, day: date, principal_id: str | None = None) -> Used:
    u = table_of(ModelUsage).c
    query = select(
        func.count(),
        func.coalesce(func.sum(u.prompt_tokens + u.completion_tokens), 0),
        func.coalesce(func.sum(u.cost_usd), 0),
    ).where(u.tenant == tenant, u.day == day)
    if principal_id is not None:
        query = query.where(u.principal_id == principal_id)
    calls, tokens, cost = conn.execute(query).one()
    # PostgreSQL sums bigints into numeric: normalise to int and float here, once.
    return Used(int(calls), int(tokens), float(cost))


@dataclass(frozen=True)
class RequestUsage:
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def request_usage(engine: Engine, workflow_id: str, run_id: str) -> RequestUsage:
    """What one request run has spent so far, over every attempt and call (what its result reports)."""
    u = table_of(ModelUsage).c
    with engine.connect() as conn:
        prompt, completion, cost = conn.execute(
            select(
                func.coalesce(func.sum(u.prompt_tokens), 0),
                func.coalesce(func.sum(u.completion_tokens), 0),
                func.coalesce(func.sum(u.cost_usd), 0),
            ).where(u.workflow_id == workflow_id, u.run_id == run_id)
        ).one()
    return RequestUsage(int(prompt), int(completion), float(cost))


def next_reset(now: datetime | None = None) -> datetime:
    """The next UTC midnight, when a day's budgets start again from zero."""
    now = _utc(now)
    return datetime.combine(now.date() + timedelta(days=1), time(0), tzinfo=UTC)


def seconds_until_reset(now: datetime | None = None) -> int:
    now = _utc(now)
    return max(1, math.ceil((next_reset(now) - now).total_seconds()))


@dataclass(frozen=True)
class BudgetCheck:
    """Whether one more model call fits today's budgets; when not, which limit is reached and when it resets."""

    allowed: bool
    reason: str
    scope: str
    retry_after_seconds: int
    used_tokens: int
    used_cost_usd: float
    limit_tokens: int | None
    limit_cost_usd: float | None


def _reached(limit: Limit, used: Used, who: str) -> str:
    if limit.tokens is not None and used.tokens >= limit.tokens:
        return f"{who} has used {used.tokens:,} of the {limit.tokens:,} model tokens allowed per day"
    if limit.cost_usd is not None and used.cost_usd >= limit.cost_usd:
        return f"{who} has used {used.cost_usd:.4f} of the {limit.cost_usd:.2f} USD of model calls allowed per day"
    return ""


def check_budget(
    engine: Engine, settings: Settings, tenant: str, principal_id: str, *, now: datetime | None = None
) -> BudgetCheck:
    """Refuse (allowed=False) when today's recorded usage already reached a limit of the principal or tenant.

    An empty principal_id (a request recorded before budgets existed) is held by the tenant's limits only.
    """
    now = _utc(now)
    day = now.date()
    person = principal_id if principal_id not in (TENANT_ROW, EVERY_PRINCIPAL) else None
    with engine.connect() as conn:
        mine, whole = _limits(conn, settings, tenant, person)
        # The principal first: when both are spent, the person's own limit is the one they can act on.
        scopes: list[tuple[Limit, Used, str]] = []
        if person is not None:
            scopes.append((mine, _used(conn, tenant, day, person), f"principal {person}"))
        # The whole tenant's sum is skipped when nothing bounds it: it is the one query that grows with the tenant.
        scopes.append((whole, _used(conn, tenant, day) if whole.bounded else Used(0, 0, 0.0), f"tenant {tenant}"))
    for limit, used, who in scopes:
        reason = _reached(limit, used, who)
        if reason:
            return BudgetCheck(
                allowed=False,
                reason=reason,
                scope=limit.scope,
                retry_after_seconds=seconds_until_reset(now),
                used_tokens=used.tokens,
                used_cost_usd=used.cost_usd,
                limit_tokens=limit.tokens,
                limit_cost_usd=limit.cost_usd,
            )
    limit, used, _ = scopes[0]
    return BudgetCheck(
        allowed=True,
        reason="",
        scope=limit.scope,
        retry_after_seconds=0,
        used_tokens=used.tokens,
        used_cost_usd=used.cost_usd,
        limit_tokens=limit.tokens,
        limit_cost_usd=limit.cost_usd,
    )


# ---------------------------------------------------------------- summaries


class ModelLine(BaseModel):
    provider: str
    model: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    # False when some of these calls had no price: their cost is counted as 0.
    priced: bool


class PrincipalLine(BaseModel):
    principal_id: str
    calls: int
    total_tokens: int
    cost_usd: float


class LimitView(BaseModel):
    scope: Scope
    daily_tokens: int | None
    daily_cost_usd: float | None
    source: Literal["database", "settings"]
    remaining_tokens: int | None
    remaining_cost_usd: float | None
    exhausted: bool


class UsageSummary(BaseModel):
    """A principal's (or a whole tenant's) model usage on one UTC day, with the limits in force now."""

    tenant: str
    principal_id: str | None
    scope: Scope
    day: date
    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    priced: bool
    by_model: list[ModelLine]
    by_principal: list[PrincipalLine]
    limit: LimitView
    # For a principal: the whole tenant's limit too, which also stops their requests; None for the tenant view.
    tenant_limit: LimitView | None = None
    # Whether a new request of this scope would be refused now (either limit reached): what POST enforces.
    exhausted: bool = False
    resets_at: datetime


def _round(cost: float) -> float:
    return float(Decimal(str(cost)).quantize(COST_QUANTUM))


def _limit_view(limit: Limit, used: Used) -> LimitView:
    return LimitView(
        scope=limit.scope,
        daily_tokens=limit.tokens,
        daily_cost_usd=limit.cost_usd,
        source=limit.source,
        remaining_tokens=None if limit.tokens is None else max(0, limit.tokens - used.tokens),
        remaining_cost_usd=None if limit.cost_usd is None else _round(max(0.0, limit.cost_usd - used.cost_usd)),
        exhausted=bool(_reached(limit, used, "")),
    )


def usage_summary(engine: Engine, settings: Settings, tenant: str, principal_id: str | None, day: date) -> UsageSummary:
    """Totals per model (and per principal for a tenant) on `day`; principal_id None means the whole tenant."""
    u = table_of(ModelUsage).c
    where = [u.tenant == tenant, u.day == day]
    if principal_id is not None:
        where.append(u.principal_id == principal_id)
    # Portable "every call priced": PostgreSQL has no min() over booleans.
    unpriced = func.sum(case((u.priced, 0), else_=1))
    with engine.connect() as conn:
        per_model = conn.execute(
            select(
                u.provider,
                u.model,
                func.count(),
                func.sum(u.prompt_tokens),
                func.sum(u.completion_tokens),
                func.sum(u.cost_usd),
                unpriced,
            )
            .where(*where)
            .group_by(u.provider, u.model)
            .order_by(u.provider, u.model)
        ).all()
        per_principal = (
            conn.execute(
                select(
                    u.principal_id, func.count(), func.sum(u.prompt_tokens + u.completion_tokens), func.sum(u.cost_usd)
                )
                .where(*where)
                .group_by(u.principal_id)
                .order_by(u.principal_id)
            ).all()
            if principal_id is None
            else []
        )
        mine, whole = _limits(conn, settings, tenant, principal_id)
        tenant_used = _used(conn, tenant, day) if principal_id is not None and whole.bounded else None
    lines = [
        ModelLine(
            provider=provider,
            model=model,
            calls=int(calls),
            prompt_tokens=int(prompt),
            completion_tokens=int(completion),
            total_tokens=int(prompt) + int(completion),
            cost_usd=_round(float(cost)),
            priced=int(missing) == 0,
        )
        for provider, model, calls, prompt, completion, cost, missing in per_model
    ]
    used = Used(
        calls=sum(x.calls for x in lines),
        tokens=sum(x.total_tokens for x in lines),
        cost_usd=_round(sum(x.cost_usd for x in lines)),
    )
    limit = _limit_view(whole if principal_id is None else mine, used)
    tenant_limit = (
        _limit_view(whole, tenant_used or Used(0, 0, 0.0)) if principal_id is not None and whole.bounded else None
    )
    return UsageSummary(
        tenant=tenant,
        principal_id=principal_id,
        scope="tenant" if principal_id is None else "principal",
        day=day,
        calls=used.calls,
        prompt_tokens=sum(x.prompt_tokens for x in lines),
        completion_tokens=sum(x.completion_tokens for x in lines),
        total_tokens=used.tokens,
        cost_usd=used.cost_usd,
        priced=all(x.priced for x in lines),
        by_model=lines,
        by_principal=[
            PrincipalLine(principal_id=p, calls=int(c), total_tokens=int(t), cost_usd=_round(float(x)))
            for p, c, t, x in per_principal
        ],
        limit=limit,
        tenant_limit=tenant_limit,
        exhausted=limit.exhausted or (tenant_limit is not None and tenant_limit.exhausted),
        resets_at=datetime.combine(day + timedelta(days=1), time(0), tzinfo=UTC),
    )


# ---------------------------------------------------------------- budgets rows


@dataclass(frozen=True)
class BudgetRow:
    tenant: str
    principal_id: str
    daily_tokens: int | None
    daily_cost_usd: float | None
    updated_by: str
    updated_at: datetime

    @property
    def scope_label(self) -> str:
        if self.principal_id == TENANT_ROW:
            return "the whole tenant"
        if self.principal_id == EVERY_PRINCIPAL:
            return "each principal"
        return self.principal_id


def list_budgets(engine: Engine, tenant: str) -> list[BudgetRow]:
    b = table_of(Budget)
    with engine.connect() as conn:
        rows = conn.execute(select(b).where(b.c.tenant == tenant).order_by(b.c.principal_id)).all()
    return [
        BudgetRow(r.tenant, r.principal_id, r.daily_tokens, r.daily_cost_usd, r.updated_by, r.updated_at) for r in rows
    ]


def set_budget(
    engine: Engine,
    tenant: str,
    principal_id: str = TENANT_ROW,
    *,
    daily_tokens: int | None = None,
    daily_cost_usd: float | None = None,
    actor: str = "",
    now: datetime | None = None,
) -> BudgetRow:
    """Set a scope's limits (0 = no limit); a limit left out keeps its value, or falls back for a new row."""
    if daily_tokens is None and daily_cost_usd is None:
        raise BudgetError("no limit given", hint="pass --daily-tokens N and/or --daily-cost-usd X (0 = no limit)")
    if (daily_tokens is not None and daily_tokens < 0) or (
        daily_cost_usd is not None and not (math.isfinite(daily_cost_usd) and daily_cost_usd >= 0)
    ):
        raise BudgetError("limits cannot be negative", hint="use 0 for no limit")
    now = _utc(now)
    table = table_of(Budget)
    with engine.begin() as conn:
        if conn.execute(select(table_of(Tenant).c.id).where(table_of(Tenant).c.id == tenant)).first() is None:
            raise BudgetError(f"unknown tenant {tenant!r}", hint="tenants come with their data: `docket ingest ...`")
        if principal_id not in (TENANT_ROW, EVERY_PRINCIPAL):
            p = table_of(Principal).c
            found = conn.execute(select(p.tenant).where(p.id == principal_id)).first()
            if found is None or found.tenant != tenant:
                raise BudgetError(
                    f"principal {principal_id!r} is not loaded for tenant {tenant!r}",
                    hint="check the id, or load principals with `docket ingest principals PATH`",
                )
        changes: dict[str, object] = {"updated_by": actor, "updated_at": now}
        if daily_tokens is not None:
            changes["daily_tokens"] = daily_tokens
        if daily_cost_usd is not None:
            changes["daily_cost_usd"] = daily_cost_usd
        insert_fn = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert_fn(table).values(tenant=tenant, principal_id=principal_id, **changes)
        # Only the limits given change: two operators setting tokens and cost at once both win.
        conn.execute(stmt.on_conflict_do_update(index_elements=["tenant", "principal_id"], set_=changes))
        row = conn.execute(select(table).where(table.c.tenant == tenant, table.c.principal_id == principal_id)).one()
    return BudgetRow(row.tenant, row.principal_id, row.daily_tokens, row.daily_cost_usd, row.updated_by, row.updated_at)


def clear_budget(engine: Engine, tenant: str, principal_id: str = TENANT_ROW) -> bool:
    """Remove a scope's row, so the settings' defaults (or the tenant's '*' row) apply again."""
    b = table_of(Budget)
    with engine.begin() as conn:
        gone = conn.execute(
            delete(b).where(b.c.tenant == tenant, b.c.principal_id == principal_id).returning(b.c.tenant)
        ).all()
    return bool(gone)


def budget_ratios(engine: Engine, settings: Settings, now: datetime | None = None) -> list[tuple[str, str, str, float]]:
    """(tenant, scope, limit, used/limit) for every bounded daily limit with use today: the tenant's own, and
    each principal who spent anything today (their own limit). Scope is "tenant" or the principal id."""
    day = _utc(now).date()
    with engine.connect() as conn:
        tenants = [str(t) for t in conn.execute(select(table_of(Tenant).c.id)).scalars()]
    out: list[tuple[str, str, str, float]] = []
    for tenant in tenants:
        whole = usage_summary(engine, settings, tenant, None, day)
        views = [("tenant", whole)] + [
            (p.principal_id, usage_summary(engine, settings, tenant, p.principal_id, day)) for p in whole.by_principal
        ]
        for scope, view in views:
            if view.limit.daily_tokens:
                out.append((tenant, scope, "tokens", round(view.total_tokens / view.limit.daily_tokens, 6)))
            if view.limit.daily_cost_usd:
                out.append((tenant, scope, "cost", round(view.cost_usd / view.limit.daily_cost_usd, 6)))
    return out
