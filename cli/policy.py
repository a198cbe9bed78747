"""`docket policy validate | test | diff | list | activate`: the policy store from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from docket import db, policies
from docket.settings import load_settings

policy_app = typer.Typer(
    help="Validate, test, diff and activate Cedar policy sets.", no_args_is_help=True, add_completion=False
)
TenantOpt = Annotated[str, typer.Option(help="tenant whose policy store to use")]


def _engine() -> Any:
    settings = load_settings()
    db.migrate(settings.db_url)
    return db.make_engine(settings.db_url)


def _fail(msg: str, hint: str = "") -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    if hint:
        typer.echo(f"  fix: {hint}", err=True)
    return typer.Exit(1)


def _read(path: Path) -> str:
    if not path.is_file():
        raise _fail(f"{path} not found", "pass a .cedar file")
    return path.read_text(encoding="utf-8")


@policy_app.command()
def validate(path: Annotated[Path, typer.Argument(help="a .cedar policy set")]) -> None:
    """Parse a policy set and check every statement has an @id (and that something is permitted at all)."""
    from activities.authorize.engine import parse_policies, validate_source

    source = _read(path)
    problems = validate_source(source)
    if problems:
        for p in problems:
            typer.echo(f"invalid: {p}", err=True)
        raise typer.Exit(1)
    ids = sorted({s.policy_id for s in parse_policies(source).statements})
    typer.echo(f"valid: {len(parse_policies(source).statements)} statements ({', '.join(ids)})")


@policy_app.command(name="test")
def test_cmd(
    path: Annotated[Path, typer.Argument(help="a .cedar policy set")],
    cases: Annotated[Path, typer.Option(help="JSON lines of expected decisions")] = Path(
        "examples/meridian/policy_tests.jsonl"
    ),
    tenant: TenantOpt = "meridian",
) -> None:
    """Run expected-decision cases against a policy set before activating it; exit 1 on any mismatch."""
    from activities.authorize.policy_tests import run_cases

    engine = _engine()
    results = run_cases(engine, tenant, _read(path), _read(cases))
    failed = [r for r in results if not r.ok]
    for r in results:
        typer.echo(f"{'ok  ' if r.ok else 'FAIL'} {r.name}: {r.detail}")
    typer.echo(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    raise typer.Exit(1 if failed else 0)


@policy_app.command(name="list")
def list_cmd(tenant: TenantOpt = "meridian", as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Stored versions, the active one marked."""
    engine = _engine()
    current = policies.active(engine, tenant)
    rows = policies.versions(engine, tenant)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "version": p.version,
                        "label": p.label,
                        "active": current is not None and p.version == current.version,
                        "note": p.note,
                        "created_by": p.created_by,
                        "created_at": p.created_at.isoformat(),
                    }
                    for p in rows
                ],
                indent=2,
            )
        )
        return
    if not rows:
        typer.echo(f"no stored policy versions for {tenant} (the built-in set applies until `docket up` seeds it)")
    for p in rows:
        mark = "*" if current is not None and p.version == current.version else " "
        typer.echo(f"{mark} v{p.version}  {p.label}  {p.created_at:%Y-%m-%d %H:%M}  {p.created_by or '-'}  {p.note}")


@policy_app.command()
def diff(
    old: Annotated[str, typer.Argument(help="a version number, or a .cedar file")],
    new: Annotated[str, typer.Argument(help="a version number, or a .cedar file")],
    tenant: TenantOpt = "meridian",
) -> None:
    """Unified diff of two versions (or a version and a file)."""
    engine = _engine()

    def load(ref: str) -> policies.StoredPolicy:
        if ref.isdigit():
            return policies.get(engine, tenant, int(ref))
        text = _read(Path(ref))
        return policies.StoredPolicy(tenant, 0, policies.sha(text), text, "", "", db.utcnow())

    try:
        a, b = load(old), load(new)
    except policies.PolicyError as exc:
        raise _fail(exc.message, exc.hint) from exc
    typer.echo(policies.diff(a, b) or "no differences")


@policy_app.command()
def activate(
    ref: Annotated[str, typer.Argument(help="a stored version number, or a .cedar file to store and activate")],
    tenant: TenantOpt = "meridian",
    note: Annotated[str, typer.Option(help="why (stored with a new version)")] = "",
    actor: Annotated[str, typer.Option("--as", help="who activates it (recorded)")] = "cli",
) -> None:
    """Make a version the one in force (a file is validated and stored as a new version first)."""
    from activities.authorize.engine import validate_source

    engine = _engine()
    try:
        if ref.isdigit():
            stored = policies.get(engine, tenant, int(ref))
        else:
            source = _read(Path(ref))
            problems = validate_source(source)
            if problems:
                raise _fail("the policy set is not valid: " + "; ".join(problems), "run `docket policy validate`")
            stored = policies.create_version(engine, tenant, source, note=note, actor=actor)
        policies.activate(engine, tenant, stored.version, actor=actor)
    except policies.PolicyError as exc:
        raise _fail(exc.message, exc.hint) from exc
    typer.echo(f"active for {tenant}: {stored.label}")
