"""Generation: the model words the answer; it never computes a figure.

Two generators for now, chosen by settings and recorded per result:
- `template` (no model configured): a deterministic narrative rendered from prompts/narrative.v1.j2;
- `openai`: any OpenAI-compatible server; its answer is validated (every number it states must be one of
  the facts) and replaced by the template narrative, labelled as such, when validation fails.
Temporal owns retries, so the client has max_retries=0 and errors are classified here.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import openai
from openai import AsyncOpenAI

from activities.llm.redact import redact
from activities.retrieve.safety import INJECTION
from docket.calendar import MONTH_NAMES
from docket.contracts import Fact, GenerateInput, GenerateResult, Usage
from docket.errors import ModelBadRequestError, ModelUnavailableError
from prompts import registry

TEMPLATE_MODEL = "none (template)"


def period_name(label: str) -> str:
    """'2026-10' → 'October 2026'; quarters, halves and years stay as labelled."""
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
    title = metric.upper() if metric in {"cogs", "opex"} else metric[:1].upper() + metric[1:]
    return {
        "metric": metric,
        "metric_title": title,
        "entity_name": entity_name,
        "period_name": period_name(f.period),
        "value": f.value,
        "unit": f.unit,
        "label": f.label,
        "source": f.source,
    }


class Generator(Protocol):
    name: str

    async def generate(self, data: GenerateInput) -> GenerateResult: ...


def render_template_answer(data: GenerateInput, pins: Mapping[str, int] | None = None) -> GenerateResult:
    # Version 1 unless DOCKET_PROMPT_PINS says otherwise: a new template version is opted into, not rolled out.
    prompt = registry.resolve(
        "narrative", tenant=data.tenant, intent=data.intent.value, pins={"narrative": 1, **(pins or {})}
    )
    facts = sorted((_fact_view(f) for f in data.facts), key=lambda v: -float(v["value"]))
    answer = prompt.render(
        facts=facts,
        same_metric=len({f["metric"] for f in facts}) == 1,
        same_period=len({f["period_name"] for f in facts}) == 1,
        missing=[m.key for m in data.missing],
        masked=[m.reason for m in data.masked],
        passages=data.passages[:2],
    )
    return GenerateResult(answer=answer, generator="template", model=TEMPLATE_MODEL, prompt=prompt.ref, validated=True)


@dataclass
class TemplateGenerator:
    pins: Mapping[str, int] = field(default_factory=dict)
    name: str = "template"

    async def generate(self, data: GenerateInput) -> GenerateResult:
        return render_template_answer(data, self.pins)


_NUMBER = re.compile(r"(?<!\d)(?<!\d\.)-?\d[\d,]*(?:\.\d+)?")


def ungrounded_numbers(answer: str, facts: list[Fact]) -> list[str]:
    """Numbers in the answer that are not a fact value (years, days and small counts are allowed)."""
    allowed = set()
    for f in facts:
        allowed.add(f"{f.value}")
        allowed.add(f"{f.value:,}" if isinstance(f.value, int) else f"{f.value:,.1f}")
    bad = []
    for raw in _NUMBER.findall(answer):
        plain = raw.replace(",", "")
        try:
            value = float(plain)
        except ValueError:
            continue
        if raw in allowed or plain in allowed:
            continue
        after = answer[answer.find(raw) + len(raw) :][:12].lower()
        scaled = re.match(r"\s*(?:%|percent|k\b|m\b|bn\b|million|billion|thousand|usd|eur|\$)", after)
        # Years and small counts ("3 entities", "day 11") are prose, unless scaled or a currency ("3 million").
        if value.is_integer() and (1900 <= value <= 2100 or abs(value) <= 31) and not scaled:
            continue
        if any(float(f.value) == value for f in facts):
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


@dataclass
class OpenAIGenerator:
    """Any OpenAI-compatible chat endpoint."""

    client: AsyncOpenAI
    model: str
    name: str = "openai"
    pins: Mapping[str, int] = field(default_factory=dict)

    async def generate(self, data: GenerateInput) -> GenerateResult:
        prompt = registry.resolve(
            "answer", tenant=data.tenant, intent=data.intent.value, pins={"answer": 1, **self.pins}
        )
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
        content = prompt.render(
            question=question,
            facts=[f.model_dump() for f in data.facts],
            missing=[m.key for m in data.missing],
            masked=[m.reason for m in data.masked],
            passages=passages,
        )
        try:
            resp = await self.client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": content}],
                temperature=0,
                response_format={"type": "json_object"},
            )
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise ModelUnavailableError(f"model endpoint unreachable: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                raise ModelUnavailableError(
                    f"model endpoint answered {exc.status_code}", retry_after=retry_after(exc.response.headers)
                ) from exc
            raise ModelBadRequestError(
                f"model endpoint rejected the request ({exc.status_code}): {exc.message}"
            ) from exc
        usage = Usage(
            prompt_tokens=resp.usage.prompt_tokens if resp.usage else 0,
            completion_tokens=resp.usage.completion_tokens if resp.usage else 0,
        )
        text = (resp.choices[0].message.content or "") if resp.choices else ""
        answer = ""
        try:
            parsed = json.loads(text)
            if isinstance(parsed, dict):
                answer = str(parsed.get("answer", "")).strip()
        except json.JSONDecodeError:
            answer = ""
        problems = []
        if not answer:
            problems.append("the model did not return the requested JSON")
        else:
            bad = ungrounded_numbers(answer, data.facts)
            if bad:
                problems.append(f"the model stated figures that are not facts: {', '.join(bad[:3])}")
            elif INJECTION.search(answer):
                # The model obeyed (or repeated) an instruction planted in a document: never show that wording.
                problems.append("the answer follows instruction-like text instead of the facts")
        if problems:
            fallback = render_template_answer(data, self.pins)
            return fallback.model_copy(
                update={
                    "generator": "template",
                    "usage": usage,
                    "validated": False,
                    "redactions": dict(redactions),
                    "model": f"{TEMPLATE_MODEL}; {self.model} failed validation",
                    "limitations": [f"Model answer discarded: {problems[0]}; showing the deterministic narrative."],
                }
            )
        return GenerateResult(
            answer=answer,
            generator=self.name,
            model=resp.model or self.model,
            prompt=prompt.ref,
            usage=usage,
            validated=True,
            redactions=dict(redactions),
        )
