"""RequestWorkflow: understand → authorize → plan → gather → generate → score → record.

Orchestration only: every decision and every figure comes from an activity, so history holds the complete,
replayable story of a request. Where each stage runs is the request's StagePlacement (docket/contracts.py,
docs/operations.md "Latency"): by default every stage but the answer's model call is a local activity, so a
lookup takes two workflow tasks; `mixed` keeps the I/O stages (ledger tasks, retrieval, the database write)
regular activities with their own retries and visibility in the UI, as runs before the placement patch did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.contrib.workflow_streams import WorkflowStream
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import names
    from docket.contracts import (
        SA_COMPLEXITY,
        SA_INTENT,
        SA_OUTCOME,
        SA_PRINCIPAL,
        SA_TENANT,
        STREAM_TOPIC,
        AuditEvent,
        AuthorizationView,
        AuthorizeInput,
        AuthorizeResult,
        Citation,
        ClassificationView,
        ClassifyInput,
        ClassifyResult,
        ConfirmInput,
        ConfirmResult,
        DataTask,
        Fact,
        GenerateInput,
        GenerateResult,
        Intent,
        LedgerQueryInput,
        LedgerQueryResult,
        MissingData,
        Outcome,
        Plan,
        PlanInput,
        RecordInput,
        RecordResult,
        RequestInput,
        RequestResult,
        RequestStatus,
        RetrievalQuery,
        RetrievalView,
        RetrieveInput,
        RetrieveResult,
        ScoreInput,
        ScoreResult,
        Stage,
        StagePlacement,
        StreamEvent,
        UnderstandInput,
        UnderstandResult,
        period_from_label,
        required_action,
    )

FAST = timedelta(seconds=10)
FAST_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(milliseconds=200))
IO_RETRY = RetryPolicy(
    maximum_attempts=5, initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10)
)


# workflow.patched ids: each marks a change to the command sequence; old histories keep replaying the old branch.
PATCH_CONCURRENT_RETRIEVAL = "gather-retrieval-concurrently"
PATCH_RECORD_FAILURES = "record-stage-failures"
PATCH_SEARCH_ATTRIBUTES = "search-attributes"
# Runs after this patch place their stages by RequestInput.stages (local by default: everything but the model call
# inside the workflow task, docs/benchmarks.md), take tenant and principal from the start request when the
# starter set them, and write intent, complexity and outcome in one upsert. Runs before it keep the mix they were
# recorded with (classify, authorize, plan, compute and score local; the rest regular).
PATCH_STAGE_PLACEMENT = "stage-placement"

ResultT = TypeVar("ResultT")


async def _no_retrieval() -> RetrieveResult:
    return RetrieveResult()


class _TaskFailedError(Exception):
    """A data task (or the document search) failed for good: the gather stage fails with the task named."""

    def __init__(self, task: DataTask | None, err: Exception, what: str = "") -> None:
        cause = err.cause if isinstance(err, ActivityError) else err
        detail = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        self.task_id = task.task_id if task else ""
        if task is not None:
            what = f"{task.kind}: {task.metric} {task.entity_label} {task.period.label}"
            self.message = f"task {task.task_id} ({what}) failed: {detail}"
        else:
            self.message = f"{what or 'task'} failed: {detail}"
        super().__init__(self.message)


def _facts_of(plan: Plan, results: dict[str, LedgerQueryResult]) -> list[Fact]:
    """Every figure of the plan: computed ones first (what was asked), then the ledger sums they rest on."""
    out: list[Fact] = []
    for t in plan.tasks:
        r = results[t.task_id]
        if t.kind != "sum":
            out += ([r.fact] if r.fact is not None else []) + r.facts
    for t in plan.tasks:
        r = results[t.task_id]
        if t.kind == "sum" and r.fact is not None:
            out.append(r.fact)
    # The same figure reached twice (a shocked operand of two scenario metrics) is one fact.
    unique: dict[str, Fact] = {}
    for f in out:
        unique.setdefault(f.label, f)
    return list(unique.values())


def _clarify(c: ClassifyResult, missing: list[MissingData]) -> list[str]:
    """Concrete questions the asker can answer when Docket could not give a figure it can stand behind."""
    if c.intent == Intent.DOCUMENT_QUESTION:
        return ["No document you may see answers this; can you name the document, entity or period?"]
    if missing:
        keys = ", ".join(m.key for m in missing[:4])
        return [
            f"The ledger has no rows for {keys}. Would an earlier period do, or the entities that have submitted?",
            *_rephrasings(c),
        ]
    return ["Which entity and period should the figure cover?", *_rephrasings(c)]


def _view(c: ClassifyResult) -> ClassificationView:
    return ClassificationView(
        intent=c.intent,
        complexity=c.complexity,
        method=c.method,
        confidence=c.confidence,
        slots=c.slots,
        version=c.classifier_version,
    )


def _apply(c: ClassifyResult, data: ConfirmInput) -> ClassifyResult:
    """The reading after a person's confirmation: their corrections win, and a confirmed reading is certain."""
    slots = c.slots.model_copy(deep=True)
    if data.entities is not None:
        slots.entities = list(data.entities)
        slots.entity_scope = "explicit"
    if data.periods is not None:
        slots.periods = [period_from_label(p) for p in data.periods]
    return c.model_copy(
        update={
            "intent": data.intent or c.intent,
            "complexity": data.complexity or c.complexity,
            "slots": slots,
            "confidence": 1.0,
            "needs_confirmation": False,
            "explanations": [
                *c.explanations,
                "confirmed by the asker"
                + (" with corrections" if data.intent or data.complexity or data.entities or data.periods else ""),
            ],
        }
    )


def _uncertainty(c: ClassifyResult) -> str:
    who = {"llm": "a language model", "fallback": "no layer", "ml": "the trained model"}.get(c.method, "the rules")
    return f"{who} read it as {c.intent.value.replace('_', ' ')} with confidence {c.confidence:.2f}"


def _rephrasings(c: ClassifyResult) -> list[str]:
    """Concrete questions Docket can answer with certainty, built from what it did understand."""
    metric = (c.slots.metrics or c.slots.derived or ["revenue"])[0].replace("_", " ")
    entities = c.slots.entities[:3] or ["MER-US"]
    period = c.slots.periods[0].label if c.slots.periods else "last month"
    return [
        f'Try one of: "What was {metric} for {entities[0]} in {period}?"',
        f'"Compare {metric} across {", ".join(entities)} for {period}"'
        if len(entities) > 1
        else f'"What is the yoy growth of {metric} for {entities[0]} in {period}?"',
    ]


@workflow.defn(name=names.REQUEST_WORKFLOW)
class RequestWorkflow:
    """One governed question, end to end."""

    def __init__(self) -> None:
        self._stage = Stage.QUEUED
        self._timings: dict[str, int] = {}
        self._stage_started = workflow.now()
        self._pending: ClassifyResult | None = None
        self._confirmation: ConfirmInput | None = None
        self._confirm_timeout = 900
        self._indexed = False
        # None: a run recorded before the stage-placement patch (its legacy mix of local and regular stages).
        self._placement: StagePlacement | None = None
        # The reading whose intent and complexity are not yet in the run's search attributes (placement runs write
        # them with the outcome, or before waiting for a person, so a lookup upserts once).
        self._unindexed: ClassifyResult | None = None
        # Progress for GET /v1/requests/{id}/events. Publishing from the workflow appends to an in-memory log and
        # adds no command, so histories recorded before streaming still replay; the generate activity publishes
        # tokens into the same log by signal (activities/llm/stream.py).
        self._stream = WorkflowStream()
        self._events = self._stream.topic(STREAM_TOPIC, type=StreamEvent)
        # The `result` update (update-with-start for `?wait`): answered once the result is recorded, or failed when
        # the run closes without one.
        self._result: RequestResult | None = None
        self._closing = False
        # Stage → milliseconds measured inside understand_request (the fused placement): those stages ran inside
        # one local activity, so the workflow's clock cannot tell them apart.
        self._measured: dict[str, int] = {}

    def _enter(self, stage: Stage) -> None:
        now = workflow.now()
        if self._stage not in (Stage.QUEUED, Stage.DONE):
            took = self._measured.pop(self._stage.value, None)
            self._timings[self._stage.value] = (
                took if took is not None else int((now - self._stage_started).total_seconds() * 1000)
            )
        self._stage = stage
        self._stage_started = now
        if stage != Stage.DONE:  # the end is announced by the `result` event, with the outcome
            self._events.publish(StreamEvent(kind="stage", stage=stage, timings=dict(self._timings)))

    async def _call(
        self,
        name: str,
        arg: object,
        result_type: type[ResultT],
        *,
        mixed_local: bool,
        start_to_close: timedelta,
        retry: RetryPolicy,
        summary: str,
        heartbeat: timedelta | None = None,
        model_call: bool = False,
    ) -> ResultT:
        """One stage's activity, local or regular as the run's placement says; `mixed_local` is its place in
        the mixed placement, which runs recorded before placement existed used.

        A model call is always a regular activity: a local one that finished just before a worker crash would
        run again (its marker is written with the workflow task), and a model call costs money.
        """
        if self._placement in (None, StagePlacement.MIXED):
            local = mixed_local
        else:
            local = self._placement in (StagePlacement.LOCAL, StagePlacement.FUSED) and not model_call
        if local:
            done: ResultT = await workflow.execute_local_activity(
                name,
                arg,
                result_type=result_type,
                start_to_close_timeout=start_to_close,
                retry_policy=retry,
                summary=summary,
            )
            return done
        ran: ResultT = await workflow.execute_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=start_to_close,
            heartbeat_timeout=heartbeat,
            retry_policy=retry,
            summary=summary,
        )
        return ran

    @workflow.query(name="status")
    def status(self) -> RequestStatus:
        """Current stage and the milliseconds spent in each finished stage."""
        pending = _view(self._pending) if self._stage == Stage.CONFIRM and self._pending else None
        return RequestStatus(stage=self._stage, timings=dict(self._timings), awaiting_confirmation=pending)

    @workflow.update(name="confirm")
    async def confirm(self, data: ConfirmInput) -> ConfirmResult:
        """A person accepts or corrects what Docket understood; the request then runs with that reading."""
        assert self._pending is not None  # the validator admits updates only while a reading is pending
        self._confirmation = data
        return ConfirmResult(accepted=data.accept, classification=_view(_apply(self._pending, data)))

    @confirm.validator
    def _validate_confirm(self, data: ConfirmInput) -> None:
        # Rejected updates never reach history: only one answer, and only while the request is waiting for one.
        if self._stage != Stage.CONFIRM or self._pending is None:
            raise ValueError(f"request is not waiting for confirmation (stage: {self._stage.value})")
        if self._confirmation is not None:
            raise ValueError("request was already confirmed")

    @workflow.update(name="result")
    async def result(self) -> RequestResult:
        """The recorded result, once there is one: the gateway's `?wait` starts the run with this update
        (update-with-start, DOCKET_WAIT_VIA_UPDATE), so one call starts the request and brings its answer back.

        An update sent to a run writes two events (accepted, completed); runs that never get one are unchanged, so
        histories recorded before this handler existed replay as they are.
        """
        await workflow.wait_condition(lambda: self._result is not None or self._closing)
        if self._result is None:
            raise ApplicationError("the request closed without a result", type="NoResult", non_retryable=True)
        return self._result

    @workflow.run
    async def run(self, req: RequestInput) -> RequestResult:
        # Decided once, as the run's very first command, so the patch marker sits at the same place in every new
        # history whatever the run does later (local activities, signals, updates); runs recorded before the
        # search-attributes patch have no marker and never upsert.
        if workflow.patched(PATCH_STAGE_PLACEMENT):
            # The newest patch implies every earlier one (search attributes, concurrent retrieval, recorded
            # failures): a new run asks for it alone, since each patch costs a marker and an upsert of
            # TemporalChangeVersion in history. Runs recorded earlier have no marker for it and take their
            # recorded branches below.
            self._placement = req.stages
            self._indexed = True
        else:
            self._indexed = workflow.patched(PATCH_SEARCH_ATTRIBUTES)
        if self._indexed:
            # The API sets tenant and principal when it starts the run; a run started without them adds them.
            given = workflow.info().typed_search_attributes
            who = [
                update
                for update in (SA_TENANT.value_set(req.tenant), SA_PRINCIPAL.value_set(req.principal_id))
                if self._placement is None or given.get(update.key) is None
            ]
            if who:
                workflow.upsert_search_attributes(who)
        self._confirm_timeout = req.confirm_timeout_seconds
        wid = workflow.info().workflow_id
        events: list[AuditEvent] = []
        actor = req.principal_id

        def audit(stage: Stage, decision: str, **detail: object) -> None:
            events.append(
                AuditEvent(
                    step=len(events) + 1,
                    stage=stage.value,
                    actor=actor,
                    decision=decision,
                    detail=dict(detail),
                )
            )

        base = RequestResult(
            request_id=wid,
            outcome=Outcome.FAILED,
            tenant=req.tenant,
            principal_id=req.principal_id,
            question=req.question,
            as_of=req.as_of,
        )

        try:
            return await self._stages(req, wid, base, events, audit)
        except (ActivityError, ApplicationError) as err:
            # A stage failed for good (non-retryable, or out of retries): record the failure with its cause so
            # GET shows why and the audit trail is complete. Histories from before the patch failed the run.
            # (A failed local activity surfaces as its ApplicationError, a regular one as ActivityError.)
            if self._stage in (Stage.RECORD, Stage.DONE) or not (
                self._placement is not None or workflow.patched(PATCH_RECORD_FAILURES)
            ):
                await self._close_stream(
                    StreamEvent(kind="result", outcome=Outcome.FAILED, timings=dict(self._timings))
                )
                raise
            cause = err.cause if isinstance(err, ActivityError) else err
            detail = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            stage = self._stage
            base.outcome = Outcome.FAILED
            base.answer = f"The request failed during {stage.value}; nothing was answered."
            base.limitations = [*base.limitations, f"{stage.value} failed: {detail}"]
            audit(stage, "failed", error=detail)
            return await self._finish(wid, base, events)

    async def _stages(
        self,
        req: RequestInput,
        wid: str,
        base: RequestResult,
        events: list[AuditEvent],
        audit: Callable[..., None],
    ) -> RequestResult:
        actor = req.principal_id
        # 1 classify (with the fused placement: classify, authorize and plan as far as no person is needed)
        self._enter(Stage.CLASSIFY)
        fused: UnderstandResult | None = None
        if self._placement == StagePlacement.FUSED:
            try:
                fused = await self._call(
                    names.UNDERSTAND,
                    UnderstandInput(
                        tenant=req.tenant, principal_id=req.principal_id, question=req.question, as_of=req.as_of
                    ),
                    UnderstandResult,
                    mixed_local=True,
                    # As classify alone: the LLM layer, for the rare ambiguous request, may take long.
                    start_to_close=timedelta(seconds=60),
                    # One attempt: the separate stages below are the retry, each with its own policy.
                    retry=RetryPolicy(maximum_attempts=1),
                    summary="understand, authorize and plan the question",
                )
            except (ActivityError, ApplicationError) as err:
                # The separate stages run instead, so that a failure is recorded against the stage that failed (an
                # unknown principal fails authorize, not classify), after that stage's own retries.
                workflow.logger.warning("understand_request failed, running the stages separately: %s", err)
                fused = None
        if fused is not None:
            self._measured = dict(fused.timings)
            cls = fused.classification
        else:
            cls = await self._call(
                names.CLASSIFY,
                ClassifyInput(tenant=req.tenant, question=req.question, as_of=req.as_of),
                ClassifyResult,
                mixed_local=True,
                # Rules and the model take milliseconds; the LLM layer, for the rare ambiguous request, may take
                # long.
                start_to_close=timedelta(seconds=60),
                retry=FAST_RETRY,
                summary="understand the question: intent, complexity, slots",
            )
        base.classification = _view(cls)
        self._index(req, cls)
        audit(
            Stage.CLASSIFY,
            cls.intent.value,
            method=cls.method,
            confidence=cls.confidence,
            complexity=cls.complexity.value,
            version=cls.classifier_version,
        )
        if cls.clarifications:
            base.outcome = Outcome.CLARIFICATION_REQUIRED
            base.clarifying_questions = list(cls.clarifications)
            base.answer = "I need more detail before I can answer: " + " ".join(cls.clarifications)
            return await self._finish(wid, base, events)

        # 1b confirm: an uncertain reading (LLM-decided, fallback or low confidence) waits for a person.
        if cls.needs_confirmation:
            confirmed = await self._confirm(
                cls, base, audit, f"I was not sure I understood this question ({_uncertainty(cls)})"
            )
            if confirmed is None:
                return await self._finish(wid, base, events)
            cls = confirmed

        # 2 authorize (decided already when fused, unless a person had to confirm the reading first)
        authz = await self._authorize(
            req, cls, base, events, fused.authorization if fused is not None and fused.classification is cls else None
        )
        if not authz.allowed and authz.needs_confirmation and not cls.needs_confirmation and cls.confidence < 1.0:
            # Denied only by a rule that a person's confirmation lifts (POL-002: consolidation needs a reading
            # above 0.95): confirm, then decide again on the confirmed reading.
            confirmed = await self._confirm(cls, base, audit, " ".join(authz.reasons))
            if confirmed is None:
                return await self._finish(wid, base, events)
            cls = confirmed
            authz = await self._authorize(req, cls, base, events)
        if not authz.allowed:
            base.outcome = Outcome.DENIED
            base.answer = "I can't answer this. " + " ".join(authz.reasons)
            return await self._finish(wid, base, events)

        # 3 plan (made already when fused and the first decision allowed the request as it was read)
        self._enter(Stage.PLAN)
        if fused is not None and fused.plan is not None and fused.authorization is authz:
            plan = fused.plan
        else:
            plan = await self._call(
                names.PLAN,
                PlanInput(tenant=req.tenant, question=req.question, classification=cls, authorization=authz),
                Plan,
                mixed_local=True,
                start_to_close=FAST,
                retry=FAST_RETRY,
                summary="plan the data tasks and the document search",
            )
        audit(
            Stage.PLAN,
            f"{len(plan.tasks)} tasks",
            tasks=[t.task_id for t in plan.tasks],
            retrieval=plan.retrieval is not None,
            unsupported=plan.unsupported,
            template=plan.template,
            data_version=plan.data_version,
            assumptions=plan.assumptions,
        )
        if plan.unsupported:
            base.outcome = Outcome.CLARIFICATION_REQUIRED
            metric = ", ".join(cls.slots.metrics) or "the metric"
            periods = ", ".join(p.label for p in cls.slots.periods) or "each period"
            entities = ", ".join(cls.slots.entities[:3]) or "each entity"
            base.clarifying_questions = [
                f"Docket cannot plan this: {plan.unsupported.replace('_', ' ')}. Would the underlying figures "
                f"help? For example: {metric} for {entities} in {periods}, and the comparison period."
            ]
            base.answer = "I can't compute this kind of analysis. " + base.clarifying_questions[0]
            base.limitations = [f"{plan.unsupported} is not supported by the planner"]
            return await self._finish(wid, base, events)

        # 4 gather: the task DAG (every task once its operands are done) with the document search alongside
        self._enter(Stage.GATHER)
        try:
            if self._placement is not None or workflow.patched(PATCH_CONCURRENT_RETRIEVAL):
                results, retrieved = await self._gather(req, plan)
            else:
                # Histories recorded before the patch scheduled the search only after every ledger task (their
                # plans hold ledger sums only).
                try:
                    ledger = await asyncio.gather(*(self._run_task(req, plan, t, {}) for t in plan.tasks))
                    results = {r.task_id: r for r in ledger}
                    retrieved = await self._retrieve(plan.retrieval) if plan.retrieval is not None else RetrieveResult()
                except ActivityError as err:
                    raise _TaskFailedError(None, err, err.activity_type or "task") from err
        except _TaskFailedError as err:
            base.outcome = Outcome.FAILED
            base.answer = "The request failed while gathering data; nothing was answered."
            base.limitations = [err.message]
            audit(Stage.GATHER, "failed", error=err.message, task=err.task_id)
            return await self._finish(wid, base, events)
        leaves = [t for t in plan.tasks if t.kind == "sum"]
        facts = _facts_of(plan, results)
        # One entity-month counts once however many tasks read it (a trend and its total share months).
        missing = list({m.key: m for t in leaves for m in results[t.task_id].missing}.values())
        expected_cells = len({(e, m) for t in leaves for e in t.entities for m in t.period.months})
        unavailable = [results[t.task_id].unavailable for t in plan.tasks if results[t.task_id].unavailable]
        audit(
            Stage.GATHER,
            f"{len(facts)} facts",
            rows=sum(r.rows for r in results.values()),
            missing=[m.key for m in missing],
            tasks=len(plan.tasks),
            reused=[t.task_id for t in plan.tasks if results[t.task_id].reused],
            unavailable=unavailable,
            passages=[p.chunk_id for p in retrieved.passages],
            retrieval_mode=retrieved.mode,
            # Untrusted text removed from what was retrieved: kept in the audit log, never in a prompt.
            neutralized=[f"{n.chunk_id}: {n.excerpt}" for n in retrieved.neutralized],
        )

        # 5 generate
        self._enter(Stage.GENERATE)
        gen = await self._call(
            names.GENERATE,
            GenerateInput(
                question=req.question,
                intent=cls.intent,
                facts=facts,
                missing=missing,
                masked=authz.masked,
                passages=retrieved.passages,
                tenant=req.tenant,
                principal_id=req.principal_id,
                stream_tokens=req.stream_tokens,
            ),
            GenerateResult,
            mixed_local=False,
            model_call=True,
            start_to_close=timedelta(seconds=120),
            # The activity heartbeats every few seconds while the model works: a worker that dies mid-call is
            # noticed in seconds, not after the whole start-to-close timeout.
            heartbeat=timedelta(seconds=15),
            retry=RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=1)),
            summary=f"word the answer from {len(facts)} facts and {len(retrieved.passages)} passages",
        )
        events.append(
            AuditEvent(
                step=len(events) + 1,
                stage=Stage.GENERATE.value,
                actor=actor,
                decision=gen.generator,
                # Counts only: what kind of personal data was kept out of the prompt, never the data.
                detail={"validated": gen.validated, "redactions": gen.redactions},
                prompt_sha256=gen.prompt.sha256,
                model=gen.model,
            )
        )

        # 6 score
        self._enter(Stage.SCORE)
        scored = await self._call(
            names.SCORE,
            ScoreInput(
                classification=cls,
                expected_cells=expected_cells,
                missing=missing,
                facts=len(facts),
                generation_validated=gen.validated,
                passages=len(retrieved.passages),
                unavailable=len(unavailable),
                assumptions=len(plan.assumptions),
                template=plan.template,
            ),
            ScoreResult,
            mixed_local=True,
            start_to_close=FAST,
            retry=FAST_RETRY,
            summary="score confidence and choose the response type",
        )
        audit(Stage.SCORE, scored.outcome.value, score=scored.confidence.score)

        base.outcome = scored.outcome
        base.answer = gen.answer
        base.facts = facts
        base.citations = [Citation(doc_id=p.doc_id, title=p.title, chunk_id=p.chunk_id) for p in retrieved.passages[:2]]
        if plan.retrieval is not None:
            base.retrieval = RetrievalView(
                mode=retrieved.mode,
                notes=retrieved.notes,
                # Which chunks, not what they said: the excerpt stays in the audit log (a client may hand the
                # result to a model of its own).
                neutralized=[n.model_copy(update={"excerpt": ""}) for n in retrieved.neutralized],
            )
        base.missing_data = [m.key for m in missing]
        base.limitations = (
            [f"{m.key} not submitted ({m.reason}): left out of the figures, not counted as zero." for m in missing]
            + [m.reason for m in authz.masked]
            + [f"Assumed: {a}." for a in plan.assumptions]
            + [f"{u}." for u in unavailable]
            + gen.limitations
            + scored.notes
        )
        if scored.outcome == Outcome.CLARIFICATION_REQUIRED:
            base.clarifying_questions = _clarify(cls, missing)
        base.confidence = scored.confidence
        base.prompt = gen.prompt
        base.model = gen.model
        base.generator = gen.generator
        base.usage = gen.usage
        return await self._finish(wid, base, events)

    async def _gather(self, req: RequestInput, plan: Plan) -> tuple[dict[str, LedgerQueryResult], RetrieveResult]:
        """Run the plan's DAG: each task as soon as its operands are done, the document search alongside.

        Tasks start in plan order (for a plan of independent ledger sums exactly as the gather stage always did,
        so older histories replay). A task that fails for good stops new tasks from starting and fails the stage
        with the task named; tasks already running are left to finish, as asyncio.gather leaves them.
        """
        results: dict[str, LedgerQueryResult] = {}
        order = {t.task_id: i for i, t in enumerate(plan.tasks)}
        waiting = list(plan.tasks)
        running: dict[asyncio.Task[Any], DataTask] = {}

        def launch() -> None:
            for t in [t for t in waiting if all(d in results for d in t.depends_on)]:
                waiting.remove(t)
                running[asyncio.create_task(self._run_task(req, plan, t, results))] = t

        launch()
        search = asyncio.create_task(self._retrieve(plan.retrieval) if plan.retrieval is not None else _no_retrieval())
        while running or not search.done():
            # The search is waited on with the tasks: a search that fails for good fails the stage at once, as the
            # gather stage always did (histories where it failed while sums ran replay the same commands).
            pending: list[asyncio.Task[Any]] = [*running, *([] if search.done() else [search])]
            done, _ = await workflow.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if search in done:
                failure = search.exception()
                if isinstance(failure, ActivityError):
                    raise _TaskFailedError(None, failure, failure.activity_type or names.RETRIEVE) from failure
                if isinstance(failure, ApplicationError):  # the search as a local activity
                    raise _TaskFailedError(None, failure, names.RETRIEVE) from failure
                if failure is not None:
                    raise failure
            for fut in sorted((f for f in done if f is not search), key=lambda f: order[running[f].task_id]):
                task = running.pop(fut)
                try:
                    results[task.task_id] = fut.result()
                except (ActivityError, ApplicationError) as err:
                    raise _TaskFailedError(task, err) from err
            launch()
        if waiting:
            # Only a planner bug leaves tasks whose operands never come: fail the stage, naming them.
            raise _TaskFailedError(waiting[0], ApplicationError("an operand of this task is not in the plan"))
        return results, search.result()

    async def _run_task(
        self, req: RequestInput, plan: Plan, task: DataTask, results: dict[str, LedgerQueryResult]
    ) -> LedgerQueryResult:
        """One data task: a ledger sum, or a computation over its operands (legacy runs: the sum a regular
        activity, the computation a local one). Either way a retry, or a re-run after a worker crash, reuses what
        an earlier attempt stored (docket/dataversion.py)."""
        data = LedgerQueryInput(tenant=req.tenant, task=task, data_version=plan.data_version)
        summary = f"{task.metric} {task.entity_label} {task.period.label}"
        if task.kind == "sum":
            return await self._call(
                names.LEDGER_QUERY,
                data,
                LedgerQueryResult,
                mixed_local=False,
                start_to_close=timedelta(seconds=30),
                # A long sum heartbeats (activities/errors.py): a worker that dies mid-task is noticed in
                # seconds when the sum is a regular activity.
                heartbeat=timedelta(seconds=10),
                retry=IO_RETRY,
                summary=summary,
            )
        # Arithmetic on figures already in history: milliseconds.
        data.inputs = [results[d] for d in task.depends_on]
        return await self._call(
            names.COMPUTE_TASK,
            data,
            LedgerQueryResult,
            mixed_local=True,
            start_to_close=FAST,
            retry=FAST_RETRY,
            summary=summary,
        )

    async def _retrieve(self, query: RetrievalQuery) -> RetrieveResult:
        return await self._call(
            names.RETRIEVE,
            RetrieveInput(query=query),
            RetrieveResult,
            mixed_local=False,
            start_to_close=timedelta(seconds=30),
            retry=IO_RETRY,
            summary=f"search documents ({len(query.entities)} entities, clearance {query.max_clearance})",
        )

    async def _authorize(
        self,
        req: RequestInput,
        cls: ClassifyResult,
        base: RequestResult,
        events: list[AuditEvent],
        decided: AuthorizeResult | None = None,
    ) -> AuthorizeResult:
        """One Cedar decision for the reading (`decided`: made by understand_request already), recorded on the
        result and as an audit event."""
        self._enter(Stage.AUTHORIZE)
        authz = (
            decided
            if decided is not None
            else await self._call(
                names.AUTHORIZE,
                AuthorizeInput(
                    tenant=req.tenant, principal_id=req.principal_id, action=required_action(cls), classification=cls
                ),
                AuthorizeResult,
                mixed_local=True,
                start_to_close=FAST,
                retry=FAST_RETRY,
                summary=f"authorize {required_action(cls).value} for {req.principal_id}",
            )
        )
        base.authorization = AuthorizationView(
            allowed=authz.allowed,
            policies=authz.policies,
            reasons=authz.reasons,
            masked=authz.masked,
            policy_version=authz.policy_version,
        )
        events.append(
            AuditEvent(
                step=len(events) + 1,
                stage=Stage.AUTHORIZE.value,
                actor=req.principal_id,
                decision="allowed" if authz.allowed else "denied",
                detail={
                    "policies": authz.policies,
                    "decisions": authz.decisions,
                    "masked": [m.account for m in authz.masked],
                },
                policy_version=authz.policy_version,
            )
        )
        return authz

    async def _confirm(
        self, cls: ClassifyResult, base: RequestResult, audit: Callable[..., None], why: str
    ) -> ClassifyResult | None:
        """Publish the reading, wait for the `confirm` update; the confirmed reading, or None (base is filled)."""
        self._pending = cls
        self._confirmation = None
        self._enter(Stage.CONFIRM)
        if self._indexed and self._placement is not None and self._unindexed is not None:
            # A person may take minutes: the reading is searchable while the run waits.
            workflow.upsert_search_attributes(self._reading_attributes())
        try:
            await workflow.wait_condition(
                lambda: self._confirmation is not None,
                timeout=timedelta(seconds=self._confirm_timeout),
                timeout_summary="waiting for confirmation",
            )
        except TimeoutError:
            audit(Stage.CONFIRM, "timeout", waited_seconds=self._confirm_timeout)
            base.outcome = Outcome.CLARIFICATION_REQUIRED
            base.clarifying_questions = _rephrasings(cls)
            base.answer = f"{why} Nobody confirmed my reading in time. " + " ".join(base.clarifying_questions)
            return None
        confirmation = self._confirmation
        assert confirmation is not None
        if not confirmation.accept:
            audit(Stage.CONFIRM, "rejected", note=confirmation.note[:200])
            base.outcome = Outcome.CLARIFICATION_REQUIRED
            base.clarifying_questions = _rephrasings(cls)
            base.answer = "You did not confirm my reading of the question. " + " ".join(base.clarifying_questions)
            return None
        confirmed = _apply(cls, confirmation)
        corrected = [k for k in ("intent", "complexity", "entities", "periods") if getattr(confirmation, k)]
        audit(Stage.CONFIRM, "corrected" if corrected else "accepted", corrected=corrected)
        base.classification = _view(confirmed)
        if corrected and self._indexed and self._placement is not None:
            self._unindexed = confirmed
        elif corrected and self._indexed:
            workflow.upsert_search_attributes(
                [SA_INTENT.value_set(confirmed.intent.value), SA_COMPLEXITY.value_set(confirmed.complexity.value)]
            )
        self._pending = None
        return confirmed

    def _index(self, req: RequestInput, cls: ClassifyResult) -> None:
        """Search attributes of the run (who asked, what was understood): filters in the Temporal UI and
        `temporal workflow list --query`. Runs recorded before the patch never upserted them; runs after the
        stage-placement patch write the reading with the outcome (or before waiting for a person), in one upsert."""
        if not self._indexed:
            return
        if self._placement is not None:
            self._unindexed = cls
            return
        workflow.upsert_search_attributes(
            [SA_INTENT.value_set(cls.intent.value), SA_COMPLEXITY.value_set(cls.complexity.value)]
        )

    def _reading_attributes(self) -> list[SearchAttributeUpdate[Any]]:
        """The pending reading's search attributes, once (placement runs)."""
        cls, self._unindexed = self._unindexed, None
        if cls is None:
            return []
        return [SA_INTENT.value_set(cls.intent.value), SA_COMPLEXITY.value_set(cls.complexity.value)]

    async def _finish(self, wid: str, result: RequestResult, events: list[AuditEvent]) -> RequestResult:
        if self._indexed:
            workflow.upsert_search_attributes([*self._reading_attributes(), SA_OUTCOME.value_set(result.outcome.value)])
        # 7 record: the record stage's own audit row is written in the same idempotent transaction.
        self._enter(Stage.RECORD)
        events.append(
            AuditEvent(
                step=len(events) + 1,
                stage=Stage.RECORD.value,
                actor=result.principal_id,
                decision=result.outcome.value,
                detail={"facts": len(result.facts)},
            )
        )
        result.timings = dict(self._timings)
        await self._call(
            names.RECORD,
            RecordInput(workflow_id=wid, result=result, events=events),
            RecordResult,
            mixed_local=False,
            start_to_close=timedelta(seconds=15),
            retry=IO_RETRY,
            summary=f"record the {result.outcome.value} result and {len(events)} audit events",
        )
        self._enter(Stage.DONE)
        result.timings = dict(self._timings)
        result.timings["total"] = int((workflow.now() - workflow.info().start_time).total_seconds() * 1000)
        self._result = result
        await self._close_stream(
            StreamEvent(kind="result", stage=Stage.DONE, outcome=result.outcome, timings=dict(result.timings))
        )
        return result

    async def _close_stream(self, last: StreamEvent) -> None:
        """Publish the stream's last event and let every waiting subscriber have it before the run closes."""
        self._events.publish(last)
        self._closing = True  # a `result` update still waiting answers now (or fails: the run has no result)
        # Detaching releases the polls still waiting (each returns what it has, the last event included), so none
        # is abandoned with a warning when the run closes; later reads go through the stream's query on the closed
        # run. Waiting on a condition adds no command: histories recorded before streaming replay unchanged.
        self._stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)
