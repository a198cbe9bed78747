"""Layer 3: an OpenAI-compatible model classifies what rules and the trained model could not.

Structured output against a JSON schema whose enums are the allowed intents and complexities; the reply is
validated with pydantic and repaired at most twice. The question is sanitised (control characters removed,
markers neutralised, length capped) and fenced as data. Any failure returns None and the hybrid falls back to
the conservative classification.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ConfigDict, ValidationError

from activities.classify.hybrid import LLMVerdict
from activities.classify.rules import Extraction
from docket.contracts import Complexity, Intent
from docket.errors import ModelUnavailableError
from prompts import registry

MAX_QUESTION_CHARS = 2000
MAX_REPAIRS = 2


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intent: Intent
    complexity: Complexity


SCHEMA: dict[str, Any] = {
    "name": "classification",
    "strict": True,
    "schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["intent", "complexity"],
        "properties": {
            "intent": {"type": "string", "enum": [i.value for i in Intent]},
            "complexity": {"type": "string", "enum": [c.value for c in Complexity]},
        },
    },
}


def sanitize(question: str) -> str:
    """Printable text only, our fence markers defused, at most MAX_QUESTION_CHARS characters."""
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in question)
    text = re.sub(r"<<<|>>>", " ", text)
    return " ".join(text.split())[:MAX_QUESTION_CHARS]


@dataclass
class OpenAIClassifier:
    client: AsyncOpenAI
    model: str

    async def classify(self, question: str, extraction: Extraction) -> LLMVerdict | None:
        prompt = registry.get("classify", 1).render(
            question=sanitize(question),
            metrics=", ".join(extraction.slots.metrics + extraction.slots.derived) or "none",
            entities=", ".join(extraction.slots.entities) or "none",
            periods=", ".join(p.label for p in extraction.slots.periods) or "none",
        )
        messages: list[dict[str, str]] = [{"role": "user", "content": prompt}]
        for _attempt in range(1 + MAX_REPAIRS):
            try:
                # The SDK types messages and the schema as TypedDicts; plain dicts are what it sends anyway.
                resp = await self.client.chat.completions.create(  # type: ignore[call-overload]
                    model=self.model,
                    messages=messages,
                    temperature=0,
                    response_format={"type": "json_schema", "json_schema": SCHEMA},
                )
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                raise ModelUnavailableError(f"classifier model unreachable: {exc}") from exc
            except openai.APIStatusError as exc:
                if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                    raise ModelUnavailableError(f"classifier model answered {exc.status_code}") from exc
                return None
            text = (resp.choices[0].message.content or "") if resp.choices else ""
            try:
                reply = _Reply.model_validate(json.loads(text))
            except (json.JSONDecodeError, ValidationError) as exc:
                # Repair: show the model its own reply and what was wrong with it.
                messages += [
                    {"role": "assistant", "content": text[:2000]},
                    {"role": "user", "content": f"That reply is invalid ({str(exc)[:300]}). Reply with JSON only."},
                ]
                continue
            return LLMVerdict(intent=reply.intent, complexity=reply.complexity, model=resp.model or self.model)
        return None
