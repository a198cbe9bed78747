"""HTTP-only models. The result contract itself lives in docket.contracts."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field

from docket.contracts import ClassificationView, Complexity, Intent, Outcome, RequestResult, Stage


class RequestCreate(BaseModel):
    """A question to answer. `as_of` anchors relative periods ("last month"); it defaults to today (UTC)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"question": "What was revenue for MER-US last month?", "as_of": "2026-11-21"}]
        },
    )

    question: str = Field(min_length=1, max_length=20_000)
    as_of: dt.date | None = None


class RequestView(RequestResult):
    """The result contract as the gateway serves it; `outcome` is null while it runs, and `stage` the current stage
    (null for the moment a worker is inside a workflow task)."""

    outcome: Outcome | None = None  # type: ignore[assignment]
    stage: Stage | None = None
    tenant: str = ""
    principal_id: str = ""
    question: str = ""
    as_of: dt.date | None = None  # type: ignore[assignment]
    awaiting_confirmation: ClassificationView | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class ConfirmRequest(BaseModel):
    """Accept what Docket understood (`{"accept": true}`), correct it, or reject it (`{"accept": false}`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"accept": True}, {"accept": True, "entities": ["MER-DE"], "periods": ["2026-03"]}]
        },
    )

    accept: bool = True
    intent: Intent | None = None
    complexity: Complexity | None = None
    entities: list[str] | None = Field(default=None, max_length=50)
    periods: list[str] | None = Field(default=None, max_length=24)
    note: str = Field(default="", max_length=500)
