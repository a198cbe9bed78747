"""Database tables (SQLModel), engine creation and migrations. SQLite by default, PostgreSQL via DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    Index,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, SQLModel

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(UTC)


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)


class Principal(SQLModel, table=True):
    __tablename__ = "principals"
    id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(index=True, max_length=64)
    name: str = Field(default="", max_length=200)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    region: str | None = Field(default=None, max_length=32)
    entities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    clearance: str = Field(default="public", max_length=32)


class Entity(SQLModel, table=True):
    __tablename__ = "entities"
    tenant: str = Field(primary_key=True, max_length=64)
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(default="", max_length=200)
    region: str = Field(default="", max_length=32)
    country: str = Field(default="", max_length=8)


class Account(SQLModel, table=True):
    __tablename__ = "accounts"
    tenant: str = Field(primary_key=True, max_length=64)
    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    parent: str | None = Field(default=None, max_length=64)
    kind: str = Field(default="", max_length=32)
    sensitivity: str = Field(default="standard", max_length=32)


class Period(SQLModel, table=True):
    __tablename__ = "periods"
    tenant: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=7)
    status: str = Field(max_length=16)


class LedgerBalance(SQLModel, table=True):
    __tablename__ = "ledger_balances"
    tenant: str = Field(primary_key=True, max_length=64)
    entity: str = Field(primary_key=True, max_length=64)
    account: str = Field(primary_key=True, max_length=64)
    period: str = Field(primary_key=True, max_length=7)
    amount: int = Field(sa_column=Column(BigInteger, nullable=False))


class Document(SQLModel, table=True):
    __tablename__ = "documents"
    tenant: str = Field(primary_key=True, max_length=64)
    doc_id: str = Field(primary_key=True, max_length=128)
    title: str = Field(default="", max_length=500)
    classification: str = Field(default="internal", max_length=32)
    entities: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    accounts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    body: str
    sha256: str = Field(max_length=64)
    version: int = 1
    indexed_sha256: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class DocumentUpload(SQLModel, table=True):
    """A document received for ingestion, waiting for IngestWorkflow to authorize and store it.

    Workflow histories carry only upload ids, never document text (documents can be restricted). The row stays
    after it is stored (status "stored") so a retried store step returns the same answer.
    """

    __tablename__ = "document_uploads"
    id: str = Field(primary_key=True, max_length=64)
    tenant: str = Field(index=True, max_length=64)
    principal_id: str = Field(max_length=64)
    filename: str = Field(max_length=300)
    content: str
    sha256: str = Field(max_length=64)
    status: str = Field(default="staged", max_length=16)
    doc_id: str = Field(default="", max_length=128)
    created_at: datetime = Field(default_factory=utcnow)


class RequestRecord(SQLModel, table=True):
    __tablename__ = "request_results"
    workflow_id: str = Field(primary_key=True, max_length=200)
    tenant: str = Field(index=True, max_length=64)
    principal_id: str = Field(index=True, max_length=64)
    question: str
    outcome: str = Field(max_length=32)
    result: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class AuditEventRow(SQLModel, table=True):
    """One event of a tenant's hash chain (docket/audit.py); append-only, guarded by triggers (migration 0003)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        UniqueConstraint("workflow_id", "step", name="uq_audit_workflow_step"),
        UniqueConstraint("tenant", "seq", name="uq_audit_tenant_seq"),
    )
    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(index=True, max_length=200)
    step: int
    stage: str = Field(max_length=32)
    tenant: str = Field(max_length=64)
    actor: str = Field(max_length=64)
    decision: str = Field(max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    policy_version: str = Field(default="", max_length=64)
    prompt_sha256: str = Field(default="", max_length=64)
    model: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    # The request's final outcome, so each event says how the request it belongs to ended.
    outcome: str = Field(default="", max_length=32)
    # Position in the tenant's chain (1, 2, …) and the links; written only by docket.audit.append.
    seq: int = 0
    prev_hash: str = Field(default="", max_length=64)
    hash: str = Field(default="", max_length=64)


class AuditHead(SQLModel, table=True):
    """The end of a tenant's audit chain: writers lock this row, so appends are serialised per tenant."""

    __tablename__ = "audit_heads"
    tenant: str = Field(primary_key=True, max_length=64)
    seq: int = 0
    hash: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class AuditAnchor(SQLModel, table=True):
    """Every Nth chain hash of a tenant, kept apart from the events; operators copy the latest one off-box."""

    __tablename__ = "audit_anchors"
    tenant: str = Field(primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)
    hash: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class PolicyVersion(SQLModel, table=True):
    """A tenant's Cedar policy set as written: versions are immutable, numbered 1, 2, … per tenant."""

    __tablename__ = "policy_versions"
    __table_args__ = (UniqueConstraint("tenant", "version", name="uq_policy_tenant_version"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(index=True, max_length=64)
    version: int
    sha256: str = Field(max_length=64)
    source: str
    note: str = Field(default="", max_length=500)
    created_by: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)


class PolicyActivation(SQLModel, table=True):
    """Which policy version is in force for a tenant; the history of activations stays in policy_activations."""

    __tablename__ = "policy_activations"
    id: int | None = Field(default=None, primary_key=True)
    tenant: str = Field(index=True, max_length=64)
    version: int
    activated_by: str = Field(default="", max_length=64)
    activated_at: datetime = Field(default_factory=utcnow)


class UsageRecord(SQLModel, table=True):
    __tablename__ = "usage_records"
    workflow_id: str = Field(primary_key=True, max_length=200)
    tenant: str = Field(index=True, max_length=64)
    principal_id: str = Field(max_length=64)
    model: str = Field(default="", max_length=200)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)


# Floats in Python, exact decimals in PostgreSQL; asdecimal=False also spares SQLite's Decimal warning.
USD = Numeric(18, 9, asdecimal=False)


class ModelUsage(SQLModel, table=True):
    """One model call: tokens and cost, counted against the day's budgets (docket/usage.py).

    The key is the call's place in Temporal's execution: a replayed or re-delivered record of the same call
    writes nothing, while a new attempt, which really called the model again, is a new row.
    """

    __tablename__ = "model_usage"
    __table_args__ = (
        Index("ix_model_usage_tenant_day", "tenant", "day"),
        Index("ix_model_usage_tenant_principal_day", "tenant", "principal_id", "day"),
    )
    workflow_id: str = Field(primary_key=True, max_length=200)
    # A failed request may run again under its workflow id; its activities then start again at attempt 1.
    run_id: str = Field(default="", primary_key=True, max_length=64)
    activity_id: str = Field(primary_key=True, max_length=200)
    attempt: int = Field(primary_key=True)
    # The n-th call within the attempt (1, 2, …): repairs call the model again.
    call: int = Field(primary_key=True)
    tenant: str = Field(max_length=64)
    principal_id: str = Field(max_length=64)
    provider: str = Field(default="", max_length=64)
    model: str = Field(default="", max_length=200)
    prompt_tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    completion_tokens: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    cost_usd: float = Field(default=0.0, sa_column=Column(USD, nullable=False))
    # False when the model had no price in DOCKET_MODEL_PRICES at the time: its cost is counted as 0.
    priced: bool = True
    # The UTC day the call counts against.
    day: date
    recorded_at: datetime = Field(default_factory=utcnow)


class Budget(SQLModel, table=True):
    """A daily model budget that overrides the settings' default for one scope of a tenant.

    principal_id '' is the whole tenant, '*' every principal of the tenant without a row of their own, anything
    else one principal. A NULL limit falls back to the next scope's value (then the settings); 0 is no limit.
    """

    __tablename__ = "budgets"
    tenant: str = Field(primary_key=True, max_length=64)
    principal_id: str = Field(default="", primary_key=True, max_length=64)
    daily_tokens: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    daily_cost_usd: float | None = Field(default=None, sa_column=Column(USD, nullable=True))
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class DataVersion(SQLModel, table=True):
    """A tenant's ledger version: a digest of its chart of accounts and balances (docket/dataversion.py).

    Loading the same data again yields the same version, so stored task results stay valid; any change to a
    balance or to the chart yields a new one, and every task is computed afresh under it.
    """

    __tablename__ = "data_versions"
    tenant: str = Field(primary_key=True, max_length=64)
    version: str = Field(max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)


class TaskResultRow(SQLModel, table=True):
    """A data task's result, stored under (tenant, task id, data version) so retried and resumed runs reuse it.

    `computations` counts how often the task was really computed under this key (1 unless two runs raced);
    `reuses` how often a stored result was served instead. `data_version` holds the ledger version and the task
    code's version ('<ledger>.c<code>'): results of older task code are computed afresh.
    """

    __tablename__ = "task_results"
    tenant: str = Field(primary_key=True, max_length=64)
    task_id: str = Field(primary_key=True, max_length=64)
    data_version: str = Field(primary_key=True, max_length=64)
    kind: str = Field(default="", max_length=32)
    result: str = Field(sa_column=Column(Text, nullable=False))
    computations: int = 1
    reuses: int = 0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and a busy timeout so the API, worker and CLI can share the file."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config

    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def table_of(model: type[SQLModel]) -> Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def upsert(engine_or_conn: Any, model: type[SQLModel], rows: Sequence[dict[str, Any]]) -> int:
    """Insert rows, updating non-key columns of rows that exist: loading the same data twice changes nothing."""
    if not rows:
        return 0
    table = table_of(model)
    keys = [c.name for c in table.primary_key.columns]
    dialect = engine_or_conn.dialect.name
    insert_fn = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_fn(table)
    update_cols = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update_cols) if update_cols else stmt
    total = 0
    with _begin(engine_or_conn) as conn:
        for batch in _chunks(rows, 1000):
            conn.execute(stmt, list(batch))
            total += len(batch)
    return total


def insert_ignore(conn: Any, model: type[SQLModel], rows: Sequence[dict[str, Any]], keys: list[str]) -> int:
    """Insert rows whose unique key is not there yet; return how many were new."""
    if not rows:
        return 0
    table = table_of(model)
    insert_fn = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    written = 0
    for row in rows:
        # RETURNING counts what was really inserted; rowcount is not reliable across drivers (psycopg says -1).
        stmt = insert_fn(table).values(**row).on_conflict_do_nothing(index_elements=keys)
        written += len(conn.execute(stmt.returning(*table.primary_key.columns)).all())
    return written


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


class _begin:
    """Use an engine's transaction, or run inside a connection's current one."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self._ctx: Any = None

    def __enter__(self) -> Any:
        if isinstance(self.target, Engine):
            self._ctx = self.target.begin()
            return self._ctx.__enter__()
        return self.target

    def __exit__(self, *exc: object) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(*exc)


def _chunks(rows: Sequence[dict[str, Any]], size: int) -> Iterable[Sequence[dict[str, Any]]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]
