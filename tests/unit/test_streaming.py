"""The pieces of streaming that need no server: SSE parsing and the live view of `docket ask`, the gateway's
Last-Event-ID parsing and keep-alive merge, and TokenStream's no-op mode."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from activities.llm.stream import TokenStream
from api.problems import Problem
from api.routes.requests import _resume_from, _with_keepalive
from cli.main import LiveView, SseEvent, iter_sse
from docket.contracts import Outcome, Stage, StreamEvent


def test_sse_frames_are_parsed_and_comments_skipped() -> None:
    body = [
        "retry: 1000",
        "",
        ": keep-alive",
        "",
        "id: 0",
        "event: stage",
        'data: {"kind":"stage","stage":"classify"}',
        "",
        "event: stage",
        "data:first",
        "data: second",
        "",
        "id: 7",
        "data: plain",
        "",
        "id: 8",
        "event: token",  # cut off before its blank line: never dispatched
        'data: {"kind":"token"',
    ]
    assert list(iter_sse(body)) == [
        SseEvent(0, "stage", '{"kind":"stage","stage":"classify"}'),
        SseEvent(None, "stage", "first\nsecond"),
        SseEvent(7, "message", "plain"),
    ]


def test_live_view_shows_stages_prose_and_resets(capsys: pytest.CaptureFixture[str]) -> None:
    live = LiveView()
    live.show(StreamEvent(kind="stage", stage=Stage.CLASSIFY))
    live.show(StreamEvent(kind="stage", stage=Stage.GENERATE, timings={"classify": 4, "gather": 51}))
    live.show(StreamEvent(kind="token", text="Revenue was ", attempt=1))
    live.show(StreamEvent(kind="reset", attempt=2, text="the model call is being retried"))
    live.show(StreamEvent(kind="token", text="late piece of attempt 1", attempt=1))
    live.show(StreamEvent(kind="token", text="Revenue for MER-US ", attempt=2))
    live.show(StreamEvent(kind="token", text="was 11 USD.", attempt=2))
    live.show(StreamEvent(kind="stage", stage=Stage.SCORE, timings={"generate": 900}))
    live.show(StreamEvent(kind="result", outcome=Outcome.ANSWERED))
    live.close()
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout is kept for the answer
    assert captured.err.splitlines() == [
        "> classify",
        "> generate (gather 51 ms)",
        "Revenue was ",
        "  (attempt 2: the model call is being retried; discarding the text above, starting over)",
        "Revenue for MER-US was 11 USD.",
        "> score (generate 900 ms)",
    ]


def test_last_event_id_header_wins_and_bad_ids_are_problems() -> None:
    assert _resume_from(None, None) == 0
    assert _resume_from("4", None) == 5
    assert _resume_from(None, 9) == 10
    assert _resume_from(" 12 ", 3) == 13  # the header, newer than the URL an EventSource reconnects to
    assert _resume_from("", 3) == 4
    for bad in ("seven", "-1", "1.5"):
        with pytest.raises(Problem) as exc:
            _resume_from(bad, None)
        assert exc.value.status == 422 and exc.value.slug == "invalid-last-event-id" and exc.value.hint


async def test_keepalive_fills_silences_without_losing_items() -> None:
    async def slow() -> AsyncIterator[int]:
        for i in range(3):
            await asyncio.sleep(0.05 if i != 1 else 0.25)
            yield i

    got = [x async for x in _with_keepalive(slow(), 0.1)]
    assert [x for x in got if x is not None] == [0, 1, 2]
    assert got.count(None) >= 1 and got[0] == 0


async def test_keepalive_stops_the_pending_read_when_the_client_goes() -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()

    async def forever() -> AsyncIterator[int]:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        yield 0

    stream = _with_keepalive(forever(), 10)
    reader = asyncio.create_task(anext(stream))
    await started.wait()
    reader.cancel()  # what Starlette does when the client disconnects
    with pytest.raises(asyncio.CancelledError):
        await reader
    await asyncio.wait_for(cancelled.wait(), 1)


def test_stream_events_are_small_on_the_wire() -> None:
    token = StreamEvent(kind="token", text="Revenue ", attempt=2)
    assert token.model_dump_json(exclude_defaults=True) == '{"kind":"token","text":"Revenue ","attempt":2}'
    assert StreamEvent.model_validate_json('{"kind":"stage","stage":"gather"}').stage == Stage.GATHER


async def test_disabled_token_stream_does_nothing() -> None:
    async with TokenStream.disabled() as stream:
        assert not stream.enabled
        stream.token("x")
        await stream.reset(2, "why")
    async with TokenStream.open() as outside:  # not in an activity
        assert not outside.enabled
