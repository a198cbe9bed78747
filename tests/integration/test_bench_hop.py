"""Smoke test of bench/hop.py: the smallest run on its own two dev servers (default and tuned), fields checked.

Timings are not asserted (tests never time things): only that every workflow answered right on both servers, that
the histories were read into hops, that the JSON lines are strict and that the section renders between its markers.
"""

from __future__ import annotations

import json

import pytest

from bench import hop

pytestmark = pytest.mark.integration


async def test_bench_hop_smallest_run() -> None:
    cfg = hop.HopConfig(
        n=2,
        reps=1,
        warmup=1,
        warmup_seconds=0.0,
        concurrency=2,
        n_concurrent=2,
        history_sample=2,
        idle_seconds=0.5,
        settle_seconds=0.0,
        series_seconds=30.0,
    )
    report = await hop.run(cfg)
    for row in hop.jsonl_rows(report):
        json.loads(hop.dumps(row))  # strict JSON: NaN becomes null, never a bare NaN

    meta = report["meta"]
    assert meta["tuned_args"] and meta["dynamic_config"] and meta["machine"]["temporalio"]
    assert not meta["skipped"]
    series = report["series"]
    assert len(series) == len(hop.SERVERS) * len(hop.WORKLOADS) * 2  # two concurrencies
    for s in series:
        assert s["failures"] == 0, (s["server"], s["workload"], s["first_failure"])
        assert s["n"] == 2 and not s["truncated"]
        assert s["eager_started"] == (0 if s["workload"] == "empty-no-eager" else s["n"]), s
        assert s["server_cpu_s"] > 0, s  # the server's own processes were found

    hops = {(h["server"], h["workload"], h["concurrency"]): h for h in report["hops"]}
    for server in hop.SERVERS:
        five = hops[(server, "activities-5", 1)]
        assert five["sampled"] == 2 and five["activities"] == 10 and five["workflow_tasks_per_workflow"] == 6
        assert hops[(server, "local-5", 1)]["local_activities_per_workflow"] == 5
        assert hops[(server, "local-5", 1)]["workflow_tasks_per_workflow"] == 1
        assert hops[(server, "empty", 1)]["wft_wait_ms"] is None  # one workflow task: nothing after the first
    assert {r["server"] for r in report["idle"]} == set(hop.SERVERS)

    text = hop.render_markdown(report)
    assert text.startswith(hop.BEGIN) and text.endswith(hop.END)
