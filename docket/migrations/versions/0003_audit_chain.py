"""audit hash chain: seq/prev_hash/hash/outcome on audit_events, audit_heads, audit_anchors, append-only guards

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 10:00:00.000000

Rows written before this revision are chained here, per tenant in id order (the order they were written), so
`docket audit verify` treats them like any other event. Their outcome is taken from request_results.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The default interval when this revision was written; anchors written later follow the setting.
ANCHOR_EVERY = 100

# On SQLite a later batch_alter_table on audit_events or audit_anchors recreates the table and drops these
# triggers with it: such a migration must create them again (see _guard_sqlite).
SQLITE_GUARDS = [
    ("audit_events_no_update", "UPDATE", "audit_events"),
    ("audit_events_no_delete", "DELETE", "audit_events"),
    ("audit_anchors_no_update", "UPDATE", "audit_anchors"),
    ("audit_anchors_no_delete", "DELETE", "audit_anchors"),
]


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False, server_default='')
        )
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column('prev_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default='')
        )
        batch_op.add_column(
            sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default='')
        )

    op.create_table(
        'audit_heads',
        sa.Column('tenant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('tenant'),
    )
    op.create_table(
        'audit_anchors',
        sa.Column('tenant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('tenant', 'seq'),
    )

    _chain_existing_rows()

    # The server defaults only carried existing rows through ADD COLUMN; new rows get every value from the writer.
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        for name, length in (('outcome', 32), ('prev_hash', 64), ('hash', 64)):
            batch_op.alter_column(
                name, existing_type=sqlmodel.sql.sqltypes.AutoString(length=length), server_default=None
            )
        batch_op.create_unique_constraint('uq_audit_tenant_seq', ['tenant', 'seq'])

    if op.get_bind().dialect.name == 'postgresql':
        _guard_postgresql()
    else:
        _guard_sqlite()


def _chain_existing_rows() -> None:
    # The kernel's hashing is imported, not copied: the canonical form is versioned (CHAIN_VERSION) and never
    # changes in place, and a copy that drifted would make every migrated row fail verification.
    from docket.audit import GENESIS, event_hash, normalize_detail

    bind = op.get_bind()
    events = sa.table(
        'audit_events',
        sa.column('id', sa.Integer()),
        sa.column('tenant', sa.String()),
        sa.column('workflow_id', sa.String()),
        sa.column('step', sa.Integer()),
        sa.column('stage', sa.String()),
        sa.column('actor', sa.String()),
        sa.column('decision', sa.String()),
        sa.column('detail', sa.JSON()),
        sa.column('policy_version', sa.String()),
        sa.column('prompt_sha256', sa.String()),
        sa.column('model', sa.String()),
        sa.column('created_at', sqlmodel.sql.sqltypes.UTCDateTime()),
        sa.column('outcome', sa.String()),
        sa.column('seq', sa.Integer()),
        sa.column('prev_hash', sa.String()),
        sa.column('hash', sa.String()),
    )
    results = sa.table('request_results', sa.column('workflow_id', sa.String()), sa.column('outcome', sa.String()))
    heads = sa.table(
        'audit_heads',
        sa.column('tenant', sa.String()),
        sa.column('seq', sa.Integer()),
        sa.column('hash', sa.String()),
        sa.column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    )
    anchors = sa.table(
        'audit_anchors',
        sa.column('tenant', sa.String()),
        sa.column('seq', sa.Integer()),
        sa.column('hash', sa.String()),
        sa.column('created_at', sqlmodel.sql.sqltypes.UTCDateTime()),
    )

    outcomes = {str(w): str(o) for w, o in bind.execute(sa.select(results.c.workflow_id, results.c.outcome))}
    now = datetime.now(UTC)
    state: dict[str, tuple[int, str]] = {}
    updates: list[dict[str, Any]] = []
    new_anchors: list[dict[str, Any]] = []
    for row in bind.execute(sa.select(events).order_by(events.c.id)).mappings():
        tenant = str(row['tenant'])
        seq, prev = state.get(tenant, (0, GENESIS))
        fields = dict(row)
        fields.update(
            seq=seq + 1,
            outcome=outcomes.get(str(row['workflow_id']), ''),
            detail=normalize_detail(row['detail'] or {}),
        )
        digest = event_hash(fields, prev)
        updates.append(
            {'_id': row['id'], 'seq': seq + 1, 'outcome': fields['outcome'], 'detail': fields['detail'],
             'prev_hash': prev, 'hash': digest}
        )
        state[tenant] = (seq + 1, digest)
        if (seq + 1) % ANCHOR_EVERY == 0:
            new_anchors.append({'tenant': tenant, 'seq': seq + 1, 'hash': digest, 'created_at': now})

    if updates:
        bind.execute(
            events.update()
            .where(events.c.id == sa.bindparam('_id'))
            .values(
                seq=sa.bindparam('seq'),
                outcome=sa.bindparam('outcome'),
                detail=sa.bindparam('detail'),
                prev_hash=sa.bindparam('prev_hash'),
                hash=sa.bindparam('hash'),
            ),
            updates,
        )
    if state:
        op.bulk_insert(
            heads, [{'tenant': t, 'seq': s, 'hash': h, 'updated_at': now} for t, (s, h) in state.items()]
        )
    if new_anchors:
        op.bulk_insert(anchors, new_anchors)


def _guard_postgresql() -> None:
    # Refuse UPDATE, DELETE and TRUNCATE of the audit trail outright. Whoever can drop a trigger can still
    # tamper; that is what the hash chain and off-box anchors are for.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION docket_audit_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'docket: % is append-only (% refused); see docs/audit.md', TG_TABLE_NAME, TG_OP;
        END;
        $$ LANGUAGE plpgsql
        """
    )
    for table in ('audit_events', 'audit_anchors'):
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION docket_audit_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION docket_audit_append_only()"
        )


def _guard_sqlite() -> None:
    for name, verb, table in SQLITE_GUARDS:
        op.execute(
            f"CREATE TRIGGER {name} BEFORE {verb} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'docket: {table} is append-only ({verb} refused); see docs/audit.md'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('audit_events', 'audit_anchors'):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS docket_audit_append_only()")
    else:
        for name, _verb, _table in SQLITE_GUARDS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    op.drop_table('audit_anchors')
    op.drop_table('audit_heads')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_audit_tenant_seq', type_='unique')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
        batch_op.drop_column('outcome')
