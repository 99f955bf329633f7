"""engine verifications: which engine (and version) a verification ran on; alias gates per engine (issue 14)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:20:00.000000

Existing verifications are peft's (server default 'peft').
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0003'
down_revision: Union[str, None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('engine', sa.String(length=50), server_default='peft', nullable=False))
        batch_op.add_column(sa.Column('engine_version', sa.String(length=50), nullable=True))
    with op.batch_alter_table('alias_policies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('require_verified_engines', sa.JSON().with_variant(sa.JSON(), 'postgresql'),
                                      server_default='[]', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('alias_policies', schema=None) as batch_op:
        batch_op.drop_column('require_verified_engines')
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.drop_column('engine_version')
        batch_op.drop_column('engine')
