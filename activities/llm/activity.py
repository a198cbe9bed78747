"""generate_answer: word the answer with the configured generator, within budget, streaming the prose."""

from __future__ import annotations

import asyncio
import logging
import time

from opentelemetry import trace
from sqlalchemy import Engine
from temporalio import activity

from activities import names
from activities.errors import to_application_error
from activities.llm.engine import GenerationHooks, Generator, render_template_answer
from activities.llm.stream import TokenStream
from docket import usage
from docket.contracts import GenerateInput, GenerateResult, Usage
from docket.errors import DocketError, ModelBadRequestError, ModelUnavailableError
from docket.settings import Settings

log = logging.getLogger("docket.llm")
tracer = trace.get_tracer("docket.llm")

# After this many attempts at an unavailable model, answer with the template rather than fail the request.
FALLBACK_AFTER_ATTEMPTS = 3
# Well inside the workflow's 15 s heartbeat timeout for generate_answer.
HEARTBEAT_SECONDS = 3.0
# Seconds kept back from the attempt's start-to-close timeout for the fallback, the usage read-back and the reply.
DEADLINE_MARGIN = 5.0


async def _heartbeat() -> None:
    """Heartbeat while the model works (a long prompt can take seconds before its first token streams): the
    workflow's heartbeat timeout then notices a dead worker in seconds. The SDK throttles the actual RPCs."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_SECONDS)


class BudgetExceededError(DocketError):
    """Today's model budget of the principal or tenant is used up: the request fails, nothing is retried."""

    type = "BudgetExceeded"


class _ActivityHooks(GenerationHooks):
    """Budget check before each model call, usage recorded after it, prose to the stream, heartbeats."""

    def __init__(
        self, owner: GenerateActivities, data: GenerateInput, info: activity.Info, tokens: TokenStream
    ) -> None:
        self.owner = owner
        self.data = data
        self.info = info
        self.tokens = tokens
        self.cost_usd = 0.0
        self.exchanges: list[tuple[str, str]] = []

    async def before_call(self, call: int, max_tokens: int) -> None:
        engine, settings = self.owner.engine, self.owner.settings
        if engine is None or settings is None:
            return
        check = await asyncio.to_thread(usage.check_budget, engine, settings, self.data.tenant, self.data.principal_id)
        if not check.allowed:
            raise BudgetExceededError(
                f"model budget exhausted: {check.reason}",
                hint=f"the daily budget resets in {check.retry_after_seconds} s; an admin can raise it "
                "with `docket budget set`",
            )

    async def after_call(self, call: int, model: str, spent: Usage) -> None:
        engine, settings = self.owner.engine, self.owner.settings
        if engine is None or settings is None:
            return
        # Keyed by (workflow, run, activity, attempt, call): a re-delivered record or a replay never counts twice;
        # a new Temporal attempt really called the model again, and is counted.
        record = usage.UsageRecord(
            workflow_id=self.info.workflow_id or "",
            run_id=self.info.workflow_run_id or "",
            activity_id=self.info.activity_id,
            attempt=self.info.attempt,
            call=call + 1,
            tenant=self.data.tenant,
            principal_id=self.data.principal_id,
            provider=getattr(self.owner.generator, "provider", self.owner.generator.name),
            model=model,
            prompt_tokens=spent.prompt_tokens,
            completion_tokens=spent.completion_tokens,
        )
        await asyncio.to_thread(usage.record_usage, engine, settings, record)
        self.cost_usd += usage.cost_usd(settings, model, spent.prompt_tokens, spent.completion_tokens)

    def token(self, text: str) -> None:
        self.tokens.token(text)

    async def reset(self, reason: str) -> None:
        await self.tokens.reset(self.info.attempt, reason)

    def alive(self) -> None:
        activity.heartbeat()

    def exchange(self, prompt: str, reply: str) -> None:
        if self.owner.settings is not None and self.owner.settings.trace_content:
            self.exchanges.append((prompt, reply))


class GenerateActivities:
    def __init__(self, generator: Generator, engine: Engine | None = None, settings: Settings | None = None) -> None:
        self.generator = generator
        # Without a database (unit tests, benchmarks) budgets are neither checked nor recorded.
        self.engine = engine
        self.settings = settings

    async def _spent(self, info: activity.Info) -> usage.RequestUsage:
        assert self.engine is not None
        return await asyncio.to_thread(
            usage.request_usage, self.engine, info.workflow_id or "", info.workflow_run_id or ""
        )

    def _fallback(self, data: GenerateInput, limitation: str) -> GenerateResult:
        result = render_template_answer(data, getattr(self.generator, "pins", None))
        # Not validated: the asker gets the figures in the template's wording, and a `qualified` outcome.
        return result.model_copy(update={"validated": False, "limitations": [limitation]})

    @activity.defn(name=names.GENERATE)
    async def generate_answer(self, data: GenerateInput) -> GenerateResult:
        """Word the answer from masked facts and safe context."""
        info = activity.info()
        with tracer.start_as_current_span("docket.generate") as span:
            async with TokenStream.open() if data.stream_tokens else TokenStream.disabled() as tokens:
                hooks = _ActivityHooks(self, data, info, tokens)
                hooks.watched = data.stream_tokens
                if info.start_to_close_timeout:
                    # Finish (or give up on the model) before Temporal's own timeout cuts the attempt off: a
                    # timed-out attempt could never reach the template fallback of the last attempt.
                    budget = info.start_to_close_timeout.total_seconds()
                    hooks.deadline = time.monotonic() + budget - min(DEADLINE_MARGIN, budget / 10)
                if self.engine is not None and info.attempt > 1:
                    earlier = await self._spent(info)
                    hooks.earlier_tokens = earlier.tokens
                heartbeat = asyncio.create_task(_heartbeat())
                try:
                    result = await self._generate(data, info, tokens, hooks)
                finally:
                    heartbeat.cancel()
            if self.engine is not None and (result.calls or info.attempt > 1):
                # What the request spent over all its attempts, read back from the call ledger: the result and
                # GET /v1/usage always agree, and a killed attempt's recorded calls are not forgotten. A first
                # attempt that called no model (the template) has recorded nothing: no query on that path.
                spent = await self._spent(info)
                total = Usage(
                    prompt_tokens=spent.prompt_tokens,
                    completion_tokens=spent.completion_tokens,
                    cost_usd=round(spent.cost_usd, 6),
                )
            else:
                total = result.usage.model_copy(update={"cost_usd": round(hooks.cost_usd, 6)})
            result = result.model_copy(update={"usage": total})
            # Who answered and what it cost, never what was said: prompts and answers hold governed figures and
            # traces often leave that boundary. DOCKET_TRACE_CONTENT=true adds the text for debugging.
            span.set_attributes(
                {
                    "docket.generator": result.generator,
                    "docket.model": result.model,
                    "docket.provider": result.provider,
                    "docket.calls": result.calls,
                    "docket.repairs": result.repairs,
                    "docket.validated": result.validated,
                    "docket.prompt": f"{result.prompt.id}.v{result.prompt.version}",
                    "docket.prompt_sha256": result.prompt.sha256,
                    "docket.tokens.prompt": result.usage.prompt_tokens,
                    "docket.tokens.completion": result.usage.completion_tokens,
                    "docket.cost_usd": result.usage.cost_usd,
                    "gen_ai.request.model": result.model,
                    "gen_ai.usage.input_tokens": result.usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": result.usage.completion_tokens,
                    "docket.prompt.id": result.prompt.id,
                    "docket.prompt.version": result.prompt.version,
                }
            )
            for n, (prompt, reply) in enumerate(hooks.exchanges):
                span.add_event("docket.model_call", {"call": n + 1, "prompt": prompt, "reply": reply})
            if self.settings is not None and self.settings.trace_content:
                span.set_attribute("docket.answer", result.answer)
        return result

    async def _generate(
        self, data: GenerateInput, info: activity.Info, tokens: TokenStream, hooks: _ActivityHooks
    ) -> GenerateResult:
        if info.attempt > 1:
            # The client may have seen part of the previous attempt's prose: tell it to start over.
            await tokens.reset(info.attempt, "the model call is being retried")
        try:
            return await self.generator.generate(data, hooks)
        except ModelUnavailableError as exc:
            if info.attempt < FALLBACK_AFTER_ATTEMPTS:
                raise to_application_error(exc) from exc
            await tokens.reset(info.attempt, "the model is unavailable; showing the deterministic narrative")
            return self._fallback(data, f"Model unavailable ({exc.message}); showing the deterministic narrative.")
        except ModelBadRequestError as exc:
            # A wrong key, unknown model or an oversized prompt will not fix itself on retry; the request still
            # deserves its figures, so answer with the template and say why.
            await tokens.reset(info.attempt, "the model rejected the request; showing the deterministic narrative")
            return self._fallback(
                data, f"The model rejected the request ({exc.message}); showing the deterministic narrative."
            )
        except DocketError as exc:
            raise to_application_error(exc) from exc
