"""`docket bench smoke|full` (W1) and `docket bench w2-smoke|w2` (W2): the benchmark suite of bench/suite.py (issue 9).

cli/main.py mounts `bench_app` as `docket bench`. The benchmarks live in bench/ of the source tree (they are not
part of the installed package), so the commands work from a checkout: the tree's root is put on sys.path first.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

ROOT = Path(__file__).resolve().parents[1]

bench_app = typer.Typer(
    help="Benchmarks: Docket next to an empty workflow and the LangGraph/DBOS baselines (bench/suite.py).",
    no_args_is_help=True,
    add_completion=False,
)

ConcurrencyOpt = Annotated[
    list[int] | None, typer.Option("--concurrency", "-c", help="closed-loop concurrency (repeat the option)")
]
ModesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mode",
        help="modes to run (repeat the option): empty, empty-rest, docket-rest, docket-client, docket-rest-regular, "
        "docket-rest-no-eager, docket-poll, b0, b1-sync, b1-default, b2; default the preset's (all for smoke and full)",
    ),
]
JsonlOpt = Annotated[Path | None, typer.Option(help="where the JSON lines go")]


def _suite_importable() -> None:
    if not (ROOT / "bench" / "suite.py").is_file():
        typer.echo("error: the benchmarks (bench/) are not next to this installation", err=True)
        typer.echo("  fix: run `docket bench` from a source checkout (pip install -e .)", err=True)
        raise typer.Exit(2)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _run(preset: str, **overrides: object) -> None:
    _suite_importable()
    from bench import suite

    suite.quiet_logs()
    cfg = suite.preset(preset, **overrides)
    if cfg.modes:
        unknown = [m for m in cfg.modes if m not in suite.ALL_MODES]
        if unknown:
            typer.echo(f"error: unknown modes {unknown}; choose from {list(suite.ALL_MODES)}", err=True)
            raise typer.Exit(2)
    report = asyncio.run(suite.run(cfg))
    suite.write_outputs(report, cfg.jsonl, cfg.out)
    typer.echo(suite.summary_table(report))
    typer.echo(f"\nJSON lines: {cfg.jsonl}" + (f"; report section rewritten in {cfg.out}" if cfg.out != "-" else ""))
    if report["meta"].get("skipped"):
        typer.echo(f"skipped by the time budget: {', '.join(report['meta']['skipped'])}", err=True)
    timeouts = sum(r["timeouts"] for r in report["summary"])
    if timeouts:
        typer.echo(f"note: {timeouts} request(s) got no answer within the per-request bound (see the report)", err=True)
    failed = sum(r["failures"] for r in report["summary"])
    if failed:
        typer.echo(f"FAIL: {failed} request(s) failed or answered wrongly (see the JSON lines)", err=True)
        raise typer.Exit(1)


@bench_app.command("smoke")
def smoke(
    n: Annotated[int, typer.Option(help="measured requests per mode and concurrency")] = 20,
    concurrency: ConcurrencyOpt = None,
    mode: ModesOpt = None,
    jsonl: JsonlOpt = None,
    out: Annotated[str, typer.Option(help="markdown report to rewrite the suite's section of ('-': none)")] = "-",
    budget_seconds: Annotated[float, typer.Option(help="wall-time bound of the run")] = 270.0,
) -> None:
    """Quick check for CI (under 5 minutes): W1 at c=1 and c=8, one repetition, every answer checked.

    JSON lines go to a temp file (or --jsonl); docs/benchmarks.md is left alone unless --out names it.
    """
    if jsonl is None:
        jsonl = Path(tempfile.mkstemp(prefix="docket-bench-smoke-", suffix=".jsonl")[1])
    _run(
        "smoke",
        n=n,
        concurrency=concurrency,
        modes=mode,
        jsonl=str(jsonl),
        out=out,
        budget_seconds=budget_seconds,
    )


@bench_app.command("full")
def full(
    n: Annotated[int, typer.Option(help="measured requests per mode, concurrency and repetition")] = 200,
    reps: Annotated[int, typer.Option(help="repetitions")] = 3,
    concurrency: ConcurrencyOpt = None,
    mode: ModesOpt = None,
    jsonl: JsonlOpt = ROOT / "bench" / "results" / "suite.jsonl",
    out: Annotated[str, typer.Option(help="markdown report ('-': none)")] = str(ROOT / "docs" / "benchmarks.md"),
    series_seconds: Annotated[float, typer.Option(help="wall-time bound of one series")] = 120.0,
    budget_seconds: Annotated[float, typer.Option(help="wall-time bound of the run")] = 3600.0,
) -> None:
    """The report: W1 at c=1, 8 and 64, three repetitions; rewrites the suite's section of docs/benchmarks.md."""
    _run(
        "full",
        n=n,
        reps=reps,
        concurrency=concurrency,
        modes=mode,
        jsonl=str(jsonl) if jsonl else "",
        out=out,
        series_seconds=series_seconds,
        budget_seconds=budget_seconds,
    )


@bench_app.command("w2-smoke")
def w2_smoke(
    n: Annotated[int, typer.Option(help="measured requests per mode and concurrency")] = 8,
    concurrency: ConcurrencyOpt = None,
    mode: ModesOpt = None,
    jsonl: JsonlOpt = None,
    out: Annotated[str, typer.Option(help="markdown report to rewrite the W2 section of ('-': none)")] = "-",
    budget_seconds: Annotated[float, typer.Option(help="wall-time bound of the run")] = 210.0,
) -> None:
    """Quick check of W2 (under 4 minutes): the real stages, the model at 500 ms, retrieval over 10,000 chunks.

    Docket over REST, B0, B1 (sync) and B2 at c=1 and c=8, one repetition, every answer checked.

    JSON lines go to a temp file (or --jsonl); docs/benchmarks.md is left alone unless --out names it.
    """
    if jsonl is None:
        jsonl = Path(tempfile.mkstemp(prefix="docket-bench-w2-smoke-", suffix=".jsonl")[1])
    _run(
        "w2-smoke",
        n=n,
        concurrency=concurrency,
        modes=mode,
        jsonl=str(jsonl),
        out=out,
        budget_seconds=budget_seconds,
    )


@bench_app.command("w2")
def w2(
    n: Annotated[int, typer.Option(help="measured requests per mode, concurrency and repetition")] = 60,
    reps: Annotated[int, typer.Option(help="repetitions")] = 3,
    concurrency: ConcurrencyOpt = None,
    mode: ModesOpt = None,
    jsonl: JsonlOpt = ROOT / "bench" / "results" / "suite-w2.jsonl",
    out: Annotated[str, typer.Option(help="markdown report ('-': none)")] = str(ROOT / "docs" / "benchmarks.md"),
    series_seconds: Annotated[float, typer.Option(help="wall-time bound of one series")] = 120.0,
    budget_seconds: Annotated[float, typer.Option(help="wall-time bound of the run")] = 3600.0,
) -> None:
    """The W2 report: c=1, 8 and 64, three repetitions; rewrites the W2 section of docs/benchmarks.md (not W1's)."""
    _run(
        "w2",
        n=n,
        reps=reps,
        concurrency=concurrency,
        modes=mode,
        jsonl=str(jsonl) if jsonl else "",
        out=out,
        series_seconds=series_seconds,
        budget_seconds=budget_seconds,
    )
