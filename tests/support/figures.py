"""An independent check of what figures a text states, for tests of the model's answers.

Shares no code with the product's grounding (activities/llm/engine.py): a test that judged the model with the
product's own checker could not catch a hole in that checker. Deliberately blunt: every run of digits, with
whatever separators join it, must spell a fact's digits, or be a bare small number or year.
"""

from __future__ import annotations

import re

_RUN = re.compile(r"\d[\d,. \u00a0\u202f]*\d|\d")


def _digits(value: float | int) -> set[str]:
    as_int = f"{int(value)}" if float(value).is_integer() else None
    return {d for d in (as_int, f"{value}".replace(".", "")) if d}


def unexplained_figures(text: str, values: list[float | int]) -> list[str]:
    """Digit runs in `text` that are neither a value's digits nor a bare day, count (≤ 31) or year (1900 to 2100)
    with no amount word after it."""
    allowed = {d for v in values for d in _digits(v)}
    out = []
    for m in _RUN.finditer(text):
        run = m.group().strip(" ,.\u00a0\u202f")
        if re.sub(r"\D", "", run) in allowed:
            continue
        after = text[m.end() : m.end() + 10].lower()
        amount = re.match(r"\s*(%|percent|million|billion|thousand|bn|m\b|k\b)", after)
        if run.isdigit() and not amount and (int(run) <= 31 or 1900 <= int(run) <= 2100):
            continue
        out.append(run)
    return out
