"""GET /v1/requests/{id}/view: one request as an HTML page an operator can hand to an auditor (docs/operations.md).

The page is the result contract of GET /v1/requests/{id}, rendered: same lookup, same authorization (a principal
sees only their own requests; anyone else gets the same 404). Browsers cannot set a bearer header on a link, so
this route, and only this one, also takes the token as `?token=`. Every value is escaped (questions, answers and
document titles are untrusted), the page has no script and loads nothing, and its Content-Security-Policy says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from api.deps import State, current_principal
from api.routes.requests import owned_view
from api.schemas import RequestView
from docket.contracts import Outcome, Stage
from docket.db import Principal

router = APIRouter(prefix="/v1/requests", tags=["requests"])

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
# No script, no external asset, no frame, no form: only the page's own inline styles (and inline images).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    # The URL may carry ?token=: never send it on in a Referer, never keep the page in a shared cache.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
# The stages of RequestWorkflow in the order they run (docs/architecture.md).
TIMELINE = (
    Stage.CLASSIFY,
    Stage.CONFIRM,
    Stage.AUTHORIZE,
    Stage.PLAN,
    Stage.GATHER,
    Stage.GENERATE,
    Stage.SCORE,
    Stage.RECORD,
)
OUTCOME_TITLES = {
    Outcome.ANSWERED: "Answered",
    Outcome.QUALIFIED: "Qualified",
    Outcome.CLARIFICATION_REQUIRED: "Clarification required",
    Outcome.DENIED: "Denied",
    Outcome.FAILED: "Failed",
}
LINK_TITLES = {
    "self": "JSON result",
    "view": "This page",
    "events": "Events (SSE)",
    "confirm": "Confirm",
    "temporal_ui": "Temporal UI",
}
# Below this share of the total a bar would vanish: it is drawn as a tick.
MIN_BAR_PCT = 0.4
# While a request runs, its finished stages take this share of the time axis; the current stage the rest.
RUNNING_SHARE = 0.8

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def _web_url(url: object) -> bool:
    """Only http(s) links become hrefs; anything else is shown as text."""
    return isinstance(url, str) and url.startswith(("http://", "https://"))


_env.tests["web_url"] = _web_url
_bearer = HTTPBearer(auto_error=False, description="the same bearer token as the JSON API")


def view_principal(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    token: Annotated[
        str | None,
        Query(
            description="the bearer token, for a browser that cannot set the Authorization header (the header wins "
            "when both are sent); a URL ends up in history and logs, so use a short-lived token",
        ),
    ] = None,
) -> Principal:
    """The caller, from the Authorization header or else from `?token=`, verified exactly as the JSON API does."""
    if credentials is None and token:
        credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    return current_principal(state, credentials)


def format_value(value: float | int, unit: str) -> str:
    """A figure for the facts table: thousands separators; percentages and points to one decimal."""
    if unit in ("%", "pp") or unit.startswith("pp/"):
        return f"{float(value):,.1f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{float(value):,.2f}"


@dataclass(frozen=True)
class TimelineRow:
    stage: str
    state: str  # done, current, pending, skipped
    ms: int | None
    left: float  # percent of the scale
    width: float

    @property
    def style(self) -> str:
        return f"margin-left:{self.left:.2f}%;width:{self.width:.2f}%"


@dataclass(frozen=True)
class Timeline:
    rows: list[TimelineRow]
    total_ms: int  # the whole run, or the finished stages while it runs
    total_width: float  # percent of the track


def timeline(view: RequestView) -> Timeline:
    """Each stage as a bar on one time axis (stages run one after another).

    While the request runs, the finished stages take the first RUNNING_SHARE of the axis and the current stage the
    rest, as a striped bar: how long it will take is not known yet."""
    timings = view.timings
    measured = sum(timings.get(s.value, 0) for s in TIMELINE)
    running = view.status == "running"
    order = [s.value for s in TIMELINE]
    current = view.stage.value if running and view.stage is not None else ""
    total = measured if running else max(timings.get("total", 0), measured)
    scale = max(measured / RUNNING_SHARE if running else total, 1)
    rows: list[TimelineRow] = []
    offset = 0
    for name in order:
        ms = timings.get(name)
        if ms is not None:
            left = min(offset / scale * 100, 100 - MIN_BAR_PCT)
            width = max(ms / scale * 100, MIN_BAR_PCT)
            rows.append(TimelineRow(name, "done", ms, left, min(width, 100 - left)))
            offset += ms
        elif name == current:
            left = offset / scale * 100
            rows.append(TimelineRow(name, "current", None, left, 100 - left))
        elif running and (current not in order or order.index(name) > order.index(current)):
            rows.append(TimelineRow(name, "pending", None, 0, 0))  # (queued: nothing has run yet)
        else:
            rows.append(TimelineRow(name, "skipped", None, 0, 0))
    return Timeline(rows, total, total / scale * 100 if total else 0.0)


def outcome_badge(view: RequestView) -> tuple[str, str]:
    """(css class, words) of the badge in the header."""
    if view.status == "running":
        # No stage: a worker is inside a workflow task at this instant (api/routes/requests.py _view).
        stage = view.stage.value if view.stage is not None else "in progress"
        return "running", f"Running · {stage}"
    if view.outcome is None:
        return "failed", view.status.title()
    title = OUTCOME_TITLES.get(view.outcome, view.outcome.value)
    if view.status == "cancelled":
        title = "Cancelled"
    return view.outcome.value, title


def context(view: RequestView, generated_at: datetime) -> dict[str, Any]:
    line = timeline(view)
    badge_class, badge_text = outcome_badge(view)
    facts = [
        {
            "label": f.label,
            "value": format_value(f.value, f.unit),
            "unit": f.unit,
            "entity": f.entity,
            "account": f.account,
            "period": f.period,
            "source": f.source,
            "detail": f.detail,
        }
        for f in view.facts
    ]
    scores = view.confidence.components if view.confidence is not None else {}
    components = [(name, value, max(0.0, min(value, 1.0)) * 100) for name, value in scores.items()]
    # Known links first, in a fixed order and with their names spelled out; anything newer after them.
    order = {name: i for i, name in enumerate(LINK_TITLES)}
    link_rows: list[tuple[str, str]] = [
        (LINK_TITLES.get(name, name), url)
        for name, url in sorted(view.links.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
    ]
    return {
        "v": view,
        "badge_class": badge_class,
        "badge_text": badge_text,
        "facts": facts,
        "components": components,
        "timeline": line,
        "links": link_rows,
        "generated_at": generated_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def render(view: RequestView, generated_at: datetime | None = None) -> str:
    """The page for one request (pure: no I/O beyond the template, testable without a server)."""
    template = _env.get_template("request_view.html")
    return template.render(context(view, generated_at or datetime.now(UTC)))


@router.get(
    "/{request_id}/view",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "the request as a page"},
        401: {"description": "missing or invalid token"},
        404: {"description": "no such request"},
    },
)
async def request_page(
    request_id: str, request: Request, state: State, principal: Annotated[Principal, Depends(view_principal)]
) -> HTMLResponse:
    """The request as an HTML page: outcome, answer, stage timeline, decisions, facts, citations, usage, links.

    Authenticates with the Authorization header or `?token=` (this route only; see docs/operations.md)."""
    view = await owned_view(state, request, request_id, principal)
    return HTMLResponse(render(view), headers=HEADERS)
