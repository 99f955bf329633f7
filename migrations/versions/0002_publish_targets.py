"""publish targets: where each namespace may publish to and register base models from (issue 10)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 10:15:47.078482
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('publish_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('namespace', sa.String(length=100), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('options', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publish_targets'))
    )
    with op.batch_alter_table('publish_targets', schema=None) as batch_op:
        batch_op.create_index('ix_publish_targets_namespace_kind', ['namespace', 'kind'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('publish_targets', schema=None) as batch_op:
        batch_op.drop_index('ix_publish_targets_namespace_kind')

    op.drop_table('publish_targets')
