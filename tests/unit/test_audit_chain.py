"""The audit hash chain on SQLite: every single-row tamper is detected, retries write nothing, writers never fork.

A chain is built once by recording requests through activities.audit.engine.record; each tamper case runs on
its own copy of that database file, as an attacker with write access would: the append-only triggers are
dropped first, then rows are edited, deleted, inserted, renumbered or cut off the end.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, delete, exc, func, insert, select, update
from typer.testing import CliRunner

from activities.audit.engine import record
from cli.audit import audit_app
from docket import audit, db
from docket.audit import Checkpoint, FindingKind, event_hash
from docket.contracts import AuditEvent, Outcome, RecordInput, RequestResult
from docket.db import AuditAnchor, AuditEventRow, AuditHead, table_of
from tests.unit.conftest import migrated_engine

TENANT = "meridian"
OTHER = "globex"
ANCHOR_EVERY = 6  # N is not a multiple: the last events lie past the last anchor
EVENTS = table_of(AuditEventRow)
HEADS = table_of(AuditHead)
ANCHORS = table_of(AuditAnchor)

# Per request: the stages it went through (like RequestWorkflow's audit trail, of varying length).
REQUESTS: list[tuple[str, str, list[str]]] = [
    (TENANT, "req-a", ["classify", "authorize", "plan", "gather", "generate", "score", "record"]),
    (TENANT, "req-b", ["classify", "authorize", "record"]),
    (OTHER, "req-x", ["classify", "authorize", "record"]),
    (TENANT, "req-c", ["classify", "confirm", "authorize", "plan", "record"]),
    (TENANT, "req-d", ["classify", "authorize", "plan", "gather", "record"]),
]
N = sum(len(stages) for tenant, _, stages in REQUESTS if tenant == TENANT)  # 20 events in the meridian chain


def request(tenant: str, wid: str, stages: list[str], principal: str = "alice") -> RecordInput:
    result = RequestResult(
        request_id=wid,
        outcome=Outcome.DENIED if "confirm" in stages else Outcome.ANSWERED,
        tenant=tenant,
        principal_id=principal,
        question=f"question of {wid}",
        as_of=date(2026, 11, 21),
    )
    events = [
        AuditEvent(
            step=i,
            stage=stage,
            actor=principal,
            decision=f"{stage}-ok",
            detail={"stage": stage, "tasks": [f"{wid}-t{i}"], "score": 0.5 + i / 100, "note": "Zürich, 5 €"},
            policy_version="v3" if stage == "authorize" else "",
            prompt_sha256="ab" * 32 if stage == "generate" else "",
            model="gpt-test" if stage == "generate" else "",
        )
        for i, stage in enumerate(stages, start=1)
    ]
    return RecordInput(workflow_id=wid, result=result, events=events)


@pytest.fixture(scope="module")
def chain_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding the recorded requests; tests copy it, never change it."""
    folder = tmp_path_factory.mktemp("chain")
    engine = migrated_engine(folder)
    for tenant, wid, stages in REQUESTS:
        record(engine, request(tenant, wid, stages), anchor_every=ANCHOR_EVERY)
    with engine.begin() as conn:
        # Fold the WAL into the main file so a plain file copy is the whole database.
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return folder / "docket.db"


def rows_of(engine: Engine, tenant: str = TENANT) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(select(EVENTS).where(EVENTS.c.tenant == tenant).order_by(EVENTS.c.seq))
        return [dict(r._mapping) for r in result]


def anchor_seqs(engine: Engine, tenant: str = TENANT) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(ANCHORS.c.seq).where(ANCHORS.c.tenant == tenant)).scalars())


def head_of(engine: Engine, tenant: str = TENANT) -> Checkpoint:
    [head] = audit.heads(engine, tenant)
    return head


def drop_guards(conn: Connection) -> None:
    """What an attacker with DDL rights does first: remove the append-only triggers."""
    for name in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'").scalars().all():
        conn.exec_driver_sql(f"DROP TRIGGER {name}")


Tamper = Callable[[Connection, list[dict[str, Any]]], None]


class Lab:
    """Runs tamper cases, each on a fresh copy of the chain file, and counts what verify detected."""

    def __init__(self, source: Path, folder: Path) -> None:
        self.source, self.folder, self.n = source, folder, 0
        engine = db.make_engine(f"sqlite:///{source}")
        self.rows = rows_of(engine)
        self.anchors = anchor_seqs(engine)
        self.head = head_of(engine)
        engine.dispose()

    def run(self, tamper: Tamper, checkpoints: tuple[Checkpoint, ...] = ()) -> audit.VerifyReport:
        self.n += 1
        path = self.folder / f"case{self.n}.db"
        shutil.copyfile(self.source, path)
        engine = db.make_engine(f"sqlite:///{path}")
        try:
            with engine.begin() as conn:
                drop_guards(conn)
                tamper(conn, [dict(r) for r in self.rows])
            return audit.verify(engine, checkpoints=checkpoints)
        finally:
            engine.dispose()
            path.unlink()


@pytest.fixture(scope="module")
def lab(chain_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Lab:
    return Lab(chain_file, tmp_path_factory.mktemp("cases"))


def meridian(report: audit.VerifyReport) -> audit.TenantReport:
    [found] = [t for t in report.tenants if t.tenant == TENANT]
    return found


def set_row(conn: Connection, row_id: int, **values: Any) -> None:
    conn.execute(update(EVENTS).where(EVENTS.c.id == row_id).values(**values))


def set_head(conn: Connection, seq: int, digest: str) -> None:
    conn.execute(update(HEADS).where(HEADS.c.tenant == TENANT).values(seq=seq, hash=digest))


def rehash_from(conn: Connection, start_seq: int) -> None:
    """A careful attacker: recompute every hash from start_seq to the end and move the head to match."""
    rows = [
        dict(r._mapping) for r in conn.execute(select(EVENTS).where(EVENTS.c.tenant == TENANT).order_by(EVENTS.c.seq))
    ]
    prev = audit.GENESIS
    for r in rows:
        if r["seq"] >= start_seq:
            r["prev_hash"] = prev
            r["hash"] = event_hash(r, prev)
            set_row(conn, r["id"], prev_hash=r["prev_hash"], hash=r["hash"])
        prev = r["hash"]
    set_head(conn, rows[-1]["seq"] if rows else 0, prev)


def renumber_from(conn: Connection, rows: list[dict[str, Any]], start_seq: int, by: int) -> None:
    # Highest first, so (tenant, seq) stays unique at every step, as it would for a real attacker.
    for r in sorted(rows, key=lambda r: -r["seq"]):
        if r["seq"] >= start_seq:
            set_row(conn, r["id"], seq=r["seq"] + by)


def forged_row(rows: list[dict[str, Any]], seq: int) -> dict[str, Any]:
    """A well-formed event for position seq, linked to its predecessor and correctly hashed."""
    prev = rows[seq - 2]["hash"] if seq > 1 else audit.GENESIS
    template = rows[seq - 1]
    row = {k: v for k, v in template.items() if k != "id"}
    row.update(seq=seq, workflow_id="req-forged", step=1, actor="mallory", decision="allowed", prev_hash=prev)
    row["hash"] = event_hash(row, prev)
    return row


# ---------------------------------------------------------------- the untouched chain


def test_recorded_chain_is_valid_and_contiguous(chain_file: Path) -> None:
    engine = db.make_engine(f"sqlite:///{chain_file}")
    report = audit.verify(engine)
    rows = rows_of(engine)
    assert report.ok, report.findings
    assert [t.tenant for t in report.tenants] == [OTHER, TENANT]
    assert [r["seq"] for r in rows] == list(range(1, N + 1))
    assert [r["prev_hash"] for r in rows] == [audit.GENESIS] + [r["hash"] for r in rows[:-1]]
    assert (head_of(engine).seq, head_of(engine).hash) == (N, rows[-1]["hash"])
    assert anchor_seqs(engine) == list(range(ANCHOR_EVERY, N + 1, ANCHOR_EVERY))
    assert {r["outcome"] for r in rows if r["workflow_id"] == "req-c"} == {"denied"}
    assert meridian(report).anchors_checked == N // ANCHOR_EVERY
    engine.dispose()


def test_canonical_form_is_pinned() -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 11, 21, 9, 30, 0, 1234, tzinfo=UTC)
    assert audit.canonical_json({"b": 1, "a": ["é", 1.5, None], "t": when}) == (
        '{"a":["é",1.5,null],"b":1,"t":"2026-11-21T09:30:00.001234Z"}'.encode()
    )
    fields = {name: "" for name in audit.HASHED_FIELDS} | {"seq": 1, "step": 1, "detail": {}, "created_at": when}
    # Pinned byte for byte: changing the canonical form needs a new CHAIN_VERSION, or stored chains stop verifying.
    hashed = (
        '{"actor":"","created_at":"2026-11-21T09:30:00.001234Z","decision":"","detail":{},"model":"",'
        '"outcome":"","policy_version":"","prev_hash":"' + "0" * 64 + '","prompt_sha256":"","seq":1,"stage":"",'
        '"step":1,"tenant":"","v":1,"workflow_id":""}'
    )
    assert event_hash(fields, audit.GENESIS) == hashlib.sha256(hashed.encode()).hexdigest()
    with pytest.raises(ValueError):
        audit.canonical_json({"x": float("nan")})


def test_reserialised_detail_is_not_a_finding(lab: Lab) -> None:
    # The database may hand JSON back with other key order or spacing; the canonical form must not care.
    def reserialise(conn: Connection, rows: list[dict[str, Any]]) -> None:
        for r in rows:
            raw = json.dumps(dict(reversed(list(r["detail"].items()))), indent=2)
            conn.exec_driver_sql("UPDATE audit_events SET detail = ? WHERE id = ?", (raw, r["id"]))

    assert lab.run(reserialise).ok


# ---------------------------------------------------------------- 100% of single-row tampers


EDITS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "tenant": lambda r: "forged-tenant",
    "workflow_id": lambda r: r["workflow_id"] + "-x",
    "step": lambda r: r["step"] + 100,
    "stage": lambda r: "forged",
    "actor": lambda r: "mallory",
    "decision": lambda r: "allowed" if r["decision"] != "allowed" else "denied",
    "detail": lambda r: r["detail"] | {"tasks": []},
    "policy_version": lambda r: r["policy_version"] + "x",
    "prompt_sha256": lambda r: "cd" * 32,
    "model": lambda r: "other-model",
    "outcome": lambda r: "answered" if r["outcome"] != "answered" else "denied",
    "created_at": lambda r: r["created_at"] + timedelta(microseconds=1),
    "prev_hash": lambda r: "f" * 64,
    "hash": lambda r: "e" * 64,
    "seq": lambda r: r["seq"] + 1000,
}


def test_every_field_edit_of_every_row_is_detected_at_that_row(lab: Lab) -> None:
    cases = detected = 0
    for k in range(1, N + 1):
        for name in EDITS:

            def edit(conn: Connection, rows: list[dict[str, Any]], k: int = k, name: str = name) -> None:
                row = rows[k - 1]
                set_row(conn, row["id"], **{name: EDITS[name](row)})

            report = lab.run(edit)
            cases += 1
            if not report.ok:
                detected += 1
                assert meridian(report).findings[0].seq == k, (k, name, meridian(report).findings)
    assert cases == N * len(EDITS)
    assert detected == cases


def test_an_edit_with_its_hash_recomputed_is_detected(lab: Lab) -> None:
    cases = detected = 0
    for k in range(1, N + 1):

        def edit(conn: Connection, rows: list[dict[str, Any]], k: int = k) -> None:
            row = rows[k - 1] | {"decision": "allowed-by-mallory"}
            set_row(conn, row["id"], decision=row["decision"], hash=event_hash(row, row["prev_hash"]))

        report = lab.run(edit)
        cases += 1
        detected += not report.ok
        # The next event's link gives it away (for the last event, the head; for an anchored one, the anchor).
        kinds = {f.kind for f in meridian(report).findings}
        assert kinds & {FindingKind.BROKEN_LINK, FindingKind.HEAD_MISMATCH, FindingKind.REWRITTEN}, (k, kinds)
    assert (cases, detected) == (N, N)


def test_every_deletion_is_detected_at_that_row(lab: Lab) -> None:
    cases = detected = 0
    for k in range(1, N + 1):

        def remove(conn: Connection, rows: list[dict[str, Any]], k: int = k) -> None:
            conn.execute(delete(EVENTS).where(EVENTS.c.id == rows[k - 1]["id"]))

        report = lab.run(remove)
        cases += 1
        if not report.ok:
            detected += 1
            first = meridian(report).findings[0]
            assert (first.seq, first.kind) == (k, FindingKind.MISSING if k < N else FindingKind.TRUNCATED)
    assert (cases, detected) == (N, N)


def test_every_forged_insertion_is_detected(lab: Lab) -> None:
    # A well-formed forged event before row k: rows k.. are renumbered to make room, the head is moved on.
    cases = detected = 0
    for k in range(1, N + 1):

        def forge(conn: Connection, rows: list[dict[str, Any]], k: int = k) -> None:
            renumber_from(conn, rows, k, 1)
            conn.execute(insert(EVENTS).values(**forged_row(rows, k)))
            set_head(conn, N + 1, rows[-1]["hash"])

        report = lab.run(forge)
        cases += 1
        if not report.ok:
            detected += 1
            assert meridian(report).findings[0].seq in (k, k + 1)
    assert (cases, detected) == (N, N)


def test_every_swap_of_adjacent_rows_is_detected_at_the_first(lab: Lab) -> None:
    cases = detected = 0
    for k in range(1, N):

        def swap(conn: Connection, rows: list[dict[str, Any]], k: int = k) -> None:
            a, b = rows[k - 1], rows[k]
            set_row(conn, a["id"], seq=-1)
            set_row(conn, b["id"], seq=k)
            set_row(conn, a["id"], seq=k + 1)

        report = lab.run(swap)
        cases += 1
        if not report.ok:
            detected += 1
            assert meridian(report).findings[0].seq == k
    assert (cases, detected) == (N - 1, N - 1)


def test_every_tail_truncation_is_detected_by_the_head(lab: Lab) -> None:
    cases = detected = 0
    for cut in range(1, N + 1):

        def truncate(conn: Connection, rows: list[dict[str, Any]], cut: int = cut) -> None:
            conn.execute(delete(EVENTS).where(EVENTS.c.id.in_([r["id"] for r in rows[N - cut :]])))

        report = lab.run(truncate)
        cases += 1
        if not report.ok:
            detected += 1
            first = meridian(report).findings[0]
            assert (first.seq, first.kind) == (N - cut + 1, FindingKind.TRUNCATED)
    assert (cases, detected) == (N, N)


def test_careful_truncation_is_detected_by_anchors_then_by_an_off_box_checkpoint(lab: Lab) -> None:
    """Cut the tail AND rewrite the head to the new last event, so the database agrees with itself.

    The anchors left behind catch every cut that reaches back past an anchor. A cut after the last anchor leaves
    nothing in the database to contradict it (no secret is involved), so it takes a checkpoint copied off-box
    (`docket audit anchor --head`) to catch: with one, all cuts are detected; without the anchors too.
    """
    checkpoint = lab.head
    last_anchor = max(lab.anchors)
    by_anchor = by_checkpoint = by_checkpoint_without_anchors = 0
    for cut in range(1, N + 1):

        def truncate(conn: Connection, rows: list[dict[str, Any]], cut: int = cut, anchors: bool = True) -> None:
            kept = rows[: N - cut]
            conn.execute(delete(EVENTS).where(EVENTS.c.id.in_([r["id"] for r in rows[N - cut :]])))
            set_head(conn, kept[-1]["seq"] if kept else 0, kept[-1]["hash"] if kept else audit.GENESIS)
            if not anchors:
                conn.execute(delete(ANCHORS).where(ANCHORS.c.seq > N - cut))

        in_db = lab.run(truncate)
        assert in_db.ok == (N - cut >= last_anchor), cut
        by_anchor += not in_db.ok
        if not in_db.ok:
            assert {f.witness for f in meridian(in_db).findings} == {"anchor"}
        by_checkpoint += not lab.run(truncate, (checkpoint,)).ok
        off_box = lab.run(lambda c, r, cut=cut: truncate(c, r, cut, anchors=False), (checkpoint,))
        by_checkpoint_without_anchors += not off_box.ok
        assert [f.witness for f in meridian(off_box).findings] == ["checkpoint"]
    assert by_anchor == last_anchor < N  # every cut that removes an anchored event, and only those
    assert by_checkpoint == by_checkpoint_without_anchors == N


def test_a_rewritten_chain_is_caught_by_anchors_behind_the_change(lab: Lab) -> None:
    # Edit row k and recompute every hash after it: only anchors at or past k (or an off-box checkpoint) notice.
    last_anchor = max(lab.anchors)
    for k in range(1, N + 1):

        def rewrite(conn: Connection, rows: list[dict[str, Any]], k: int = k) -> None:
            set_row(conn, rows[k - 1]["id"], decision="rewritten")
            rehash_from(conn, k)

        report = lab.run(rewrite)
        assert report.ok == (k > last_anchor), k
        assert not lab.run(rewrite, (lab.head,)).ok


def test_verify_names_the_problem_in_words(lab: Lab) -> None:
    def remove_seventh(conn: Connection, rows: list[dict[str, Any]]) -> None:
        conn.execute(delete(EVENTS).where(EVENTS.c.id == rows[6]["id"]))

    first = meridian(lab.run(remove_seventh)).findings[0]
    assert first.kind is FindingKind.MISSING and first.seq == 7
    assert "seq 7 missing" in first.message and "deleted" in first.message


# ---------------------------------------------------------------- writing: idempotence, guards, concurrency


def test_a_retried_record_writes_nothing_and_keeps_the_chain(empty_engine: Engine) -> None:
    data = request(TENANT, "req-retry", ["classify", "authorize", "record"])
    first = record(empty_engine, data, anchor_every=2)
    head = head_of(empty_engine)
    again = record(empty_engine, data, anchor_every=2)
    assert (first.audit_rows_written, again.audit_rows_written) == (3, 0)
    assert again.result_written is False
    assert head_of(empty_engine) == head
    assert anchor_seqs(empty_engine) == [2]
    with empty_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(EVENTS)).scalar_one() == 3
    # The next request continues the same chain.
    record(empty_engine, request(TENANT, "req-next", ["classify"]), anchor_every=2)
    assert [r["seq"] for r in rows_of(empty_engine)] == [1, 2, 3, 4]
    assert audit.verify(empty_engine).ok


def test_the_tables_refuse_updates_and_deletes(chain_file: Path, tmp_path: Path) -> None:
    path = Path(shutil.copyfile(chain_file, tmp_path / "guarded.db"))
    engine = db.make_engine(f"sqlite:///{path}")
    for stmt in (
        update(EVENTS).where(EVENTS.c.seq == 1).values(decision="x"),
        delete(EVENTS).where(EVENTS.c.seq == N),
        delete(ANCHORS),
    ):
        with pytest.raises(exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(stmt)
    assert audit.verify(engine).ok
    engine.dispose()


def test_concurrent_writers_on_sqlite_build_one_chain(empty_engine: Engine) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            barrier.wait()
            for i in range(3):
                record(empty_engine, request(TENANT, f"req-w{w}-{i}", ["classify", "authorize", "record"]), 5)
        except BaseException as e:  # surfaced by the assert below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = rows_of(empty_engine)
    assert [r["seq"] for r in rows] == list(range(1, 8 * 3 * 3 + 1))
    assert len({r["prev_hash"] for r in rows}) == len(rows)
    assert audit.verify(empty_engine).ok


# ---------------------------------------------------------------- migration of rows from before the chain


def test_migration_chains_rows_written_before_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    cfg = Config()
    cfg.set_main_option("script_location", str(db.MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "0002")
    con = sqlite3.connect(tmp_path / "old.db")
    con.execute(
        "INSERT INTO request_results (workflow_id, tenant, principal_id, question, outcome, result, created_at) "
        "VALUES ('old-0', 'meridian', 'alice', 'q', 'denied', '{}', '2026-11-01 10:00:00.000000')"
    )
    for i in range(205):
        tenant = TENANT if i % 3 else OTHER
        con.execute(
            "INSERT INTO audit_events (workflow_id, step, stage, tenant, actor, decision, detail, policy_version,"
            " prompt_sha256, model, created_at) VALUES (?, ?, 'classify', ?, 'alice', 'x', ?, '', '', '', ?)",
            (f"old-{i // 5}", i % 5 + 1, tenant, json.dumps({"i": i}), f"2026-11-01 10:00:{i % 60:02d}.000001"),
        )
    con.commit()
    con.close()

    db.migrate(url)
    engine = db.make_engine(url)
    report = audit.verify(engine)
    assert report.ok, report.findings
    rows = rows_of(engine)
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert {r["outcome"] for r in rows if r["workflow_id"] == "old-0"} == {"denied"}
    assert anchor_seqs(engine) == [100]
    # New records continue the migrated chains.
    record(engine, request(OTHER, "req-new", ["classify"]))
    assert audit.verify(engine).ok
    engine.dispose()


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def cli_db(chain_file: Path, tmp_path: Path) -> Iterator[tuple[str, CliRunner]]:
    path = Path(shutil.copyfile(chain_file, tmp_path / "cli.db"))
    yield f"sqlite:///{path}", CliRunner()


def test_cli_verify_and_anchor(cli_db: tuple[str, CliRunner]) -> None:
    url, runner = cli_db
    env = {"DATABASE_URL": url}
    ok = runner.invoke(audit_app, ["verify"], env=env)
    assert ok.exit_code == 0, ok.output
    assert f"{TENANT}: intact ({N} events" in ok.output

    anchor = runner.invoke(audit_app, ["anchor", "--tenant", TENANT], env=env)
    line = anchor.output.split()[0]
    assert Checkpoint.parse(line).seq == N - N % ANCHOR_EVERY
    head = runner.invoke(audit_app, ["anchor", "--head", "--json"], env=env)
    assert {c["tenant"]: c["seq"] for c in json.loads(head.output)}[TENANT] == N
    assert runner.invoke(audit_app, ["verify", "--checkpoint", line], env=env).exit_code == 0

    engine = db.make_engine(url)
    with engine.begin() as conn:
        drop_guards(conn)
        conn.execute(update(EVENTS).where(EVENTS.c.tenant == TENANT, EVENTS.c.seq == 5).values(actor="mallory"))
    engine.dispose()
    bad = runner.invoke(audit_app, ["verify", "--tenant", TENANT], env=env)
    assert bad.exit_code == 1
    assert "TAMPERED — first bad seq 5 (edited)" in bad.output
    as_json = runner.invoke(audit_app, ["verify", "--json"], env=env)
    assert as_json.exit_code == 1
    body = json.loads(as_json.output)
    assert body["ok"] is False and body["first"]["seq"] == 5 and body["first"]["kind"] == "edited"

    wrong = runner.invoke(audit_app, ["verify", "--checkpoint", "meridian:4:nothex"], env=env)
    assert wrong.exit_code == 2
    elsewhere = runner.invoke(
        audit_app, ["verify", "--tenant", TENANT, "--checkpoint", f"{OTHER}:1:{'0' * 64}"], env=env
    )
    assert elsewhere.exit_code == 2


def test_cli_verify_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    result = CliRunner().invoke(audit_app, ["verify"], env={"DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert result.exit_code == 2
    assert "docket up" in result.output
