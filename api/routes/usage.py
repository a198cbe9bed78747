"""GET /v1/usage: model usage and budgets; and the budget check POST /v1/requests makes before starting a run."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.deps import AppState, CurrentPrincipal, State
from api.problems import Problem
from api.routes.admin import ADMIN_ROLES
from docket import usage
from docket.db import Principal

router = APIRouter(prefix="/v1/usage", tags=["usage"])
SCOPES = ("principal", "tenant")
# Under ALLOW_DUPLICATE_FAILED_ONLY a keyed request in one of these states is returned as it is, never re-run.
KEPT_STATUSES = {
    WorkflowExecutionStatus.RUNNING,
    WorkflowExecutionStatus.COMPLETED,
    WorkflowExecutionStatus.CONTINUED_AS_NEW,
}


def _parse_day(value: str | None) -> date:
    if value is None:
        return datetime.now(UTC).date()
    try:
        # fromisoformat also takes 20261121 and week dates: accept only the form the hint names.
        if len(value) != 10:
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise Problem(
            422,
            "invalid-day",
            "The day is not a date",
            detail=f"day={value!r}",
            hint="use YYYY-MM-DD (a UTC day), e.g. ?day=2026-11-21; leave it out for today",
        ) from exc


@router.get(
    "",
    response_model=usage.UsageSummary,
    responses={
        401: {"description": "missing or invalid token"},
        403: {"description": "the tenant-wide view is for administrators"},
        422: {"description": "invalid day or scope"},
    },
)
async def get_usage(
    state: State,
    principal: CurrentPrincipal,
    day: Annotated[str | None, Query(description="UTC day, YYYY-MM-DD (default: today)")] = None,
    scope: Annotated[str, Query(description="`principal` (your own usage) or `tenant` (administrators)")] = (
        "principal"
    ),
) -> usage.UsageSummary:
    """Tokens, cost and calls per model on one UTC day, the daily limits in force, what remains and when it resets."""
    if scope not in SCOPES:
        raise Problem(
            422,
            "invalid-scope",
            "The scope is not valid",
            detail=f"scope={scope!r}",
            hint="use scope=principal (your own usage, the default) or scope=tenant (administrators)",
        )
    when = _parse_day(day)
    if scope == "tenant" and not ADMIN_ROLES & set(principal.roles):
        raise Problem(
            403,
            "admin-only",
            "Only administrators see the whole tenant's usage",
            detail=f"{principal.id} has roles {sorted(principal.roles)}",
            hint="leave scope out to see your own usage, or ask an administrator (role admin or policy_admin)",
        )
    who = None if scope == "tenant" else principal.id
    return await asyncio.to_thread(usage.usage_summary, state.engine, state.settings, principal.tenant, who, when)


def budget_problem(check: usage.BudgetCheck, principal: Principal, now: datetime) -> Problem:
    """429 with Retry-After: the day's budget is spent; the hint says when it resets and who can raise it."""
    resets_at = usage.next_reset(now)
    hours, rest = divmod(check.retry_after_seconds, 3600)
    raise_it = f"docket budget set --tenant {principal.tenant}" + (
        f" --principal {principal.id}" if check.scope == "principal" else ""
    )
    return Problem(
        429,
        "budget-exhausted",
        "Daily model budget exhausted",
        detail=check.reason,
        hint=f"the budget resets at {resets_at:%Y-%m-%d %H:%M} UTC (in {hours} h {rest // 60} min); "
        f"an administrator can raise it with `{raise_it} --daily-tokens N` (GET /v1/usage shows what is left)",
        headers={"Retry-After": str(check.retry_after_seconds)},
        scope=check.scope,
        used_tokens=check.used_tokens,
        limit_tokens=check.limit_tokens,
        used_cost_usd=check.used_cost_usd,
        limit_cost_usd=check.limit_cost_usd,
        resets_at=resets_at.isoformat(),
    )


async def _kept_run_exists(client: Client, wid: str) -> bool:
    try:
        desc = await client.get_workflow_handle(wid).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise Problem(
            503, "temporal-unavailable", "Temporal did not answer", detail=str(exc), hint="check `docket doctor`"
        ) from exc
    return desc.status in KEPT_STATUSES


async def enforce_budget(state: AppState, client: Client, principal: Principal, wid: str, *, keyed: bool) -> None:
    """Refuse a new request whose principal or tenant spent today's model budget (429, nothing started).

    Template answers cost nothing, so without a model nothing is refused. A keyed request sent again while its run
    exists is let through: the caller gets that run back, which spends nothing new.
    """
    if not state.settings.model_configured:
        return
    now = datetime.now(UTC)
    check = await asyncio.to_thread(
        usage.check_budget, state.engine, state.settings, principal.tenant, principal.id, now=now
    )
    if check.allowed:
        return
    # Only asked once refused: the common case costs no extra round trip to Temporal.
    if keyed and await _kept_run_exists(client, wid):
        return
    raise budget_problem(check, principal, now)
