"""Smoke test of bench/dag.py: two measured requests per series on the session's dev server, fields and shape checked.

Timings are not asserted (tests never time things); only what the benchmark reports must hold on any machine: the
comparison's plan is 6 ledger sums, they overlapped, and every field of the JSON lines is there.
"""

from __future__ import annotations

import json

import pytest
from temporalio.testing import WorkflowEnvironment

from bench import dag

pytestmark = pytest.mark.integration

TASK_FIELDS = {
    "task_id",
    "label",
    "kind",
    "level",
    "depends_on",
    "local",
    "scheduled_ms",
    "started_ms",
    "completed_ms",
    "queue_ms",
    "work_ms",
    "inside_ms",
    "reused",
}


async def test_bench_dag_measures_six_parallel_sums_and_a_two_level_dag(temporal_env: WorkflowEnvironment) -> None:
    args = dag.parse_args(["--n", "2", "--warmup", "1", "--out", "-", "--jsonl", "-"])
    report = await dag.run(args, client=temporal_env.client)
    meta, samples, totals = dag.report_lines(report)

    for row in [meta, *samples, totals]:
        json.loads(json.dumps(row, allow_nan=False))  # every line is strict JSON (no NaN)
    assert len(samples) == 2 * 2 * 2  # n, workloads, stores
    for s in samples:
        assert {key for key, _, _ in dag.METRICS} <= set(s), s.keys()
        assert {"workflow_id", "workload", "store", "plan", "critical_path", "levels", "tasks"} <= set(s)
        for t in s["tasks"]:
            assert set(t) >= TASK_FIELDS
            assert t["queue_ms"] >= 0 and t["work_ms"] > 0 and t["inside_ms"] > 0
        assert s["reused"] == (0 if s["store"] == "fresh" else len(s["tasks"]))

    compare = [s for s in samples if s["workload"] == "compare"]
    for s in compare:
        assert s["plan"] == {"sum": 6, "compute": 0}
        assert [t["kind"] for t in s["tasks"]] == ["sum"] * 6
        assert not any(t["local"] for t in s["tasks"])
        assert s["levels"] == 1 and s["level_handoff_ms"] is None
        assert s["max_concurrent_ledger"] >= 2, "the 6 ledger sums did not overlap"
    # Computed sums take long enough that even two waves of 3 (eager, then polled) overlap more than they wait.
    assert totals["series"]["compare/fresh"]["metrics"]["parallelism"]["p50"] > 1
    assert sum(totals["series"]["compare/fresh"]["max_concurrent_ledger"].values()) == 2

    scenario = [s for s in samples if s["workload"] == "scenario"]
    for s in scenario:
        assert s["plan"] == {"sum": 3, "compute": 2}
        assert s["levels"] == 2
        computes = [t for t in s["tasks"] if t["local"]]
        assert len(computes) == 2 and all(t["level"] == 1 and t["depends_on"] for t in computes)
        assert s["level_handoff_ms"] is not None and s["level_handoff_ms"] >= 0
        assert len(s["critical_path"]) == 2  # a sum, then the compute task over it

    markdown = dag.render_markdown(meta, samples, totals["series"])
    assert markdown.startswith(dag.BEGIN) and markdown.endswith(dag.END)
    assert "revenue MER-JP 2026-Q2" in markdown and "DAG overhead" in markdown
