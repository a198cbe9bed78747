"""`docket eval retrieval`: recall@5 and MRR@10 of lexical, dense and hybrid search on the labelled query set.

Registered on `eval_app` of cli/classifier.py; importing this module (cli/main.py does) adds the command.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from cli.classifier import eval_app


class EmbedderChoice(StrEnum):
    auto = "auto"
    local = "local"
    none = "none"


@eval_app.command(name="retrieval")
def retrieval(
    embedder: Annotated[
        EmbedderChoice, typer.Option(help="auto: the local model when installed; local: require it; none: lexical")
    ] = EmbedderChoice.auto,
    min_recall: Annotated[
        float, typer.Option(help="exit 1 when recall@5 of hybrid (lexical without an embedder) is below this")
    ] = 0.90,
    misses: Annotated[bool, typer.Option(help="list the queries each mode missed")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
) -> None:
    """Index the demo and retrieval corpora into a throwaway index and score every labelled query."""
    # Imported here so `docket --help` does not load the retrieval engine.
    from activities.retrieve.embed import build_embedder
    from activities.retrieve.evaluate import evaluate, format_report
    from docket.errors import DocketError

    try:
        chosen = build_embedder(embedder.value)
    except DocketError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"  fix: {exc.hint}", err=True)
        raise typer.Exit(1) from exc
    report = evaluate(chosen)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        typer.echo(format_report(report, misses=misses))
    mode = report.headline_mode
    recall = report.recall(mode) or 0.0
    if recall < min_recall:
        typer.echo(f"\nFAIL: {mode} recall@5 {recall:.3f} is below --min-recall {min_recall:.2f}", err=True)
        raise typer.Exit(1)
    if not as_json:
        typer.echo(f"\nOK: {mode} recall@5 {recall:.3f} ≥ {min_recall:.2f}")
