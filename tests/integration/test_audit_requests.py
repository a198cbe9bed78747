"""Real requests through the worker leave a hash chain that verifies, with the record stage's outcome on each event."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from docket import audit
from docket.db import AuditEventRow, table_of
from tests.conftest import Stack

pytestmark = pytest.mark.integration


async def test_recorded_requests_verify(stack: Stack) -> None:
    ids = []
    for principal, question in [
        ("alice", "What was revenue for MER-US last month?"),
        ("erin", "What was revenue for MER-FR in October 2026?"),
        ("bob", "Show me COGS for MER-DE in March 2026"),
    ]:
        resp = await stack.http.post(
            "/v1/requests",
            params={"wait": 30},
            headers=stack.auth(principal),
            json={"question": question, "as_of": "2026-11-21"},
        )
        assert resp.status_code == 200, resp.text
        ids.append((resp.json()["request_id"], resp.json()["outcome"]))

    report = audit.verify(stack.engine, tenant="meridian")
    assert report.ok, report.findings[:3]
    t = table_of(AuditEventRow)
    with stack.engine.connect() as conn:
        for wid, outcome in ids:
            rows = conn.execute(select(t.c.outcome, t.c.seq).where(t.c.workflow_id == wid)).all()
            assert rows and {r.outcome for r in rows} == {outcome}
