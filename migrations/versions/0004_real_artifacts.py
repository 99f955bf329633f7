"""real artifacts (issue 12): bases' Hub identity and card, min/max rank over rank_pattern,
lm-eval metric identity (task, metric, filter, n-shot, stderr, higher_is_better)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:00:00.000000

Existing versions get min_rank/max_rank from rank and rank_pattern; existing evals keep their
names (task and the rest stay NULL for them).
"""
from typing import Any, Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0004'
down_revision: Union[str, None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(sa.JSON(), 'postgresql')


def upgrade() -> None:
    with op.batch_alter_table('base_models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('hub_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('card', JSON, server_default='{}', nullable=False))
        batch_op.create_index(batch_op.f('ix_base_models_hub_id'), ['hub_id'], unique=False)
    with op.batch_alter_table('adapter_versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('min_rank', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('max_rank', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_adapter_versions_min_rank'), ['min_rank'], unique=False)
        batch_op.create_index(batch_op.f('ix_adapter_versions_max_rank'), ['max_rank'], unique=False)
    with op.batch_alter_table('eval_results', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('base_metric', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('filter_name', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('n_shot', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stderr', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('higher_is_better', sa.Boolean(), nullable=True))
    _backfill_ranks()


def _backfill_ranks() -> None:
    versions = sa.table('adapter_versions', sa.column('id', sa.Integer), sa.column('rank', sa.Integer),
                        sa.column('rank_pattern', JSON), sa.column('min_rank', sa.Integer),
                        sa.column('max_rank', sa.Integer))
    conn = op.get_bind()
    rows = conn.execute(sa.select(versions.c.id, versions.c.rank, versions.c.rank_pattern)).all()
    for vid, rank, pattern in rows:
        ranks: list[Any] = [rank] if rank is not None else []
        if isinstance(pattern, dict):
            ranks += [r for r in pattern.values() if isinstance(r, int) and not isinstance(r, bool)]
        if ranks:
            conn.execute(versions.update().where(versions.c.id == vid)
                         .values(min_rank=min(ranks), max_rank=max(ranks)))


def downgrade() -> None:
    with op.batch_alter_table('eval_results', schema=None) as batch_op:
        for col in ('higher_is_better', 'stderr', 'n_shot', 'filter_name', 'base_metric', 'task'):
            batch_op.drop_column(col)
    with op.batch_alter_table('adapter_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adapter_versions_max_rank'))
        batch_op.drop_index(batch_op.f('ix_adapter_versions_min_rank'))
        batch_op.drop_column('max_rank')
        batch_op.drop_column('min_rank')
    with op.batch_alter_table('base_models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_base_models_hub_id'))
        batch_op.drop_column('card')
        batch_op.drop_column('hub_id')
