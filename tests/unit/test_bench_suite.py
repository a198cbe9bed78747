"""bench/suite.py's pure parts for the workloads: presets, section markers, target labels and the report text.

The suite itself runs in tests/integration/test_bench_smoke.py (W1); these tests build reports from made-up series.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import suite

W2_INDEX = {
    "chunks": 10_000,
    "tenant": "meridian",
    "tenant_chunks": 9_027,
    "corpus": {
        "seed": 7,
        "sources": 54,
        "documents": 4_375,
        "stored": 4_362,
        "tenants": {"meridian": 3_942, "globex": 85},
        "build_s": 21.0,
    },
    "lookup_search": {
        "searched": True,
        "mode": "lexical",
        "notes": ["lexical search only: no embedder is configured (DOCKET_EMBEDDER)"],
        "entities": ["MER-US"],
        "clearance": "restricted",
        "candidates": 718,
        "cited": ["syn012-doc-us-campaign-2026-04", "doc-rev-rec"],
        "cited_synthetic": 1,
    },
}
# p50-ish milliseconds of each mode's work besides the model (the empty workflow calls no model).
WORK_MS = {suite.EMPTY_REST: 20.0, suite.DOCKET_REST: 60.0, "b0": 10.0, "b1-sync": 40.0, "b2": 30.0}


def synthetic_report(preset: str) -> dict[str, Any]:
    """A report of the preset's workload over made-up series at c=1 and c=8, as run() assembles it."""
    cfg = suite.preset(preset, modes=list(WORK_MS), concurrency=[1, 8])
    delay = cfg.stub_delay_ms
    lines = []
    for c in cfg.concurrency:
        for mode, work in WORK_MS.items():
            ms = work + (0.0 if mode == suite.EMPTY_REST else delay) + c
            series = suite.Series(
                mode,
                c,
                0,
                samples=[suite.Sample(ms + i, f"req-{mode}-{c}-{i}") for i in range(5)],
                wall_s=5 * ms / 1000 / c,
                cpu_s=0.01,
                server_cpu_s=0.005,
            )
            lines.append(suite.series_line(series))
    meta = {
        "type": "run",
        "started_at": "2026-11-22 00:00:00",
        "finished_at": "2026-11-22 00:01:00",
        "wall_s": 60.0,
        "loadavg_start": 1.0,
        "loadavg_end": 1.5,
        "machine": {"cpus": "2"},
        "config": {
            **asdict(cfg),
            "question": suite.QUESTION,
            "principal": suite.PRINCIPAL,
            "as_of": str(suite.AS_OF),
        },
        "skipped": [],
        "stub": {"calls": 0, "streamed": 0},
        "index": W2_INDEX if cfg.corpus_chunks else {"chunks": 30, "tenant": "meridian", "tenant_chunks": 27},
    }
    return suite.assemble(meta, {}, lines, {}, [])


def test_w2_presets() -> None:
    smoke, full = suite.preset("w2-smoke"), suite.preset("w2")
    for cfg in (smoke, full):
        assert cfg.workload == "W2" and cfg.corpus_chunks == 10_000 and cfg.stub_delay_ms == 500
    assert smoke.modes == [suite.DOCKET_REST, "b0", "b1-sync", "b2"] and smoke.concurrency == [1, 8]
    assert (smoke.n, smoke.reps, smoke.warmup, smoke.out) == (8, 1, 2, "-") and smoke.budget_seconds < 240
    assert full.modes == [
        suite.EMPTY_REST,
        suite.DOCKET_REST,
        suite.DOCKET_REGULAR,
        suite.DOCKET_SANDBOX,
        "b0",
        "b1-sync",
        "b1-default",
        "b2",
    ]
    assert (full.n, full.reps, full.concurrency) == (60, 3, [1, 8, 64])
    # W2's open loop runs at its own pace (a 500 ms model), the smoke run has none.
    assert smoke.rates == [] and full.rates and full.sweep_modes == [suite.DOCKET_REST, "b0", "b1-sync", "b2"]
    # `full` and `smoke` run every mode but the one equal to the default now (unsandboxed).
    assert (
        suite.DOCKET_NOSANDBOX not in suite.preset("full").modes and suite.DOCKET_SANDBOX in suite.preset("full").modes
    )
    assert full.jsonl.endswith("bench/results/suite-w2.jsonl") and full.out.endswith("docs/benchmarks.md")
    assert suite.preset("smoke").workload == suite.preset("full").workload == "W1"
    assert suite.preset("full").corpus_chunks == 0


def test_markers_per_workload() -> None:
    assert suite.markers("W1") == (suite.BEGIN, suite.END)
    assert suite.markers("W2") == ("<!-- bench:suite-w2:begin -->", "<!-- bench:suite-w2:end -->")


def test_targets_are_labelled_with_the_workload() -> None:
    w1 = [t["target"] for t in synthetic_report("smoke")["targets"]]
    w2 = [t["target"] for t in synthetic_report("w2-smoke")["targets"]]
    assert any(t.startswith("W1 p50 added over an empty workflow") for t in w1)
    assert any(t.startswith("W1 throughput through REST") for t in w1)
    # The B1/B2 targets apply to both workloads, each labelled with its own.
    for labels, workload in ((w1, "W1"), (w2, "W2")):
        b = [t for t in labels if "B1" in t or "B2" in t]
        assert len(b) == 5 and all(t.startswith(f"{workload} Docket REST") for t in b), b
    # The empty workflow calls no model: next to W2's 500 ms model those W1 targets would only measure the model.
    assert not any("empty workflow" in t for t in w2)
    assert not any(t.startswith("W1") for t in w2)


def test_w2_report_text() -> None:
    md = suite.render_markdown(synthetic_report("w2-smoke"))
    begin, end = suite.markers("W2")
    assert md.startswith(begin + "\n## Benchmark suite (issue 9): W2, realistic:") and md.endswith(end)
    assert "retrieval over 10,000 chunks" in md and "### W2 results" in md and "Workload W2:" in md
    assert "orchestration only" not in md and "W1" not in md.replace("not W1's", "").replace("W1's index", "")
    assert "9,027 of them the tenant meridian's" in md and "`syn012-doc-us-campaign-2026-04`" in md
    assert "admits 718 of the 10,000 chunks" in md and "(1 of 2 from the synthetic copies)" in md
    assert "`docket bench w2-smoke`" in md and "`docket bench w2`" in md
    # The overhead with a 500 ms model: p50 minus B0's p50 (60 - 10 ms of made-up work, the same at both c).
    assert "Overhead around a 500 ms model" in md and "Docket (REST `?wait`) +50.0 ms" in md
    assert "calling no model" in md and "the CPU per request sets the throughput" not in md


def test_w1_report_keeps_its_section_and_wording() -> None:
    md = suite.render_markdown(synthetic_report("smoke"))
    assert md.startswith(suite.BEGIN + "\n## Benchmark suite (issue 9): W1, orchestration only")
    assert md.endswith(suite.END) and "### W1 results" in md
    assert "Overhead around" not in md and "Documents: the index holds" not in md


def test_w2_section_goes_between_w1_and_recovery(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    w1 = f"{suite.BEGIN}\nW1 as it was\n{suite.END}"
    begin, end = suite.markers("W2")
    doc.write_text(
        f"# Benchmarks\n\n{w1}\n\n{begin}\nnot run yet\n{end}\n\n<!-- bench:recovery:begin -->\nW5\n"
        "<!-- bench:recovery:end -->\n",
        encoding="utf-8",
    )
    report = synthetic_report("w2-smoke")
    suite.write_outputs(report, "", str(doc))
    suite.write_outputs(report, "", str(doc))  # rewritten in place, not appended twice
    text = doc.read_text(encoding="utf-8")
    assert w1 in text and "not run yet" not in text and text.count(begin) == 1
    assert text.index(suite.END) < text.index(begin) < text.index(end) < text.index("<!-- bench:recovery:begin -->")
    again = suite.from_jsonl([json.loads(suite.dumps(r)) for r in suite.jsonl_rows(report)])
    assert suite.render_markdown(again) == suite.render_markdown(report)


def test_series_order_is_a_seeded_shuffle_that_changes_the_neighbours() -> None:
    modes = [f"m{i}" for i in range(12)]
    orders = [suite.series_order(modes, ci, rep) for ci in range(3) for rep in range(3)]
    assert all(sorted(o) == sorted(modes) for o in orders)  # every mode once per repetition
    assert suite.series_order(modes, 1, 2) == suite.series_order(modes, 1, 2)  # repeatable
    # No mode keeps the same predecessor in every repetition, as a rotation would make it.
    follows = {m: {o[o.index(m) - 1] for o in orders if o.index(m) > 0} for m in modes}
    assert all(len(before) > 1 for before in follows.values()), follows


async def test_settle_waits_for_a_busy_process_and_not_for_an_idle_one() -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert await suite.settle([idle.pid]) < 1.0
        waited = await suite.settle([busy.pid])
        assert waited >= suite.SETTLE_MAX_S
    finally:
        idle.kill()
        busy.kill()
