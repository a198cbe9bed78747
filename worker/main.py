"""The Docket worker: one process that owns the document index and runs workflows and activities."""

from __future__ import annotations

import asyncio
import compileall
import logging
import signal
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from openai import AsyncOpenAI
from sqlalchemy import Engine, select
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import workflows
from activities.audit.activity import RecordActivities
from activities.authorize.activity import AuthorizeActivities
from activities.authorize.engine import BUILTIN_POLICIES
from activities.classify.activity import ClassifyActivities
from activities.classify.hybrid import LLMLayer, Thresholds
from activities.classify.llm import OpenAIClassifier
from activities.classify.model import DEFAULT_MODEL, IntentModel
from activities.confidence.activity import ScoreActivities
from activities.data.activity import DataActivities
from activities.llm.activity import GenerateActivities
from activities.llm.engine import Generator, OpenAIGenerator, TemplateGenerator
from activities.plan.activity import PlanActivities
from activities.retrieve.activity import RetrieveActivities
from activities.retrieve.embed import build_embedder
from activities.retrieve.engine import DocumentIndex, sync_index
from activities.understand.activity import UnderstandActivities
from docket import db, policies, temporal, usage
from docket.errors import DocketError
from docket.logs import setup_logging
from docket.settings import Settings, load_settings
from docket.telemetry import setup_tracing
from prompts import registry
from worker.observability import ActivityLogContext, WorkerHealth, http_app
from workflows.ingest import IndexWorkflow, IngestWorkflow
from workflows.request import RequestWorkflow

log = logging.getLogger("docket.worker")
WORKFLOWS: list[type] = [RequestWorkflow, IngestWorkflow, IndexWorkflow]


def seed_policies(engine: Engine) -> None:
    """Give every tenant without a stored policy set the built-in one as v1 (active); others are left alone."""
    source = BUILTIN_POLICIES.read_text(encoding="utf-8")
    with engine.connect() as conn:
        tenants = [row[0] for row in conn.execute(select(db.table_of(db.Tenant).c.id))]
    for tenant in tenants:
        policies.ensure_default(engine, tenant, source)


def model_client(settings: Settings) -> AsyncOpenAI:
    """The worker's one client for the model endpoint (generation and the classifier's LLM layer share it)."""
    return AsyncOpenAI(
        base_url=settings.openai_base_url or None,
        api_key=settings.openai_api_key or "not-needed",
        max_retries=0,  # Temporal owns retries
        timeout=settings.model_timeout_seconds,
    )


def build_generator(settings: Settings, client: AsyncOpenAI | None = None) -> Generator:
    """The openai generator when a model endpoint is configured, else the deterministic template."""
    # A pin to a prompt version that does not exist fails the worker at start, not the first request.
    registry.check_pins(settings.prompt_pins)
    # Likewise a malformed price table: found at start, not after a model call that then cannot be recorded.
    usage.check_prices(settings)
    if settings.model_configured:
        return OpenAIGenerator(
            client=client or model_client(settings),
            model=settings.model or "gpt-4o-mini",
            pins=settings.prompt_pins,
            response_format=settings.model_response_format,
            stream=settings.model_stream,
            repairs=settings.model_repairs,
            max_output_tokens=settings.max_output_tokens,
            max_request_tokens=settings.max_request_tokens,
        )
    return TemplateGenerator(pins=settings.prompt_pins)


def build_classifier_layers(
    settings: Settings, client: AsyncOpenAI | None = None
) -> tuple[IntentModel | None, LLMLayer | None, Thresholds]:
    """The trained model (shipped artifact, or DOCKET_CLASSIFIER_MODEL) and, with a model endpoint, the LLM layer."""
    path = settings.classifier_model or DEFAULT_MODEL
    model = IntentModel.load(path) if path.is_file() else None
    if model is None:
        log.warning("no classifier model at %s: rules decide, ambiguous requests go to confirmation", path)
    llm: LLMLayer | None = None
    if settings.model_configured:
        llm = OpenAIClassifier(client=client or model_client(settings), model=settings.model or "gpt-4o-mini")
    return model, llm, Thresholds(confirm=settings.confirm_below)


def build_index(settings: Settings) -> DocumentIndex:
    """The document index the settings describe: Qdrant server, or the embedded engine; with the embedder."""
    embedder = build_embedder(
        settings.embedder,
        base_url=settings.embedding_base_url or settings.openai_base_url,
        model=settings.embedding_model,
        api_key=settings.embedding_api_key or settings.openai_api_key,
        timeout=settings.model_timeout_seconds,
    )
    return DocumentIndex.open(
        url=settings.qdrant_url,
        api_key=settings.qdrant_api_key,
        path=str(settings.index_path),
        backend=settings.index_backend,
        embedder=embedder,
    )


@dataclass
class Components:
    engine: Engine
    index: DocumentIndex
    generator: Generator
    intent_model: IntentModel | None = None
    llm: LLMLayer | None = None
    thresholds: Thresholds | None = None
    audit_anchor_every: int = 100
    # Budgets and prices for model calls (None: neither checked nor recorded, e.g. benchmarks).
    settings: Settings | None = None

    def activities(self) -> list[Any]:
        retrieve = RetrieveActivities(self.engine, self.index)
        data = DataActivities(self.engine)
        classify = ClassifyActivities(self.engine, self.intent_model, self.llm, self.thresholds)
        authorize = AuthorizeActivities(self.engine)
        plan = PlanActivities(self.engine)
        return [
            classify.classify_request,
            authorize.authorize_request,
            plan.plan_request,
            UnderstandActivities(classify, authorize, plan).understand_request,
            data.ledger_query,
            data.compute_task,
            retrieve.retrieve_documents,
            retrieve.index_documents,
            retrieve.authorize_ingest,
            retrieve.store_documents,
            retrieve.delete_documents,
            retrieve.index_admin,
            GenerateActivities(self.generator, self.engine, self.settings).generate_answer,
            ScoreActivities().score_confidence,
            RecordActivities(self.engine, anchor_every=self.audit_anchor_every).record_result,
        ]


def build_components(settings: Settings) -> Components:
    db.migrate(settings.db_url)
    engine = db.make_engine(settings.db_url)
    index = build_index(settings)
    seed_policies(engine)
    # The active index version is made to match the stored documents (the demo pack `docket up` loads, documents
    # changed while no worker ran, a first start with a new embedded index).
    docs, chunks = sync_index(engine, index)
    if docs:
        log.info("indexed %d documents (%d chunks) at startup", docs, chunks)
    client = model_client(settings) if settings.model_configured else None
    model, llm, thresholds = build_classifier_layers(settings, client)
    return Components(
        engine=engine,
        index=index,
        generator=build_generator(settings, client),
        intent_model=model,
        llm=llm,
        thresholds=thresholds,
        audit_anchor_every=settings.audit_anchor_every,
        settings=settings,
    )


# A plan's independent tasks are scheduled in one workflow task; the SDK's default of 3 eager reservations sent the
# rest (and the document search) through the task queue, ~50 ms later (bench/dag.py, docs/benchmarks.md).
EAGER_ACTIVITIES = 16


def precompile_workflows() -> None:
    """Write the workflow modules' bytecode if it is missing or stale.

    The sandbox imports the workflow module afresh for every run; without a .pyc (an editable install under
    PYTHONDONTWRITEBYTECODE=1, as on the project's machines) each run compiled the source again: 10-18 ms of CPU
    per run here, 2 ms with the bytecode. Installed packages have their bytecode from pip; a read-only tree is left
    as it is.
    """
    folder = Path(workflows.__file__).parent
    # quiet=2: compileall reports a write it could not make on stdout, which belongs to the logs here.
    if not compileall.compile_dir(str(folder), quiet=2):
        log.info("workflow bytecode could not be written in %s: each run compiles the workflow module", folder)


def make_worker(
    client: Client, task_queue: str, activities: Sequence[Any], *, sandbox: bool = True, **kwargs: Any
) -> Worker:
    """The worker for Docket's workflows and the given activities.

    sandbox=False runs the workflows without the SDK's sandbox, as `docket up` and `python -m worker` do by
    default (DOCKET_WORKFLOW_SANDBOX): the sandbox re-imports and re-executes the workflow module for every run and
    proxies its calls (the suite's `docket-rest-sandboxed` measures what that costs). This function's default keeps
    it, so the tests run every workflow inside it; `docket replay` and the replay tests replay every committed
    history inside it too: that is where a non-deterministic call in workflow code is caught.
    """
    kwargs.setdefault("max_eager_activity_reservations_per_workflow_task", EAGER_ACTIVITIES)
    if sandbox:
        # Only the sandbox re-imports the module per run; unsandboxed, it is imported once like any other.
        precompile_workflows()
    else:
        kwargs.setdefault("workflow_runner", UnsandboxedWorkflowRunner())
    kwargs.setdefault("interceptors", [ActivityLogContext()])
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=list(activities),
        **kwargs,
    )


async def run(settings: Settings | None = None) -> None:
    settings = settings or load_settings()
    settings.check_production()
    components = build_components(settings)
    setup_tracing("docket-worker")
    runtime = None
    if settings.temporal_metrics_port:
        try:
            runtime = temporal.metrics_runtime(settings.temporal_metrics_port)
        except ValueError as exc:
            # A port taken (another worker on this machine) costs the SDK's metrics, not the worker.
            log.warning("no Temporal SDK metrics: %s (set DOCKET_TEMPORAL_METRICS_PORT)", exc)
            settings = settings.model_copy(update={"temporal_metrics_port": 0})
    client = await temporal.connect(runtime)
    added = await temporal.ensure_search_attributes(client)
    if added:
        log.info("registered search attributes %s in namespace %r", added, client.namespace)
    worker = make_worker(client, settings.task_queue, components.activities(), sandbox=settings.workflow_sandbox)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    health = WorkerHealth(components.engine, client, settings)
    server: uvicorn.Server | None = None
    serving: asyncio.Task[None] | None = None
    if settings.worker_http_port and not port_free(settings.worker_http_host, settings.worker_http_port):
        log.warning(
            "port %s:%s is taken: no /healthz, /readyz or /metrics (set DOCKET_WORKER_HTTP_PORT)",
            settings.worker_http_host,
            settings.worker_http_port,
        )
    elif settings.worker_http_port:
        server = uvicorn.Server(
            uvicorn.Config(
                http_app(health),
                host=settings.worker_http_host,
                port=settings.worker_http_port,
                log_config=None,
                access_log=False,
                lifespan="off",
            )
        )
        serving = asyncio.create_task(server.serve())
    log.info("worker polling task queue %r at %s", settings.task_queue, temporal.address())
    async with worker:
        health.polling.set()
        await stop.wait()
    if server is not None and serving is not None:
        server.should_exit = True
        await serving
    components.index.close()


def port_free(host: str, port: int) -> bool:
    """Whether the worker can listen there (uvicorn would exit the process on a taken port)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def main() -> None:
    setup_logging("docket-worker")
    try:
        asyncio.run(run())
    except DocketError as exc:
        # A start-up problem a person fixes (settings, search attributes): the cause and the fix, no traceback.
        log.error("%s%s", exc.message, f" (fix: {exc.hint})" if exc.hint else "")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
