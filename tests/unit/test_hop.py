"""bench/hop.py's pure parts: a history's hop latencies, the aggregation and the report section."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskCompletedEventAttributes,
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    MarkerRecordedEventAttributes,
    WorkflowTaskCompletedEventAttributes,
    WorkflowTaskStartedEventAttributes,
)

from bench import hop
from bench.report import write_section

E = EventType


def event(event_id: int, at_ms: float, event_type: int, **attributes: Any) -> HistoryEvent:
    e = HistoryEvent(event_id=event_id, event_type=event_type)  # type: ignore[arg-type]
    e.event_time.FromNanoseconds(round(at_ms * 1e6))
    for name, value in attributes.items():
        getattr(e, name).CopyFrom(value)
    return e


def one_activity_history(
    wait_ms: float = 45.0, first_wait_ms: float = 0.1, activity_wait_ms: float | None = None
) -> list[HistoryEvent]:
    """Started eagerly (first workflow task at once), one local activity, one regular activity: two hops, the
    activity's taking `activity_wait_ms` (default `wait_ms`), the next workflow task's `wait_ms`."""
    a = first_wait_ms
    aw = wait_ms if activity_wait_ms is None else activity_wait_ms
    return [
        event(1, 0.0, E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED),
        event(2, 0.0, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
        event(
            3,
            a,
            E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            workflow_task_started_event_attributes=WorkflowTaskStartedEventAttributes(scheduled_event_id=2),
        ),
        event(
            4,
            a + 2.0,
            E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            workflow_task_completed_event_attributes=WorkflowTaskCompletedEventAttributes(scheduled_event_id=2),
        ),
        event(
            5,
            a + 2.0,
            E.EVENT_TYPE_MARKER_RECORDED,
            marker_recorded_event_attributes=MarkerRecordedEventAttributes(marker_name="core_local_activity"),
        ),
        event(6, a + 2.0, E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
        event(
            7,
            a + 2.0 + aw,
            E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
            activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(scheduled_event_id=6),
        ),
        event(
            8,
            a + 3.0 + aw,
            E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
            activity_task_completed_event_attributes=ActivityTaskCompletedEventAttributes(scheduled_event_id=6),
        ),
        event(9, a + 3.0 + aw, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED),
        event(
            10,
            a + 3.0 + aw + wait_ms,
            E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            workflow_task_started_event_attributes=WorkflowTaskStartedEventAttributes(scheduled_event_id=9),
        ),
        event(
            11,
            a + 4.5 + aw + wait_ms,
            E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
            workflow_task_completed_event_attributes=WorkflowTaskCompletedEventAttributes(scheduled_event_id=9),
        ),
        event(12, a + 4.5 + aw + wait_ms, E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED),
    ]


def test_hop_latencies_splits_waits_from_work() -> None:
    h = hop.hop_latencies(one_activity_history())
    assert h.duration_ms == pytest.approx(94.6)
    assert h.wft_first_wait_ms == pytest.approx(0.1)
    assert h.wft_wait_ms == pytest.approx([45.0])  # the workflow task the activity's completion scheduled
    assert h.wft_run_ms == pytest.approx([2.0, 1.5])
    assert h.activity_wait_ms == pytest.approx([45.0])
    assert h.activity_run_ms == pytest.approx([1.0])
    assert h.local_activities == 1
    assert h.queue_wait_ms == pytest.approx(90.1)


def test_hop_latencies_of_an_empty_history() -> None:
    h = hop.hop_latencies([])
    assert h.wft_first_wait_ms is None and not h.wft_wait_ms and h.queue_wait_ms == 0.0


def test_hops_row_pools_the_samples_and_counts_eager_activities() -> None:
    sampled = [hop.hop_latencies(one_activity_history(wait_ms=w)) for w in (40.0, 50.0, 0.1)]
    row = hop.hops_row(hop.TUNED, "activity-1", 1, sampled)
    assert row["sampled"] == 3 and row["activities"] == 3
    assert row["activities_at_once"] == 1  # 0.1 ms < AT_ONCE_MS: handed over in the workflow task's response
    assert row["activity_wait_ms"]["p50"] == pytest.approx(40.0)
    assert row["workflow_tasks_per_workflow"] == 2 and row["local_activities_per_workflow"] == 1
    json.loads(hop.dumps(row))


def test_transfer_reads_come_from_the_history_services_persistence_requests() -> None:
    page = "\n".join(
        [
            "# TYPE persistence_requests counter",
            'persistence_requests{namespace="system",operation="GetTransferTasks",service_name="history"} 86',
            'persistence_requests{namespace="x",operation="GetTransferTasks",service_name="history"} 4',
            'persistence_requests{namespace="system",operation="GetVisibilityTasks",service_name="history"} 67',
            'persistence_latency_count{operation="GetTransferTasks"} 90',
        ]
    )
    assert hop.transfer_reads_from(page) == 90.0
    assert hop.transfer_reads_from('persistence_requests{operation="GetTimerTasks"} 2') is None


def test_summary_and_dumps_are_strict() -> None:
    assert hop.summary([]) is None
    assert hop.summary([float("nan")]) is None
    one = hop.summary([3.0])
    assert one is not None and one["p50"] == one["p99"] == 3.0
    assert json.loads(hop.dumps({"x": float("nan"), "y": [float("nan"), 1.0]})) == {"x": None, "y": [None, 1.0]}


def test_smoke_flag_shrinks_the_run() -> None:
    cfg = hop.config_from_args(hop.parse_args(["--smoke"]))
    assert (cfg.n, cfg.reps, cfg.concurrency) == (5, 1, 4)
    cfg = hop.config_from_args(hop.parse_args(["--n", "7", "--workloads", "empty", "local-5"]))
    assert cfg.n == 7 and cfg.reps == hop.HopConfig.reps and cfg.workloads == ["empty", "local-5"]


# ---------------------------------------------------------------- the report on a small synthetic run

MACHINE = {
    "cpus": "2",
    "cpu_model": "test CPU",
    "ram": "1 GiB",
    "os": "Linux",
    "python": "3.11",
    "temporalio": "1.x",
    "temporal_cli": "temporal version test",
    "sqlite": "3",
    "git": "abc1234",
}


def series(server: str, workload: str, c: int, latencies: list[float], **extra: Any) -> dict[str, Any]:
    return {
        "type": "series",
        "server": server,
        "workload": workload,
        "concurrency": c,
        "rep": 0,
        "n": len(latencies),
        "failures": 0,
        "first_failure": None,
        "truncated": False,
        "eager_started": len(latencies) if workload != "empty-no-eager" else 0,
        "wall_s": sum(latencies) / 1000 / c,
        "throughput_wps": 1000 * c / (sum(latencies) / len(latencies)),
        "server_cpu_s": 0.002 * len(latencies),
        "process_cpu_s": 0.004 * len(latencies),
        "transfer_reads": 6.0 * len(latencies),
        "latency_ms": hop.summary(latencies),
        "latencies_ms": latencies,
        "workflow_ids": [],
        "warmup_latencies_ms": [latencies[0] / 2, *latencies],  # the first after a pause, then the steady state
        **extra,
    }


def synthetic_report(activity_wait_ms: float = 0.03) -> dict[str, Any]:
    workloads = ["empty", "activities-5"]
    cfg = asdict(hop.HopConfig(n=3, reps=1, concurrency=4, workloads=workloads))
    meta = {
        "type": "run",
        "started_at": "2026-11-22 10:00:00",
        "finished_at": "2026-11-22 10:01:00",
        "wall_s": 60.0,
        "loadavg_start": 1.0,
        "loadavg_end": 1.5,
        "machine": MACHINE,
        "config": cfg,
        "dynamic_config": {hop.SETTING: 1000},
        "tuned_args": ["--dynamic-config-value", f"{hop.SETTING}=1000"],
        "skipped": [],
    }
    rows = [
        series(hop.DEFAULT, "empty", 1, [10.0, 11.0, 12.0]),
        series(hop.TUNED, "empty", 1, [9.0, 10.0, 11.0]),
        series(hop.DEFAULT, "activities-5", 1, [250.0, 260.0, 270.0]),
        series(hop.TUNED, "activities-5", 1, [60.0, 62.0, 64.0]),
        series(hop.DEFAULT, "activities-5", 4, [300.0, 320.0, 340.0]),
        series(hop.TUNED, "activities-5", 4, [90.0, 100.0, 110.0]),
    ]

    def sampled(wait_ms: float) -> list[hop.Hops]:
        return [hop.hop_latencies(one_activity_history(wait_ms, activity_wait_ms=activity_wait_ms)) for _ in range(3)]

    slow, fast, busy = sampled(45.0), sampled(2.0), sampled(25.0)
    hops = [
        hop.hops_row(hop.DEFAULT, "activities-5", 1, slow),
        hop.hops_row(hop.TUNED, "activities-5", 1, fast),
        hop.hops_row(hop.DEFAULT, "activities-5", 4, busy),
        hop.hops_row(hop.TUNED, "activities-5", 4, fast),
    ]
    idle = [
        {"type": "idle", "server": hop.DEFAULT, "window_s": 10.0, "cpu_s": 0.20, "share": 0.02, "reads_per_s": 0.1},
        {"type": "idle", "server": hop.TUNED, "window_s": 10.0, "cpu_s": 0.50, "share": 0.05, "reads_per_s": 0.2},
    ]
    return {"meta": meta, "series": rows, "hops": hops, "idle": idle}


def test_render_markdown_states_cause_setting_numbers_and_advice() -> None:
    text = hop.render_markdown(synthetic_report())
    assert text.startswith(hop.BEGIN + "\n" + hop.TITLE) and text.endswith(hop.END)
    assert f"`{hop.SETTING}`" in text and "--dynamic-config-value history.transferProcessorMaxPollRPS=1000" in text
    assert "history.transferProcessorMaxPollRPS:\n  - value: 1000" in text  # the YAML comes from the run's config
    assert "| 5 sequential regular activities | 260.0 | " in text  # default p50 at c=1
    assert "| 62.0 |" in text and "4.19x" in text  # tuned p50 and the ratio 260 / 62
    assert "waited 45.0 ms p50 between scheduled and started on `default` and 2.0 ms on `tuned`" in text
    assert "6 of 6 sampled regular activities started within 0.5 ms" in text and "in the response to" in text
    assert "tasks waited 45.1 ms on `default` and 2.1 ms on `tuned`" in text  # summed per workflow
    assert "a later workflow task waited 25.0 ms p50 on `default` (at c=1: 45.0 ms)" in text and "half of it" in text
    assert "reading their transfer queues 0.10 and 0.20 times a second" in text
    assert "3.00 % of a core, is what the higher read limit costs when idle" in text
    assert "| 1.10x | 6.0 / 6.0 |" in text  # transfer-queue reads per workflow
    assert "per shard" in text and "batch" in text
    assert "took 125.0 ms (median over the repetitions), against 260.0 ms p50" in text  # the bucket after a pause
    assert "on a machine shared with other work" not in text  # tuned waited 2 ms at c=4: no worker-bound remark
    assert "(this run: `--n 3 --reps 1 --concurrency 4`; 1.0 minutes)" in text
    assert "their p50s differ by empty (eager start) 1.0 ms (default - tuned)" in text  # the noise floor


def test_render_markdown_when_activities_take_the_hop_too() -> None:
    text = hop.render_markdown(synthetic_report(activity_wait_ms=40.0))
    assert "0 of 6 sampled regular activities started within" in text and "did not grant it" in text


def test_render_markdown_without_a_difference_in_idle_cpu() -> None:
    report = synthetic_report()
    for r in report["idle"]:
        r["cpu_s"], r["share"] = 0.2, 0.02
    assert "No measurable difference" in hop.render_markdown(report)


def test_jsonl_round_trip_renders_the_same_section(tmp_path: Path) -> None:
    report = synthetic_report()
    lines = [json.loads(hop.dumps(r)) for r in hop.jsonl_rows(report)]
    assert hop.render_markdown(hop.from_jsonl(lines)) == hop.render_markdown(report)
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n<!-- bench:suite:begin -->\nsuite\n<!-- bench:suite:end -->\n", encoding="utf-8")
    write_section(doc, hop.render_markdown(report), hop.BEGIN, hop.END)
    write_section(doc, hop.render_markdown(report), hop.BEGIN, hop.END)  # rewritten in place, not appended twice
    text = doc.read_text(encoding="utf-8")
    assert text.count(hop.BEGIN) == 1 and "suite\n<!-- bench:suite:end -->" in text
