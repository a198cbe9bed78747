"""TokenStream: the generate activity's side of a request's event stream (docs/generation.md, Streaming).

The answer's prose goes to the workflow's `WorkflowStream` by signal while the model writes it, so
`GET /v1/requests/{id}/events` and `docket ask` show it live. Streaming is a convenience, never part of the
answer: every failure here is logged and swallowed, and outside a request workflow's activity the stream is a
no-op.

    async with TokenStream.open() as tokens:
        if attempt > 1:
            await tokens.reset(attempt, "the model was unavailable; retrying")
        async for delta in reply:
            tokens.token(delta)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection
from datetime import timedelta
from types import TracebackType

from temporalio import activity
from temporalio.contrib.workflow_streams import TopicHandle, WorkflowStreamClient

from activities import names
from docket.contracts import STREAM_TOPIC, StreamEvent

log = logging.getLogger("docket.llm.stream")

# Every flush is one signal, i.e. a workflow task and ~4 events in the request's history, and the stream's own
# round trip is about 100 ms. 0.5 s keeps the prose visibly live (two updates a second) while a 30-second answer
# costs ~60 signals instead of one per token. Measured with the local llama server (bench/generation.py), 0.2 s
# added ~60 ms more per request than 0.5 s (median of paired differences, 264 vs 203 ms over the plain
# pipeline) for no gain a reader notices. Tokens that arrive within one interval travel as one stream item.
BATCH_INTERVAL = timedelta(milliseconds=500)
# A failed flush is retried (deduplicated by the stream) for at most this long, then dropped: the prose is a
# preview, the result carries the answer.
MAX_RETRY = timedelta(seconds=30)
# The longest a reset or the last flush may hold up the generation.
RESET_FLUSH_SECONDS = 2.0
EXIT_FLUSH_SECONDS = 5.0
# Workflow types that host the stream (construct a WorkflowStream); any other parent gets a no-op stream, so no
# signal lands in a history that has no handler for it.
STREAMING_WORKFLOWS: frozenset[str] = frozenset({names.REQUEST_WORKFLOW})


class TokenStream:
    """Publishes `token` and `reset` events to the parent workflow's stream; a no-op when there is none."""

    def __init__(
        self, client: WorkflowStreamClient | None, attempt: int = 1, batch_interval: timedelta = BATCH_INTERVAL
    ) -> None:
        self._client = client
        self._topic: TopicHandle[StreamEvent] | None = (
            client.topic(STREAM_TOPIC, type=StreamEvent) if client is not None else None
        )
        self._attempt = attempt
        self._interval = batch_interval.total_seconds()
        self._text: list[str] = []
        self._pump: asyncio.Task[None] | None = None
        self._warned = False

    @classmethod
    def open(
        cls, *, batch_interval: timedelta = BATCH_INTERVAL, workflow_types: Collection[str] = STREAMING_WORKFLOWS
    ) -> TokenStream:
        """The stream of the workflow that scheduled the current activity (disabled outside one)."""
        if not activity.in_activity():
            return cls.disabled()
        info = activity.info()
        if info.workflow_id is None or info.workflow_type not in workflow_types:
            return cls.disabled()
        try:
            client = WorkflowStreamClient.from_within_activity(
                batch_interval=batch_interval, max_retry_duration=MAX_RETRY
            )
        except Exception as exc:  # streaming is optional; the generation is not
            log.warning("token streaming disabled for %s: %s", info.workflow_id, exc)
            return cls.disabled()
        return cls(client, attempt=info.attempt, batch_interval=batch_interval)

    @classmethod
    def disabled(cls) -> TokenStream:
        """A stream that publishes nothing (tests, scripts, workflows without a stream)."""
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self._client is not None

    async def __aenter__(self) -> TokenStream:
        if self._client is not None:
            self._pump = asyncio.create_task(self._run(), name="token-stream")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        # Whatever this attempt wrote goes out, even when it failed: the next attempt starts with a reset.
        self._take_text()
        await self._flush(EXIT_FLUSH_SECONDS)

    def token(self, text: str) -> None:
        """Queue a piece of the answer's prose; it is sent with the next flush (every BATCH_INTERVAL)."""
        if self._client is not None and text:
            self._text.append(text)

    async def reset(self, attempt: int, reason: str) -> None:
        """Tell clients to discard the partial text: attempt `attempt` (or a repair) starts over, for `reason`."""
        if self._topic is None:
            return
        self._take_text()  # the old attempt's last pieces stay before the reset, where they belong
        self._attempt = attempt
        self._topic.publish(StreamEvent(kind="reset", attempt=attempt, text=reason))
        # Sent at once: the retry or repair may take seconds, and the client should not show stale text meanwhile.
        await self._flush(RESET_FLUSH_SECONDS)

    def _take_text(self) -> None:
        """Move the queued prose into the publisher's buffer as one `token` item."""
        if self._topic is None or not self._text:
            return
        text, self._text = "".join(self._text), []
        # Tagged with the attempt so a client can drop late pieces of an attempt that timed out but still runs.
        self._topic.publish(StreamEvent(kind="token", text=text, attempt=self._attempt))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._take_text()
            await self._flush(None)

    async def _flush(self, seconds: float | None) -> None:
        if self._client is None:
            return
        try:
            # A batch that failed stays pending and is resent with the same sequence number, which the
            # workflow deduplicates: retries never show a client the same text twice.
            async with asyncio.timeout(seconds):
                await self._client.flush()
        except Exception as exc:  # never fail the generation because the preview could not be sent
            if not self._warned:
                self._warned = True
                log.warning("token streaming degraded (the answer is unaffected): %r", exc)
            else:
                log.debug("token stream flush failed: %r", exc)
