"""POST/DELETE/GET /v1/documents through a real IngestWorkflow: authorized, idempotent, audited, searchable.

Each module gets its own database and index (documents are added and deleted here), a real worker and the API.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from activities import names
from activities.retrieve.engine import chunk_text
from docket import ingest
from docket.contracts import IndexDocumentsResult, IngestInput, RetrievalQuery
from docket.db import AuditEventRow, Document, DocumentUpload, table_of
from tests.conftest import Stack, fresh_sqlite, start_stack
from tests.support.documents import chunk_ids, document

pytestmark = pytest.mark.integration
MAX_DOCUMENT_BYTES = 16 * 1024


@pytest.fixture(scope="module")
async def docs(temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    # A database of its own: documents are added and deleted here.
    tmp = tmp_path_factory.mktemp("docs")
    url, engine = fresh_sqlite(tmp)
    async for s in start_stack(temporal_env, url, engine, tmp, max_document_bytes=MAX_DOCUMENT_BYTES):
        yield s


async def post(s: Stack, principal: str, text: str, content_type: str = "text/markdown") -> httpx.Response:
    headers = s.auth(principal) | {"Content-Type": content_type}
    return await s.http.post("/v1/documents", content=text.encode(), headers=headers)


def found(s: Stack, query: str) -> list[str]:
    q = RetrievalQuery(tenant="meridian", query=query, max_clearance="restricted", limit=10)
    return [p.doc_id for p in s.index.search(q).passages]


async def listed(s: Stack, principal: str = "alice") -> list[str]:
    resp = await s.http.get("/v1/documents", headers=s.auth(principal))
    assert resp.status_code == 200, resp.text
    return [d["doc_id"] for d in resp.json()]


def uploads(s: Stack) -> int:
    with s.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table_of(DocumentUpload))).scalar() or 0)


def audit_events(s: Stack, workflow_id: str) -> list[Any]:
    t = table_of(AuditEventRow)
    with s.engine.connect() as conn:
        return list(conn.execute(select(t).where(t.c.workflow_id == workflow_id).order_by(t.c.step)))


def expected_chunks(doc_id: str, text: str) -> list[str]:
    n = len(chunk_text(ingest.parse_document_text("x.md", text)["body"]))
    return sorted(f"{doc_id}#{i}" for i in range(n))


# Three paragraphs over 800 characters: more than one chunk, so duplicates would show.
LONG_BODY = "\n\n".join(
    f"Paragraph {i}: the zanzibar reconciliation checklist for MER-US covers bank statements, intercompany "
    f"balances and accrual reviews. " * 3
    for i in range(3)
)


async def test_add_is_indexed_once_and_re_adding_it_changes_nothing(docs: Stack) -> None:
    text = document("doc-zanzibar", LONG_BODY, title="Zanzibar checklist")
    first = await post(docs, "alice", text)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "completed" and body["changed"] == ["doc-zanzibar"] and body["unchanged"] == []
    assert body["chunks"] > 1 and body["index_version"] == docs.index.ensure_active()
    expected = expected_chunks("doc-zanzibar", text)
    assert chunk_ids(docs, "doc-zanzibar") == expected and len(expected) == body["chunks"]
    assert found(docs, "zanzibar reconciliation checklist")[0] == "doc-zanzibar"
    assert "doc-zanzibar" in await listed(docs)

    stored = audit_events(docs, body["ingest_id"])
    assert [(e.stage, e.actor, e.decision) for e in stored] == [("document.stored", "alice", "allowed")]
    assert stored[0].detail["doc_ids"] == ["doc-zanzibar"]

    again = await post(docs, "alice", text)
    assert again.status_code == 200, again.text
    assert again.json()["changed"] == [] and again.json()["unchanged"] == ["doc-zanzibar"]
    assert again.json()["chunks"] == 0
    assert chunk_ids(docs, "doc-zanzibar") == expected  # the same points, no duplicates
    assert audit_events(docs, again.json()["ingest_id"])[0].detail["unchanged"] == ["doc-zanzibar"]


async def test_a_changed_document_replaces_its_old_text(docs: Stack) -> None:
    old = document("doc-tangier", LONG_BODY.replace("zanzibar", "tangier"))
    assert (await post(docs, "alice", old)).status_code == 200
    assert "doc-tangier" in found(docs, "tangier reconciliation checklist")
    new = document("doc-tangier", "The Marrakesh treasury memo replaces the earlier checklist for MER-US.")
    resp = await post(docs, "alice", new)
    assert resp.status_code == 200, resp.text
    assert resp.json()["changed"] == ["doc-tangier"] and resp.json()["chunks"] == 1
    listing = (await docs.http.get("/v1/documents", headers=docs.auth("alice"))).json()
    versions = {d["doc_id"]: d["version"] for d in listing}
    assert versions["doc-tangier"] == 2
    assert "doc-tangier" not in found(docs, "tangier")  # the longer old version left no tail chunks behind
    assert found(docs, "Marrakesh treasury memo")[0] == "doc-tangier"
    assert chunk_ids(docs, "doc-tangier") == ["doc-tangier#0"]


def problem(resp: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["type"].endswith("/" + slug) and body["title"] and body.get("hint"), body
    return body


BAD_INPUT = {
    "wrong content type": (415, "unsupported-document-type", "application/json", "send the file"),
    "over the size limit": (413, "", "text/markdown", "DOCKET_MAX_DOCUMENT_BYTES"),
    "unclosed front matter": (422, "invalid-document", "text/plain", "end the front matter with ---"),
    "no tenant": (422, "invalid-document", "text/markdown", "tenant"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
async def test_bad_documents_are_problems_and_store_nothing(docs: Stack, case: str) -> None:
    status, slug, content_type, hint = BAD_INPUT[case]
    text = {
        "wrong content type": document("doc-json", "Some text."),
        "over the size limit": document("doc-huge", "word " * MAX_DOCUMENT_BYTES),
        "unclosed front matter": '---\nid: "doc-open"\ntenant: "meridian"\n\nNo closing line.',
        "no tenant": '---\nid: "doc-nowhere"\n---\n\nText without a tenant.',
    }[case]
    before = (await listed(docs), uploads(docs))
    body = problem(await post(docs, "alice", text, content_type), status, slug or "body-too-large")
    assert hint in body["hint"]
    assert (await listed(docs), uploads(docs)) == before


@pytest.mark.parametrize(
    "principal,classification,tenant,policy",
    [
        ("carol", "internal", "meridian", "DOC-DEFAULT-DENY"),  # an analyst manages no documents
        ("bob", "restricted", "meridian", "DOC-002"),  # above a finance director's clearance
        ("alice", "internal", "globex", "DOC-003"),  # another tenant's documents
    ],
)
async def test_refused_additions_are_403_and_stage_nothing(
    docs: Stack, principal: str, classification: str, tenant: str, policy: str
) -> None:
    doc_id = f"doc-refused-{principal}"
    before = (await listed(docs), uploads(docs))
    resp = await post(docs, principal, document(doc_id, "Refused text.", tenant=tenant, classification=classification))
    body = problem(resp, 403, "document-change-denied")
    assert policy in body["policies"]
    assert (await listed(docs), uploads(docs)) == before  # refused before staging: no upload row left behind
    assert chunk_ids(docs, doc_id) == []


@pytest.mark.parametrize(
    "principal,policy",
    [("carol", "DOC-DEFAULT-DENY"), ("judy", "DOC-003")],  # no permit; a globex cfo in the meridian tenant
)
async def test_the_workflow_authorizes_on_its_own(docs: Stack, principal: str, policy: str) -> None:
    """Uploads staged without the API's early check (as a bug or another client could) are refused by the workflow."""
    doc_id = f"doc-staged-{principal}"
    text = document(doc_id, "Staged behind the gateway's back: the kilimanjaro note.")
    upload_ids = ingest.stage_uploads(docs.engine, "meridian", principal, [(f"{doc_id}.md", text)])
    result = await docs.client.execute_workflow(
        names.INGEST_WORKFLOW,
        IngestInput(tenant="meridian", principal_id=principal, upload_ids=upload_ids),
        id=f"ingest-test-{uuid.uuid4().hex[:12]}",
        task_queue=docs.task_queue,
        result_type=IndexDocumentsResult,
    )
    assert result.denied is True and policy in result.policies
    assert result.changed == [] and result.chunks == 0
    assert any(principal in r and doc_id in r for r in result.reasons)
    with docs.engine.connect() as conn:
        stored = conn.execute(select(table_of(Document)).where(table_of(Document).c.doc_id == doc_id)).all()
    assert stored == []
    assert chunk_ids(docs, doc_id) == [] and doc_id not in found(docs, "kilimanjaro note")


async def test_delete_removes_the_document_everywhere(docs: Stack) -> None:
    assert (await post(docs, "alice", document("doc-oslo", "The Oslo lease schedule for MER-US."))).status_code == 200
    assert found(docs, "Oslo lease schedule") == ["doc-oslo"]
    resp = await docs.http.delete("/v1/documents/doc-oslo", headers=docs.auth("alice"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["deleted"] == ["doc-oslo"] and resp.json()["status"] == "completed"
    assert found(docs, "Oslo lease schedule") == []
    assert "doc-oslo" not in await listed(docs)
    assert all(chunk_ids(docs, "doc-oslo", v.name) == [] for v in docs.index.store.versions())
    events = audit_events(docs, resp.json()["ingest_id"])
    assert [(e.stage, e.actor) for e in events] == [("document.deleted", "alice")]
    assert events[0].detail["doc_ids"] == ["doc-oslo"]


async def test_delete_of_an_unknown_document_is_404(docs: Stack) -> None:
    problem(await docs.http.delete("/v1/documents/doc-nope", headers=docs.auth("alice")), 404, "document-not-found")
    # An analyst may not delete a document, even one she can read.
    denied = await docs.http.delete("/v1/documents/doc-travel-policy", headers=docs.auth("carol"))
    problem(denied, 403, "document-change-denied")
    assert "doc-travel-policy" in await listed(docs)
