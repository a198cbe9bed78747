"""`docket audit verify` and `docket audit anchor`: check the audit hash chain, and copy its anchors off-box.

cli/main.py mounts this with `app.add_typer(audit_app, name="audit")`. Exit codes of verify: 0 the chain is
intact, 1 tampering found (the findings say where and what), 2 the check could not run.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from docket import audit, db
from docket.settings import load_settings

audit_app = typer.Typer(
    help="Verify the tamper-evident audit log and print its anchors.", no_args_is_help=True, add_completion=False
)
TenantOpt = Annotated[str | None, typer.Option(help="only this tenant (default: every tenant)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@audit_app.callback()
def _audit() -> None:
    """Verify the tamper-evident audit log and print its anchors."""


def _fail(msg: str, hint: str = "", code: int = 2) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    if hint:
        typer.echo(f"  fix: {hint}", err=True)
    return typer.Exit(code)


def _engine() -> Engine:
    # No migration here: verifying must not change the database it is judging.
    url = load_settings().db_url
    engine = db.make_engine(url)
    try:
        tables = set(inspect(engine).get_table_names())
    except SQLAlchemyError as exc:
        engine.dispose()
        raise _fail(f"cannot open the database at {url}: {exc}", "check DATABASE_URL (or DOCKET_DATA_DIR)") from exc
    if not {"audit_events", "audit_heads", "audit_anchors"} <= tables:
        engine.dispose()
        raise _fail(
            f"the database at {url} has no audit chain yet (not migrated to revision 0003)",
            "start `docket up` or `docket worker` once: they migrate the database",
        )
    return engine


@audit_app.command("verify")
def verify_cmd(
    tenant: TenantOpt = None,
    checkpoint: Annotated[
        list[str] | None,
        typer.Option(
            help="TENANT:SEQ:HASH copied off-box earlier by `docket audit anchor`; the chain must still contain it "
            "(repeatable)"
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute every hash in order; exit 0 if the chain is intact, 1 with the first bad event if not."""
    try:
        checkpoints = [audit.Checkpoint.parse(c) for c in checkpoint or []]
    except ValueError as exc:
        raise _fail(str(exc), "copy the line `docket audit anchor` printed, e.g. meridian:300:3f2a…") from exc
    others = sorted({c.tenant for c in checkpoints} - {tenant}) if tenant is not None else []
    if others:
        raise _fail(
            f"checkpoints for {', '.join(others)} with --tenant {tenant}", "drop --tenant, or those checkpoints"
        )
    engine = _engine()
    try:
        report = audit.verify(engine, tenant=tenant, checkpoints=checkpoints)
    finally:
        engine.dispose()

    if as_json:
        out = report.model_dump(mode="json")
        first = report.first
        out["first"] = first.model_dump(mode="json") if first else None
        typer.echo(json.dumps(out, indent=2))
        raise typer.Exit(0 if report.ok else 1)

    if not report.tenants:
        typer.echo("no audit events yet: nothing to verify")
    for t in report.tenants:
        checked = f"{t.events} events, {t.anchors_checked} anchors"
        if t.checkpoints_checked:
            checked += f", {t.checkpoints_checked} off-box checkpoints"
        if t.ok:
            typer.echo(f"{t.tenant}: intact ({checked}, head seq {t.head_seq})")
            continue
        first = t.findings[0]
        typer.echo(f"{t.tenant}: TAMPERED — first bad seq {first.seq} ({first.kind.value}); checked {checked}")
        for f in t.findings:
            typer.echo(f"  seq {f.seq:>6}  {f.kind.value:<15} [{f.witness}] {f.message}")
    if not report.ok:
        typer.echo(
            "Events from the first bad seq on cannot be trusted. Compare audit_events with a backup and with the "
            "anchors copied off-box, and review who had write access to the database (docs/audit.md).",
            err=True,
        )
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("anchor")
def anchor_cmd(
    tenant: TenantOpt = None,
    head: Annotated[
        bool, typer.Option("--head", help="print the current head instead: covers every event so far")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print each tenant's latest anchor as TENANT:SEQ:HASH, to copy off-box and pass to `verify --checkpoint`."""
    engine = _engine()
    try:
        found = audit.heads(engine, tenant) if head else audit.latest_anchors(engine, tenant)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps([c.model_dump(mode="json") for c in found], indent=2))
        return
    if not found:
        what = "events" if head else f"anchors (one is written every {load_settings().audit_anchor_every} events)"
        typer.echo(f"no {what} yet" + ("" if head else "; `docket audit anchor --head` prints the current head"))
        return
    for c in found:
        when = f"  # {audit.iso_utc(c.created_at)}" if c.created_at else ""
        typer.echo(f"{c}{when}")
