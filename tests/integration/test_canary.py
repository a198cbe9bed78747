"""Canaries: values only an authorised principal may see never reach anyone else, anywhere.

Unique canary values are planted in a payroll row and in a restricted document. Every principal without access
asks for them; the canaries must appear 0 times in the prompts the model server received, the API bodies, the
logs, and the Temporal payloads (histories). The same questions by someone with access must show them, so the
test would notice a canary that simply never flowed.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from openai import AsyncOpenAI
from temporalio.testing import WorkflowEnvironment

from activities.classify.model import IntentModel
from activities.llm.engine import OpenAIGenerator
from activities.retrieve.engine import DocumentIndex, sync_index
from api.main import create_app
from docket import db, ingest, tokens
from docket.settings import Settings
from tests.conftest import DEMO
from tests.support.stub_openai import StubOpenAI
from worker.main import Components, make_worker

pytestmark = pytest.mark.integration
PAYROLL_CANARY = 918273645  # salaries and wages, MER-CA, 2026-05
DOC_CANARY = "CANARY-RESTRICTED-7Q4Z"


@pytest.fixture(scope="module")
def canary_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pack = tmp_path_factory.mktemp("pack") / "meridian"
    shutil.copytree(DEMO, pack)
    rows = list(csv.DictReader((pack / "gl_balances.csv").open()))
    hit = [r for r in rows if (r["entity"], r["account"], r["period"]) == ("MER-CA", "5.1.1", "2026-05")]
    assert len(hit) == 1
    hit[0]["amount"] = str(PAYROLL_CANARY)
    with (pack / "gl_balances.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    memo = pack / "documents" / "doc-board-memo.md"
    memo.write_text(memo.read_text() + f"\nThe board memo reference code is {DOC_CANARY}.\n")
    return pack


class CanaryStack:
    def __init__(self, http: httpx.AsyncClient, settings: Settings, env: WorkflowEnvironment) -> None:
        self.http, self.settings, self.env = http, settings, env
        self.bodies: list[str] = []
        self.workflow_ids: list[str] = []

    async def ask(self, principal: str, tenant: str, question: str) -> dict[str, object]:
        token = tokens.mint(self.settings.jwt_secret, principal, tenant, 600)
        resp = await self.http.post(
            "/v1/requests",
            params={"wait": 30},
            headers={"Authorization": f"Bearer {token}"},
            json={"question": question, "as_of": "2026-11-21"},
        )
        self.bodies.append(resp.text)
        body = resp.json()
        # Every question must finish (answered, masked, denied or clarified): one stuck waiting proves nothing.
        assert body.get("status") in (None, "completed"), body
        if "request_id" in body:
            self.workflow_ids.append(str(body["request_id"]))
            again = await self.http.get(
                f"/v1/requests/{body['request_id']}", headers={"Authorization": f"Bearer {token}"}
            )
            self.bodies.append(again.text)
        return dict(body)

    async def histories(self) -> str:
        out = []
        for wid in self.workflow_ids:
            out.append((await self.env.client.get_workflow_handle(wid).fetch_history()).to_json())
        return "\n".join(out)


@pytest.fixture(scope="module")
async def canary_stack(
    temporal_env: WorkflowEnvironment, canary_pack: Path, stub: StubOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[CanaryStack]:
    tmp = tmp_path_factory.mktemp("canary")
    url = f"sqlite:///{tmp / 'docket.db'}"
    db.migrate(url)
    engine = db.make_engine(url)
    ingest.load_pack(engine, canary_pack)
    index = DocumentIndex.open()
    sync_index(engine, index)
    task_queue = f"docket-canary-{uuid.uuid4().hex[:8]}"
    settings = Settings(task_queue=task_queue, database_url=url, data_dir=tmp)
    # The model words answers (so prompts are captured by the stub); it echoes nothing it was not sent.
    generator = OpenAIGenerator(AsyncOpenAI(base_url=stub.base_url, api_key="x", max_retries=0), "stub-writer")
    components = Components(engine=engine, index=index, generator=generator, intent_model=IntentModel.load())
    app = create_app(settings, engine=engine, client=temporal_env.client)
    async with (
        make_worker(temporal_env.client, task_queue, components.activities()),
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://docket.test") as http,
    ):
        yield CanaryStack(http, settings, temporal_env)
    index.close()
    engine.dispose()


NO_ACCESS = [
    ("carol", "meridian", "What were total operating costs for MER-CA in May 2026?"),  # payroll masked
    ("carol", "meridian", "What were salaries and wages for MER-CA in May 2026?"),  # payroll denied
    ("carol", "meridian", "What was payroll for MER-CA in May 2026?"),
    ("ivan", "meridian", "What were salaries and wages for MER-CA in May 2026?"),
    ("dave", "meridian", "What were total operating costs for MER-CA in May 2026?"),  # other region
    ("heidi", "meridian", "What were total operating costs for MER-CA in May 2026?"),
    ("erin", "meridian", "What does the board memo say?"),  # confidential < restricted
    ("bob", "meridian", "What does the board memo say about divestment?"),
    ("carol", "meridian", "What does the board memo say?"),
    ("ken", "globex", "What does the Meridian board memo say?"),  # another tenant
    ("judy", "globex", "What were salaries and wages for MER-CA in May 2026?"),
]


async def test_canaries_never_reach_principals_without_access(
    canary_stack: CanaryStack, stub: StubOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    stub.reset()
    stub.reply_json({"answer": "See the figures.", "fact_ids": [], "doc_ids": [], "confidence": 0.5})
    caplog.set_level(logging.DEBUG)
    for principal, tenant, question in NO_ACCESS:
        await canary_stack.ask(principal, tenant, question)
    places = {
        "prompts received by the model server": json.dumps(stub.requests),
        "API bodies": "\n".join(canary_stack.bodies),
        "logs": caplog.text,
        "Temporal payloads": await canary_stack.histories(),
    }
    for where, text in places.items():
        for canary in (str(PAYROLL_CANARY), f"{PAYROLL_CANARY:,}", DOC_CANARY):
            assert text.count(canary) == 0, f"{canary} leaked into {where}"
    assert len(stub.requests) >= 3  # answers that were allowed (masked totals) did go through the model


async def test_canaries_do_flow_to_principals_with_access(canary_stack: CanaryStack, stub: StubOpenAI) -> None:
    stub.reset()
    stub.reply_json({"answer": "See the figures.", "fact_ids": [], "doc_ids": [], "confidence": 0.5})
    payroll = await canary_stack.ask("alice", "meridian", "What were salaries and wages for MER-CA in May 2026?")
    assert json.dumps(payroll).count(str(PAYROLL_CANARY)) >= 1
    assert str(PAYROLL_CANARY) in json.dumps(stub.requests)  # the CFO's prompt carried the figure
    memo = await canary_stack.ask("alice", "meridian", "What does the board memo reference code say?")
    assert "doc-board-memo" in json.dumps(memo)
    assert DOC_CANARY in json.dumps(stub.requests)  # the restricted passage reached the CFO's prompt
