"""Personal data out of prompts: e-mail addresses, phone numbers, IBANs and card numbers are replaced by markers
before any text reaches a model, and only their counts are recorded.

Checksums keep false positives down: an IBAN must pass ISO 13616 mod-97, a card number the Luhn check; ledger
amounts and account codes ("5.2.2", "11,765,834") are never phone numbers (a phone needs a +, or a grouping
with spaces, dots or dashes in its digits, and at least 9 digits).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,3})?\b")
CARD = re.compile(r"\b\d(?:[ -]?\d){12,18}\b")
PHONE = re.compile(r"(?<![\w.,])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){2,4}(?![\w.,]?\d)")


def _iban_ok(raw: str) -> bool:
    s = raw.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    digits = "".join(str(int(c, 36)) for c in moved)
    return int(digits) % 97 == 1


def _luhn_ok(raw: str) -> bool:
    digits = [int(c) for c in raw if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return total % 10 == 0


def _phone_ok(raw: str) -> bool:
    # A run of digits alone is an amount or a reference; a phone number is written with a + or separators, and
    # E.164 numbers have at most 15 digits (16 grouped digits are a card number, caught above only if valid).
    return 9 <= sum(c.isdigit() for c in raw) <= 15 and any(c in raw for c in "+ -.(")


def redact(text: str) -> tuple[str, Counter[str]]:
    """The text with personal data replaced by [email], [iban], [card], [phone]; and how many of each."""
    counts: Counter[str] = Counter()

    def sub(kind: str, pattern: re.Pattern[str], check: Callable[[str], bool] | None, value: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if check is not None and not check(m.group(0)):
                return m.group(0)
            counts[kind] += 1
            return f"[{kind}]"

        return pattern.sub(repl, value)

    text = sub("email", EMAIL, None, text)
    text = sub("iban", IBAN, _iban_ok, text)
    text = sub("card", CARD, _luhn_ok, text)
    text = sub("phone", PHONE, _phone_ok, text)
    return text, counts
