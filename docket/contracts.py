"""Durable contracts: every workflow, activity, query and result payload.

These models are recorded in Temporal history. Rules: new fields get defaults; never rename or remove a field
that has run (replay tests under tests/replay/ guard this). Large or sensitive blobs never go here: documents
travel as ids and short snippets.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from temporalio.common import SearchAttributeKey

TASK_QUEUE = "docket"

# Custom search attributes of RequestWorkflow runs (Keyword): `temporal workflow list --query
# "DocketOutcome='denied'"`, and the Temporal UI's filters. Registered at start-up (docket.temporal); never rename
# one that has run.
SA_TENANT = SearchAttributeKey.for_keyword("DocketTenant")
SA_PRINCIPAL = SearchAttributeKey.for_keyword("DocketPrincipal")
SA_OUTCOME = SearchAttributeKey.for_keyword("DocketOutcome")
SA_INTENT = SearchAttributeKey.for_keyword("DocketIntent")
SA_COMPLEXITY = SearchAttributeKey.for_keyword("DocketComplexity")
SEARCH_ATTRIBUTES = (SA_TENANT, SA_PRINCIPAL, SA_OUTCOME, SA_INTENT, SA_COMPLEXITY)


class Contract(BaseModel):
    """Base for durable payloads: unknown fields are ignored so older code can replay newer payloads."""

    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------- vocabulary


class Intent(StrEnum):
    METRIC_LOOKUP = "metric_lookup"
    COMPARISON = "comparison"
    TREND = "trend"
    GROWTH = "growth"
    VARIANCE_EXPLANATION = "variance_explanation"
    SCENARIO = "scenario"
    DOCUMENT_QUESTION = "document_question"
    OUT_OF_SCOPE = "out_of_scope"


class Complexity(StrEnum):
    SIMPLE = "SIMPLE"
    MODERATE = "MODERATE"
    COMPLEX = "COMPLEX"
    EXPERT = "EXPERT"


class Outcome(StrEnum):
    ANSWERED = "answered"
    QUALIFIED = "qualified"
    CLARIFICATION_REQUIRED = "clarification_required"
    DENIED = "denied"
    FAILED = "failed"


class Stage(StrEnum):
    QUEUED = "queued"
    CLASSIFY = "classify"
    CONFIRM = "confirm"
    AUTHORIZE = "authorize"
    PLAN = "plan"
    GATHER = "gather"
    GENERATE = "generate"
    SCORE = "score"
    RECORD = "record"
    DONE = "done"


class Action(StrEnum):
    READ = "read"
    ANALYZE = "analyze"
    CONSOLIDATE = "consolidate"
    SCENARIO = "scenario"


# ---------------------------------------------------------------- request workflow


class StagePlacement(StrEnum):
    """Where RequestWorkflow runs its stages (docs/benchmarks.md measures both).

    local: every stage but the answer's model call is a local activity, run inside the workflow task that reaches
    it (one marker event each, no task-queue round trip); the data tasks stay idempotent through the task-result
    store, so a stage that re-runs after a worker crash reuses what it computed. The answer's model call stays a
    regular activity: once it completes, no crash can make Docket pay for it twice. (The classifier's LLM layer,
    asked only about ambiguous questions, runs inside classify: a crash before its workflow task completes asks
    again.) The gateway decides the placement (DOCKET_STAGE_PLACEMENT); the worker runs what the request says.
    mixed: the stages that do I/O (ledger sums, the document search, the record) and the model call are regular
    activities, with heartbeats and their own retries, so a crash re-runs only the tasks that had not finished
    (for ledgers whose sums take seconds); the rest local. Runs recorded before placement existed ran this way.
    regular: every stage is a regular activity (its own task-queue dispatch, retries and timeouts in the UI).
    fused (the default since issue 9's part 5): as local, but the three decisions before the data (classify,
    authorize, plan) are one local activity, `understand_request`, which stops where a person must confirm the
    reading or a denial ends the request; the workflow then goes on with the separate stages as local runs do.
    Each stage keeps its audit event, stream event and timing; the run saves two local activities (a marker, an
    activation and two payload round trips each) and two catalog reads.
    """

    LOCAL = "local"
    MIXED = "mixed"
    REGULAR = "regular"
    FUSED = "fused"


class RequestInput(Contract):
    """Input of RequestWorkflow: who asks what, as of which day."""

    tenant: str
    principal_id: str
    question: str
    as_of: date
    submitted_at: datetime | None = None
    # How long to wait for a person to confirm an uncertain reading before asking them to rephrase instead.
    confirm_timeout_seconds: int = 900
    # Runs started before the stage-placement patch ignore this (they keep the placement they were recorded with).
    # The API always writes this field, so runs recorded with `local` keep replaying `local` under a new default.
    stages: StagePlacement = StagePlacement.FUSED
    # Stream the answer's prose to GET /v1/requests/{id}/events while the model writes it. Each flush is a signal
    # and a workflow task, so the gateway turns it off for a client that waits for the whole result (`?wait`).
    stream_tokens: bool = True


class PeriodRef(Contract):
    """A period as the asker named it, resolved to ledger months (YYYY-MM)."""

    label: str
    months: list[str]
    relative: bool = False


class Shock(Contract):
    """A what-if change to an account: "materials cost rises 10%" → account 5.2.1, +10.0."""

    account: str
    label: str
    change_pct: float


class Slots(Contract):
    """What the question is about, resolved against the catalog."""

    metrics: list[str] = Field(default_factory=list)
    accounts: list[str] = Field(default_factory=list)
    entities: list[str] = Field(default_factory=list)
    entity_scope: str = ""
    regions: list[str] = Field(default_factory=list)
    periods: list[PeriodRef] = Field(default_factory=list)
    exclude_accounts: list[str] = Field(default_factory=list)
    # Derived metrics computed from accounts: gross_profit, gross_margin_pct, operating_income.
    derived: list[str] = Field(default_factory=list)
    # What a comparison or growth runs across: "entity" or "period" ("" when nothing is compared).
    comparison_axis: str = ""
    growth_basis: str = ""  # yoy / mom / qoq
    shocks: list[Shock] = Field(default_factory=list)


# Intents whose figure over "the group" is one consolidated total (a comparison across the group compares entities).
CONSOLIDATING = {Intent.METRIC_LOOKUP, Intent.GROWTH, Intent.TREND, Intent.VARIANCE_EXPLANATION}


def required_action(classification: ClassifyResult) -> Action:
    """The Cedar action a request needs: a scenario, a cross-entity total (consolidation), an analysis or a read.

    Shared by the workflow (which passes it to authorize) and the authorizer's tests, so the two cannot drift.
    Per-entity figures for several entities are reads/analyses, not consolidation: only one total over the
    group is (a lookup, or the growth, trend or variance of that total). A scenario over the group gets
    per-entity figures (the planner consolidates only under the consolidate action).
    """
    if classification.intent == Intent.SCENARIO:
        return Action.SCENARIO
    if classification.slots.entity_scope == "group" and classification.intent in CONSOLIDATING:
        return Action.CONSOLIDATE
    if classification.intent == Intent.METRIC_LOOKUP:
        return Action.READ
    return Action.ANALYZE


class ClassifyInput(Contract):
    """Input of the classify_request activity."""

    tenant: str
    question: str
    as_of: date


class SlotMatch(Contract):
    """One deterministic match behind a slot: what text, read as what, how sure."""

    slot: str
    text: str
    value: str
    confidence: float


class ClassifyResult(Contract):
    """Intent, complexity and slots, with how they were decided."""

    intent: Intent
    complexity: Complexity
    # "fallback": the LLM layer was needed but unavailable or failed; conservative result, needs confirmation.
    method: Literal["rule", "ml", "llm", "fallback"] = "rule"
    confidence: float
    slots: Slots
    explanations: list[str] = Field(default_factory=list)
    clarifications: list[str] = Field(default_factory=list)
    classifier_version: str = ""
    matches: list[SlotMatch] = Field(default_factory=list)
    # Set when a person must confirm what Docket understood before it runs (LLM-decided or low confidence).
    needs_confirmation: bool = False
    model_version: str = ""
    # Each layer's own confidence in its answer, for audit and evaluation.
    layer_confidence: dict[str, float] = Field(default_factory=dict)


class MaskedComponent(Contract):
    """A part of a total left out because the asker may not see it."""

    account: str
    label: str
    policy: str
    reason: str


class AuthorizeInput(Contract):
    """Input of the authorize_request activity."""

    tenant: str
    principal_id: str
    action: Action
    classification: ClassifyResult


class AuthorizeResult(Contract):
    """A Cedar decision: allowed or not, which policies decided, and what must be masked."""

    allowed: bool
    policies: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    masked: list[MaskedComponent] = Field(default_factory=list)
    allowed_entities: list[str] = Field(default_factory=list)
    clearance: str = "public"
    policy_version: str = ""
    decisions: int = 0
    # Denied only by rules a person's confirmation lifts (POL-002's confidence clause): confirm, then re-authorize.
    needs_confirmation: bool = False
    # Every entity of the tenant the principal may read at all (entitlements, region); document search excludes
    # documents tagged with any other entity.
    readable_entities: list[str] = Field(default_factory=list)
    # The action decided on (read, analyze, consolidate, scenario); "" in histories recorded before it was kept.
    action: str = ""


TaskKind = Literal["sum", "total", "difference", "margin_pct", "growth_pct", "trend", "variance"]


class TaskShock(Contract):
    """A scenario's change to one operand of a task: operand += change_pct% of the component task's value."""

    operand: int
    component: str
    change_pct: float
    label: str


class DataTask(Contract):
    """One deterministic data task of a plan's DAG (docs/planner.md).

    `sum` reads the ledger: a sum over an entity set, an account subtree and a set of months. Every other kind
    computes from the results of `depends_on` (its operands, in order): `total` adds them, `difference` is
    a - b, `margin_pct` (a - b) / a * 100, `growth_pct` (a - b) / b * 100, `trend` fits a line through a series,
    `variance` is a - b with the largest contributors among the operand pairs that follow.
    """

    task_id: str
    kind: TaskKind = "sum"
    metric: str
    account: str
    exclude_accounts: list[str] = Field(default_factory=list)
    entity_label: str
    entities: list[str]
    period: PeriodRef
    depends_on: list[str] = Field(default_factory=list)
    unit: str = "USD"
    shocks: list[TaskShock] = Field(default_factory=list)
    # What the figure compares with, in words a person reads ("September 2025", "the previous month").
    basis: str = ""


class RetrievalQuery(Contract):
    """A document search, already constrained by the authorization decision."""

    tenant: str
    query: str
    entities: list[str] = Field(default_factory=list)
    max_clearance: str = "public"
    limit: int = 3
    # For figure questions only documents tagged with a requested entity that mention a requested month
    # support the answer; generic policies would only pad the citations.
    entity_tagged_only: bool = False
    months: list[str] = Field(default_factory=list)
    exclude_entities: list[str] = Field(default_factory=list)
    min_term_coverage: float = 0.0


class PlanInput(Contract):
    """Input of the plan_request activity."""

    tenant: str
    question: str
    classification: ClassifyResult
    authorization: AuthorizeResult


class Plan(Contract):
    """The data tasks and document searches a request needs; pure function of classification + decision.

    `tasks` are in topological order (every task after its dependencies). `data_version` pins the ledger version
    the figures must come from; `assumptions` are choices the planner made that the question left open (a default
    comparison basis or trend window): they become limitations of the answer.
    """

    tasks: list[DataTask] = Field(default_factory=list)
    retrieval: RetrievalQuery | None = None
    unsupported: str = ""
    data_version: str = ""
    template: str = ""
    assumptions: list[str] = Field(default_factory=list)


class UnderstandInput(Contract):
    """Input of the understand_request activity (the fused placement): the question and who asks it."""

    tenant: str
    principal_id: str
    question: str
    as_of: date


class UnderstandResult(Contract):
    """classify, authorize and plan as far as they went without a person: `authorization` is None when the
    reading needs a clarification or a confirmation first, `plan` None unless the request was allowed.
    `timings` holds each stage's milliseconds as measured inside the activity (stage name → ms)."""

    classification: ClassifyResult
    authorization: AuthorizeResult | None = None
    plan: Plan | None = None
    timings: dict[str, int] = Field(default_factory=dict)


class LedgerQueryInput(Contract):
    """Input of the ledger_query and compute_task activities: the task, its operands' results, the data version."""

    tenant: str
    task: DataTask
    # Results of task.depends_on, in that order (compute tasks only).
    inputs: list[LedgerQueryResult] = Field(default_factory=list)
    # The ledger version the plan pinned; results are stored and reused under (tenant, task id, this version).
    data_version: str = ""


class MissingData(Contract):
    """A ledger cell the answer needed but the ledger does not have."""

    entity: str
    period: str
    reason: str = "no ledger rows submitted"

    @property
    def key(self) -> str:
        return f"{self.entity} {self.period}"


class Fact(Contract):
    """A figure computed by a data task; the only kind of number an answer may use."""

    label: str
    value: float | int
    unit: str
    entity: str
    account: str
    period: str
    source: str
    # The task kind that computed it ("" in older histories: a ledger sum) and the task's id.
    kind: str = ""
    task_id: str = ""
    # A word on the figure a person needs to read it: a trend's direction, a contributor's rank and share.
    detail: str = ""


class LedgerQueryResult(Contract):
    """The figure a task computed (None when no month of any entity had data) and what was missing."""

    task_id: str
    fact: Fact | None = None
    rows: int = 0
    missing: list[MissingData] = Field(default_factory=list)
    # Further figures of the same task: a variance's largest contributors, a trend's change, a scenario's
    # shocked operands.
    facts: list[Fact] = Field(default_factory=list)
    # Why a compute task has no figure (an operand without data, a zero denominator).
    unavailable: str = ""
    # Served from the task-result store (computed earlier under the same tenant, task id and data version).
    reused: bool = False


class Passage(Contract):
    """A retrieved chunk: ids and a short snippet only, never the whole document."""

    doc_id: str
    title: str
    chunk_id: str
    snippet: str
    score: float


class RetrieveInput(Contract):
    """Input of the retrieve_documents activity."""

    query: RetrievalQuery


class NeutralizedPassage(Contract):
    """Instruction-like text found in a retrieved chunk and removed before it reached a snippet or a prompt."""

    doc_id: str
    chunk_id: str
    excerpt: str


class RetrieveResult(Contract):
    """Passages found, and how they were searched."""

    passages: list[Passage] = Field(default_factory=list)
    # "hybrid" (dense + sparse, RRF), "lexical" or "dense"; notes say why a search was not hybrid.
    mode: str = "lexical"
    notes: list[str] = Field(default_factory=list)
    neutralized: list[NeutralizedPassage] = Field(default_factory=list)


class RetrievalView(Contract):
    """How documents were searched for this request, and which chunks had untrusted text neutralized (chunk ids
    only: the excerpts stay in the audit log)."""

    mode: str = "lexical"
    notes: list[str] = Field(default_factory=list)
    neutralized: list[NeutralizedPassage] = Field(default_factory=list)


class PromptRef(Contract):
    """The exact prompt template that produced an answer."""

    id: str
    version: int
    sha256: str


class Usage(Contract):
    """Model usage for one request."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class GenerateInput(Contract):
    """Input of the generate_answer activity: masked facts and safe context only."""

    question: str
    intent: Intent
    facts: list[Fact] = Field(default_factory=list)
    missing: list[MissingData] = Field(default_factory=list)
    masked: list[MaskedComponent] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    # For per-tenant prompt pins; empty in histories recorded before pins existed.
    tenant: str = ""
    # Whose budget the model call spends (docs/generation.md, Budgets); empty in older histories.
    principal_id: str = ""
    # Publish the prose to the request's event stream while the model writes it (RequestInput.stream_tokens).
    stream_tokens: bool = True


class GenerateResult(Contract):
    """The wording of the answer and what produced it."""

    answer: str
    generator: str
    model: str
    prompt: PromptRef
    usage: Usage = Field(default_factory=Usage)
    validated: bool = True
    limitations: list[str] = Field(default_factory=list)
    # Personal data replaced before the prompt went to a model, by kind (email, phone, iban, card).
    redactions: dict[str, int] = Field(default_factory=dict)
    # Who served the model calls (`openai`, or the server's host:port), how many calls this attempt made and
    # how many of them were repairs; empty/zero for the template and in older histories.
    provider: str = ""
    calls: int = 0
    repairs: int = 0
    # The model's own structured reply: its confidence and the fact ids (F1…) and doc ids it says it used.
    model_confidence: float | None = None
    fact_ids: list[str] = Field(default_factory=list)
    doc_ids: list[str] = Field(default_factory=list)


class ScoreInput(Contract):
    """Input of the score_confidence activity."""

    classification: ClassifyResult
    expected_cells: int
    missing: list[MissingData] = Field(default_factory=list)
    facts: int = 0
    generation_validated: bool = True
    passages: int = 0
    # Figures the plan asked for that could not be computed (an operand without data, a zero denominator).
    unavailable: int = 0
    # Choices the planner made that the question left open (docs/planner.md).
    assumptions: int = 0
    # The plan's template (lookup, growth, variance, …; "" in older histories).
    template: str = ""


class Confidence(Contract):
    """How sure Docket is, and why."""

    score: float
    band: Literal["high", "medium", "low"]
    components: dict[str, float] = Field(default_factory=dict)


class ScoreResult(Contract):
    """Confidence and the response type it implies."""

    confidence: Confidence
    outcome: Outcome
    notes: list[str] = Field(default_factory=list)


class Citation(Contract):
    """A document the answer relied on."""

    doc_id: str
    title: str
    chunk_id: str
    # GET /v1/documents/{doc_id} on the gateway that served the result (set by the gateway, not the workflow).
    url: str = ""


class ClassificationView(Contract):
    """What the result says about how the question was understood."""

    intent: Intent
    complexity: Complexity
    method: str
    confidence: float
    slots: Slots
    # classifier version, including the trained model's (e.g. "rules-1+intent-lr-7ee0ee78fb28")
    version: str = ""


class AuthorizationView(Contract):
    """What the result says about the policy decision."""

    allowed: bool
    policies: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    masked: list[MaskedComponent] = Field(default_factory=list)
    policy_version: str = ""


class RequestResult(Contract):
    """The result every client sees (DESIGN §3), as returned by RequestWorkflow."""

    request_id: str
    status: Literal["running", "completed", "failed", "cancelled"] = "completed"
    outcome: Outcome
    tenant: str
    principal_id: str
    question: str
    as_of: date
    answer: str = ""
    facts: list[Fact] = Field(default_factory=list)
    citations: list[Citation] = Field(default_factory=list)
    limitations: list[str] = Field(default_factory=list)
    missing_data: list[str] = Field(default_factory=list)
    clarifying_questions: list[str] = Field(default_factory=list)
    confidence: Confidence | None = None
    classification: ClassificationView | None = None
    authorization: AuthorizationView | None = None
    prompt: PromptRef | None = None
    model: str = ""
    generator: str = ""
    usage: Usage = Field(default_factory=Usage)
    timings: dict[str, int] = Field(default_factory=dict)
    links: dict[str, str] = Field(default_factory=dict)
    retrieval: RetrievalView | None = None


class RequestStatus(Contract):
    """Answer of the RequestWorkflow `status` query while a request runs."""

    stage: Stage
    timings: dict[str, int] = Field(default_factory=dict)
    # While waiting in the confirm stage: what Docket understood and what it is unsure of.
    awaiting_confirmation: ClassificationView | None = None


PERIOD_LABEL = re.compile(r"^(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4])|-H([12]))?$")


def period_from_label(label: str) -> PeriodRef:
    """'2026-03', '2026-Q2', '2026-H1' or '2026' as a PeriodRef; ValueError for anything else."""
    m = PERIOD_LABEL.match(label.strip())
    if not m:
        raise ValueError(f"period {label!r} is not YYYY-MM, YYYY-Qn, YYYY-Hn or YYYY")
    year = int(m.group(1))
    if m.group(2):
        first = last = int(m.group(2))
    elif m.group(3):
        first, last = int(m.group(3)) * 3 - 2, int(m.group(3)) * 3
    elif m.group(4):
        first, last = int(m.group(4)) * 6 - 5, int(m.group(4)) * 6
    else:
        first, last = 1, 12
    return PeriodRef(label=label.strip(), months=[f"{year:04d}-{mm:02d}" for mm in range(first, last + 1)])


ENTITY_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfirmInput(Contract):
    """The `confirm` update: accept what Docket understood, or correct it. Omitted fields stay as understood."""

    accept: bool = True
    intent: Intent | None = None
    complexity: Complexity | None = None
    entities: list[str] | None = None
    periods: list[str] | None = None
    note: str = ""

    @field_validator("entities")
    @classmethod
    def _entities(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("entities, when given, must name at least one entity")
            bad = [e for e in value if not ENTITY_CODE.match(e)]
            if bad:
                raise ValueError(f"not entity codes: {bad}")
        return value

    @field_validator("periods")
    @classmethod
    def _periods(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("periods, when given, must name at least one period")
            for label in value:
                period_from_label(label)
        return value


class ConfirmResult(Contract):
    """What the workflow will now run with."""

    accepted: bool
    classification: ClassificationView


class AuditEvent(Contract):
    """One audit record per stage per request; (workflow_id, step) is unique."""

    step: int
    stage: str
    actor: str
    decision: str
    detail: dict[str, object] = Field(default_factory=dict)
    policy_version: str = ""
    prompt_sha256: str = ""
    model: str = ""


class RecordInput(Contract):
    """Input of the record_result activity."""

    workflow_id: str
    result: RequestResult
    events: list[AuditEvent] = Field(default_factory=list)


class RecordResult(Contract):
    """What record_result wrote (zero on a retry that found everything written)."""

    audit_rows_written: int
    result_written: bool


# ---------------------------------------------------------------- ingestion


class IngestInput(Contract):
    """Input of IngestWorkflow.

    Staged uploads (`upload_ids`, from POST /v1/documents or `docket ingest documents`) and deletions are
    authorized for `principal_id`, stored, then indexed. `doc_ids` alone re-indexes documents already stored.
    """

    tenant: str
    doc_ids: list[str] = Field(default_factory=list)
    principal_id: str = ""
    upload_ids: list[str] = Field(default_factory=list)
    delete_doc_ids: list[str] = Field(default_factory=list)


class AuthorizeIngestInput(Contract):
    """Input of the authorize_ingest activity."""

    tenant: str
    principal_id: str
    upload_ids: list[str] = Field(default_factory=list)
    delete_doc_ids: list[str] = Field(default_factory=list)


class AuthorizeIngestResult(Contract):
    """May this principal add these documents to (or delete them from) this tenant, and if not, why."""

    allowed: bool
    policies: list[str] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)
    # The stored version of each document the decision covered (0: absent); the write refuses any other.
    versions: dict[str, int] = Field(default_factory=dict)


class StoreDocumentsInput(Contract):
    """Input of store_documents / delete_documents."""

    tenant: str
    principal_id: str
    upload_ids: list[str] = Field(default_factory=list)
    delete_doc_ids: list[str] = Field(default_factory=list)
    expected_versions: dict[str, int] = Field(default_factory=dict)


class StoreDocumentsResult(Contract):
    """Documents written (new or changed), unchanged, and deleted."""

    changed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)


class IndexDocumentsInput(Contract):
    """Input of the index_documents activity."""

    tenant: str
    doc_ids: list[str] = Field(default_factory=list)


class IndexDocumentsResult(Contract):
    """How many documents and chunks were (re)indexed; for IngestWorkflow, also what was stored or refused."""

    documents: int
    chunks: int
    version: str = ""
    deleted: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    flagged_chunks: list[str] = Field(default_factory=list)
    denied: bool = False
    reasons: list[str] = Field(default_factory=list)
    policies: list[str] = Field(default_factory=list)


class IndexAdminInput(Contract):
    """Input of IndexWorkflow: `status`, `rebuild` (build a new version, switch unless activate=False),
    `switch` to a named version, or `rollback` to the previous one."""

    action: Literal["status", "rebuild", "switch", "rollback"]
    version: str = ""
    activate: bool = True
    actor: str = ""


class IndexVersionView(Contract):
    """One index version as `docket index status` shows it."""

    name: str
    embedder: str = ""
    dim: int = 0
    created_at: str = ""
    points: int = 0
    active: bool = False


class IndexStatus(Contract):
    """The index: backend, the worker's embedder, the alias target, the previous target and every version."""

    backend: str
    embedder: str = ""
    active: str | None = None
    previous: str | None = None
    versions: list[IndexVersionView] = Field(default_factory=list)
    # What the last action did (rebuild/switch/rollback), in words.
    message: str = ""


# ---------------------------------------------------------------- streaming

# The stream topic of every StreamEvent kind: one topic, so the stream's offsets order stages, tokens and resets
# as they happened.
STREAM_TOPIC = "request"


class StreamEvent(Contract):
    """One item of a request's event stream (`temporalio.contrib.workflow_streams`; docs/generation.md, Streaming).

    `stage`: the request entered `stage`; `timings` holds the milliseconds of each finished stage so far.
    `token`: the next piece of the answer's prose (`text`), published by the generate activity.
    `reset`: a generation attempt or a repair starts over (`attempt`, `text` says why): discard the partial text.
    `result`: the request finished with `outcome` (the gateway sends the full result with it).
    Events travel in signals and update results, so history records them: keep each one small.
    """

    kind: Literal["stage", "token", "reset", "result"]
    stage: Stage | None = None
    text: str = ""
    attempt: int = 0
    outcome: Outcome | None = None
    timings: dict[str, int] = Field(default_factory=dict)


LedgerQueryInput.model_rebuild()
