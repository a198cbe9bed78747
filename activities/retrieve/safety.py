"""Retrieved text is untrusted: instruction-like sentences are neutralized (and recorded), the rest is spotlighted.

Documents are written by many people and some arrive from outside (vendor notes, e-mails). A sentence that
addresses a model ("ignore previous instructions", "you are now…") is replaced by a marker before the text
reaches a snippet or a prompt, and the finding travels with the result so the audit log shows what was removed.
Whatever remains is wrapped in delimiters it cannot close (spotlighting), and prompts say that text inside them is
data, never instructions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NEUTRALIZED = "[instruction-like text removed]"
MAX_FINDING_CHARS = 160

INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}?"
    r"\b(?:previous|prior|above|earlier|all|any|the|your|these|those|system)\b[^.!?\n]{0,30}?"
    r"\b(?:instructions?|rules|prompts?|policies|polic(?:y)|guidelines|restrictions|access rules|guardrails)\b"
    r"|access rules (?:no longer|do not|don't) apply"
    r"|\bsystem prompt\b"
    r"|^\s*(?-i:SYSTEM|ASSISTANT|DEVELOPER)\s*:"
    r"|\byou are now\b"
    r"|\bnew instructions\b"
    r"|\bact as (?:an? )?(?:admin|administrator|root|unrestricted|different)"
    r"|\b(?:reveal|print|exfiltrate|leak|dump)\b[^.!?\n]{0,40}\b(?:payroll|salar(?:y|ies)|secrets?|"
    r"passwords?|credentials|api keys?|every entity|all entities|restricted)\b"
    r"|\bdo not (?:tell|inform) the user\b",
    re.IGNORECASE,
)
_SENTENCE = re.compile(r"[^.!?\n]*(?:[.!?]+|\n|$)")


@dataclass(frozen=True)
class Finding:
    """One neutralized span: where it was and what it said (shortened)."""

    excerpt: str
    rule: str = "instruction-like"


def neutralize(text: str) -> tuple[str, list[Finding]]:
    """Replace every sentence that contains instruction-like content by a marker; return the findings."""
    findings: list[Finding] = []
    out: list[str] = []
    for m in _SENTENCE.finditer(text):
        sentence = m.group(0)
        if sentence and INJECTION.search(sentence):
            stripped = " ".join(sentence.split())
            excerpt = stripped if len(stripped) <= MAX_FINDING_CHARS else stripped[: MAX_FINDING_CHARS - 1] + "…"
            findings.append(Finding(excerpt=excerpt))
            lead = sentence[: len(sentence) - len(sentence.lstrip())]
            out.append(f"{lead}{NEUTRALIZED}." + ("\n" if sentence.endswith("\n") else " "))
        else:
            out.append(sentence)
    return "".join(out).rstrip(" ") if findings else text, findings


def spotlight(text: str) -> str:
    """Text that cannot close or open the delimiters a prompt puts around it."""
    # Single guillemets (U+2039/U+203A) read like angle brackets to a person but are not tag delimiters; a double
    # quote would end an attribute value (titles go into `title="…"`).
    return text.replace("<", "\u2039").replace(">", "\u203a").replace('"', "\u201d")
