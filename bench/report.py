"""Shared by the benchmarks: each one owns a marked section of docs/benchmarks.md and rewrites only that."""

from __future__ import annotations

import re
from pathlib import Path


def write_section(path: Path, section: str, begin: str, end: str) -> None:
    """Replace the section between `begin` and `end`, or append it; everything else in the file stays as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    found = pattern.search(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        pattern.sub(lambda _: section, text) if found else text.rstrip("\n") + "\n\n" + section + "\n",
        encoding="utf-8",
    )
