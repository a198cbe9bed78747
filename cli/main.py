"""The `docket` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer

import cli.retrieval_eval  # noqa: F401 - registers `docket eval retrieval` on eval_app
from cli.audit import audit_app
from cli.bench import bench_app
from cli.classifier import eval_app, train_app
from cli.index import index_app
from cli.policy import policy_app
from cli.prompts import prompts_app
from cli.usage import budget_app, usage_command
from docket import db, ingest, tokens
from docket.catalog import load_principal
from docket.contracts import Stage, StreamEvent
from docket.settings import Settings, load_settings

app = typer.Typer(
    help="Docket: governed, durable AI requests over business data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def echo(msg: str = "", err: bool = False) -> None:
    typer.echo(msg, err=err)


def fail(msg: str, hint: str = "", code: int = 1) -> typer.Exit:
    echo(f"error: {msg}", err=True)
    if hint:
        echo(f"  fix: {hint}", err=True)
    return typer.Exit(code)


def exit_skipping_finalization(code: int) -> NoReturn:
    """Exit at once after a short-lived Temporal client was used.

    The SDK's Rust runtime threads can touch the GIL while CPython finalizes and abort the process
    (temporalio/sdk-python#300, "PyGILState_Release ... must be current when releasing"); a CLI command that
    finished its work has nothing left to clean up, so it skips interpreter teardown.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _settings() -> Settings:
    settings = load_settings()
    try:
        settings.check_production()
    except Exception as exc:
        raise fail(str(exc), getattr(exc, "hint", "")) from exc
    return settings


# ---------------------------------------------------------------- up / worker / api


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="load the demo data pack on first run")] = True,
    local_model: Annotated[
        bool,
        typer.Option(
            "--local-model",
            help="also start a llama.cpp server (extra `docket[local]`) with DOCKET_LOCAL_MODEL_PATH or the packaged "
            "Gemma 3 270M base model, and generate with it",
        ),
    ] = False,
) -> None:
    """Start the embedded stack: Temporal dev server, worker and API, as one process tree (Ctrl-C stops it)."""
    from cli.stack import run_stack

    raise typer.Exit(run_stack(_settings(), load_demo=demo, local_model=local_model))


@app.command()
def worker() -> None:
    """Run only the worker (for a stack whose Temporal and database run elsewhere)."""
    from worker.main import main as worker_main

    worker_main()


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="bind address")] = None,
    port: Annotated[int | None, typer.Option(help="port")] = None,
) -> None:
    """Run only the API gateway."""
    import uvicorn

    settings = _settings()
    uvicorn.run(
        "api.main:app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="info",
    )


# ---------------------------------------------------------------- token / ask


@app.command()
def token(principal: Annotated[str, typer.Argument(help="principal id, e.g. alice")]) -> None:
    """Print a development bearer token for PRINCIPAL."""
    settings = _settings()
    typer.echo(_mint(settings, principal))


def _mint(settings: Settings, principal_id: str) -> str:
    engine = db.make_engine(settings.db_url)
    try:
        db.migrate(settings.db_url)
        principal = load_principal(engine, principal_id)
    finally:
        engine.dispose()
    if principal is None:
        raise fail(
            f"principal {principal_id!r} is not loaded",
            "run `docket up` once (it loads the demo data) or `docket ingest principals PATH`",
        )
    return tokens.mint(settings.jwt_secret, principal.id, principal.tenant, settings.jwt_ttl_seconds)


def _fmt_value(value: float | int, unit: str) -> str:
    # Percentages (and changes in points) always show their one decimal: 60.0 %, not 60 %.
    if unit in ("%", "pp") or (isinstance(value, float) and not value.is_integer()):
        return f"{value:,.1f} {unit}"
    return f"{int(value):,} {unit}"


def render_result(view: dict[str, Any]) -> str:
    pending = view.get("awaiting_confirmation")
    if pending:
        slots = pending["slots"]
        return "\n".join(
            [
                "status:     waiting for your confirmation",
                f"understood: {pending['intent']} ({pending['complexity']}), decided by {pending['method']}, "
                f"confidence {pending['confidence']:.2f}",
                f"metrics:    {', '.join(slots['metrics'] + slots.get('derived', [])) or '-'}",
                f"entities:   {', '.join(slots['entities']) or '-'}",
                f"periods:    {', '.join(p['label'] for p in slots['periods']) or '-'}",
                f"request:    {view.get('request_id')}",
            ]
        )
    lines = [f"outcome:    {view.get('outcome') or view.get('status')}"]
    conf = view.get("confidence")
    if conf:
        lines.append(f"confidence: {conf['score']:.2f} ({conf['band']})")
    lines += ["", view.get("answer") or "(no answer yet)", ""]
    facts = view.get("facts") or []
    if facts:
        lines.append("facts:")
        for f in facts:
            lines.append(f"  {f['label']:<48} {_fmt_value(f['value'], f['unit']):>22}")
    for key, title in (
        ("missing_data", "missing data"),
        ("limitations", "limitations"),
        ("clarifying_questions", "clarifying questions"),
    ):
        if view.get(key):
            lines.append(f"{title}:")
            lines += [f"  - {x}" for x in view[key]]
    authz = view.get("authorization") or {}
    if authz and not authz.get("allowed", True):
        lines.append("policies:   " + ", ".join(authz.get("policies", [])))
    cites = view.get("citations") or []
    if cites:
        lines.append("citations:  " + ", ".join(f"{c['doc_id']} ({c['title']})" for c in cites))
    links = view.get("links") or {}
    lines.append("")
    lines.append(f"request:    {view.get('request_id')}")
    for name in ("self", "temporal_ui"):
        if name in links:
            lines.append(f"{name + ':':<11} {links[name]}")
    return "\n".join(lines)


# A silent event stream is a dead one: the API sends a keep-alive comment every 15 s.
STREAM_READ_SECONDS = 35.0
# Consecutive reconnections (with Last-Event-ID) after a dropped stream before falling back to polling.
STREAM_RECONNECTS = 5


@dataclass
class SseEvent:
    """One server-sent event: its id (the request stream's offset; None when the server gave none)."""

    id: int | None
    kind: str
    data: str


def iter_sse(lines: Iterable[str]) -> Iterator[SseEvent]:
    """Events from the lines of a text/event-stream body; comments (keep-alives) and `retry:` are skipped."""
    event_id: str | None = None
    kind = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield SseEvent(int(event_id) if event_id and event_id.isdigit() else None, kind, "\n".join(data))
            event_id, kind, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event_id = value


class LiveView:
    """Shows a request's events on stderr as they arrive (stdout keeps only the final answer)."""

    def __init__(self) -> None:
        self.attempt = 0
        self.in_text = False

    def _end_text(self) -> None:
        if self.in_text:
            echo("", err=True)
            self.in_text = False

    def show(self, event: StreamEvent) -> None:
        if event.kind == "stage" and event.stage is not None:
            self._end_text()
            done = list(event.timings.items())
            after = f" ({done[-1][0]} {done[-1][1]} ms)" if done else ""
            echo(f"> {event.stage.value}{after}", err=True)
        elif event.kind == "token":
            if event.attempt < self.attempt:
                return  # a late piece of an attempt that was given up (it timed out but still ran)
            typer.echo(event.text, nl=False, err=True)
            self.in_text = True
        elif event.kind == "reset":
            self._end_text()
            self.attempt = max(self.attempt, event.attempt)
            why = f": {event.text}" if event.text else ""
            echo(f"  (attempt {event.attempt}{why}; discarding the text above, starting over)", err=True)

    def close(self) -> None:
        self._end_text()


def follow_events(
    http: httpx.Client, url: str, headers: dict[str, str], deadline: float, live: LiveView
) -> tuple[str, dict[str, Any] | None]:
    """Read a request's events until it ends: ("result", view), ("confirm", None) when it waits for a person,
    ("timeout", None) at the deadline, or ("unavailable", None) when the stream cannot be read."""
    last_id: int | None = None
    failures = 0
    while time.monotonic() < deadline:
        request_headers = {**headers, "Accept": "text/event-stream"}
        if last_id is not None:
            # Resume after the last event shown: the server sends every later event exactly once.
            request_headers["Last-Event-ID"] = str(last_id)
        read = min(STREAM_READ_SECONDS, max(deadline - time.monotonic(), 0.1))
        try:
            with http.stream("GET", url, headers=request_headers, timeout=httpx.Timeout(10.0, read=read)) as resp:
                if resp.status_code != 200 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
                    return "unavailable", None
                for sse in iter_sse(resp.iter_lines()):
                    if sse.kind == "error":
                        break  # the server lost its stream: reconnect from the last id
                    failures = 0
                    if sse.id is not None:
                        last_id = sse.id
                    if sse.kind == "result":
                        live.close()
                        view: dict[str, Any] = json.loads(sse.data)
                        return "result", view
                    try:
                        event = StreamEvent.model_validate_json(sse.data)
                    except ValueError:
                        continue  # an event kind this version does not know
                    live.show(event)
                    if event.kind == "stage" and event.stage == Stage.CONFIRM:
                        live.close()
                        return "confirm", None
        except httpx.TransportError:
            pass  # dropped, reset or silent connection: resume below
        failures += 1
        if failures > STREAM_RECONNECTS:
            live.close()
            return "unavailable", None
        time.sleep(0.3)
    live.close()
    return "timeout", None


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question, in quotes")],
    as_: Annotated[str, typer.Option("--as", help="principal to ask as, e.g. alice")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="date relative periods refer to (YYYY-MM-DD)")] = None,
    idempotency_key: Annotated[
        str | None, typer.Option("--idempotency-key", help="reuse to fetch the same run")
    ] = None,
    url: Annotated[str | None, typer.Option(help="API base URL")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw result contract")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the answer")] = 60.0,
    stream: Annotated[
        bool, typer.Option(help="show stages and the answer's text live on stderr while the request runs")
    ] = True,
    token: Annotated[
        str | None, typer.Option(envvar="DOCKET_TOKEN", help="bearer token (default: mint a dev token locally)")
    ] = None,
) -> None:
    """Ask a question over REST and print the answer, facts, outcome, confidence and links.

    While the request runs, its stages and the answer's text are shown live on stderr (--no-stream: wait quietly).
    """
    settings = _settings()
    if as_of is not None:
        try:
            date.fromisoformat(as_of)
        except ValueError as exc:
            raise fail(f"--as-of {as_of!r} is not a date", "use YYYY-MM-DD, e.g. --as-of 2026-11-21", 2) from exc
    base = (url or settings.api_url).rstrip("/")
    headers = {"Authorization": f"Bearer {token or _mint(settings, as_)}"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    body: dict[str, Any] = {"question": question}
    if as_of:
        body["as_of"] = as_of
    deadline = time.monotonic() + timeout
    try:
        with httpx.Client(timeout=timeout + 10) as http:
            # Streaming: start without waiting, then follow the events; otherwise wait in the POST itself.
            wait = 0 if stream else min(timeout, 60)
            resp = http.post(f"{base}/v1/requests", params={"wait": wait}, json=body, headers=headers)
            streamed: dict[str, Any] | None = None
            if stream and resp.status_code == 202:
                links = resp.json()["links"]
                how, streamed = follow_events(http, links["events"], headers, deadline, LiveView())
                if how != "result":
                    # Waiting for a confirmation, out of time, or no stream: the request's view says which.
                    resp = http.get(links["self"], headers=headers)
            while streamed is None and resp.status_code == 202 and time.monotonic() < deadline:
                if resp.json().get("awaiting_confirmation"):
                    break
                time.sleep(0.5)
                resp = http.get(resp.json()["links"]["self"], headers=headers)
    except httpx.ConnectError as exc:
        raise fail(f"cannot reach the Docket API at {base}", "start it with `docket up` (or pass --url)") from exc
    if resp.status_code >= 400:
        problem = resp.json() if resp.headers.get("content-type", "").startswith("application/") else {}
        raise fail(
            f"{resp.status_code} {problem.get('title', resp.text[:200])}"
            + (f": {problem['detail']}" if problem.get("detail") else ""),
            problem.get("hint", ""),
            2,
        )
    view = streamed if streamed is not None else resp.json()
    running = view.get("status") == "running"
    echo(json.dumps(view, indent=2) if as_json else render_result(view))
    if running and view.get("awaiting_confirmation"):
        raise fail(
            "Docket is not sure it understood the question and waits for your confirmation",
            f"`docket confirm {view['request_id']} --as {as_}` (or --reject, or correct with --entities/--periods)",
            4,
        )
    if running:
        raise fail("the request is still running", f"check later: GET {view['links']['self']}", 3)
    if view.get("outcome") == "failed":
        raise typer.Exit(1)


@app.command()
def confirm(
    request_id: Annotated[str, typer.Argument(help="the request waiting for confirmation")],
    as_: Annotated[str, typer.Option("--as", help="the principal who asked")],
    reject: Annotated[bool, typer.Option(help="say the reading is wrong (ends as clarification)")] = False,
    entities: Annotated[str | None, typer.Option(help="corrected entities, comma-separated, e.g. MER-DE")] = None,
    periods: Annotated[str | None, typer.Option(help="corrected periods, e.g. 2026-03,2026-Q2")] = None,
    url: Annotated[str | None, typer.Option(help="API base URL")] = None,
) -> None:
    """Confirm (or correct, or reject) what Docket understood of a waiting request, then print the result."""
    settings = _settings()
    base = (url or settings.api_url).rstrip("/")
    headers = {"Authorization": f"Bearer {_mint(settings, as_)}"}
    body: dict[str, Any] = {"accept": not reject}
    if entities:
        body["entities"] = [e.strip() for e in entities.split(",") if e.strip()]
    if periods:
        body["periods"] = [p.strip() for p in periods.split(",") if p.strip()]
    try:
        with httpx.Client(timeout=70) as http:
            resp = http.post(f"{base}/v1/requests/{request_id}/confirm", json=body, headers=headers)
            deadline = time.monotonic() + 60
            while resp.status_code < 400 and resp.json().get("status") == "running" and time.monotonic() < deadline:
                time.sleep(0.3)
                resp = http.get(f"{base}/v1/requests/{request_id}", headers=headers)
    except httpx.ConnectError as exc:
        raise fail(f"cannot reach the Docket API at {base}", "start it with `docket up` (or pass --url)") from exc
    if resp.status_code >= 400:
        problem = resp.json() if resp.headers.get("content-type", "").startswith("application/") else {}
        raise fail(f"{resp.status_code} {problem.get('title', resp.text[:200])}", problem.get("hint", ""), 2)
    echo(render_result(resp.json()))


# ---------------------------------------------------------------- ingest


class IngestKind(StrEnum):
    ledger = "ledger"
    documents = "documents"
    principals = "principals"


@app.command(name="ingest")
def ingest_cmd(
    kind: Annotated[IngestKind, typer.Argument(help="what to load")],
    path: Annotated[
        Path | None, typer.Argument(help="ledger folder (CSV files), documents file/folder, principals.json")
    ] = None,
    as_: Annotated[
        str, typer.Option("--as", help="documents: the principal adding them (ingestion is authorized)")
    ] = "",
    delete: Annotated[list[str] | None, typer.Option(help="documents: delete this document id (repeatable)")] = None,
) -> None:
    """Load data idempotently: loading the same files twice changes nothing.

    Documents go through IngestWorkflow: staged, authorized for --as (documents.cedar), stored, then indexed.
    """
    settings = _settings()
    if kind is IngestKind.documents:
        _ingest_documents(settings, path, as_, delete or [])
        return
    if path is None or not path.exists():
        raise fail(f"{path} does not exist", "pass a path to a file or folder", 2)
    db.migrate(settings.db_url)
    engine = db.make_engine(settings.db_url)
    try:
        loader = ingest.load_ledger if kind is IngestKind.ledger else ingest.load_principals
        report = loader(engine, path)
    except ingest.IngestError as exc:
        raise fail(exc.message, exc.hint, 2) from exc
    finally:
        engine.dispose()
    echo(f"loaded {report.summary()}")


def _ingest_documents(settings: Settings, path: Path | None, as_: str, delete: list[str]) -> None:
    from docket.catalog import load_principal

    if not as_:
        raise fail("documents are added by a principal", "pass --as PRINCIPAL (a document manager, e.g. alice)", 2)
    if path is None and not delete:
        raise fail("nothing to do", "pass a documents file or folder, or --delete DOC_ID", 2)
    if path is not None and not path.exists():
        raise fail(f"{path} does not exist", "pass a path to a file or folder", 2)
    db.migrate(settings.db_url)
    engine = db.make_engine(settings.db_url)
    try:
        principal = load_principal(engine, as_)
        if principal is None:
            raise fail(f"unknown principal {as_!r}", "load principals with `docket ingest principals PATH`", 2)
        upload_ids: list[str] = []
        if path is not None:
            files = [(str(f), f.read_text(encoding="utf-8")) for f in ingest.document_files(path)]
            upload_ids = ingest.stage_uploads(engine, principal.tenant, principal.id, files)
    except (ingest.IngestError, UnicodeDecodeError) as exc:
        message = exc.message if isinstance(exc, ingest.IngestError) else f"not UTF-8 text: {exc}"
        hint = exc.hint if isinstance(exc, ingest.IngestError) else "save documents as UTF-8"
        raise fail(message, hint, 2) from exc
    finally:
        engine.dispose()
    code = asyncio.run(_run_ingest(settings, principal.tenant, principal.id, upload_ids, delete))
    exit_skipping_finalization(code)


async def _run_ingest(settings: Settings, tenant: str, principal_id: str, uploads: list[str], delete: list[str]) -> int:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ActivityError
    from temporalio.service import RPCError

    from activities import names
    from docket import temporal
    from docket.contracts import IndexDocumentsResult, IngestInput

    try:
        client = await asyncio.wait_for(temporal.connect(), timeout=5)
    except Exception:
        _unstage(settings, uploads)
        echo("error: Temporal is not reachable; nothing was stored", err=True)
        echo("  fix: start the stack with `docket up`, then run this again", err=True)
        return 1
    wid = f"ingest-{tenant}-{int(time.time() * 1000)}"
    try:
        handle = await client.start_workflow(
            names.INGEST_WORKFLOW,
            IngestInput(tenant=tenant, principal_id=principal_id, upload_ids=uploads, delete_doc_ids=delete),
            id=wid,
            task_queue=settings.task_queue,
            result_type=IndexDocumentsResult,
        )
    except RPCError as exc:
        _unstage(settings, uploads)
        echo(f"error: Temporal did not accept the ingestion ({exc}); nothing was stored", err=True)
        return 1
    try:
        result = await handle.result()
    except WorkflowFailureError as exc:
        cause = exc.cause.cause if isinstance(exc.cause, ActivityError) else exc.cause
        echo(f"error: ingestion failed: {getattr(cause, 'message', '') or cause}", err=True)
        echo(f"  see: {temporal.ui_link(settings.namespace_ui_url, wid, temporal.namespace())}", err=True)
        return 1
    if result.denied:
        echo(f"denied ({', '.join(result.policies)}): " + "; ".join(result.reasons), err=True)
        return 3
    echo(
        f"stored {len(result.changed)} new or changed, {len(result.unchanged)} unchanged, "
        f"deleted {len(result.deleted)}; indexed {result.chunks} chunks into {result.version or 'the active version'}"
    )
    if result.flagged_chunks:
        echo("instruction-like text neutralized in: " + ", ".join(result.flagged_chunks))
    echo(f"temporal_ui: {temporal.ui_link(settings.namespace_ui_url, wid, temporal.namespace())}")
    return 0


def _unstage(settings: Settings, upload_ids: list[str]) -> None:
    engine = db.make_engine(settings.db_url)
    ingest.discard_uploads(engine, upload_ids)
    engine.dispose()


# ---------------------------------------------------------------- replay / doctor


@app.command()
def replay(
    request_id: Annotated[str | None, typer.Argument(help="workflow id, e.g. req-…")] = None,
    file: Annotated[Path | None, typer.Option(help="replay a history JSON file instead")] = None,
) -> None:
    """Replay a run's history against the current code: exit 0 if it matches, 1 with the divergence if not."""
    from cli.replay import replay_file, replay_request

    if (request_id is None) == (file is None):
        raise fail("give a REQUEST_ID or --file", "e.g. `docket replay req-1234`", 2)
    ok, message = asyncio.run(replay_file(file) if file else replay_request(str(request_id)))
    echo(message, err=not ok)
    exit_skipping_finalization(0 if ok else 1)


@app.command()
def doctor() -> None:
    """Check each component and print the fix for what is missing."""
    from cli.doctor import run_doctor

    raise typer.Exit(asyncio.run(run_doctor(_settings())))


app.add_typer(train_app, name="train")
app.add_typer(policy_app, name="policy")
app.add_typer(audit_app, name="audit")
app.add_typer(eval_app, name="eval")
app.add_typer(index_app, name="index")
app.add_typer(prompts_app, name="prompts")
app.add_typer(budget_app, name="budget")
app.add_typer(bench_app, name="bench")
app.command(name="usage")(usage_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
