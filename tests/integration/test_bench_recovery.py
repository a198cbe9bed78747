"""Smoke test of bench/recovery.py (W5): a real `python -m worker` process SIGKILLed while a model call is in
flight, a fresh one started; every request completes and no completed generation called the model twice.

Timings are not asserted (tests never time things), only what the run counted: completions, duplicate and
re-called model calls from the stub's per-prompt counters, and the database rows.
"""

from __future__ import annotations

import json

import pytest
from temporalio.testing import WorkflowEnvironment

from bench import recovery

pytestmark = pytest.mark.integration


async def test_bench_recovery_smoke(temporal_env: WorkflowEnvironment) -> None:
    cfg = recovery.preset(smoke=True)
    report = await recovery.run(cfg, client=temporal_env.client)
    res = report["result"]

    assert res["requests"] == cfg.requests == 6
    assert res["completed"] == res["answered"] == 6, (res["failed"], res["running"], res["first_problem"])
    assert res["wrong_answers"] == 0, res["first_problem"]
    gens = res["generations"]
    assert gens["completed"] == 6 and gens["missing"] == 0 and gens["replay_agrees"]
    assert gens["duplicates"] == 0
    assert res["records"]["ok"], res["records"]
    assert all(t["status"] == "met" for t in res["targets"])

    [kill] = report["kills"]
    if kill["call_in_flight"]:
        # The kill cut a model call off: its attempt was lost and run again, a re-call the stub saw.
        assert gens["recalls"] >= 1 and res["affected"] >= 1
    assert len(report["workers"]) == 2

    rows = recovery.jsonl_rows(report)
    for row in rows:
        json.loads(recovery.dumps(row))  # strict JSON
    markdown = recovery.render_markdown(report)
    assert markdown.startswith(recovery.BEGIN) and markdown.endswith(recovery.END)
    assert "W5: recovery after SIGKILL" in markdown
    again = recovery.from_jsonl([json.loads(recovery.dumps(r)) for r in rows])
    assert recovery.render_markdown(again) == markdown
