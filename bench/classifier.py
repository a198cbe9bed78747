"""Speed of the request classifier's fast layers on one core: rules, the trained model, both, and the hybrid.

    python -m bench.classifier [--rounds 3] [--out docs/benchmarks.md] [--json bench/results/classifier.json]

Not a timed test: it measures and records. The process is pinned to one CPU. Every question of the labelled
dataset (activities/classify/data/requests.jsonl) is classified, as of its own date, over the demo catalog; the
modes take turns in every round so they share the machine's noise. Latency is per request (perf_counter_ns
around one call); throughput is requests / wall time of a mode's pass over all questions.

Modes:
- rules: RuleClassifier.classify (layer 1 alone);
- model: IntentModel.predict (layer 2 alone);
- rules + model: both on every request, the worst case of the two fast layers;
- hybrid: HybridClassifier.classify with no LLM configured, as the worker runs it (the model only runs when
  the rules are unsure).

The report replaces the "Classifier" section of docs/benchmarks.md (between its markers) and leaves the rest of
the file as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from activities.classify.dataset import DATASET
from activities.classify.evaluate import load_demo_catalog
from activities.classify.hybrid import HybridClassifier
from activities.classify.model import DEFAULT_MODEL, IntentModel
from activities.classify.rules import RuleClassifier
from bench.report import write_section

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- classifier-bench:begin -->"
END = "<!-- classifier-bench:end -->"
TARGET_P50_MS = 2.0
TARGET_RPS = 1000.0


def pin_one_core() -> str:
    """Run on one CPU (the first this process may use), so throughput means one core."""
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity on this platform)"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"pinned to CPU {cpu}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Latency statistics in milliseconds, the same keys in every benchmark's raw results."""
    return {
        "n": len(values),
        "p50_ms": percentile(values, 0.5),
        "p95_ms": percentile(values, 0.95),
        "p99_ms": percentile(values, 0.99),
        "mean_ms": statistics.fmean(values),
        "max_ms": max(values),
    }


def run(rounds: int) -> dict[str, Any]:
    pinned = pin_one_core()
    rows = [json.loads(line) for line in DATASET.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = [(r["text"], date.fromisoformat(r["as_of"])) for r in rows]
    catalog = load_demo_catalog()

    loads: list[float] = []
    for _ in range(5):
        t0 = time.perf_counter()
        model = IntentModel.load(DEFAULT_MODEL)
        loads.append((time.perf_counter() - t0) * 1000)
    rules = RuleClassifier(catalog)
    hybrid = HybridClassifier(catalog, model=model, llm=None)
    loop = asyncio.new_event_loop()

    def both(q: str, d: date) -> None:
        rules.classify(q, d)
        model.predict(q)

    modes: dict[str, Callable[[str, date], object]] = {
        "rules": rules.classify,
        "model": lambda q, d: model.predict(q),
        "rules + model": both,
        "hybrid (rules → model, no LLM)": lambda q, d: loop.run_until_complete(hybrid.classify(q, d)),
    }
    latencies: dict[str, list[float]] = {m: [] for m in modes}
    walls: dict[str, float] = dict.fromkeys(modes, 0.0)
    methods: dict[str, int] = {}
    for q, d in questions:  # warm-up: compiled regexes, caches, the event loop
        for fn in modes.values():
            fn(q, d)
        method = loop.run_until_complete(hybrid.classify(q, d)).method
        methods[method] = methods.get(method, 0) + 1
    started = datetime.now(UTC)
    for r in range(rounds):
        order = list(modes)[r % len(modes) :] + list(modes)[: r % len(modes)]
        for name in order:
            fn = modes[name]
            gc.collect()
            t_start = time.perf_counter_ns()
            for q, d in questions:
                t0 = time.perf_counter_ns()
                fn(q, d)
                latencies[name].append((time.perf_counter_ns() - t0) / 1e6)
            walls[name] += (time.perf_counter_ns() - t_start) / 1e9
    loop.close()
    results = {name: {**summary(lat), "rps": len(lat) / walls[name]} for name, lat in latencies.items()}
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "rounds": rounds,
        "questions": len(questions),
        "hybrid_methods": methods,
        "model_version": model.version,
        "model_features": len(model.idf),
        "model_load_ms": statistics.median(loads),
        "artifact_bytes": DEFAULT_MODEL.stat().st_size,
        "machine": {
            "cpu": cpu_model(),
            "cpus_online": os.cpu_count(),
            "pinning": pinned,
            "os": f"{platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        },
        "results": results,
    }


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    res = report["results"]
    both = res["rules + model"]
    ok_p50 = both["p50_ms"] <= TARGET_P50_MS
    ok_rps = both["rps"] >= TARGET_RPS
    methods = ", ".join(f"{k} {v}" for k, v in sorted(report["hybrid_methods"].items()))
    lines = [
        BEGIN,
        "## Classifier: rules + trained model on one core",
        "",
        f"Generated by `python -m bench.classifier` on {report['started'][:10]} ({report['started']} → "
        f"{report['finished']} UTC); re-running it rewrites only this section.",
        "",
        "| machine | |",
        "|---|---|",
        f"| CPU | {m['cpu']} ({m['cpus_online']} online, {m['pinning']}) |",
        f"| OS / Python | {m['os']} / {m['python']} |",
        f"| load average (1 min) at the end | {m['load_avg_1m']:.2f} |" if m["load_avg_1m"] is not None else "",
        "",
        f"Method: the {report['questions']} questions of `activities/classify/data/requests.jsonl` (every intent, "
        f"typos, terse and verbose forms), each classified as of its date over the Meridian catalog, one warm-up "
        f"pass, then {report['rounds']} rounds in which the modes take turns; latency is measured around each "
        "call, throughput is requests divided by the wall time of a mode's passes. One process, one thread.",
        "",
        "| mode | requests | p50 ms | p95 ms | p99 ms | mean ms | max ms | requests/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in res.items():
        lines.append(
            f"| {name} | {r['n']:,} | {r['p50_ms']:.3f} | {r['p95_ms']:.3f} | {r['p99_ms']:.3f} | "
            f"{r['mean_ms']:.3f} | {r['max_ms']:.2f} | {r['rps']:,.0f} |"
        )
    lines += [
        "",
        f"Target (issue): rules + model p50 ≤ {TARGET_P50_MS:g} ms and ≥ {TARGET_RPS:,.0f} requests/s on one core: "
        f"p50 {both['p50_ms']:.3f} ms ({'met' if ok_p50 else 'NOT met'}), {both['rps']:,.0f} requests/s "
        f"({'met' if ok_rps else 'NOT met'}), with both layers run on every request.",
        "",
        f"Model `{report['model_version']}`: {report['model_features']:,} features, artifact "
        f"{report['artifact_bytes'] / 1e6:.2f} MB, loaded in {report['model_load_ms']:.0f} ms (median of 5, pure "
        f"Python, no scikit-learn). The hybrid decided the questions as: {methods} (with no LLM configured, "
        "`fallback` marks what it would ask the LLM).",
        END,
    ]
    return "\n".join(line for line in lines if line is not None)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="markdown ('-' for stdout)")
    p.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "classifier.json")
    args = p.parse_args(argv)
    report = run(args.rounds)
    section = render(report)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    if str(args.out) == "-":
        sys.stdout.write(section + "\n")
    else:
        write_section(args.out, section, BEGIN, END)
        sys.stdout.write(f"wrote the classifier section of {args.out}; raw results in {args.json}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
