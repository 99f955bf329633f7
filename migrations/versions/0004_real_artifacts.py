"""real artifacts (issue 12): bases' Hub identity and card, min/max rank over rank_pattern,
lm-eval metric identity (task, metric, filter, n-shot, stderr, higher_is_better)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 13:00:00.000000

Existing versions get min_rank/max_rank from rank and rank_pattern; existing evals keep their
names (task and the rest stay NULL for them). Their version_target_modules rows are rewritten as
leaf module names (model.layers.0.self_attn.q_proj -> q_proj), with "all-linear" expanded against
the base's layout when the version has a base (a frozen copy of registry/adapters/targets.py's
rule). A regex target_modules keeps its saved-form row here: `adapter-registry version set-base
REF BASE` (its own base again) rewrites the rows of one version with the current rule.
"""
import re
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
    _covering_index(['rank', 'min_rank', 'max_rank', 'deprecated'])
    _backfill_target_modules()
    _backfill_alpha()


def _covering_index(include: list[str]) -> None:
    """"Newest N of a base" with a rank filter stays an index-only walk on PostgreSQL now that the
    filters read min_rank/max_rank (SQLite has no INCLUDE: the index is the same there)."""
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_index('ix_adapter_versions_base_id', table_name='adapter_versions')
    op.create_index('ix_adapter_versions_base_id', 'adapter_versions', ['base_model_id', 'id'], unique=False,
                    postgresql_include=include)


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


_HEADS = ('lm_head', 'embed_out')
_SEQ_CLS_HEADS = ('score', 'classifier')
_EMBEDDINGS = ('wte', 'wpe', 'shared')


def _linear_leaves(layout: Any, task_type: Any, exclude: Any = None) -> set[str]:
    """Leaf names of the modules peft's all-linear targets on a base with this layout: 2-D
    `.weight`s that are not an embedding nor the output layer, less the modules `exclude`
    (the config's exclude_modules) names (frozen copy, see the docstring)."""
    skip = _HEADS + (_SEQ_CLS_HEADS if str(task_type or '').upper() == 'SEQ_CLS' else ())
    out = set()
    for name, info in (layout or {}).items():
        shape = info[0] if isinstance(info, list) and info and isinstance(info[0], list) else info
        if not name.endswith('.weight') or not isinstance(shape, list) or len(shape) != 2:
            continue
        module = name[:-len('.weight')]
        leaf = module.rsplit('.', 1)[-1]
        if leaf not in skip and leaf not in _EMBEDDINGS and 'embed' not in leaf and not _excluded(module, exclude):
            out.add(leaf)
    return out


def _excluded(module: str, exclude: Any) -> bool:
    """peft's exclude_modules test, as registry/adapters/targets.py's _excluded applies it (frozen
    copy): a regex string matches the whole module name, a list entry a suffix of it."""
    if isinstance(exclude, str):
        return re.fullmatch(exclude, module) is not None
    return any(module == e or module.endswith(f".{e}") for e in (exclude or ()) if isinstance(e, str))


# where each PEFT type keeps its scaling alpha (a frozen copy of registry/adapters/peft_config.py's
# ALPHA_KEYS at this revision): before 0004 only lora_alpha was read, so LoHa/LoKr/... had none
_ALPHA_KEYS = {"LOHA": "alpha", "LOKR": "alpha", "DEFT": "alpha", "GRALORA": "alpha", "PSOFT": "psoft_alpha",
               "RANDLORA": "randlora_alpha", "SHADOW": "shadow_alpha"}


def _backfill_alpha() -> None:
    versions = sa.table('adapter_versions', sa.column('id', sa.Integer), sa.column('peft_type', sa.String),
                        sa.column('alpha', sa.Float), sa.column('config', JSON))
    conn = op.get_bind()
    rows = conn.execute(sa.select(versions.c.id, versions.c.peft_type, versions.c.config)
                        .where(versions.c.alpha.is_(None), versions.c.peft_type.in_(list(_ALPHA_KEYS)))).all()
    for vid, peft_type, config in rows:
        a = (config or {}).get(_ALPHA_KEYS[peft_type]) if isinstance(config, dict) else None
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            conn.execute(versions.update().where(versions.c.id == vid).values(alpha=float(a)))


def _backfill_target_modules() -> None:
    versions = sa.table('adapter_versions', sa.column('id', sa.Integer), sa.column('target_modules', JSON),
                        sa.column('config', JSON), sa.column('task_type', sa.String),
                        sa.column('base_model_id', sa.Integer))
    bases = sa.table('base_models', sa.column('id', sa.Integer), sa.column('layout', JSON))
    rows_t = sa.table('version_target_modules', sa.column('version_id', sa.Integer), sa.column('module', sa.String))
    conn = op.get_bind()
    layouts: dict[int, Any] = {}
    q = sa.select(versions.c.id, versions.c.target_modules, versions.c.config, versions.c.task_type,
                  versions.c.base_model_id)
    for vid, saved, conf, task_type, base_id in conn.execute(q).all():
        tm = (conf or {}).get('target_modules', saved) if isinstance(conf, dict) else saved
        if isinstance(tm, list):
            names = {str(t).rsplit('.', 1)[-1] for t in tm}
        elif isinstance(tm, str) and tm.lower() == 'all-linear' and base_id is not None:
            if base_id not in layouts:
                layouts[base_id] = conn.execute(sa.select(bases.c.layout).where(bases.c.id == base_id)).scalar()
            exclude = conf.get('exclude_modules') if isinstance(conf, dict) else None
            try:
                names = _linear_leaves(layouts[base_id], task_type, exclude)
            except re.error:  # an exclude_modules push would refuse: the saved-form row stays
                continue
        else:
            continue  # a regex, or all-linear with no base: the saved-form row stays
        if not names:
            continue
        conn.execute(rows_t.delete().where(rows_t.c.version_id == vid))
        conn.execute(rows_t.insert(), [{'version_id': vid, 'module': m} for m in sorted(names)])


def downgrade() -> None:
    _covering_index(['rank', 'deprecated'])
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
