"""The audit hash chain on the real PostgreSQL server: 16 concurrent writers build one chain, never a fork."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import Engine, delete, exc, select, text, update

from activities.audit.engine import record
from docket import audit, db
from docket.contracts import AuditEvent, Outcome, RecordInput, RequestResult
from docket.db import AuditAnchor, AuditEventRow, table_of

pytestmark = pytest.mark.postgres

EVENTS = table_of(AuditEventRow)
ANCHORS = table_of(AuditAnchor)
WRITERS = 16
REQUESTS_PER_WRITER = 4
STAGES = ["classify", "authorize", "plan", "gather", "record"]
ANCHOR_EVERY = 7


@pytest.fixture(scope="module")
def pg(postgres_url: str) -> Iterator[Engine]:
    db.migrate(postgres_url)
    engine = db.make_engine(postgres_url)
    yield engine
    engine.dispose()


def request(tenant: str, wid: str) -> RecordInput:
    result = RequestResult(
        request_id=wid,
        outcome=Outcome.ANSWERED,
        tenant=tenant,
        principal_id="alice",
        question=f"question of {wid}",
        as_of=date(2026, 11, 21),
    )
    events = [
        AuditEvent(step=i, stage=s, actor="alice", decision=f"{s}-ok", detail={"wid": wid, "i": i, "x": 0.25})
        for i, s in enumerate(STAGES, start=1)
    ]
    return RecordInput(workflow_id=wid, result=result, events=events)


def chain(engine: Engine, tenant: str) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(EVENTS).where(EVENTS.c.tenant == tenant).order_by(EVENTS.c.seq))
        return [dict(r._mapping) for r in rows]


def test_16_concurrent_writers_build_one_chain(pg: Engine) -> None:
    tenant = f"race-{uuid.uuid4().hex[:8]}"
    wids = [[f"req-{tenant}-{w}-{i}" for i in range(REQUESTS_PER_WRITER)] for w in range(WRITERS)]
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []
    written: Counter[str] = Counter()
    lock = threading.Lock()

    def writer(w: int) -> None:
        try:
            barrier.wait()
            # Each writer records its own requests and then retries its neighbour's, so every request is also
            # recorded twice concurrently (a retry racing the first attempt must add nothing).
            for wid in wids[w] + wids[(w + 1) % WRITERS]:
                n = record(pg, request(tenant, wid), anchor_every=ANCHOR_EVERY).audit_rows_written
                with lock:
                    written[wid] += n
        except BaseException as e:  # surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]

    rows = chain(pg, tenant)
    total = WRITERS * REQUESTS_PER_WRITER * len(STAGES)
    assert len(rows) == total
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    # No forks: every event has a distinct predecessor, and it is exactly the event before it.
    assert len({r["prev_hash"] for r in rows}) == total
    assert [r["prev_hash"] for r in rows] == [audit.GENESIS] + [r["hash"] for r in rows[:-1]]
    assert set(written.values()) == {len(STAGES)}
    assert Counter(r["workflow_id"] for r in rows) == dict.fromkeys(written, len(STAGES))

    report = audit.verify(pg, tenant=tenant)
    assert report.ok, report.findings[:3]
    assert report.tenants[0].head_seq == total
    with pg.connect() as conn:
        anchored = conn.execute(select(ANCHORS.c.seq).where(ANCHORS.c.tenant == tenant).order_by(ANCHORS.c.seq))
        assert list(anchored.scalars()) == list(range(ANCHOR_EVERY, total + 1, ANCHOR_EVERY))


def test_postgres_refuses_changes_and_verify_catches_an_attacker(pg: Engine) -> None:
    tenant = f"guard-{uuid.uuid4().hex[:8]}"
    for i in range(3):
        record(pg, request(tenant, f"req-{tenant}-{i}"), anchor_every=ANCHOR_EVERY)
    for stmt in (
        update(EVENTS).where(EVENTS.c.tenant == tenant).values(decision="x"),
        delete(EVENTS).where(EVENTS.c.tenant == tenant),
        text("TRUNCATE audit_anchors"),
    ):
        with pytest.raises(exc.DBAPIError, match="append-only"), pg.begin() as conn:
            conn.execute(stmt)
    assert audit.verify(pg, tenant=tenant).ok

    # An attacker who can switch the trigger off deletes one event; verify names it.
    with pg.begin() as conn:
        conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        conn.execute(delete(EVENTS).where(EVENTS.c.tenant == tenant, EVENTS.c.seq == 8))
        conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
    report = audit.verify(pg, tenant=tenant)
    assert not report.ok
    first = report.first
    assert first is not None and (first.seq, first.kind) == (8, audit.FindingKind.MISSING)
