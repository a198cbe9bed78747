"""GET /v1/requests/{id}/view: the status page of one request, its content, its authorization, its escaping, and
what headless Chromium renders of it (a screenshot, and the DOM Chromium built).

Expected figures are recomputed from the CSV by tests/support/oracle.py, never copied from the product.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import os
import re
import shutil
import socket
import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from activities import names
from api.main import create_app
from api.routes.view import CONTENT_SECURITY_POLICY, render
from api.schemas import RequestView
from docket.contracts import RequestInput
from tests.conftest import DEMO, Stack
from tests.support.oracle import LedgerOracle

pytestmark = pytest.mark.integration
ORACLE = LedgerOracle(DEMO)
STAGES = ["classify", "confirm", "authorize", "plan", "gather", "generate", "score", "record"]
COGS_DE = "Show me COGS for MER-DE in March 2026"
OPEX_CA = "What were total operating costs for MER-CA in May 2026?"
PAYROLL_US = "What was payroll for MER-US in January 2026?"


async def ask(stack: Stack, principal: str, question: str, tenant: str = "meridian") -> dict[str, Any]:
    resp = await stack.http.post(
        "/v1/requests",
        params={"wait": 30},
        json={"question": question, "as_of": "2026-11-21"},
        headers=stack.auth(principal, tenant),
    )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    assert body["status"] == "completed"
    return body


async def page(stack: Stack, body: dict[str, Any], principal: str, tenant: str = "meridian") -> str:
    resp = await stack.http.get(f"/v1/requests/{body['request_id']}/view", headers=stack.auth(principal, tenant))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/html")
    return resp.text


def section(doc: str, name: str) -> str:
    """The HTML of one <section id=name> of the page."""
    m = re.search(rf'<section id="{name}">(.*?)</section>', doc, re.S)
    assert m, f"no section {name}"
    return m.group(1)


def text(fragment: str) -> str:
    """Visible text of an HTML fragment, whitespace collapsed, entities decoded."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


# ---------------------------------------------------------------- content, over the ASGI client


async def test_page_shows_facts_decisions_timeline_and_links(stack: Stack) -> None:
    body = await ask(stack, "bob", COGS_DE)
    assert body["links"]["view"] == f"http://docket.test/v1/requests/{body['request_id']}/view"
    resp = await stack.http.get(body["links"]["view"], headers=stack.auth("bob"))
    assert resp.status_code == 200
    assert resp.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:;")
    assert resp.headers["referrer-policy"] == "no-referrer"
    assert resp.headers["cache-control"] == "no-store"
    doc = resp.text
    assert "<script" not in doc.lower() and "<link" not in doc.lower() and "src=" not in doc

    # Header: the question, who asked, the outcome and the confidence with its components.
    assert COGS_DE in text(doc)
    assert "bob" in doc and "meridian" in doc and "2026-11-21" in doc
    assert re.search(r'<span class="badge answered" id="outcome">Answered</span>', doc)
    confidence = body["confidence"]
    assert f"{confidence['score']:.2f}" in doc and confidence["band"] in doc
    for name in confidence["components"]:
        assert f'<span class="name">{name}</span>' in doc

    # Facts: the oracle's figure, with thousands separators, and each fact's columns.
    expected = ORACLE.total("meridian", ["MER-DE"], "5.2", ["2026-03"])
    facts = text(section(doc, "facts"))
    assert f"{expected:,}" in facts
    (fact,) = body["facts"]
    for column in ("label", "unit", "entity", "account", "period", "source"):
        assert fact[column] in facts, column
    assert " ".join(body["answer"].split()) in text(section(doc, "answer-section"))

    # Decisions: how the question was read and which policies decided.
    classification = text(section(doc, "classification"))
    cls = body["classification"]
    for value in (cls["intent"], cls["complexity"], cls["method"], f"{cls['confidence']:.2f}", cls["version"]):
        assert value in classification
    authorization = text(section(doc, "authorization"))
    assert "allowed" in authorization and body["authorization"]["policies"]
    for policy in body["authorization"]["policies"]:
        assert policy in authorization
    assert body["authorization"]["policy_version"] in authorization

    # Citations link to GET /v1/documents/{doc_id} on this gateway.
    cites = section(doc, "citations")
    assert '<a href="http://docket.test/v1/documents/doc-close-de-2026-03">doc-close-de-2026-03</a>' in cites

    # The timeline: every stage in the workflow's order, with its milliseconds as a proportional bar.
    timeline = section(doc, "timeline")
    shown = re.findall(r'<span class="stage (\w+)">(\w+)</span>', timeline)
    assert [name for _, name in shown] == STAGES
    for state, name in shown:
        assert state == ("done" if name in body["timings"] else "skipped"), name
    for name in STAGES:
        if name in body["timings"]:
            assert f"{body['timings'][name]:,} ms" in text(timeline)
    assert re.search(r'class="done" style="margin-left:[\d.]+%;width:[\d.]+%"', timeline)

    # Generation, usage and links.
    generation = text(section(doc, "generation"))
    assert body["prompt"]["sha256"] in generation and body["model"] in generation and body["generator"] in generation
    assert f"{body['prompt']['id']} v{body['prompt']['version']}" in generation
    usage = text(section(doc, "usage"))
    assert "Prompt tokens 0" in usage and "Completion tokens 0" in usage and "$0.000000" in usage
    links = section(doc, "links")
    for name in ("self", "events", "temporal_ui", "view"):
        assert f'href="{body["links"][name]}"' in links


async def test_masked_total_names_what_was_left_out(stack: Stack) -> None:
    body = await ask(stack, "carol", OPEX_CA)
    doc = await page(stack, body, "carol")
    expected = ORACLE.total("meridian", ["MER-CA"], "5", ["2026-05"], ["5.1"])
    payroll = ORACLE.total("meridian", ["MER-CA"], "5.1", ["2026-05"])
    facts = text(section(doc, "facts"))
    assert f"{expected:,}" in facts
    assert body["facts"][0]["label"] in facts and "payroll" in body["facts"][0]["label"]
    assert f"{payroll:,}" not in doc and str(payroll) not in doc
    authorization = section(doc, "authorization")
    masked = body["authorization"]["masked"]
    assert [m["account"] for m in masked] == ["5.1"]
    assert f'<td class="mono nowrap">5.1</td><td>{html.escape(masked[0]["label"])}</td>' in authorization
    for policy in {m["policy"] for m in masked} | set(body["authorization"]["policies"]):
        assert policy in authorization
    assert any("payroll" in lim.lower() for lim in body["limitations"])
    limitations = text(section(doc, "limitations"))
    for lim in body["limitations"]:
        assert lim in limitations


async def test_percentages_show_one_decimal(stack: Stack) -> None:
    body = await ask(stack, "bob", "What was the gross margin for MER-DE in March 2026?")
    pct = [f for f in body["facts"] if f["unit"] == "%"]
    assert pct, body["facts"]
    revenue = ORACLE.total("meridian", ["MER-DE"], "4", ["2026-03"])
    cogs = ORACLE.total("meridian", ["MER-DE"], "5.2", ["2026-03"])
    facts = section(await page(stack, body, "bob"), "facts")
    assert f'<td class="num value">{(revenue - cogs) / revenue * 100:,.1f}</td>' in facts
    assert f'<td class="num value">{revenue:,}</td>' in facts


async def test_only_the_asker_sees_the_page_and_the_token_may_be_a_query_parameter(stack: Stack) -> None:
    body = await ask(stack, "bob", COGS_DE)
    url = f"/v1/requests/{body['request_id']}/view"
    # Browsers cannot set a header on a link: this route (only) takes ?token=.
    resp = await stack.http.get(url, params={"token": stack.token("bob")})
    assert resp.status_code == 200 and "doc-close-de-2026-03" in resp.text
    # Another principal gets the same 404 as for an id that does not exist, by header or by query.
    for kwargs in ({"headers": stack.auth("alice")}, {"params": {"token": stack.token("alice")}}):
        other = await stack.http.get(url, **kwargs)  # type: ignore[arg-type]
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/problem+json")
        assert other.json()["type"].endswith("/request-not-found")
    missing = await stack.http.get("/v1/requests/req-nope/view", headers=stack.auth("bob"))
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/problem+json")
    # No token, or a bad one, is a 401 problem.
    for kwargs in ({}, {"params": {"token": "not-a-token"}}):
        anon = await stack.http.get(url, **kwargs)  # type: ignore[arg-type]
        assert anon.status_code == 401
        assert anon.headers["content-type"].startswith("application/problem+json")
    # The header wins over the query: alice's header with bob's token in the URL is alice.
    both = await stack.http.get(url, headers=stack.auth("alice"), params={"token": stack.token("bob")})
    assert both.status_code == 404
    # The JSON API stays header-only.
    json_api = await stack.http.get(f"/v1/requests/{body['request_id']}", params={"token": stack.token("bob")})
    assert json_api.status_code == 401


async def test_untrusted_text_is_escaped_while_running_and_once_answered(stack: Stack) -> None:
    """Markup in the question is shown as text. This question's reading is uncertain, so the request waits in the
    confirm stage: a running request, whose page shows the current stage and what is to be confirmed."""
    question = 'What was revenue for MER-US in October 2026? <script>alert(1)</script> "><img src=x onerror=alert(2)>'
    resp = await stack.http.post(
        "/v1/requests", json={"question": question, "as_of": "2026-11-21"}, headers=stack.auth("alice")
    )
    assert resp.status_code in (200, 202), resp.text
    wid = resp.json()["request_id"]
    for _ in range(100):
        view = (await stack.http.get(f"/v1/requests/{wid}", headers=stack.auth("alice"))).json()
        if view["status"] != "running" or view["stage"] == "confirm":
            break
        await asyncio.sleep(0.1)
    pages = []
    if view["status"] == "running":
        doc = await page(stack, view, "alice")
        assert '<span class="badge running" id="outcome">Running · confirm</span>' in doc
        states = re.findall(r'<span class="stage (\w+)">(\w+)</span>', section(doc, "timeline"))
        assert ("done", "classify") in states and ("current", "confirm") in states and ("pending", "record") in states
        assert "Waiting for a confirmation of what Docket understood" in doc and "MER-US" in doc
        assert f'href="{view["links"]["confirm"]}"' in doc
        pages.append(doc)
        confirmed = await stack.http.post(
            f"/v1/requests/{wid}/confirm", json={"accept": True}, headers=stack.auth("alice")
        )
        assert confirmed.status_code == 200, confirmed.text
    await stack.client.get_workflow_handle(wid).result()
    done = await page(stack, {"request_id": wid}, "alice")
    assert '<span class="badge running"' not in done
    pages.append(done)
    for doc in pages:
        assert "<script" not in doc and "<img" not in doc
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
        assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in doc
        assert question in text(section(doc, "head-section"))


def view_of(**fields: Any) -> RequestView:
    base: dict[str, Any] = {"request_id": "req-x", "tenant": "meridian", "principal_id": "bob", "question": "q"}
    return RequestView.model_validate(base | fields)


def test_untrusted_titles_answers_and_links_are_escaped() -> None:
    doc = render(
        view_of(
            status="completed",
            outcome="answered",
            as_of=date(2026, 11, 21),
            answer="</p><script>alert(1)</script>",
            citations=[
                {"doc_id": "d<1>", "title": "<b onmouseover=alert(3)>T</b>", "chunk_id": "c", "url": "javascript:x()"}
            ],
            facts=[
                {
                    "label": "<i>x</i>",
                    "value": 1234.5,
                    "unit": "USD",
                    "entity": "E",
                    "account": "4",
                    "period": "2026-03",
                    "source": "s",
                }
            ],
            links={"self": "javascript:alert(4)"},
        )
    )
    assert "<script" not in doc and "<b onmouseover" not in doc and "<i>x</i>" not in doc
    assert "&lt;/p&gt;&lt;script&gt;" in doc and "&lt;b onmouseover=alert(3)&gt;T&lt;/b&gt;" in doc
    assert 'href="javascript' not in doc  # non-http links are shown as text, never as hrefs
    assert "1,234.50" in doc


# ---------------------------------------------------------------- every outcome, and a request still running


async def test_denied_and_clarification_pages(stack: Stack) -> None:
    denied = await ask(stack, "carol", PAYROLL_US)
    assert denied["outcome"] == "denied"
    doc = await page(stack, denied, "carol")
    assert '<span class="badge denied" id="outcome">Denied</span>' in doc
    authorization = text(section(doc, "authorization"))
    assert "denied" in authorization and "POL-001" in authorization
    for reason in denied["authorization"]["reasons"]:
        assert reason in authorization
    assert "No figures." in text(section(doc, "facts"))
    assert "the policy decision is the answer" in doc

    unclear = await ask(stack, "ken", "What does the Meridian board memo say?", tenant="globex")
    assert unclear["outcome"] == "clarification_required" and unclear["clarifying_questions"]
    doc = await page(stack, unclear, "ken", tenant="globex")
    assert '<span class="badge clarification_required" id="outcome">Clarification required</span>' in doc
    answer = text(section(doc, "answer-section"))
    for q in unclear["clarifying_questions"]:
        assert q in answer
    assert "Meridian" not in text(section(doc, "citations"))


async def test_running_then_failed_request(stack: Stack) -> None:
    """A request no worker has picked up is running (queued); once terminated, it failed."""
    wid = f"req-{uuid.uuid4().hex}"
    question = "What was revenue for MER-DE in March 2026?"
    handle = await stack.client.start_workflow(
        names.REQUEST_WORKFLOW,
        RequestInput(tenant="meridian", principal_id="bob", question=question, as_of=date(2026, 11, 21)),
        id=wid,
        task_queue=f"nobody-{uuid.uuid4().hex[:8]}",
        memo={"principal": "bob", "tenant": "meridian", "question": question, "as_of": "2026-11-21"},
    )
    try:
        running = await stack.http.get(f"/v1/requests/{wid}/view", params={"token": stack.token("bob")})
        assert running.status_code == 200
        doc = running.text
        assert '<span class="badge running" id="outcome">Running · queued</span>' in doc
        assert "The request is still running (stage queued)" in doc
        shown = re.findall(r'<span class="stage (\w+)">(\w+)</span>', section(doc, "timeline"))
        assert shown == [("pending", s) for s in STAGES]
    finally:
        await handle.terminate("test: no worker")
    doc = (await stack.http.get(f"/v1/requests/{wid}/view", headers=stack.auth("bob"))).text
    assert '<span class="badge failed" id="outcome">Failed</span>' in doc
    assert "the workflow ended as terminated" in text(section(doc, "limitations"))


def test_a_running_request_inside_a_workflow_task_shows_no_stage() -> None:
    """GET answers stage null while a worker is inside a workflow task (the server would hold a query until it
    completes): the page says the request is in progress, not queued."""
    doc = render(view_of(status="running", stage=None, links={"self": "http://h/v1/requests/req-x"}))
    assert '<span class="badge running" id="outcome">Running · in progress</span>' in doc
    assert "The request is still running (stage in progress)" in doc and "queued" not in doc


def test_a_running_request_shows_its_current_stage() -> None:
    doc = render(
        view_of(
            status="running",
            stage="gather",
            timings={"classify": 12, "authorize": 5, "plan": 3},
            links={"self": "http://h/v1/requests/req-x", "confirm": "http://h/v1/requests/req-x/confirm"},
        )
    )
    timeline = section(doc, "timeline")
    states = dict((name, state) for state, name in re.findall(r'<span class="stage (\w+)">(\w+)</span>', timeline))
    assert states == {
        "classify": "done",
        "confirm": "skipped",
        "authorize": "done",
        "plan": "done",
        "gather": "current",
        "generate": "pending",
        "score": "pending",
        "record": "pending",
    }
    assert "Running · gather" in doc and "running…" in timeline and "12 ms" in timeline
    assert "scored when the request finishes" in doc
    assert 'href="http://h/v1/requests/req-x/confirm"' in doc


# ---------------------------------------------------------------- headless Chromium


@pytest.fixture
def chromium_binary() -> str:
    for name in (os.environ.get("DOCKET_CHROMIUM", ""), "chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name) if name else None
        if found:
            return found
    reason = "headless Chromium is not installed (apt-get install -y chromium, or set DOCKET_CHROMIUM)"
    if os.environ.get("DOCKET_REQUIRE_CHROMIUM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


class InLoopServer(uvicorn.Server):
    """uvicorn in the test's event loop (the Temporal client lives there), leaving pytest's signal handlers be."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def served(stack: Stack) -> AsyncIterator[str]:
    """The stack's API (same settings, database and Temporal client) on a free port of 127.0.0.1."""
    app = create_app(stack.settings, engine=stack.engine, client=stack.client)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = InLoopServer(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    )
    async with app.router.lifespan_context(app):
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            server.should_exit = True
            await task
            sock.close()


async def chromium(binary: str, profile: Path, *args: str) -> bytes:
    """Run headless Chromium to the end (in a subprocess, so the in-loop server keeps serving); its stdout."""
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--hide-scrollbars",
        # Containers often give /dev/shm 64 MB, too little for Chromium's shared memory: use /tmp instead.
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("headless Chromium did not finish within 120 s")
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out


def png_rows(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and raw scanlines (filter byte included) of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + width * channels
    assert len(raw) == stride * height
    return width, height, [raw[i * stride : (i + 1) * stride] for i in range(height)]


async def test_chromium_screenshot_shows_the_facts(chromium_binary: str, stack: Stack, tmp_path: Path) -> None:
    binary = chromium_binary
    cogs = await ask(stack, "bob", COGS_DE)
    expected = ORACLE.total("meridian", ["MER-DE"], "5.2", ["2026-03"])
    shot = tmp_path / "view.png"
    async with served(stack) as base:
        url = f"{base}/v1/requests/{cogs['request_id']}/view?token={stack.token('bob')}"
        await chromium(binary, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", url)
        dom = (await chromium(binary, tmp_path / "profile", "--dump-dom", url)).decode()

    # The screenshot: a real page of the requested size, not a blank or an error page.
    assert shot.is_file() and shot.stat().st_size > 30_000, shot.stat().st_size if shot.exists() else "missing"
    width, height, rows = png_rows(shot.read_bytes())
    assert (width, height) == (1280, 2000)
    assert len(set(rows)) > 200, "the screenshot is nearly uniform"
    if keep := os.environ.get("DOCKET_SCREENSHOT_DIR"):
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "status-page.png")

    # What Chromium rendered: the DOM it built from the page carries the facts of the request.
    assert "Show me COGS for MER-DE in March 2026" in dom
    (fact,) = cogs["facts"]
    facts = text(section(dom, "facts"))
    assert f"{expected:,}" in facts
    for column in ("label", "unit", "entity", "account", "period"):
        assert fact[column] in facts, column
    assert "Answered" in dom
    for policy in cogs["authorization"]["policies"]:
        assert policy in text(section(dom, "authorization"))
    assert "doc-close-de-2026-03" in text(section(dom, "citations"))
    assert [n for _, n in re.findall(r'<span class="stage (\w+)">(\w+)</span>', section(dom, "timeline"))] == STAGES
    assert "<script" not in dom
