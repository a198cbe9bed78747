"""Prompt registry: templates are files named <name>.v<N>.j2; each render is pinned by (id, version, sha256).

Templates render in a sandboxed Jinja environment with StrictUndefined, so a template can neither reach
Python internals nor silently drop a missing variable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from docket.contracts import PromptRef
from docket.errors import DocketError

PROMPT_DIR = Path(__file__).parent
# The version each engine uses unless DOCKET_PROMPT_PINS says otherwise: a new file is opted into, never rolled
# out by being added. answer v2 is the structured-output prompt (JSON with fact and doc ids); v1 asked for a
# shape the generator no longer accepts, so it cannot be pinned (MIN_VERSIONS).
DEFAULT_VERSIONS: dict[str, int] = {"answer": 2, "narrative": 2, "classify": 1, "repair": 1}
MIN_VERSIONS: dict[str, int] = {"answer": 2}
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


class PromptError(DocketError):
    """A prompt rendered with variables it does not declare, or without ones it needs; or an unknown pin."""

    type = "PromptError"


@cache
def variables_of(source: str) -> frozenset[str]:
    """The variables a template reads (filters and loop variables excluded)."""
    tree = _env.parse(source)
    # meta reports a name set inside one branch and read in another as undeclared; names the template assigns
    # itself ({% set %}, loop targets) are never the caller's to supply.
    assigned: set[str] = set()
    for node in tree.find_all((nodes.Assign, nodes.For)):
        target = node.target  # type: ignore[attr-defined]
        names = [target, *target.find_all(nodes.Name)]
        assigned |= {n.name for n in names if isinstance(n, nodes.Name)}
    return frozenset(meta.find_undeclared_variables(tree) - assigned)


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

    @property
    def variables(self) -> frozenset[str]:
        return variables_of(self.source)

    def render(self, **context: Any) -> str:
        """Render with exactly the variables the template reads: a missing one and an unused one are both errors
        (the caller and the template disagree about what the prompt contains)."""
        missing = self.variables - context.keys()
        unused = context.keys() - self.variables
        if missing or unused:
            raise PromptError(
                f"prompt {self.id} v{self.version}: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {sorted(missing)}" if missing else "",
                        f"not used by the template {sorted(unused)}" if unused else "",
                    )
                    if part
                ),
                hint="render it with the variables the template declares (`docket prompts show NAME`)",
            )
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


def resolve(name: str, *, tenant: str = "", intent: str = "", pins: Mapping[str, int] | None = None) -> Prompt:
    """The version of a prompt in use for a tenant and intent: the most specific pin, else the engine's default
    (DEFAULT_VERSIONS), else the newest.

    Pin keys: `tenant/intent/name`, `tenant/*/name`, `*/intent/name`, `name` (DOCKET_PROMPT_PINS).
    """
    pins = pins or {}
    for key in (f"{tenant}/{intent}/{name}", f"{tenant}/*/{name}", f"*/{intent}/{name}", name):
        if key in pins:
            return get(name, pins[key])
    return get(name, DEFAULT_VERSIONS.get(name))


def check_pins(pins: Mapping[str, int]) -> None:
    """Refuse pins that name a prompt or version that does not exist (at startup, not at the first request)."""
    for key, version in pins.items():
        name = key.rsplit("/", 1)[-1]
        if version not in available().get(name, []):
            raise PromptError(
                f"DOCKET_PROMPT_PINS pins {key!r} to version {version}, which does not exist",
                hint=f"available: {available().get(name, [])} (`docket prompts list`)",
            )
        if version < MIN_VERSIONS.get(name, 0):
            raise PromptError(
                f"DOCKET_PROMPT_PINS pins {key!r} to version {version}, which this version of Docket cannot use",
                hint=f"pin {name} to version {MIN_VERSIONS[name]} or later (`docket prompts diff {name} "
                f"{version} {MIN_VERSIONS[name]}` shows what changed)",
            )
