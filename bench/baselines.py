"""Baselines that run the Docket worker's own stage functions under other orchestrators (issue 9).

Every baseline calls the activity methods `Components.activities()` hands the Temporal worker (the same engines,
the same database, the same `asyncio.to_thread` hand-off), each inside an activity context like the worker gives
it, in RequestWorkflow's order: classify → authorize → plan → gather (the plan's task DAG: ledger sums and compute
tasks, the document search alongside) → generate → score → record. Only the orchestration differs:

- B0 plain asyncio (the floor): the stages chained with `await`, nothing persisted between them;
- B1 LangGraph: a StateGraph with one node per stage over the async SQLite checkpointer, at durability `sync`
  (each step's checkpoint is written before the next step starts: parity with Temporal's history) and at
  LangGraph's default durability (`async`: the checkpoint is written while the next step runs);
- B2 DBOS: one workflow with one step per stage, its system database on SQLite (each step's output is written
  before the workflow continues).

Between stages the durable baselines carry a JSON-able dict (pydantic `model_dump(mode="json")`), never live
objects; B0 carries the objects themselves. The gather stage is one node or step in B1 and B2 (its tasks run with
asyncio inside it, as RequestWorkflow runs them), where Temporal records every data task on its own. A failed
activity is recorded as a failed request, as RequestWorkflow does after its retries; the baselines do not retry.

    python -m bench.baselines [--n 30] [--warmup 3] [--keys b0 b1-sync b1-default b2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypedDict, TypeVar

from dbos import DBOS, SetWorkflowID
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import names
from docket.contracts import (
    AuditEvent,
    AuthorizationView,
    AuthorizeInput,
    AuthorizeResult,
    Citation,
    ClassifyInput,
    ClassifyResult,
    DataTask,
    Fact,
    GenerateInput,
    GenerateResult,
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
    RetrievalView,
    RetrieveInput,
    RetrieveResult,
    ScoreInput,
    ScoreResult,
    Stage,
    required_action,
)
from worker.main import Components
from workflows.request import _clarify, _facts_of, _rephrasings, _TaskFailedError, _uncertainty, _view

log = logging.getLogger("bench.baselines")

M = TypeVar("M", bound=BaseModel)

KEYS = ("b0", "b1-sync", "b1-default", "b2")
STAGES = ("classify", "authorize", "plan", "gather", "generate", "score", "record")
DONE = "done"

# Per activity: (start-to-close timeout, heartbeat timeout, local activity), as RequestWorkflow schedules it. Only
# what the activity code reads from its context matters (generate_answer's deadline); the rest is for fidelity.
_SCHEDULE: dict[str, tuple[timedelta, timedelta | None, bool]] = {
    names.CLASSIFY: (timedelta(seconds=60), None, True),
    names.AUTHORIZE: (timedelta(seconds=10), None, True),
    names.PLAN: (timedelta(seconds=10), None, True),
    names.LEDGER_QUERY: (timedelta(seconds=30), timedelta(seconds=10), False),
    names.COMPUTE_TASK: (timedelta(seconds=10), None, True),
    names.RETRIEVE: (timedelta(seconds=30), None, False),
    names.GENERATE: (timedelta(seconds=120), timedelta(seconds=15), False),
    names.SCORE: (timedelta(seconds=10), None, True),
    names.RECORD: (timedelta(seconds=15), None, False),
}


# ---------------------------------------------------------------- the worker's activity methods, called directly


class WorkerActivities:
    """The activity methods `Components.activities()` gives the worker, called in an activity context.

    The context (temporalio.testing.ActivityEnvironment) is what the worker would give them: `activity.info()`
    with the request's id as workflow id, heartbeats dropped. Its workflow type is not RequestWorkflow, so
    generate_answer streams no tokens (there is no workflow to signal).
    """

    def __init__(self, components: Components) -> None:
        self.methods: dict[str, Callable[[Any], Awaitable[Any]]] = {fn.__name__: fn for fn in components.activities()}
        missing = [n for n in _SCHEDULE if n not in self.methods]
        if missing:
            raise ValueError(f"Components.activities() has no {missing}")
        self._info = dataclasses.replace(
            ActivityEnvironment.default_info(), workflow_type="baseline", task_queue="baseline", namespace="baseline"
        )

    async def call(self, rid: str, name: str, data: BaseModel, result_type: type[M]) -> M:
        timeout, heartbeat, local = _SCHEDULE[name]
        env = ActivityEnvironment()
        now = datetime.now(UTC)
        env.info = dataclasses.replace(
            self._info,
            activity_id=f"{name}-{uuid.uuid4().hex[:8]}",
            activity_type=name,
            workflow_id=rid,
            workflow_run_id=rid,
            start_to_close_timeout=timeout,
            schedule_to_close_timeout=None,
            heartbeat_timeout=heartbeat,
            is_local=local,
            scheduled_time=now,
            started_time=now,
            current_attempt_scheduled_time=now,
        )
        out = await env.run(self.methods[name], data)
        if not isinstance(out, result_type):
            raise TypeError(f"{name} returned {type(out).__name__}, expected {result_type.__name__}")
        return out


# ---------------------------------------------------------------- one request's state between stages


def _dump(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


def _load(kind: type[M], data: dict[str, Any] | None) -> M | None:
    return None if data is None else kind.model_validate(data)


@dataclass
class Run:
    """What RequestWorkflow keeps in its local variables, plus the stage clock (`_enter`)."""

    rid: str
    req: RequestInput
    base: RequestResult
    started: float
    stage: str = Stage.QUEUED.value
    stage_started: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    events: list[AuditEvent] = field(default_factory=list)
    cls: ClassifyResult | None = None
    authz: AuthorizeResult | None = None
    plan: Plan | None = None
    results: dict[str, LedgerQueryResult] = field(default_factory=dict)
    retrieved: RetrieveResult | None = None
    facts: list[Fact] = field(default_factory=list)
    missing: list[MissingData] = field(default_factory=list)
    expected_cells: int = 0
    unavailable: list[str] = field(default_factory=list)
    gen: GenerateResult | None = None
    scored: ScoreResult | None = None
    # The result is decided (early exit, failure, or scored): the next stage is record.
    finished: bool = False

    @classmethod
    def new(cls, rid: str, req: RequestInput) -> Run:
        base = RequestResult(
            request_id=rid,
            outcome=Outcome.FAILED,
            tenant=req.tenant,
            principal_id=req.principal_id,
            question=req.question,
            as_of=req.as_of,
        )
        return cls(rid=rid, req=req, base=base, started=time.time())

    def dump(self) -> dict[str, Any]:
        """A JSON-able copy, for a checkpointer or a step's recorded output."""
        return {
            "rid": self.rid,
            "req": self.req.model_dump(mode="json"),
            "base": self.base.model_dump(mode="json"),
            "started": self.started,
            "stage": self.stage,
            "stage_started": self.stage_started,
            "timings": dict(self.timings),
            "events": [e.model_dump(mode="json") for e in self.events],
            "cls": _dump(self.cls),
            "authz": _dump(self.authz),
            "plan": _dump(self.plan),
            "results": {k: v.model_dump(mode="json") for k, v in self.results.items()},
            "retrieved": _dump(self.retrieved),
            "facts": [f.model_dump(mode="json") for f in self.facts],
            "missing": [m.model_dump(mode="json") for m in self.missing],
            "expected_cells": self.expected_cells,
            "unavailable": list(self.unavailable),
            "gen": _dump(self.gen),
            "scored": _dump(self.scored),
            "finished": self.finished,
        }

    @classmethod
    def load(cls, d: dict[str, Any]) -> Run:
        return cls(
            rid=d["rid"],
            req=RequestInput.model_validate(d["req"]),
            base=RequestResult.model_validate(d["base"]),
            started=d["started"],
            stage=d["stage"],
            stage_started=d["stage_started"],
            timings=dict(d["timings"]),
            events=[AuditEvent.model_validate(e) for e in d["events"]],
            cls=_load(ClassifyResult, d["cls"]),
            authz=_load(AuthorizeResult, d["authz"]),
            plan=_load(Plan, d["plan"]),
            results={k: LedgerQueryResult.model_validate(v) for k, v in d["results"].items()},
            retrieved=_load(RetrieveResult, d["retrieved"]),
            facts=[Fact.model_validate(f) for f in d["facts"]],
            missing=[MissingData.model_validate(m) for m in d["missing"]],
            expected_cells=d["expected_cells"],
            unavailable=list(d["unavailable"]),
            gen=_load(GenerateResult, d["gen"]),
            scored=_load(ScoreResult, d["scored"]),
            finished=d["finished"],
        )

    def enter(self, stage: Stage) -> None:
        """RequestWorkflow._enter: a stage's time runs from entering it to entering the next."""
        now = time.time()
        if self.stage not in (Stage.QUEUED.value, Stage.DONE.value):
            self.timings[self.stage] = (now - self.stage_started) * 1000
        self.stage = stage.value
        self.stage_started = now

    def audit(self, stage: Stage, decision: str, **detail: object) -> None:
        self.events.append(
            AuditEvent(
                step=len(self.events) + 1,
                stage=stage.value,
                actor=self.req.principal_id,
                decision=decision,
                detail=dict(detail),
            )
        )


def route(stage: str, finished: bool) -> str:
    """The stage after `stage`: record once the result is decided, DONE after record."""
    if stage == "record":
        return DONE
    if finished or stage == "score":
        return "record"
    return STAGES[STAGES.index(stage) + 1]


# ---------------------------------------------------------------- the stages, as RequestWorkflow runs them


async def _no_retrieval() -> RetrieveResult:
    return RetrieveResult()


class Stages:
    """RequestWorkflow's stages over the worker's activity methods, one method per stage on a Run.

    The logic (audit events, early exits, facts, limitations) is RequestWorkflow's, reusing its helpers. What a
    baseline cannot do: wait for a person's confirmation (a reading that needs one ends as a clarification, like
    a confirmation that never came), and retry a failed activity.
    """

    def __init__(self, components: Components) -> None:
        self.acts = WorkerActivities(components)
        self._stages: dict[str, Callable[[Run], Awaitable[None]]] = {
            "classify": self.classify,
            "authorize": self.authorize,
            "plan": self.plan,
            "gather": self.gather,
            "generate": self.generate,
            "score": self.score,
            "record": self.record,
        }

    async def step(self, stage: str, run: Run) -> Run:
        """Run one stage; a stage whose activity fails for good records the failure (RequestWorkflow.run)."""
        try:
            await self._stages[stage](run)
        except ApplicationError as err:
            if stage == "record":
                raise
            detail = err.message
            failed = Stage(run.stage)
            run.base.outcome = Outcome.FAILED
            run.base.answer = f"The request failed during {failed.value}; nothing was answered."
            run.base.limitations = [*run.base.limitations, f"{failed.value} failed: {detail}"]
            run.audit(failed, "failed", error=detail)
            run.finished = True
        return run

    async def run_all(self, run: Run) -> Run:
        stage = STAGES[0]
        while stage != DONE:
            await self.step(stage, run)
            stage = route(stage, run.finished)
        return run

    def _clarify_unconfirmed(self, run: Run, cls: ClassifyResult, why: str) -> None:
        run.audit(Stage.CONFIRM, "unsupported")
        run.base.outcome = Outcome.CLARIFICATION_REQUIRED
        run.base.clarifying_questions = _rephrasings(cls)
        run.base.answer = f"{why} Nobody can confirm my reading here. " + " ".join(run.base.clarifying_questions)
        run.finished = True

    async def classify(self, run: Run) -> None:
        req = run.req
        run.enter(Stage.CLASSIFY)
        cls = await self.acts.call(
            run.rid,
            names.CLASSIFY,
            ClassifyInput(tenant=req.tenant, question=req.question, as_of=req.as_of),
            ClassifyResult,
        )
        run.cls = cls
        run.base.classification = _view(cls)
        run.audit(
            Stage.CLASSIFY,
            cls.intent.value,
            method=cls.method,
            confidence=cls.confidence,
            complexity=cls.complexity.value,
            version=cls.classifier_version,
        )
        if cls.clarifications:
            run.base.outcome = Outcome.CLARIFICATION_REQUIRED
            run.base.clarifying_questions = list(cls.clarifications)
            run.base.answer = "I need more detail before I can answer: " + " ".join(cls.clarifications)
            run.finished = True
        elif cls.needs_confirmation:
            self._clarify_unconfirmed(run, cls, f"I was not sure I understood this question ({_uncertainty(cls)}).")

    async def authorize(self, run: Run) -> None:
        req, cls = run.req, run.cls
        assert cls is not None
        run.enter(Stage.AUTHORIZE)
        authz = await self.acts.call(
            run.rid,
            names.AUTHORIZE,
            AuthorizeInput(
                tenant=req.tenant, principal_id=req.principal_id, action=required_action(cls), classification=cls
            ),
            AuthorizeResult,
        )
        run.authz = authz
        run.base.authorization = AuthorizationView(
            allowed=authz.allowed,
            policies=authz.policies,
            reasons=authz.reasons,
            masked=authz.masked,
            policy_version=authz.policy_version,
        )
        run.events.append(
            AuditEvent(
                step=len(run.events) + 1,
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
        if not authz.allowed and authz.needs_confirmation and not cls.needs_confirmation and cls.confidence < 1.0:
            self._clarify_unconfirmed(run, cls, " ".join(authz.reasons))
        elif not authz.allowed:
            run.base.outcome = Outcome.DENIED
            run.base.answer = "I can't answer this. " + " ".join(authz.reasons)
            run.finished = True

    async def plan(self, run: Run) -> None:
        req, cls, authz = run.req, run.cls, run.authz
        assert cls is not None and authz is not None
        run.enter(Stage.PLAN)
        plan = await self.acts.call(
            run.rid,
            names.PLAN,
            PlanInput(tenant=req.tenant, question=req.question, classification=cls, authorization=authz),
            Plan,
        )
        run.plan = plan
        run.audit(
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
            base = run.base
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
            run.finished = True

    async def gather(self, run: Run) -> None:
        plan = run.plan
        assert plan is not None
        run.enter(Stage.GATHER)
        try:
            results, retrieved = await self._dag(run, plan)
        except _TaskFailedError as err:
            run.base.outcome = Outcome.FAILED
            run.base.answer = "The request failed while gathering data; nothing was answered."
            run.base.limitations = [err.message]
            run.audit(Stage.GATHER, "failed", error=err.message, task=err.task_id)
            run.finished = True
            return
        leaves = [t for t in plan.tasks if t.kind == "sum"]
        run.results = results
        run.retrieved = retrieved
        run.facts = _facts_of(plan, results)
        # One entity-month counts once however many tasks read it (a trend and its total share months).
        run.missing = list({m.key: m for t in leaves for m in results[t.task_id].missing}.values())
        run.expected_cells = len({(e, m) for t in leaves for e in t.entities for m in t.period.months})
        run.unavailable = [results[t.task_id].unavailable for t in plan.tasks if results[t.task_id].unavailable]
        run.audit(
            Stage.GATHER,
            f"{len(run.facts)} facts",
            rows=sum(r.rows for r in results.values()),
            missing=[m.key for m in run.missing],
            tasks=len(plan.tasks),
            reused=[t.task_id for t in plan.tasks if results[t.task_id].reused],
            unavailable=run.unavailable,
            passages=[p.chunk_id for p in retrieved.passages],
            retrieval_mode=retrieved.mode,
            neutralized=[f"{n.chunk_id}: {n.excerpt}" for n in retrieved.neutralized],
        )

    async def _dag(self, run: Run, plan: Plan) -> tuple[dict[str, LedgerQueryResult], RetrieveResult]:
        """RequestWorkflow._gather with asyncio: each task once its operands are done, the search alongside."""
        results: dict[str, LedgerQueryResult] = {}
        order = {t.task_id: i for i, t in enumerate(plan.tasks)}
        waiting = list(plan.tasks)
        running: dict[asyncio.Future[Any], DataTask] = {}

        def launch() -> None:
            for t in [t for t in waiting if all(d in results for d in t.depends_on)]:
                waiting.remove(t)
                running[asyncio.ensure_future(self._task(run, plan, t, results))] = t

        launch()
        search: asyncio.Future[Any] = asyncio.ensure_future(
            self.acts.call(run.rid, names.RETRIEVE, RetrieveInput(query=plan.retrieval), RetrieveResult)
            if plan.retrieval is not None
            else _no_retrieval()
        )
        try:
            while running or not search.done():
                pending: set[asyncio.Future[Any]] = {*running, *([] if search.done() else [search])}
                done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if search in done:
                    failure = search.exception()
                    if isinstance(failure, ApplicationError):
                        raise _TaskFailedError(None, failure, names.RETRIEVE) from failure
                    if failure is not None:
                        raise failure
                for fut in sorted((f for f in done if f is not search), key=lambda f: order[running[f].task_id]):
                    task = running.pop(fut)
                    try:
                        results[task.task_id] = fut.result()
                    except ApplicationError as err:
                        raise _TaskFailedError(task, err) from err
                launch()
        finally:
            # Unlike a workflow, a plain event loop warns about tasks nobody waits for: stop and collect them.
            left = [f for f in [*running, search] if not f.done()]
            for f in left:
                f.cancel()
            await asyncio.gather(*left, return_exceptions=True)
        if waiting:
            raise _TaskFailedError(waiting[0], ApplicationError("an operand of this task is not in the plan"))
        retrieved: RetrieveResult = search.result()
        return results, retrieved

    async def _task(
        self, run: Run, plan: Plan, task: DataTask, results: dict[str, LedgerQueryResult]
    ) -> LedgerQueryResult:
        data = LedgerQueryInput(tenant=run.req.tenant, task=task, data_version=plan.data_version)
        if task.kind == "sum":
            return await self.acts.call(run.rid, names.LEDGER_QUERY, data, LedgerQueryResult)
        data.inputs = [results[d] for d in task.depends_on]
        return await self.acts.call(run.rid, names.COMPUTE_TASK, data, LedgerQueryResult)

    async def generate(self, run: Run) -> None:
        req, cls, authz, retrieved = run.req, run.cls, run.authz, run.retrieved
        assert cls is not None and authz is not None and retrieved is not None
        run.enter(Stage.GENERATE)
        gen = await self.acts.call(
            run.rid,
            names.GENERATE,
            GenerateInput(
                question=req.question,
                intent=cls.intent,
                facts=run.facts,
                missing=run.missing,
                masked=authz.masked,
                passages=retrieved.passages,
                tenant=req.tenant,
                principal_id=req.principal_id,
                stream_tokens=req.stream_tokens,
            ),
            GenerateResult,
        )
        run.gen = gen
        run.events.append(
            AuditEvent(
                step=len(run.events) + 1,
                stage=Stage.GENERATE.value,
                actor=req.principal_id,
                decision=gen.generator,
                detail={"validated": gen.validated, "redactions": gen.redactions},
                prompt_sha256=gen.prompt.sha256,
                model=gen.model,
            )
        )

    async def score(self, run: Run) -> None:
        cls, authz, plan, retrieved, gen = run.cls, run.authz, run.plan, run.retrieved, run.gen
        assert cls is not None and authz is not None and plan is not None and retrieved is not None
        assert gen is not None
        run.enter(Stage.SCORE)
        scored = await self.acts.call(
            run.rid,
            names.SCORE,
            ScoreInput(
                classification=cls,
                expected_cells=run.expected_cells,
                missing=run.missing,
                facts=len(run.facts),
                generation_validated=gen.validated,
                passages=len(retrieved.passages),
                unavailable=len(run.unavailable),
                assumptions=len(plan.assumptions),
                template=plan.template,
            ),
            ScoreResult,
        )
        run.scored = scored
        run.audit(Stage.SCORE, scored.outcome.value, score=scored.confidence.score)
        base = run.base
        base.outcome = scored.outcome
        base.answer = gen.answer
        base.facts = run.facts
        base.citations = [Citation(doc_id=p.doc_id, title=p.title, chunk_id=p.chunk_id) for p in retrieved.passages[:2]]
        if plan.retrieval is not None:
            base.retrieval = RetrievalView(
                mode=retrieved.mode,
                notes=retrieved.notes,
                neutralized=[n.model_copy(update={"excerpt": ""}) for n in retrieved.neutralized],
            )
        base.missing_data = [m.key for m in run.missing]
        base.limitations = (
            [f"{m.key} not submitted ({m.reason}): left out of the figures, not counted as zero." for m in run.missing]
            + [m.reason for m in authz.masked]
            + [f"Assumed: {a}." for a in plan.assumptions]
            + [f"{u}." for u in run.unavailable]
            + gen.limitations
            + scored.notes
        )
        if scored.outcome == Outcome.CLARIFICATION_REQUIRED:
            base.clarifying_questions = _clarify(cls, run.missing)
        base.confidence = scored.confidence
        base.prompt = gen.prompt
        base.model = gen.model
        base.generator = gen.generator
        base.usage = gen.usage
        run.finished = True

    async def record(self, run: Run) -> None:
        """RequestWorkflow._finish: the record stage's audit row, the result and events written, the clock."""
        result = run.base
        run.enter(Stage.RECORD)
        run.events.append(
            AuditEvent(
                step=len(run.events) + 1,
                stage=Stage.RECORD.value,
                actor=result.principal_id,
                decision=result.outcome.value,
                detail={"facts": len(result.facts)},
            )
        )
        result.timings = {k: round(v) for k, v in run.timings.items()}
        await self.acts.call(
            run.rid, names.RECORD, RecordInput(workflow_id=run.rid, result=result, events=run.events), RecordResult
        )
        run.enter(Stage.DONE)
        result.timings = {k: round(v) for k, v in run.timings.items()}
        result.timings["total"] = round((time.time() - run.started) * 1000)


# ---------------------------------------------------------------- the pipelines


class Pipeline(Protocol):
    name: str
    key: str

    async def start(self) -> None: ...

    async def ask(
        self, question: str, principal: str = "alice", tenant: str = "meridian", as_of: date = date(2026, 11, 21)
    ) -> RequestResult: ...

    async def stop(self) -> None: ...


class _Baseline:
    name = ""
    key = ""

    def __init__(self, components: Components) -> None:
        self.stages = Stages(components)

    def new_run(self, question: str, principal: str, tenant: str, as_of: date) -> Run:
        rid = f"{self.key}-{uuid.uuid4().hex}"
        # Nobody watches the prose, as with the gateway's `?wait`: the model call asks for the whole reply at once.
        req = RequestInput(
            tenant=tenant,
            principal_id=principal,
            question=question,
            as_of=as_of,
            submitted_at=datetime.now(UTC),
            stream_tokens=False,
        )
        return Run.new(rid, req)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class PlainPipeline(_Baseline):
    """B0: the stages chained with `await` in one coroutine; nothing is persisted between them."""

    name = "B0 plain asyncio"
    key = "b0"

    async def ask(
        self, question: str, principal: str = "alice", tenant: str = "meridian", as_of: date = date(2026, 11, 21)
    ) -> RequestResult:
        run = await self.stages.run_all(self.new_run(question, principal, tenant, as_of))
        return run.base


class GraphState(TypedDict):
    run: dict[str, Any]


class _GraphNode(Protocol):
    # A node's signature as StateGraph.add_node types it (the parameter is named `state`).
    def __call__(self, state: GraphState) -> Awaitable[GraphState]: ...


class LangGraphPipeline(_Baseline):
    """B1: a StateGraph with one node per stage, checkpointed to SQLite by AsyncSqliteSaver.

    Every request is its own thread (thread_id = request id). `durability="sync"` writes each step's checkpoint
    before the next step starts; None leaves LangGraph's default (`async`: written while the next step runs, all
    written before `ainvoke` returns).
    """

    def __init__(self, components: Components, path: Path, durability: str | None) -> None:
        super().__init__(components)
        self.path = path
        self.durability = durability
        self.key = "b1-sync" if durability == "sync" else "b1-default"
        self.name = f"B1 LangGraph (sqlite, durability={durability or 'async'})"
        self._exit: contextlib.AsyncExitStack | None = None
        self.saver: AsyncSqliteSaver | None = None
        self._graph: CompiledStateGraph[GraphState, None, GraphState, GraphState] | None = None

    def _node(self, stage: str) -> _GraphNode:
        async def node(state: GraphState) -> GraphState:
            run = await self.stages.step(stage, Run.load(state["run"]))
            return {"run": run.dump()}

        node.__name__ = stage
        return node

    @staticmethod
    def _edge(stage: str) -> Callable[[GraphState], str]:
        def edge(state: GraphState) -> str:
            return route(stage, bool(state["run"]["finished"]))

        return edge

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        stack = contextlib.AsyncExitStack()
        self.saver = await stack.enter_async_context(AsyncSqliteSaver.from_conn_string(str(self.path)))
        await self.saver.setup()
        self._exit = stack
        builder = StateGraph(GraphState)
        for stage in STAGES:
            builder.add_node(stage, self._node(stage))
        builder.add_edge(START, STAGES[0])
        for stage in STAGES[:-1]:
            nxt = STAGES[STAGES.index(stage) + 1]
            builder.add_conditional_edges(stage, self._edge(stage), {nxt: nxt, "record": "record"})
        builder.add_edge("record", END)
        self._graph = builder.compile(checkpointer=self.saver)

    async def ask(
        self, question: str, principal: str = "alice", tenant: str = "meridian", as_of: date = date(2026, 11, 21)
    ) -> RequestResult:
        if self._graph is None:
            raise RuntimeError(f"{self.name}: call start() first")
        run = self.new_run(question, principal, tenant, as_of)
        config: Any = {"configurable": {"thread_id": run.rid}}
        state: GraphState = {"run": run.dump()}
        if self.durability == "sync":
            out = await self._graph.ainvoke(state, config=config, durability="sync")
        else:
            out = await self._graph.ainvoke(state, config=config)
        return Run.load(out["run"]).base

    async def stop(self) -> None:
        self._graph = None
        self.saver = None
        if self._exit is not None:
            stack, self._exit = self._exit, None
            await stack.aclose()


# DBOS registers workflows and steps in a process-wide registry, before launch: the functions live at module level
# and find the current pipeline's stages here. One DBOS instance per process, so one running B2 at a time.
_dbos_stages: list[Stages] = []


async def _dbos_stage(stage: str, state: dict[str, Any]) -> dict[str, Any]:
    if not _dbos_stages:
        raise RuntimeError("no DBOS pipeline is running")
    run = await _dbos_stages[0].step(stage, Run.load(state))
    return run.dump()


@DBOS.step(name="docket.classify")
async def _b2_classify(state: dict[str, Any]) -> dict[str, Any]:
    return await _dbos_stage("classify", state)


@DBOS.step(name="docket.authorize")
async def _b2_authorize(state: dict[str, Any]) -> dict[str, Any]:
    return await _dbos_stage("authorize", state)


@DBOS.step(name="docket.plan")
async def _b2_plan(state: dict[str, Any]) -> dict[str, Any]:
    return await _dbos_stage("plan", state)


@DBOS.step(name="docket.gather")
async def _b2_gather(state: dict[str, Any]) -> dict[str, Any]:
    return await _dbos_stage("gather", state)


@DBOS.step(name="docket.generate")
async def _b2_generate(state: dict[str, Any]) -> dict[str, Any]:
    return await _dbos_stage("generate", state)


@DBOS.step(name="docket.score")
async def _b2_score(state: dict[str, Any]) -> dict[str, Any]:
    return await _dbos_stage("score", state)


@DBOS.step(name="docket.record")
async def _b2_record(state: dict[str, Any]) -> dict[str, Any]:
    return await _dbos_stage("record", state)


_B2_STEPS: dict[str, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "classify": _b2_classify,
    "authorize": _b2_authorize,
    "plan": _b2_plan,
    "gather": _b2_gather,
    "generate": _b2_generate,
    "score": _b2_score,
    "record": _b2_record,
}


@DBOS.workflow(name="docket.request")
async def _b2_request(state: dict[str, Any]) -> dict[str, Any]:
    stage = STAGES[0]
    while stage != DONE:
        state = await _B2_STEPS[stage](state)
        stage = route(stage, bool(state["finished"]))
    return state


def _asyncio_executor() -> ThreadPoolExecutor:
    """What asyncio.to_thread would create on first use (the loop's default executor)."""
    return ThreadPoolExecutor(thread_name_prefix="asyncio")


class DBOSPipeline(_Baseline):
    """B2: one DBOS workflow per request (workflow id = request id), one step per stage, system database on SQLite.

    DBOS makes its own thread pool the event loop's default executor whenever it runs a workflow, so the
    activities' `asyncio.to_thread` would run there while DBOS is up, and on a shut-down pool after
    DBOS.destroy(). The loop's own executor is put back after every request and at stop, so the other
    baselines in the same loop keep theirs.
    """

    name = "B2 DBOS (sqlite)"
    key = "b2"

    def __init__(self, components: Components, path: Path) -> None:
        super().__init__(components)
        self.path = path
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    async def start(self) -> None:
        if _dbos_stages:
            raise RuntimeError("a DBOS pipeline is already running in this process (DBOS is a singleton)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._loop = asyncio.get_running_loop()
        found = getattr(self._loop, "_default_executor", None)
        self._executor = found if isinstance(found, ThreadPoolExecutor) else _asyncio_executor()
        self._loop.set_default_executor(self._executor)
        _dbos_stages.append(self.stages)
        try:
            DBOS(config={"name": "docket-baseline", "system_database_url": self.url, "log_level": "WARNING"})
            DBOS.launch()
        except BaseException:
            _dbos_stages.clear()
            DBOS.destroy()
            raise

    def _restore_executor(self) -> None:
        if self._loop is not None and self._executor is not None:
            self._loop.set_default_executor(self._executor)

    async def ask(
        self, question: str, principal: str = "alice", tenant: str = "meridian", as_of: date = date(2026, 11, 21)
    ) -> RequestResult:
        if not _dbos_stages or _dbos_stages[0] is not self.stages:
            raise RuntimeError(f"{self.name}: call start() first")
        run = self.new_run(question, principal, tenant, as_of)
        try:
            with SetWorkflowID(run.rid):
                out = await _b2_request(run.dump())
        finally:
            self._restore_executor()
        return Run.load(out).base

    async def stop(self) -> None:
        if not _dbos_stages or _dbos_stages[0] is not self.stages:
            return
        self._restore_executor()
        try:
            await asyncio.to_thread(DBOS.destroy)
        finally:
            _dbos_stages.clear()


def make_pipelines(components: Components, workdir: Path, keys: Sequence[str] | None = None) -> list[Pipeline]:
    """The baselines over one set of components, in KEYS order (or `keys`' order); their databases in workdir."""
    made: dict[str, Callable[[], Pipeline]] = {
        "b0": lambda: PlainPipeline(components),
        "b1-sync": lambda: LangGraphPipeline(components, workdir / "langgraph-sync.sqlite", "sync"),
        "b1-default": lambda: LangGraphPipeline(components, workdir / "langgraph-default.sqlite", None),
        "b2": lambda: DBOSPipeline(components, workdir / "dbos.sqlite"),
    }
    wanted = list(keys) if keys is not None else list(KEYS)
    unknown = [k for k in wanted if k not in made]
    if unknown:
        raise ValueError(f"unknown baseline keys {unknown}; known: {list(KEYS)}")
    return [made[k]() for k in wanted]


async def time_pipeline(p: Pipeline, question: str, n: int) -> list[float]:
    """Milliseconds per request, n requests one after the other (the caller starts and stops the pipeline)."""
    out: list[float] = []
    for _ in range(n):
        t0 = time.perf_counter()
        await p.ask(question)
        out.append((time.perf_counter() - t0) * 1000)
    return out


# ---------------------------------------------------------------- a quick comparison


def percentile(values: Sequence[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


async def compare(n: int, warmup: int, keys: Sequence[str], question: str) -> dict[str, list[float]]:
    """n lookup requests per baseline over a fresh demo database, the baselines taking turns request by request."""
    from activities.classify.model import IntentModel
    from activities.llm.engine import TemplateGenerator
    from activities.retrieve.engine import DocumentIndex, sync_index
    from bench.latency import DEMO
    from docket import db, ingest

    with tempfile.TemporaryDirectory(prefix="docket-baselines-") as tmp_name:
        tmp = Path(tmp_name)
        url = f"sqlite:///{tmp / 'docket.db'}"
        db.migrate(url)
        engine = db.make_engine(url)
        ingest.load_pack(engine, DEMO)
        index = DocumentIndex.open()
        sync_index(engine, index)
        components = Components(
            engine=engine, index=index, generator=TemplateGenerator(), intent_model=IntentModel.load()
        )
        pipelines = make_pipelines(components, tmp, keys)
        samples: dict[str, list[float]] = {p.key: [] for p in pipelines}
        try:
            for p in pipelines:
                await p.start()
                await time_pipeline(p, question, warmup)
            for i in range(n):
                for p in pipelines[i % len(pipelines) :] + pipelines[: i % len(pipelines)]:
                    samples[p.key] += await time_pipeline(p, question, 1)
        finally:
            for p in pipelines:
                await p.stop()
            index.close()
            engine.dispose()
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    from bench.latency import QUESTION

    p = argparse.ArgumentParser(
        prog="python -m bench.baselines", description=__doc__.splitlines()[0] if __doc__ else ""
    )
    p.add_argument("--n", type=int, default=30, help="measured requests per baseline (default 30)")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured requests per baseline first (default 3)")
    p.add_argument("--keys", nargs="+", default=list(KEYS), choices=KEYS, help="which baselines")
    p.add_argument("--question", default=QUESTION)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    samples = asyncio.run(compare(args.n, args.warmup, args.keys, args.question))
    for key, xs in samples.items():
        sys.stdout.write(
            f"{key:<11} n={len(xs):<4} p50={percentile(xs, 50):8.1f} ms  p95={percentile(xs, 95):8.1f} ms  "
            f"mean={statistics.fmean(xs):8.1f} ms\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
