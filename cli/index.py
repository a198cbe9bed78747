"""`docket index status | rebuild | switch | rollback`: index versions behind one alias (blue/green).

The worker owns the embedded index, so every action runs as an IndexWorkflow in the worker; the command waits
for it and prints what the index holds afterwards.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer

from docket.contracts import IndexAdminInput, IndexStatus
from docket.settings import load_settings

index_app = typer.Typer(
    help="Index versions: status, rebuild into a new version, switch, roll back.",
    no_args_is_help=True,
    add_completion=False,
)


def render_status(status: IndexStatus) -> str:
    lines = []
    if status.message:
        lines.append(status.message)
    lines.append(f"backend: {status.backend}   embedder: {status.embedder or 'none (lexical only)'}")
    lines.append(f"alias docket_chunks -> {status.active}   previous: {status.previous or '-'}")
    for v in status.versions:
        mark = "*" if v.active else " "
        built = v.embedder or "lexical only"
        lines.append(f" {mark} {v.name:<20} {v.points:>7} chunks  built with {built:<28} {v.created_at}")
    return "\n".join(lines)


async def _run(action: IndexAdminInput) -> IndexStatus:
    from activities import names
    from docket import temporal

    settings = load_settings()
    try:
        client = await asyncio.wait_for(temporal.connect(), timeout=5)
    except Exception as exc:
        typer.echo(f"error: Temporal is not reachable at {temporal.address()}: {exc}", err=True)
        typer.echo("  fix: start the stack with `docket up` (the worker owns the index)", err=True)
        raise typer.Exit(1) from exc
    result: IndexStatus = await client.execute_workflow(
        names.INDEX_WORKFLOW,
        action,
        id=f"index-{action.action}-{int(time.time() * 1000)}",
        task_queue=settings.task_queue,
        result_type=IndexStatus,
    )
    return result


def _do(action: IndexAdminInput) -> None:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ActivityError

    from cli.main import exit_skipping_finalization

    try:
        status = asyncio.run(_run(action))
    except WorkflowFailureError as exc:
        # The workflow failed because its activity did: the reason a person can act on is the activity's.
        cause = exc.cause.cause if isinstance(exc.cause, ActivityError) and exc.cause.cause else exc.cause
        message = getattr(cause, "message", "") or str(cause or exc)
        typer.echo(f"error: {message}", err=True)
        exit_skipping_finalization(1)
    typer.echo(render_status(status))
    exit_skipping_finalization(0)


@index_app.command()
def status() -> None:
    """Show the backend, the embedder, the alias target and every version."""
    _do(IndexAdminInput(action="status"))


@index_app.command()
def rebuild(
    activate: Annotated[bool, typer.Option(help="switch the alias to the new version when it is built")] = True,
) -> None:
    """Build a new version from every stored document (with the worker's embedder), then switch to it."""
    _do(IndexAdminInput(action="rebuild", activate=activate))


@index_app.command()
def switch(version: Annotated[str, typer.Argument(help="e.g. docket_chunks_v2")]) -> None:
    """Catch a version up with the stored documents and point the alias at it."""
    _do(IndexAdminInput(action="switch", version=version))


@index_app.command()
def rollback() -> None:
    """Point the alias back at the version that was active before the last switch."""
    _do(IndexAdminInput(action="rollback"))
