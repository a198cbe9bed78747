"""model usage per call and daily budgets

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 19:45:00.000000

model_usage holds one row per model call, keyed by the call's place in Temporal's execution (workflow id, run
id, activity id, attempt, n-th call), so a replayed or re-delivered record never counts twice. budgets holds
the limits that override the settings' defaults for a tenant, every principal of it ('*') or one principal.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('model_usage',
    sa.Column('workflow_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('run_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('activity_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('call', sa.Integer(), nullable=False),
    sa.Column('tenant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('principal_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('prompt_tokens', sa.BigInteger(), nullable=False),
    sa.Column('completion_tokens', sa.BigInteger(), nullable=False),
    sa.Column('cost_usd', sa.Numeric(precision=18, scale=9, asdecimal=False), nullable=False),
    sa.Column('priced', sa.Boolean(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('workflow_id', 'run_id', 'activity_id', 'attempt', 'call')
    )
    with op.batch_alter_table('model_usage', schema=None) as batch_op:
        batch_op.create_index('ix_model_usage_tenant_day', ['tenant', 'day'], unique=False)
        batch_op.create_index('ix_model_usage_tenant_principal_day', ['tenant', 'principal_id', 'day'], unique=False)

    op.create_table('budgets',
    sa.Column('tenant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('principal_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('daily_tokens', sa.BigInteger(), nullable=True),
    sa.Column('daily_cost_usd', sa.Numeric(precision=18, scale=9, asdecimal=False), nullable=True),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'principal_id')
    )


def downgrade() -> None:
    op.drop_table('budgets')
    with op.batch_alter_table('model_usage', schema=None) as batch_op:
        batch_op.drop_index('ix_model_usage_tenant_principal_day')
        batch_op.drop_index('ix_model_usage_tenant_day')
    op.drop_table('model_usage')
