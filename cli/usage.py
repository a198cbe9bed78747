"""`docket usage` and `docket budget set | list | clear`: model usage and daily budgets from the command line.

cli/main.py mounts `usage_command` as `docket usage` and `budget_app` as `docket budget`. Both read the database
directly, like `docket policy`: whoever runs them on the machine is the operator.
"""

from __future__ import annotations

import getpass
import json
from datetime import UTC, date, datetime
from typing import Annotated

import typer
from sqlalchemy import Engine

from docket import db, usage
from docket.catalog import load_principal
from docket.settings import Settings, load_settings

budget_app = typer.Typer(
    help="Daily model budgets per tenant and principal (they override the DOCKET_DAILY_* defaults).",
    no_args_is_help=True,
    add_completion=False,
)
TenantOpt = Annotated[str, typer.Option("--tenant", help="tenant, e.g. meridian")]
PrincipalOpt = Annotated[
    str,
    typer.Option("--principal", help="a principal id, or '*' for each principal without a row of their own"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _fail(msg: str, hint: str = "", code: int = 2) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    if hint:
        typer.echo(f"  fix: {hint}", err=True)
    return typer.Exit(code)


def _open() -> tuple[Settings, Engine]:
    settings = load_settings()
    db.migrate(settings.db_url)
    return settings, db.make_engine(settings.db_url)


def _tokens(n: int | None) -> str:
    return "no limit" if n is None else f"{n:,}"


def _usd(x: float | None, places: int = 2) -> str:
    return "no limit" if x is None else f"{x:,.{places}f} USD"


def render_summary(s: usage.UsageSummary) -> str:
    who = f"{s.principal_id} ({s.tenant})" if s.principal_id is not None else f"tenant {s.tenant}"
    limit = s.limit
    lines = [
        f"usage of {who} on {s.day.isoformat()} (UTC)",
        f"calls:      {s.calls:,}",
        f"tokens:     {s.total_tokens:,} (prompt {s.prompt_tokens:,}, completion {s.completion_tokens:,})",
        f"cost:       {_usd(s.cost_usd, 6)}" + ("" if s.priced else "  (some calls had no price: counted as 0)"),
        f"limit:      {_tokens(limit.daily_tokens)} tokens, {_usd(limit.daily_cost_usd)} per day "
        f"({limit.scope}, from {limit.source})",
        f"remaining:  {_tokens(limit.remaining_tokens)} tokens, {_usd(limit.remaining_cost_usd, 4)}"
        + ("  EXHAUSTED" if limit.exhausted else ""),
        f"resets:     {s.resets_at:%Y-%m-%d %H:%M} UTC",
    ]
    if s.tenant_limit is not None:
        t = s.tenant_limit
        lines.insert(
            -1,
            f"tenant:     {_tokens(t.remaining_tokens)} of {_tokens(t.daily_tokens)} tokens left, "
            f"{_usd(t.remaining_cost_usd, 4)} of {_usd(t.daily_cost_usd)} ({t.source})"
            + ("  EXHAUSTED: new requests are refused" if t.exhausted else ""),
        )
    if s.by_model:
        lines.append("by model:")
        for m in s.by_model:
            lines.append(
                f"  {m.provider or '-':<10} {m.model:<28} {m.calls:>5} calls {m.total_tokens:>12,} tokens "
                f"{m.cost_usd:>14,.6f} USD" + ("" if m.priced else "  (not priced)")
            )
    if s.by_principal:
        lines.append("by principal:")
        for p in s.by_principal:
            lines.append(
                f"  {p.principal_id:<20} {p.calls:>5} calls {p.total_tokens:>12,} tokens {p.cost_usd:>14,.6f} USD"
            )
    return "\n".join(lines)


def usage_command(
    as_: Annotated[str | None, typer.Option("--as", help="the principal whose usage to show, e.g. alice")] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", help="the whole tenant's usage instead")] = None,
    day: Annotated[str | None, typer.Option(help="UTC day, YYYY-MM-DD (default: today)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Model usage on one UTC day (tokens, cost, calls per model), the daily limit, what remains and the reset."""
    if (as_ is None) == (tenant is None):
        raise _fail("give --as PRINCIPAL or --tenant TENANT", "e.g. `docket usage --as alice`")
    try:
        when = date.fromisoformat(day) if day else datetime.now(UTC).date()
    except ValueError as exc:
        raise _fail(f"--day {day!r} is not a date", "use YYYY-MM-DD, e.g. --day 2026-11-21") from exc
    settings, engine = _open()
    try:
        if as_ is not None:
            principal = load_principal(engine, as_)
            if principal is None:
                raise _fail(f"principal {as_!r} is not loaded", "load principals with `docket ingest principals PATH`")
            summary = usage.usage_summary(engine, settings, principal.tenant, principal.id, when)
        else:
            summary = usage.usage_summary(engine, settings, str(tenant), None, when)
    finally:
        engine.dispose()
    typer.echo(summary.model_dump_json(indent=2) if as_json else render_summary(summary))


def _actor() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        # No login name (e.g. a container running as an unnamed uid): still say where the change came from.
        return "cli"


@budget_app.command(name="set")
def set_cmd(
    tenant: TenantOpt,
    principal: PrincipalOpt = "",
    daily_tokens: Annotated[int | None, typer.Option("--daily-tokens", help="tokens per UTC day; 0 = no limit")] = None,
    daily_cost_usd: Annotated[
        float | None, typer.Option("--daily-cost-usd", help="USD per UTC day; 0 = no limit")
    ] = None,
) -> None:
    """Set the daily limits of a tenant (no --principal), of one principal, or of each principal ('*')."""
    _, engine = _open()
    try:
        row = usage.set_budget(
            engine, tenant, principal, daily_tokens=daily_tokens, daily_cost_usd=daily_cost_usd, actor=_actor()
        )
    except usage.BudgetError as exc:
        raise _fail(exc.message, exc.hint) from exc
    finally:
        engine.dispose()
    typer.echo(_render_row(row))


def _render_row(row: usage.BudgetRow) -> str:
    def show(value: float | None, fmt: str) -> str:
        if value is None:
            return "default"
        return "no limit" if value == 0 else format(value, fmt)

    return (
        f"{row.tenant} / {row.scope_label}: {show(row.daily_tokens, ',')} tokens, "
        f"{show(row.daily_cost_usd, ',.2f')} USD per day (set by {row.updated_by or '?'} "
        f"at {row.updated_at:%Y-%m-%d %H:%M} UTC)"
    )


@budget_app.command(name="list")
def list_cmd(tenant: TenantOpt, as_json: JsonOpt = False) -> None:
    """The tenant's budget rows; scopes without one use the DOCKET_DAILY_* settings."""
    settings, engine = _open()
    try:
        rows = usage.list_budgets(engine, tenant)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "tenant": r.tenant,
                        "principal_id": r.principal_id,
                        "daily_tokens": r.daily_tokens,
                        "daily_cost_usd": r.daily_cost_usd,
                        "updated_by": r.updated_by,
                        "updated_at": r.updated_at.isoformat(),
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    typer.echo(
        f"defaults: {_tokens(settings.daily_tokens_per_principal or None)} tokens, "
        f"{_usd(settings.daily_cost_usd_per_principal or None)} per principal; "
        f"{_tokens(settings.daily_tokens_per_tenant or None)} tokens, "
        f"{_usd(settings.daily_cost_usd_per_tenant or None)} per tenant"
    )
    for r in rows:
        typer.echo(_render_row(r))
    if not rows:
        typer.echo(f"no budget rows for {tenant}: the defaults apply")


@budget_app.command(name="clear")
def clear_cmd(tenant: TenantOpt, principal: PrincipalOpt = "") -> None:
    """Remove a scope's row: its limits fall back to the tenant's '*' row or the settings."""
    _, engine = _open()
    try:
        removed = usage.clear_budget(engine, tenant, principal)
    finally:
        engine.dispose()
    scope = principal or "the whole tenant"
    typer.echo(f"removed the budget of {tenant} / {scope}" if removed else f"{tenant} / {scope} had no budget row")
