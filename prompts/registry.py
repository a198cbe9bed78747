"""Prompt registry: templates are files named <name>.v<N>.j2; each render is pinned by (id, version, sha256).

Templates render in a sandboxed Jinja environment with StrictUndefined, so a template can neither reach
Python internals nor silently drop a missing variable.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment

from docket.contracts import PromptRef

PROMPT_DIR = Path(__file__).parent
_NAME = re.compile(r"^(?P<name>[a-z0-9_]+)\.v(?P<version>\d+)\.j2$")


def _thousands(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


_env = SandboxedEnvironment(
    undefined=StrictUndefined,
    autoescape=False,
    keep_trailing_newline=False,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters["thousands"] = _thousands


@dataclass(frozen=True)
class Prompt:
    id: str
    version: int
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def ref(self) -> PromptRef:
        return PromptRef(id=self.id, version=self.version, sha256=self.sha256)

    def render(self, **context: Any) -> str:
        return _compiled(self.source).render(**context).strip()


@cache
def _compiled(source: str) -> Template:
    # Compiling a template costs ~10 ms; a prompt's source is immutable once loaded, so compile it once.
    return _env.from_string(source)


@cache
def available() -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for path in PROMPT_DIR.glob("*.j2"):
        m = _NAME.match(path.name)
        if m:
            out.setdefault(m["name"], []).append(int(m["version"]))
    return {k: sorted(v) for k, v in out.items()}


def get(name: str, version: int | None = None) -> Prompt:
    """A prompt by name; the newest version unless one is pinned."""
    versions = available().get(name)
    if not versions:
        raise KeyError(f"no prompt named {name!r} in {PROMPT_DIR}")
    v = version if version is not None else versions[-1]
    if v not in versions:
        raise KeyError(f"prompt {name!r} has no version {v} (has {versions})")
    return Prompt(name, v, (PROMPT_DIR / f"{name}.v{v}.j2").read_text(encoding="utf-8"))
