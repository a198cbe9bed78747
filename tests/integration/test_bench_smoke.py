"""Smoke test of bench/suite.py: the smallest W1 run on the session's dev server, fields and checks asserted.

Timings are not asserted (tests never time things): only that every mode answered every request correctly (the
stub model's grounded answer accepted by Docket's generator), that the JSON lines are strict and complete, and that
the report renders between its markers.
"""

from __future__ import annotations

import json

import pytest
from temporalio.testing import WorkflowEnvironment

from bench import suite
from bench.stub_model import grounded_answer

pytestmark = pytest.mark.integration

MODES = [
    suite.EMPTY,
    suite.DOCKET_REST,
    suite.DOCKET_CLIENT,
    suite.DOCKET_UPDATE,
    suite.EMPTY_REST_SQLITE,
    suite.DOCKET_REST_SQLITE,
    "b0",
    "b1-sync",
]


def test_stub_model_answers_with_the_prompts_figures() -> None:
    prompt = "Facts:\n[F1] revenue MER-US 2026-10 = 11765834 USD\n[F2] headcount MER-US 2026-10 = 12 \n"
    got = grounded_answer(prompt)
    assert got["answer"] == "revenue MER-US 2026-10 was 11765834 USD. headcount MER-US 2026-10 was 12."
    assert got["fact_ids"] == ["F1", "F2"] and got["doc_ids"] == []


async def test_bench_suite_smallest_run(temporal_env: WorkflowEnvironment) -> None:
    cfg = suite.preset(
        "smoke",
        n=3,
        concurrency=[1],
        warmup=1,
        modes=MODES,
        history_sample=2,
        probe_n=20,
        probe_seconds=1.0,
        series_seconds=30.0,
        budget_seconds=120.0,
        rates=[5.0],
        sweep_modes=[suite.DOCKET_REST, suite.EMPTY_REST_SQLITE],
        sweep_seconds=1.0,
    )
    report = await suite.run(cfg, client=temporal_env.client)
    rows = suite.jsonl_rows(report)
    for row in rows:
        json.loads(suite.dumps(row))  # strict JSON: NaN becomes null, never a bare NaN
    assert {r["type"] for r in rows} >= {"run", "probes", "series", "summary", "history", "rss", "target"}

    meta = report["meta"]
    assert meta["config"]["modes"] == MODES and meta["machine"]["temporalio"]
    assert not meta["skipped"]
    probes = report["probes"]
    for key in ("fsync", "sqlite_normal", "sqlite_full", "grpc", "http"):
        assert probes[key]["n"] > 0 and probes[key]["p50_ms"] > 0, key

    series = report["series"]
    assert sorted(s["mode"] for s in series) == sorted(MODES)
    for s in series:
        assert s["n"] == s["checked"] == 3, s["mode"]
        assert s["failures"] == 0, (s["mode"], s["first_failure"])
        assert not s["truncated"]
        assert len(s["latencies_ms"]) == 3 and all(x > 0 for x in s["latencies_ms"])
        assert set(s["latency_ms"]) >= {"p50", "p95", "p99"}
        assert set(s["cpu_ms_per_request"]) == {"process", "dev_server", "stub"}
    by_mode = {r["mode"]: r for r in report["summary"]}
    assert by_mode["b0"]["overhead_vs_b0_ms"] == 0
    assert all(r["throughput_rps"] > 0 for r in report["summary"])
    # Every Docket and baseline request called the stub model once (warm-ups included), and was checked.
    answered_by_model = len([m for m in MODES if m != suite.EMPTY]) * (3 + 1)
    assert meta["stub"]["calls"] >= answered_by_model

    # The open-loop sweep: every arrival of each swept mode answered right (a rate far below either's capacity).
    opens = {o["mode"]: o for o in report["open"]}
    assert set(opens) == {suite.DOCKET_REST, suite.EMPTY_REST_SQLITE}
    for o in opens.values():
        assert o["offered"] > 0 and o["ok"] == o["offered"] and not o["dropped"], o
        assert o["latency_ms"]["p50"] > 0 and len(o["latencies_ms"]) == o["offered"]

    history = report["history"]
    assert history[suite.DOCKET_REST]["sampled"] == 2
    # Update-with-start: the same run plus the update's accepted and completed events.
    assert history[suite.DOCKET_UPDATE]["events_median"] == history[suite.DOCKET_REST]["events_median"] + 2
    assert history[suite.DOCKET_REST]["events_median"] > history[suite.EMPTY]["events_median"] == 5
    assert history[suite.DOCKET_REST]["bytes_median"] > 0
    assert report["rss"] and report["rss"][0]["process_mib"] > 0

    targets = {t["target"]: t for t in report["targets"]}
    assert any("B1" in name for name in targets) and any("history events" in name for name in targets)
    assert all(t["status"] in {"pass", "miss", "not measured"} for t in targets.values())
    assert all((t["by"] is None) == (t["status"] != "miss") for t in targets.values())

    markdown = suite.render_markdown(report)
    assert markdown.startswith(suite.BEGIN) and markdown.endswith(suite.END)
    assert "### Targets" in markdown and "### Interpretation" in markdown and "### Open-loop rate sweep" in markdown
    again = suite.from_jsonl([json.loads(suite.dumps(r)) for r in rows])
    assert suite.render_markdown(again) == markdown
