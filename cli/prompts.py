"""`docket prompts list | show | diff`: the versioned prompt templates and which version is in use."""

from __future__ import annotations

import difflib
from typing import Annotated

import typer

from docket.settings import load_settings
from prompts import registry

prompts_app = typer.Typer(help="List, show and diff the versioned prompt templates.", no_args_is_help=True)
# What each prompt defaults to when nothing is pinned: the engines' defaults, from the registry.
DEFAULT_PINS = registry.DEFAULT_VERSIONS


def _get(name: str, version: int | None) -> registry.Prompt:
    try:
        return registry.get(name, version)
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        typer.echo("  fix: `docket prompts list` shows the names and versions", err=True)
        raise typer.Exit(1) from exc


@prompts_app.command(name="list")
def list_cmd() -> None:
    """Every prompt, its versions with their sha256, the version in use and the pins that override it."""
    pins = load_settings().prompt_pins
    for name, versions in sorted(registry.available().items()):
        in_use = pins.get(name, DEFAULT_PINS.get(name, versions[-1]))
        for v in versions:
            p = registry.get(name, v)
            mark = "*" if v == in_use else " "
            variables = ", ".join(sorted(p.variables))
            typer.echo(f" {mark} {name}.v{v}  sha256 {p.sha256[:12]}  variables: {variables}")
        for key, version in sorted(pins.items()):
            if key.endswith(f"/{name}"):
                typer.echo(f"     pinned: {key} -> v{version}")


@prompts_app.command()
def show(
    name: Annotated[str, typer.Argument(help="e.g. answer")],
    version: Annotated[int | None, typer.Option(help="default: the newest")] = None,
) -> None:
    """Print a template with its id, version and sha256."""
    p = _get(name, version)
    typer.echo(f"# {p.id} v{p.version} sha256 {p.sha256}")
    typer.echo(p.source.rstrip("\n"))


@prompts_app.command()
def diff(
    name: Annotated[str, typer.Argument(help="e.g. answer")],
    old: Annotated[int, typer.Argument(help="older version")],
    new: Annotated[int, typer.Argument(help="newer version")],
) -> None:
    """Unified diff between two versions of a prompt."""
    a, b = _get(name, old), _get(name, new)
    lines = difflib.unified_diff(
        a.source.splitlines(keepends=True),
        b.source.splitlines(keepends=True),
        fromfile=f"{name}.v{old}",
        tofile=f"{name}.v{new}",
    )
    typer.echo("".join(lines).rstrip("\n") or f"{name} v{old} and v{new} are identical")
