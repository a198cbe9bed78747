"""The tamper-evident audit log: one hash chain per tenant over audit_events, with periodic anchors.

Every event carries its tenant's sequence number (1, 2, …), the previous event's hash and its own hash:
sha256 over the canonical JSON of its fields plus that previous hash. Writers lock the tenant's head row
(audit_heads) for the length of their transaction, so two requests recorded at once can never both build on
the same predecessor (no forks). Every Nth hash is copied into audit_anchors, the latest of which an operator
copies off-box; `verify` recomputes the whole chain and checks it against the head, the anchors and any
off-box checkpoints it is given. docs/audit.md explains the design and what each finding means.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, Engine, func, select, union, update
from sqlalchemy.dialects import postgresql, sqlite

from docket.db import AuditAnchor, AuditEventRow, AuditHead, table_of, utcnow

# Bump (and keep the old branch in event_hash) if the canonical form ever changes: stored hashes never move.
CHAIN_VERSION = 1
GENESIS = "0" * 64
DEFAULT_ANCHOR_EVERY = 100

# The fields each hash covers, besides the chain version and prev_hash. `id` is left out on purpose: it is a
# storage detail, and order is what seq says.
HASHED_FIELDS = (
    "tenant",
    "seq",
    "workflow_id",
    "step",
    "stage",
    "actor",
    "decision",
    "detail",
    "policy_version",
    "prompt_sha256",
    "model",
    "outcome",
    "created_at",
)


# ---------------------------------------------------------------- canonical form and hashing


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with microseconds and a Z, e.g. 2026-11-21T09:30:00.000000Z."""
    if value.utcoffset() is None:
        # The database hands back aware UTC datetimes; a naive one here means someone built the row by hand.
        raise ValueError("audit timestamps must carry a timezone")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text.lower())


def _encode(value: object) -> str:
    if isinstance(value, datetime):
        return iso_utc(value)
    raise TypeError(f"{type(value).__name__} is not allowed in an audit event")


def canonical_json(value: object) -> bytes:
    """Sorted keys, no whitespace, UTF-8 (not \\u escapes), datetimes as ISO-8601 UTC; NaN/Infinity refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_encode
    ).encode("utf-8")


def normalize_detail(detail: Mapping[str, object]) -> dict[str, Any]:
    """The detail exactly as the JSON column will give it back (tuples become lists, keys strings, …).

    Hashing what is stored rather than what was passed in keeps a later verify from failing on a harmless
    type change the database made.
    """
    value = json.loads(canonical_json(dict(detail)))
    assert isinstance(value, dict)
    return value


def event_hash(fields: Mapping[str, Any], prev_hash: str) -> str:
    """sha256 (hex) of the canonical JSON of the hashed fields, the chain version and the previous hash."""
    doc: dict[str, Any] = {name: fields[name] for name in HASHED_FIELDS}
    doc["v"] = CHAIN_VERSION
    doc["prev_hash"] = prev_hash
    return hashlib.sha256(canonical_json(doc)).hexdigest()


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class NewEvent:
    """An audit event to append; the chain fields (seq, hashes, created_at) are filled in by append()."""

    workflow_id: str
    step: int
    stage: str
    actor: str
    decision: str
    detail: Mapping[str, object] = field(default_factory=dict)
    policy_version: str = ""
    prompt_sha256: str = ""
    model: str = ""
    outcome: str = ""


def _insert(conn: Connection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


def _lock_head(conn: Connection, tenant: str) -> tuple[int, str]:
    heads = table_of(AuditHead)
    # A write first: on SQLite it takes the database's write lock before we read the head (a read first would
    # let two writers read the same head, then one fail to upgrade); on PostgreSQL it creates the row once.
    conn.execute(
        _insert(conn)(heads)
        .values(tenant=tenant, seq=0, hash=GENESIS, updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["tenant"])
    )
    # FOR UPDATE holds every other writer of this tenant here until we commit (SQLite renders no FOR UPDATE:
    # its single write lock already serialises writers).
    row = conn.execute(select(heads.c.seq, heads.c.hash).where(heads.c.tenant == tenant).with_for_update()).one()
    return int(row.seq), str(row.hash)


def append(conn: Connection, tenant: str, events: Sequence[NewEvent], anchor_every: int = DEFAULT_ANCHOR_EVERY) -> int:
    """Append events to the tenant's chain inside the caller's transaction; return how many were new.

    An event whose (workflow_id, step) is already stored is skipped without taking a sequence number, so a
    retried record writes nothing and leaves the chain as it was.
    """
    if not events:
        return 0
    if anchor_every < 1:
        raise ValueError("anchor_every must be at least 1")
    events_t, anchors_t, heads_t = table_of(AuditEventRow), table_of(AuditAnchor), table_of(AuditHead)
    insert = _insert(conn)
    seq, head_hash = _lock_head(conn, tenant)
    start = seq
    # Taken after the lock, so timestamps follow seq order within a tenant.
    now = utcnow()
    # One statement for every event, its values bound per execution: built and compiled once per append.
    stmt = (
        insert(events_t)
        # Only the (workflow_id, step) key is forgiven: a clash on (tenant, seq) would mean a fork and must fail
        # loudly.
        .on_conflict_do_nothing(index_elements=["workflow_id", "step"])
        .returning(events_t.c.id)
    )
    for e in events:
        fields: dict[str, Any] = {
            "tenant": tenant,
            "seq": seq + 1,
            "workflow_id": e.workflow_id,
            "step": e.step,
            "stage": e.stage,
            "actor": e.actor,
            "decision": e.decision,
            "detail": normalize_detail(e.detail),
            "policy_version": e.policy_version,
            "prompt_sha256": e.prompt_sha256,
            "model": e.model,
            "outcome": e.outcome,
            "created_at": now,
        }
        digest = event_hash(fields, head_hash)
        if not conn.execute(stmt, {**fields, "prev_hash": head_hash, "hash": digest}).all():
            continue
        seq, head_hash = seq + 1, digest
        if seq % anchor_every == 0:
            conn.execute(insert(anchors_t).values(tenant=tenant, seq=seq, hash=digest, created_at=now))
    if seq != start:
        conn.execute(update(heads_t).where(heads_t.c.tenant == tenant).values(seq=seq, hash=head_hash, updated_at=now))
    return seq - start


# ---------------------------------------------------------------- verifying


class FindingKind(StrEnum):
    EDITED = "edited"
    MISSING = "missing"
    BROKEN_LINK = "broken_link"
    OUT_OF_ORDER = "out_of_order"
    TRUNCATED = "truncated"
    UNCHAINED_TAIL = "unchained_tail"
    HEAD_MISMATCH = "head_mismatch"
    HEAD_MISSING = "head_missing"
    REWRITTEN = "rewritten"


class Finding(BaseModel):
    """One problem in a tenant's chain: where (seq), what kind, how it was seen, and what it means."""

    tenant: str
    seq: int
    kind: FindingKind
    witness: str  # hash · sequence · link · head · anchor · checkpoint
    message: str
    workflow_id: str = ""
    step: int | None = None


class Checkpoint(BaseModel):
    """A (tenant, seq, hash) known to be good: an anchor or head copied off-box (`docket audit anchor`)."""

    tenant: str
    seq: int
    hash: str
    created_at: datetime | None = None

    def __str__(self) -> str:
        return f"{self.tenant}:{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse TENANT:SEQ:HASH (the form `docket audit anchor` prints)."""
        parts = text.strip().rsplit(":", 2)
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit() or not _is_sha256(parts[2]):
            raise ValueError(f"{text!r} is not TENANT:SEQ:HASH (a 64-character sha256)")
        tenant, seq, digest = parts
        return cls(tenant=tenant, seq=int(seq), hash=digest.lower())


class TenantReport(BaseModel):
    tenant: str
    ok: bool
    events: int
    head_seq: int | None
    anchors_checked: int
    checkpoints_checked: int
    findings: list[Finding] = Field(default_factory=list)


class VerifyReport(BaseModel):
    """The result of verify(): ok, and per tenant what was checked and what was found (first bad seq first)."""

    ok: bool
    tenants: list[TenantReport] = Field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return [f for t in self.tenants for f in t.findings]

    @property
    def first(self) -> Finding | None:
        found = self.findings
        return found[0] if found else None


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection that sees one consistent state, so writers appending meanwhile are not findings."""
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # pysqlite opens no transaction for SELECTs; an explicit BEGIN pins one WAL snapshot for all reads.
            conn.exec_driver_sql("BEGIN")
            try:
                yield conn
            finally:
                conn.rollback()
        else:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin() as txn:
                yield conn
                txn.rollback()


def _tenants(conn: Connection, tenant: str | None, checkpoints: Iterable[Checkpoint]) -> list[str]:
    if tenant is not None:
        return [tenant]
    found = conn.execute(
        union(
            select(table_of(AuditEventRow).c.tenant),
            select(table_of(AuditHead).c.tenant),
            select(table_of(AuditAnchor).c.tenant),
        )
    ).scalars()
    return sorted({str(t) for t in found} | {c.tenant for c in checkpoints})


def _span(a: int, b: int) -> str:
    return f"seq {a}" if a == b else f"seq {a}..{b}"


def _verify_tenant(conn: Connection, tenant: str, checkpoints: list[Checkpoint]) -> TenantReport:
    events_t, anchors_t, heads_t = table_of(AuditEventRow), table_of(AuditAnchor), table_of(AuditHead)
    findings: list[Finding] = []

    def found(seq: int, kind: FindingKind, witness: str, message: str, row: Any = None) -> None:
        findings.append(
            Finding(
                tenant=tenant,
                seq=seq,
                kind=kind,
                witness=witness,
                message=message,
                workflow_id=str(row.workflow_id) if row is not None else "",
                step=int(row.step) if row is not None else None,
            )
        )

    head = conn.execute(select(heads_t.c.seq, heads_t.c.hash).where(heads_t.c.tenant == tenant)).one_or_none()
    anchors = {
        int(a.seq): (str(a.hash), a.created_at)
        for a in conn.execute(select(anchors_t).where(anchors_t.c.tenant == tenant))
    }
    # Off-box checkpoints are checked exactly like anchors, but an attacker with database access cannot reach them.
    witnesses: dict[int, list[tuple[str, str, str]]] = {}
    for seq, (digest, created) in anchors.items():
        when = f" on {iso_utc(created)}" if isinstance(created, datetime) else ""
        witnesses.setdefault(seq, []).append(("anchor", digest, f"the anchor written{when}"))
    for c in checkpoints:
        witnesses.setdefault(c.seq, []).append(("checkpoint", c.hash, "the off-box checkpoint"))
    seen: set[int] = set()

    expected, prev_hash = 1, GENESIS
    last_seq, last_hash = 0, GENESIS
    count = 0
    rows = conn.execute(
        select(events_t)
        .where(events_t.c.tenant == tenant)
        .order_by(events_t.c.seq, events_t.c.id)
        .execution_options(yield_per=2000)
    )
    for row in rows:
        count += 1
        seq = int(row.seq)
        where = f"event seq {seq} ({row.workflow_id} step {row.step}, {row.stage})"
        if seq < expected:
            found(
                seq,
                FindingKind.OUT_OF_ORDER,
                "sequence",
                f"{where} comes after seq {expected - 1}: a second event claims this place in the chain — "
                "a row was inserted or renumbered outside Docket's writer.",
                row,
            )
            continue
        gap = seq > expected
        if gap:
            found(
                expected,
                FindingKind.MISSING,
                "sequence",
                f"{_span(expected, seq - 1)} missing (the chain jumps from seq {expected - 1} to seq {seq}): "
                "events were deleted or renumbered.",
                row,
            )
        fields = {name: getattr(row, name) for name in HASHED_FIELDS}
        try:
            recomputed = event_hash(fields, str(row.prev_hash))
        except (TypeError, ValueError):
            recomputed = ""
        if recomputed != row.hash:
            found(
                seq,
                FindingKind.EDITED,
                "hash",
                f"{where} no longer matches its hash: a field (or the stored hash) was changed after it was written.",
                row,
            )
        # After a gap the predecessor is gone, so the link cannot be judged; the gap is the finding.
        if not gap and row.prev_hash != prev_hash:
            found(
                seq,
                FindingKind.BROKEN_LINK,
                "link",
                f"{where} does not link to seq {seq - 1}: its prev_hash is not seq {seq - 1}'s hash — seq "
                f"{seq - 1} was rewritten with a recomputed hash, or events were inserted, replaced or reordered "
                "here.",
                row,
            )
        for witness, digest, what in witnesses.get(seq, []):
            seen.add(seq)
            if digest != row.hash:
                found(
                    seq,
                    FindingKind.REWRITTEN,
                    witness,
                    f"{where} does not have the hash {what} recorded for it: the chain up to seq {seq} was rewritten.",
                    row,
                )
        expected, prev_hash = seq + 1, str(row.hash)
        last_seq, last_hash = seq, str(row.hash)

    for seq in sorted(witnesses.keys() - seen):
        for witness, _digest, what in witnesses[seq]:
            if seq > last_seq:
                found(
                    seq,
                    FindingKind.TRUNCATED,
                    witness,
                    f"{what} is for seq {seq}, past the last event (seq {last_seq}): events after seq {last_seq} "
                    "were deleted from the end (and the head rewritten to hide it).",
                )
            else:
                found(
                    seq,
                    FindingKind.MISSING,
                    witness,
                    f"{what} is for seq {seq}, which is no longer in the chain: it was deleted or renumbered.",
                )

    if head is None:
        if count:
            found(
                1,
                FindingKind.HEAD_MISSING,
                "head",
                f"{count} events but no head row: the tenant's audit_heads row was deleted (or these events were "
                "written outside Docket's writer).",
            )
    elif int(head.seq) > last_seq:
        found(
            last_seq + 1,
            FindingKind.TRUNCATED,
            "head",
            f"the head says the chain ends at seq {head.seq} but the last event is seq {last_seq}: "
            f"{_span(last_seq + 1, int(head.seq))} were deleted from the end.",
        )
    elif int(head.seq) < last_seq:
        found(
            int(head.seq) + 1,
            FindingKind.UNCHAINED_TAIL,
            "head",
            f"{_span(int(head.seq) + 1, last_seq)} come after the head (seq {head.seq}): they were written "
            "outside Docket's writer, or the head was rolled back.",
        )
    elif head.hash != last_hash:
        found(
            last_seq,
            FindingKind.HEAD_MISMATCH,
            "head",
            f"the head's hash for seq {last_seq} is not that event's hash: the last event was replaced or the "
            "head was edited.",
        )

    findings.sort(key=lambda f: f.seq)
    return TenantReport(
        tenant=tenant,
        ok=not findings,
        events=count,
        head_seq=int(head.seq) if head is not None else None,
        anchors_checked=len(anchors),
        checkpoints_checked=len(checkpoints),
        findings=findings,
    )


def verify(engine: Engine, tenant: str | None = None, checkpoints: Sequence[Checkpoint] = ()) -> VerifyReport:
    """Recompute every tenant's chain in seq order and check it against its head, anchors and checkpoints."""
    with _snapshot(engine) as conn:
        reports = [
            _verify_tenant(conn, t, [c for c in checkpoints if c.tenant == t])
            for t in _tenants(conn, tenant, checkpoints)
        ]
    return VerifyReport(ok=all(r.ok for r in reports), tenants=reports)


def latest_anchors(engine: Engine, tenant: str | None = None) -> list[Checkpoint]:
    """Each tenant's newest anchor: what an operator copies off-box."""
    anchors_t = table_of(AuditAnchor)
    newest = select(anchors_t.c.tenant, func.max(anchors_t.c.seq).label("seq")).group_by(anchors_t.c.tenant)
    if tenant is not None:
        newest = newest.where(anchors_t.c.tenant == tenant)
    sub = newest.subquery()
    stmt = (
        select(anchors_t)
        .join(sub, (anchors_t.c.tenant == sub.c.tenant) & (anchors_t.c.seq == sub.c.seq))
        .order_by(anchors_t.c.tenant)
    )
    with engine.connect() as conn:
        return [
            Checkpoint(tenant=a.tenant, seq=a.seq, hash=a.hash, created_at=a.created_at) for a in conn.execute(stmt)
        ]


def heads(engine: Engine, tenant: str | None = None) -> list[Checkpoint]:
    """Each tenant's current head: a fresher checkpoint than the latest anchor (it covers every event so far)."""
    heads_t = table_of(AuditHead)
    stmt = select(heads_t).where(heads_t.c.seq > 0).order_by(heads_t.c.tenant)
    if tenant is not None:
        stmt = stmt.where(heads_t.c.tenant == tenant)
    with engine.connect() as conn:
        return [
            Checkpoint(tenant=h.tenant, seq=h.seq, hash=h.hash, created_at=h.updated_at) for h in conn.execute(stmt)
        ]
