"""`docket train classifier` and `docket eval classifier`: layer 2 of the request classifier; `docket eval confidence`:
the reliability of the confidence score on the same labelled set.

Two Typer apps because the verbs come first (`docket train …`, `docket eval …`) with `classifier` as their
object; cli/main.py mounts them with `app.add_typer(train_app, name="train")` and
`app.add_typer(eval_app, name="eval")`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated

import typer

from activities.classify.dataset import DATASET
from activities.classify.model import DEFAULT_MODEL

train_app = typer.Typer(help="Train Docket's models.", no_args_is_help=True, add_completion=False)
eval_app = typer.Typer(help="Evaluate Docket's models.", no_args_is_help=True, add_completion=False)


@train_app.callback()
def _train() -> None:
    """Train Docket's models."""


@eval_app.callback()
def _eval() -> None:
    """Evaluate Docket's models."""


@train_app.command("classifier")
def train_classifier(
    seed: Annotated[int, typer.Option(help="random seed recorded in the artifact")] = 7,
    dataset: Annotated[Path, typer.Option(help="labelled requests (JSON lines)")] = DATASET,
    out: Annotated[Path, typer.Option(help="where the model artifact is written")] = DEFAULT_MODEL,
) -> None:
    """Train the intent/complexity model on the train split; rewrites the artifact byte for byte."""
    try:
        from activities.classify.train import train, write
    except ImportError as exc:
        typer.echo(f"error: training needs scikit-learn ({exc.name} is missing)", err=True)
        typer.echo("  fix: pip install -e '.[train]'", err=True)
        raise typer.Exit(1) from exc
    if not dataset.is_file():
        typer.echo(f"error: no dataset at {dataset}", err=True)
        typer.echo("  fix: python -m activities.classify.dataset  (writes the default dataset)", err=True)
        raise typer.Exit(1)
    before = hashlib.sha256(out.read_bytes()).hexdigest() if out.is_file() else ""
    artifact = train(dataset, seed=seed)
    digest = write(artifact, out)
    info = artifact["training"]
    typer.echo(
        f"trained on {info['train_rows']} requests (seed {seed}, scikit-learn {info['sklearn']}): "
        f"{len(artifact['features'])} features, {len(artifact['intent']['classes'])} intents"
    )
    typer.echo(f"wrote {out} (sha256 {digest[:12]}, model version {artifact['kind']}-{digest[:12]})")
    typer.echo("unchanged: identical bytes to the previous artifact" if digest == before else "changed")


def _check_split_and_model(split: str, model: Path) -> None:
    """The arguments both evaluations take: a known split and a trained model artifact (exit 2 / 1 otherwise)."""
    if split not in ("test", "train", "all"):
        typer.echo(f"error: unknown split {split!r}", err=True)
        typer.echo("  fix: --split test, --split train or --split all", err=True)
        raise typer.Exit(2)
    if not model.is_file():
        typer.echo(f"error: no model artifact at {model}", err=True)
        typer.echo("  fix: docket train classifier", err=True)
        raise typer.Exit(1)


@eval_app.command("classifier")
def eval_classifier(
    split: Annotated[str, typer.Option(help="test, train or all")] = "test",
    dataset: Annotated[Path, typer.Option(help="labelled requests (JSON lines)")] = DATASET,
    model: Annotated[Path, typer.Option(help="model artifact")] = DEFAULT_MODEL,
    as_json: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
    errors: Annotated[bool, typer.Option(help="also list every request the layered classifier got wrong")] = False,
    docs: Annotated[
        Path | None, typer.Option(help="rewrite the results section of this file (docs/classifier.md)")
    ] = None,
) -> None:
    """Accuracy and macro-F1 (intent, complexity), slot exact match and each layer's share on a split."""
    from activities.classify.evaluate import evaluate, render_markdown, write_docs_section

    _check_split_and_model(split, model)
    report = evaluate(dataset, split=split, model_path=model)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
        return
    typer.echo(render_markdown(report))
    if docs is not None:
        write_docs_section(docs, report)
        typer.echo(f"\nwrote the results section of {docs}")
    if errors:
        typer.echo("")
        for e in report.errors:
            typer.echo(json.dumps(e, ensure_ascii=False))


@eval_app.command("confidence")
def eval_confidence(
    split: Annotated[str, typer.Option(help="test, train or all")] = "test",
    dataset: Annotated[Path, typer.Option(help="labelled requests (JSON lines)")] = DATASET,
    model: Annotated[Path, typer.Option(help="model artifact")] = DEFAULT_MODEL,
    as_json: Annotated[bool, typer.Option("--json", help="print the full report as JSON")] = False,
    write_docs: Annotated[
        bool, typer.Option("--write-docs", help="rewrite the reliability section of --docs with this run's table")
    ] = False,
    docs: Annotated[Path | None, typer.Option(help="the file --write-docs rewrites (docs/confidence.md)")] = None,
) -> None:
    """Reliability table of the confidence score (before any data is read): per bin, per band and per method."""
    from activities.confidence.calibrate import DOCS, calibrate, write_docs_section

    _check_split_and_model(split, model)
    report = calibrate(dataset, split=split, model_path=model)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, sort_keys=True))
    else:
        typer.echo(report.render_markdown())
    if write_docs:
        target = docs or DOCS
        write_docs_section(target, report)
        # On stderr so that --json --write-docs still prints nothing but JSON on stdout.
        typer.echo(f"wrote the reliability section of {target}", err=True)
