"""task results and data versions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 22:55:00.000000

task_results stores each data task's result under (tenant, task id, data version), so a retried or resumed
request reuses what was computed; data_versions holds each tenant's ledger version (a digest of its chart of
accounts and balances), refreshed by every ledger load.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('data_versions',
    sa.Column('tenant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tenant')
    )
    op.create_table('task_results',
    sa.Column('tenant', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('task_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('data_version', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('result', sa.Text(), nullable=False),
    sa.Column('computations', sa.Integer(), nullable=False),
    sa.Column('reuses', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('tenant', 'task_id', 'data_version')
    )


def downgrade() -> None:
    op.drop_table('task_results')
    op.drop_table('data_versions')
