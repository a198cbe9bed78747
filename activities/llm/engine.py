"""Generation: the model words the answer; it never computes a figure.

Two generators for now, chosen by settings and recorded per result:
- `template` (no model configured): a deterministic narrative rendered from prompts/narrative.v1.j2;
- `openai`: any OpenAI-compatible server; its answer is validated (every number it states must be one of
  the facts) and replaced by the template narrative, labelled as such, when validation fails.
Temporal owns retries, so the client has max_retries=0 and errors are classified here.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from opentelemetry import trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activities.llm.redact import redact
from activities.retrieve.safety import INJECTION
from docket.calendar import MONTH_NAMES
from docket.contracts import Fact, GenerateInput, GenerateResult, Usage
from docket.errors import ModelBadRequestError, ModelUnavailableError
from prompts import registry

TEMPLATE_MODEL = "none (template)"
_tracer = trace.get_tracer("docket.llm")
# Longer than any two-or-three-sentence answer; a reply this long is rambling, not answering.
MAX_ANSWER_CHARS = 1200
# Below this many tokens of room no valid JSON answer fits: stop rather than spend tokens on a truncated reply.
MIN_OUTPUT_TOKENS = 48
# A repair started with less time than this left in the attempt would likely be cut off by Temporal's timeout.
MIN_CALL_SECONDS = 10.0


def period_name(label: str) -> str:
    """'2026-10' → 'October 2026'; quarters, halves and years stay as labelled; ranges read "May 2026 through …"."""
    first, sep, last = label.partition("..")
    if sep:
        return f"{period_name(first)} through {period_name(last)}"
    m = re.fullmatch(r"(\d{4})-(\d{2})", label)
    if m:
        return f"{MONTH_NAMES[int(m[2]) - 1]} {m[1]}"
    m = re.fullmatch(r"(\d{4})-(Q\d|H\d|YTD)", label)
    if m:
        return f"{m[2]} {m[1]}"
    return label


def _fact_view(f: Fact) -> dict[str, Any]:
    metric = f.label.removesuffix(f" {f.entity} {f.period}")
    entity_name = "the group" if f.entity == "group" else f.entity
    # Abbreviations keep their capitals ("COGS"); names get a capital first letter ("Revenue").
    title = re.sub(r"\b(cogs|opex)\b", lambda m: m.group(1).upper(), metric)
    # Labels are terse ("revenue yoy growth pct"); the narrative spells them out (the unit shows the %).
    title = re.sub(r" pct\b", "", title)
    for short, words in (("yoy", "year-over-year"), ("qoq", "quarter-over-quarter"), ("mom", "month-over-month")):
        title = re.sub(rf"\b{short}\b", words, title)
    title = title[:1].upper() + title[1:]
    return {
        "metric": metric,
        "metric_title": title,
        "entity_name": entity_name,
        "period_name": period_name(f.period),
        "value": f.value,
        "unit": f.unit,
        "label": f.label,
        "source": f.source,
        "shown": shown(f.value, f.unit),
        "detail": f.detail,
    }


def shown(value: float | int, unit: str) -> str:
    """A figure as the narrative writes it: percentages to one decimal, money with thousands separators."""
    if unit == "%":
        return f"{float(value):.1f}%"
    if unit == "pp":
        return f"{float(value):+.1f} percentage points"
    if unit.endswith("/month"):
        return f"{int(value):,} {unit.removesuffix('/month')} per month"
    return f"{int(value):,} {unit}"


class Generator(Protocol):
    name: str

    async def generate(self, data: GenerateInput, hooks: GenerationHooks | None = None) -> GenerateResult: ...


def render_template_answer(data: GenerateInput, pins: Mapping[str, int] | None = None) -> GenerateResult:
    # registry.DEFAULT_VERSIONS unless DOCKET_PROMPT_PINS says otherwise: a new version is opted into.
    prompt = registry.resolve("narrative", tenant=data.tenant, intent=data.intent.value, pins=pins)
    # An analysis keeps the plan's order (what was asked first); plain figures read best largest first.
    analysis = any(f.kind not in ("", "sum") for f in data.facts)
    views = [_fact_view(f) for f in data.facts]
    facts = views if analysis and "analysis" in prompt.variables else sorted(views, key=lambda v: -float(v["value"]))
    context: dict[str, Any] = {
        "facts": facts,
        "same_metric": len({f["metric"] for f in facts}) == 1,
        "same_period": len({f["period_name"] for f in facts}) == 1,
        "missing": [m.key for m in data.missing],
        "masked": [m.reason for m in data.masked],
        "passages": data.passages[:2],
    }
    if "analysis" in prompt.variables:  # narrative v1 (still pinnable) predates analyses
        context["analysis"] = analysis
    answer = prompt.render(**context)
    return GenerateResult(answer=answer, generator="template", model=TEMPLATE_MODEL, prompt=prompt.ref, validated=True)


@dataclass
class TemplateGenerator:
    pins: Mapping[str, int] = field(default_factory=dict)
    name: str = "template"

    async def generate(self, data: GenerateInput, hooks: GenerationHooks | None = None) -> GenerateResult:
        return render_template_answer(data, self.pins)


# A number as written: digit runs joined by "," or "." (11,765,834 · 5.000.000 · 11.8) or by a space before a group
# of exactly three digits (5 000 000). A hyphen is never a sign here: "2026-10" is a year and a month.
_NUMBER = re.compile(r"\d+(?:(?:[,.]|[ \u00a0\u202f](?=\d{3}(?!\d)))\d+)*")
_SCALE_AFTER = re.compile(r"\s*(?:%|percent|k\b|m\b|mn\b|bn\b|million|billion|thousand|usd|eur|gbp|jpy|\$|€|£|¥)", re.I)
_CURRENCY_BEFORE = re.compile(r"(?:\$|€|£|¥|usd|eur|gbp|jpy)\s*$", re.I)


def _readings(raw: str) -> set[float]:
    """Every value the written number can mean: 1,250.5 (comma thousands) and 1.250,5 (dot thousands)."""
    values: set[float] = set()
    compact = raw.replace(" ", "").replace("\u00a0", "").replace("\u202f", "")
    for thousands, decimal in ((",", "."), (".", ",")):
        head, sep, tail = compact.rpartition(decimal)
        whole, frac = (head, tail) if sep else (compact, "")
        groups = whole.split(thousands)
        # Thousands groups are three digits each after the first: "1,25" is no reading with "," as thousands.
        if any(len(g) != 3 for g in groups[1:]) or not groups[0] or not all(g.isdigit() for g in groups):
            continue
        if frac and not frac.isdigit():
            continue
        values.add(float("".join(groups) + ("." + frac if frac else "")))
    return values


def ungrounded_numbers(answer: str, facts: list[Fact]) -> list[str]:
    """Numbers in the answer that are not a fact value, as written.

    Allowed without being a fact: a plain year (1900 to 2100) or a small count or day (≤ 31), written as bare digits,
    with no currency before it and no scale, percent or currency after it ("3 entities", "day 11", "2026-10";
    not "3 million", "$25", "2,040", "25%"). Each number is judged at its own position in the text.
    """
    magnitudes = {abs(float(f.value)) for f in facts}
    bad = []
    for m in _NUMBER.finditer(answer):
        raw = m.group()
        readings = _readings(raw)
        if any(abs(v) in magnitudes for v in readings):
            continue
        plain = raw.isdigit()
        scaled = _SCALE_AFTER.match(answer, m.end()) is not None
        currency = _CURRENCY_BEFORE.search(answer[max(0, m.start() - 5) : m.start()]) is not None
        if plain and not scaled and not currency:
            value = int(raw)
            if 1900 <= value <= 2100 or value <= 31:
                continue
        bad.append(raw)
    return bad


def retry_after(headers: Any) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), or retry-after-ms; None if absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, (when - datetime.now(UTC)).total_seconds())


class ModelAnswer(BaseModel):
    """What the model must return (the JSON schema sent with every call is built from this, with the ids)."""

    model_config = ConfigDict(extra="forbid")

    answer: str = Field(min_length=1, max_length=MAX_ANSWER_CHARS)
    fact_ids: list[str]
    doc_ids: list[str]
    confidence: float = Field(ge=0.0, le=1.0)


def answer_schema(fact_ids: list[str], doc_ids: list[str]) -> dict[str, Any]:
    """JSON schema for one answer. `answer` comes first so a streamed reply shows the prose before the ids;
    the ids are enumerated, so a server that enforces the schema cannot even spell an id it was not given."""

    def ids(values: list[str]) -> dict[str, Any]:
        if not values:
            return {"type": "array", "items": {"type": "string"}, "maxItems": 0}
        return {"type": "array", "items": {"type": "string", "enum": values}}

    return {
        "type": "object",
        "properties": {
            # No minLength/maxLength: not every strict-mode server accepts them; pydantic enforces both.
            "answer": {"type": "string"},
            "fact_ids": ids(fact_ids),
            "doc_ids": ids(doc_ids),
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["answer", "fact_ids", "doc_ids", "confidence"],
        "additionalProperties": False,
    }


_WORD = re.compile(r"[a-z][a-z0-9-]{3,}")
# Words too common to show that an answer is about the question.
_STOP = frozenset(
    re.findall(
        r"\w+",
        "what which were with from that this have there their about into over than then them they your for does "
        "when where much many give show tell compare across between",
    )
)


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


def check_answer(
    text: str, data: GenerateInput, fact_ids: dict[str, Fact], doc_ids: set[str]
) -> tuple[ModelAnswer | None, list[str]]:
    """Parse and ground one reply: the model answer, or the problems that reject it (first is the main one)."""
    try:
        parsed = ModelAnswer.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "reply"
        if first.get("type") == "json_invalid":
            return None, ["the model did not return the requested JSON"]
        return None, [f"the reply does not match the schema ({where}: {first.get('msg', 'invalid')})"]
    answer = parsed.answer.strip()
    problems: list[str] = []
    if not answer:
        problems.append("the answer is empty")
    unknown = [i for i in parsed.fact_ids if i not in fact_ids] + [d for d in parsed.doc_ids if d not in doc_ids]
    if unknown:
        # Counted, not quoted: an id the model made up is model text, and limitations reach the asker.
        problems.append(f"it cites {len(unknown)} id(s) that were not provided")
    bad = ungrounded_numbers(answer, data.facts)
    if bad:
        problems.append(f"the model stated figures that are not facts: {', '.join(bad[:3])}")
    if INJECTION.search(answer):
        # The model obeyed (or repeated) an instruction planted in a document: never show that wording.
        problems.append("the answer follows instruction-like text instead of the facts")
    context = _terms(data.question) | {t for f in data.facts for t in _terms(f"{f.label} {f.entity} {f.account}")}
    context |= {t for p in data.passages for t in _terms(f"{p.title} {p.snippet}")}
    if answer and context and not (_terms(answer) & context):
        problems.append("the answer is off topic (it shares no term with the question, facts or documents)")
    return (parsed.model_copy(update={"answer": answer}) if not problems else None), problems


def _hex(digits: str) -> int:
    try:
        return int(digits, 16)
    except ValueError:
        return -1


class AnswerText:
    """Incrementally pulls the `answer` string out of a streamed JSON reply, so clients see prose, not JSON."""

    _START = re.compile(r'"answer"\s*:\s*"')

    def __init__(self) -> None:
        self.raw = ""
        self._pos: int | None = None
        self._done = False

    def feed(self, delta: str) -> str:
        """Append a piece of the reply; return the newly decoded answer characters (maybe empty)."""
        self.raw += delta
        if self._done:
            return ""
        if self._pos is None:
            m = self._START.search(self.raw)
            if not m:
                return ""
            self._pos = m.end()
        out = []
        i = self._pos
        while i < len(self.raw):
            ch = self.raw[i]
            if ch == '"':
                self._done = True
                i += 1
                break
            if ch == "\\":
                if i + 1 >= len(self.raw):
                    break  # the escape is split across pieces: wait for the rest
                nxt = self.raw[i + 1]
                if nxt == "u":
                    if i + 6 > len(self.raw):
                        break
                    code = _hex(self.raw[i + 2 : i + 6])
                    if 0xD800 <= code <= 0xDBFF:
                        # A high surrogate: JSON writes characters beyond the BMP (emoji) as a pair. Wait for
                        # the low half, and never emit a lone surrogate (it cannot be encoded as UTF-8).
                        if i + 12 > len(self.raw):
                            break
                        low = _hex(self.raw[i + 8 : i + 12]) if self.raw[i + 6 : i + 8] == "\\u" else -1
                        if 0xDC00 <= low <= 0xDFFF:
                            out.append(chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
                            i += 12
                            continue
                        out.append("\ufffd")
                    elif code < 0 or 0xDC00 <= code <= 0xDFFF:
                        out.append("\ufffd")
                    else:
                        out.append(chr(code))
                    i += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "", "b": "", "f": ""}.get(nxt, nxt))
                i += 2
                continue
            out.append(ch)
            i += 1
        self._pos = i
        return "".join(out)


class GenerationHooks:
    """What the activity does around each model call; the defaults do nothing (tests, benchmarks)."""

    # Tokens this request spent in earlier attempts: the per-request ceiling covers retries too.
    earlier_tokens: int = 0
    # time.monotonic() by which the generation must be done (the activity's start-to-close, less a margin).
    deadline: float | None = None
    # Somebody reads the prose as it arrives (the request's event stream). When nobody does (`?wait`), the model is
    # asked for the whole reply at once: no per-chunk parsing and heartbeats for words nobody sees early.
    watched: bool = True

    async def before_call(self, call: int, max_tokens: int) -> None:
        """Raise to refuse the call (a budget); `call` counts from 0 within this attempt."""

    async def after_call(self, call: int, model: str, usage: Usage) -> None:
        """Record what the call spent (the server's numbers)."""

    def token(self, text: str) -> None:
        """A piece of the answer as it arrives."""

    async def reset(self, reason: str) -> None:
        """The partial answer shown so far is void (a repair is starting)."""

    def alive(self) -> None:
        """Called as stream chunks arrive: the activity heartbeats from here."""

    def exchange(self, prompt: str, reply: str) -> None:
        """The text sent and received by one call (kept out of traces unless DOCKET_TRACE_CONTENT is set)."""


def _estimate_tokens(messages: list[ChatCompletionMessageParam]) -> int:
    # English prose runs ~4 characters per token; figures, ids and JSON run shorter, so count 3 to stay on the
    # safe side of the ceiling, plus per-message overhead. The server's reported count is used when it gives one.
    return sum(len(str(m.get("content") or "")) // 3 + 8 for m in messages)


def _estimated(messages: list[ChatCompletionMessageParam], reply: str) -> Usage:
    return Usage(prompt_tokens=_estimate_tokens(messages), completion_tokens=len(reply) // 3 + 1)


# Transport failures before a request reached a server (by class name: openai 3 wraps httpx2's errors, earlier
# versions httpx's, and both use these names), and TLS handshakes that failed.
_NEVER_SENT = {"ConnectError", "ConnectTimeout", "PoolTimeout", "SSLError"}


def _refused(exc: BaseException) -> bool:
    """The request never reached a server, so it cannot have spent tokens. The client makes one HTTP request per
    call (max_retries=0: Temporal owns retries), so the wrapped cause is that request's."""
    cause = exc.__cause__
    return cause is not None and any(c.__name__ in _NEVER_SENT for c in type(cause).__mro__)


def _whole_reply_timeout(client: AsyncOpenAI, left: float | None) -> openai.Timeout | openai.NotGiven:
    """The timeout of a call that does not stream: the server sends nothing until the model has written the whole
    reply, so the read may take as long as the attempt has left (a streamed call only waits that long for its next
    chunk); connecting stays as quick as the client is configured."""
    base = client.timeout
    if base is None or left is None:
        return openai.NOT_GIVEN
    if isinstance(base, int | float):
        quick, read = float(base), float(base)
    else:
        quick = base.connect if base.connect is not None else 30.0
        read = base.read if base.read is not None else 0.0
    return openai.Timeout(quick, read=max(read, left))


@dataclass
class _Progress:
    """What one call has streamed so far (for counting a call that broke off)."""

    text: str = ""
    # A call that does not stream and was cut off while the server may have been writing: what it spent is unseen,
    # so it counts the prompt and the ceiling of output tokens it asked for (a budget errs on the side of spent).
    unseen_max_tokens: int = 0


def provider_of(base_url: str) -> str:
    """A short provider name for usage records: `openai` for api.openai.com, else the server's host:port."""
    host = urlsplit(base_url).netloc or "openai"
    return "openai" if host.endswith("openai.com") else host


@dataclass
class OpenAIGenerator:
    """Any OpenAI-compatible chat endpoint, asked for JSON against a schema, validated and repaired."""

    client: AsyncOpenAI
    model: str
    name: str = "openai"
    pins: Mapping[str, int] = field(default_factory=dict)
    # `json_schema` (OpenAI, vLLM, llama.cpp, LiteLLM) or `json_object` for servers without schema support.
    response_format: str = "json_schema"
    stream: bool = True
    repairs: int = 2
    max_output_tokens: int = 400
    max_request_tokens: int = 6000

    @property
    def provider(self) -> str:
        return provider_of(str(self.client.base_url))

    async def generate(self, data: GenerateInput, hooks: GenerationHooks | None = None) -> GenerateResult:
        hooks = hooks or GenerationHooks()
        prompt = registry.resolve("answer", tenant=data.tenant, intent=data.intent.value, pins=self.pins)
        # Personal data never reaches a model: the question and every passage are redacted, counts recorded.
        redactions: Counter[str] = Counter()
        question, found = redact(data.question)
        redactions.update(found)
        passages = []
        for p in data.passages:
            snippet, found = redact(p.snippet)
            title, found_title = redact(p.title)
            redactions.update(found)
            redactions.update(found_title)
            passages.append({**p.model_dump(), "snippet": snippet, "title": title})
        facts = {f"F{i + 1}": f for i, f in enumerate(data.facts)}
        doc_ids = list(dict.fromkeys(p.doc_id for p in data.passages))
        content = prompt.render(
            question=question,
            facts=[{"id": fid, **f.model_dump()} for fid, f in facts.items()],
            missing=[m.key for m in data.missing],
            masked=[m.reason for m in data.masked],
            passages=passages,
        )
        messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": content}]
        schema = answer_schema(list(facts), doc_ids)
        repair = registry.resolve("repair", tenant=data.tenant, intent=data.intent.value, pins=self.pins)
        total = Usage()
        model = self.model
        problems: list[str] = []
        stopped = ""
        calls = 0
        for call in range(1 + self.repairs):
            if call:
                # The client has seen the rejected reply's prose stream by: tell it to throw that away.
                await hooks.reset("the previous reply was rejected; the model is correcting it")
                messages.append(
                    {"role": "user", "content": repair.render(problems=problems, fact_ids=list(facts), doc_ids=doc_ids)}
                )
            used = hooks.earlier_tokens + total.prompt_tokens + total.completion_tokens
            max_tokens = min(self.max_output_tokens, self.max_request_tokens - used - _estimate_tokens(messages))
            if max_tokens < MIN_OUTPUT_TOKENS:
                stopped = (
                    "the per-request token ceiling left no room for a repair"
                    if call
                    else "the prompt alone exceeds the per-request token ceiling"
                )
                break
            left = None if hooks.deadline is None else hooks.deadline - time.monotonic()
            if left is not None and call and left < MIN_CALL_SECONDS:
                stopped = "no time was left for a repair"
                break
            if left is not None and left <= 0:
                raise ModelUnavailableError("no time left in this attempt for a model call")
            await hooks.before_call(call, max_tokens)
            progress = _Progress()
            try:
                text, usage, model = await asyncio.wait_for(
                    self._call(messages, schema, max_tokens, hooks, progress), left
                )
            except (ModelUnavailableError, TimeoutError) as exc:
                if progress.text:
                    # The server produced tokens before the call broke off: they were spent, so they count.
                    await hooks.after_call(call, model, _estimated(messages, progress.text))
                elif progress.unseen_max_tokens:
                    spent = _estimated(messages, "")
                    await hooks.after_call(
                        call,
                        model,
                        Usage(prompt_tokens=spent.prompt_tokens, completion_tokens=progress.unseen_max_tokens),
                    )
                if isinstance(exc, TimeoutError):
                    raise ModelUnavailableError("the model call ran past this attempt's time limit") from exc
                raise
            if not (usage.prompt_tokens or usage.completion_tokens) and text:
                # Some servers report no usage (no stream_options support): count an estimate, never zero.
                usage = _estimated(messages, text)
            calls += 1
            total = Usage(
                prompt_tokens=total.prompt_tokens + usage.prompt_tokens,
                completion_tokens=total.completion_tokens + usage.completion_tokens,
            )
            await hooks.after_call(call, model, usage)
            hooks.exchange(str(messages[-1].get("content") or ""), text)
            parsed, problems = check_answer(text, data, facts, set(doc_ids))
            if parsed is not None:
                return GenerateResult(
                    answer=parsed.answer,
                    generator=self.name,
                    model=model,
                    prompt=prompt.ref,
                    usage=total,
                    validated=True,
                    redactions=dict(redactions),
                    provider=self.provider,
                    calls=calls,
                    repairs=call,
                    model_confidence=parsed.confidence,
                    fact_ids=parsed.fact_ids,
                    doc_ids=parsed.doc_ids,
                )
            messages.append({"role": "assistant", "content": text[: MAX_ANSWER_CHARS * 2]})
        if calls:
            # The rejected prose streamed by; it must not stay on anyone's screen next to the narrative.
            await hooks.reset("the model's output was rejected; showing the deterministic narrative")
        fallback = render_template_answer(data, self.pins)
        return fallback.model_copy(
            update={
                "usage": total,
                "validated": False,
                "redactions": dict(redactions),
                "provider": self.provider,
                "calls": calls,
                "repairs": max(0, calls - 1),
                "model": f"{TEMPLATE_MODEL}; {model} output rejected",
                "limitations": [
                    "Model output rejected: "
                    + "; ".join(p for p in (problems[0] if problems else "", stopped) if p)
                    + f" (after {calls} call{'s' if calls != 1 else ''}); showing the deterministic narrative."
                ],
            }
        )

    async def _call(
        self,
        messages: list[ChatCompletionMessageParam],
        schema: dict[str, Any],
        max_tokens: int,
        hooks: GenerationHooks,
        progress: _Progress,
    ) -> tuple[str, Usage, str]:
        """One chat completion in its own span, named and attributed as OpenTelemetry's GenAI conventions say
        (`chat {model}`, gen_ai.*): the model call is a child of the generate activity in the request's trace."""
        with _tracer.start_as_current_span(f"chat {self.model}", kind=SpanKind.CLIENT) as span:
            span.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.system": "openai",
                    "gen_ai.request.model": self.model,
                    "gen_ai.request.max_tokens": max_tokens,
                    "gen_ai.request.temperature": 0,
                    "server.address": self.provider,
                }
            )
            text, usage, model = await self._completion(messages, schema, max_tokens, hooks, progress)
            span.set_attributes(
                {
                    "gen_ai.response.model": model,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                }
            )
            return text, usage, model

    async def _completion(
        self,
        messages: list[ChatCompletionMessageParam],
        schema: dict[str, Any],
        max_tokens: int,
        hooks: GenerationHooks,
        progress: _Progress,
    ) -> tuple[str, Usage, str]:
        """One chat completion: (reply text, the server's usage, the model that answered)."""
        response_format: Any = (
            {"type": "json_schema", "json_schema": {"name": "docket_answer", "strict": True, "schema": schema}}
            if self.response_format == "json_schema"
            else {"type": "json_object"}
        )
        usage = Usage()
        model = self.model
        started = False
        try:
            if not self.stream or not hooks.watched:
                # Until the server answers, the call may be spending tokens (cleared when it answers or refuses).
                progress.unseen_max_tokens = max_tokens
                left = None if hooks.deadline is None else hooks.deadline - time.monotonic()
                resp = await self.client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    temperature=0,
                    max_tokens=max_tokens,
                    response_format=response_format,
                    timeout=_whole_reply_timeout(self.client, left),
                )
                progress.unseen_max_tokens = 0
                if resp.usage:
                    usage = Usage(
                        prompt_tokens=resp.usage.prompt_tokens, completion_tokens=resp.usage.completion_tokens
                    )
                text = (resp.choices[0].message.content or "") if resp.choices else ""
                return text, usage, resp.model or self.model
            stream = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=0,
                max_tokens=max_tokens,
                response_format=response_format,
                stream=True,
                stream_options={"include_usage": True},
            )
            answer = AnswerText()
            started = True
            async for chunk in stream:
                hooks.alive()
                model = chunk.model or model
                if chunk.usage:
                    usage = Usage(
                        prompt_tokens=chunk.usage.prompt_tokens, completion_tokens=chunk.usage.completion_tokens
                    )
                if chunk.choices and chunk.choices[0].delta.content:
                    progress.text += chunk.choices[0].delta.content
                    piece = answer.feed(chunk.choices[0].delta.content)
                    if piece:
                        hooks.token(piece)
            return answer.raw, usage, model
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            if _refused(exc):
                # Refused: the request never reached a server, so nothing was spent.
                progress.unseen_max_tokens = 0
            if started:
                # Cut off half-way (a dropped connection): the reply is incomplete, the attempt failed.
                raise ModelUnavailableError(f"model stream broke off: {exc}") from exc
            if progress.unseen_max_tokens and not isinstance(exc, openai.APITimeoutError):
                # A whole reply whose connection dropped before it had all arrived.
                raise ModelUnavailableError(f"model reply broke off: {exc}") from exc
            raise ModelUnavailableError(f"model endpoint unreachable: {exc}") from exc
        except openai.APIStatusError as exc:
            progress.unseen_max_tokens = 0  # the server answered with an error, not with tokens
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                raise ModelUnavailableError(
                    f"model endpoint answered {exc.status_code}", retry_after=retry_after(exc.response.headers)
                ) from exc
            raise ModelBadRequestError(
                f"model endpoint rejected the request ({exc.status_code}): {exc.message}"
            ) from exc
        except (openai.APIError, httpx.HTTPError) as exc:
            # An error event mid-stream, or a transport error the client did not wrap: the reply is incomplete,
            # so the attempt failed and Temporal retries it.
            raise ModelUnavailableError(f"model stream broke off: {exc}") from exc
