"""initial catalog

Revision ID: 0001
Revises: 
Create Date: 2026-11-28 08:16:11.959675
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


revision: str = '0001'
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('adapters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('namespace', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('latest_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adapters')),
    sa.UniqueConstraint('name', name=op.f('uq_adapters_name'))
    )
    with op.batch_alter_table('adapters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adapters_namespace'), ['namespace'], unique=False)

    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('namespace', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target', sa.String(length=500), nullable=False),
    sa.Column('details', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('base_models',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('revision', sa.String(length=200), nullable=True),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('architecture', sa.String(length=200), nullable=False),
    sa.Column('model_type', sa.String(length=100), nullable=True),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('layout_hash', sa.String(length=64), nullable=False),
    sa.Column('tokenizer_hash', sa.String(length=64), nullable=True),
    sa.Column('vocab_size', sa.Integer(), nullable=True),
    sa.Column('hidden_size', sa.Integer(), nullable=True),
    sa.Column('num_layers', sa.Integer(), nullable=True),
    sa.Column('dtype', sa.String(length=20), nullable=True),
    sa.Column('tie_word_embeddings', sa.Boolean(), nullable=False),
    sa.Column('param_count', sa.BigInteger(), nullable=False),
    sa.Column('total_size', sa.BigInteger(), nullable=False),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('weights_stored', sa.Boolean(), nullable=False),
    sa.Column('layout', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('config', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('files', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_base_models')),
    sa.UniqueConstraint('name', 'fingerprint', name=op.f('uq_base_models_name_fingerprint'))
    )
    with op.batch_alter_table('base_models', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_base_models_fingerprint'), ['fingerprint'], unique=False)
        batch_op.create_index(batch_op.f('ix_base_models_layout_hash'), ['layout_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_base_models_name'), ['name'], unique=False)

    op.create_table('blobs',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_blobs'))
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=100), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_events_kind'), ['kind'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=50), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('worker_id', sa.String(length=200), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('progress', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('errors', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('result', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=True),
    sa.Column('unique_key', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_claim', ['state', 'priority', 'run_after', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_jobs_kind'), ['kind'], unique=False)
        batch_op.create_index('ix_jobs_unique_active', ['unique_key'], unique=True, sqlite_where=sa.text("state IN ('queued', 'running')"), postgresql_where=sa.text("state IN ('queued', 'running')"))

    op.create_table('webhooks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('secret', sa.String(length=200), nullable=False),
    sa.Column('kinds', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('last_event_id', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhooks'))
    )
    op.create_table('workers',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('host', sa.String(length=200), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('device', sa.String(length=50), nullable=False),
    sa.Column('gpu_name', sa.String(length=200), nullable=True),
    sa.Column('gpu_memory', sa.BigInteger(), nullable=True),
    sa.Column('kinds', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('versions', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('current_job_id', sa.Integer(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workers'))
    )
    op.create_table('adapter_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('adapter_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('content_digest', sa.String(length=64), nullable=False),
    sa.Column('base_model_id', sa.Integer(), nullable=True),
    sa.Column('base_model_hint', sa.Text(), nullable=True),
    sa.Column('peft_type', sa.String(length=50), nullable=False),
    sa.Column('task_type', sa.String(length=50), nullable=True),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('alpha', sa.Float(), nullable=True),
    sa.Column('rank_pattern', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('alpha_pattern', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('target_modules', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('use_dora', sa.Boolean(), nullable=False),
    sa.Column('use_rslora', sa.Boolean(), nullable=False),
    sa.Column('modules_to_save', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('bias', sa.String(length=20), nullable=True),
    sa.Column('init_method', sa.String(length=50), nullable=True),
    sa.Column('adapter_dtype', sa.String(length=20), nullable=True),
    sa.Column('param_count', sa.BigInteger(), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('config', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('training', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=True),
    sa.Column('compat', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=True),
    sa.Column('compat_status', sa.String(length=20), nullable=True),
    sa.Column('deprecated', sa.Boolean(), nullable=False),
    sa.Column('deprecation_reason', sa.Text(), nullable=True),
    sa.Column('successor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['adapter_id'], ['adapters.id'], name=op.f('fk_adapter_versions_adapter_id_adapters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['base_model_id'], ['base_models.id'], name=op.f('fk_adapter_versions_base_model_id_base_models')),
    sa.ForeignKeyConstraint(['successor_id'], ['adapter_versions.id'], name=op.f('fk_adapter_versions_successor_id_adapter_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adapter_versions')),
    sa.UniqueConstraint('adapter_id', 'content_digest', name=op.f('uq_adapter_versions_adapter_id_content_digest')),
    sa.UniqueConstraint('adapter_id', 'version', name=op.f('uq_adapter_versions_adapter_id_version'))
    )
    with op.batch_alter_table('adapter_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adapter_versions_adapter_dtype'), ['adapter_dtype'], unique=False)
        batch_op.create_index('ix_adapter_versions_base_id', ['base_model_id', 'id'], unique=False, postgresql_include=['rank', 'deprecated'])
        batch_op.create_index('ix_adapter_versions_base_rank', ['base_model_id', 'rank'], unique=False)
        batch_op.create_index(batch_op.f('ix_adapter_versions_content_digest'), ['content_digest'], unique=False)
        batch_op.create_index(batch_op.f('ix_adapter_versions_deprecated'), ['deprecated'], unique=False)
        batch_op.create_index(batch_op.f('ix_adapter_versions_peft_type'), ['peft_type'], unique=False)
        batch_op.create_index(batch_op.f('ix_adapter_versions_rank'), ['rank'], unique=False)
        batch_op.create_index(batch_op.f('ix_adapter_versions_use_dora'), ['use_dora'], unique=False)

    op.create_table('alias_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('adapter_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=100), nullable=False),
    sa.Column('from_version', sa.Integer(), nullable=True),
    sa.Column('to_version', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('overridden', sa.Boolean(), nullable=False),
    sa.Column('violations', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['adapter_id'], ['adapters.id'], name=op.f('fk_alias_history_adapter_id_adapters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alias_history'))
    )
    with op.batch_alter_table('alias_history', schema=None) as batch_op:
        batch_op.create_index('ix_alias_history_adapter_alias', ['adapter_id', 'alias', 'id'], unique=False)

    op.create_table('alias_policies',
    sa.Column('adapter_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=100), nullable=False),
    sa.Column('require_verified', sa.Boolean(), nullable=False),
    sa.Column('require_metrics', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['adapter_id'], ['adapters.id'], name=op.f('fk_alias_policies_adapter_id_adapters'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('adapter_id', 'alias', name=op.f('pk_alias_policies'))
    )
    op.create_table('aliases',
    sa.Column('adapter_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=100), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['adapter_id'], ['adapters.id'], name=op.f('fk_aliases_adapter_id_adapters'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_aliases_version_id_adapter_versions')),
    sa.PrimaryKeyConstraint('adapter_id', 'alias', name=op.f('pk_aliases'))
    )
    with op.batch_alter_table('aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aliases_version_id'), ['version_id'], unique=False)

    op.create_table('eval_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('dataset', sa.String(length=200), nullable=True),
    sa.Column('split', sa.String(length=100), nullable=True),
    sa.Column('source', sa.String(length=50), nullable=False),
    sa.Column('details', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_eval_results_version_id_adapter_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_results'))
    )
    with op.batch_alter_table('eval_results', schema=None) as batch_op:
        batch_op.create_index('ix_eval_results_version_metric', ['version_id', 'metric'], unique=False)

    op.create_table('merged_artifacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('cache_key', sa.String(length=64), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('base_model_id', sa.Integer(), nullable=False),
    sa.Column('dtype', sa.String(length=20), nullable=False),
    sa.Column('engine', sa.String(length=50), nullable=False),
    sa.Column('engine_version', sa.String(length=50), nullable=False),
    sa.Column('device', sa.String(length=50), nullable=False),
    sa.Column('manifest_digest', sa.String(length=64), nullable=False),
    sa.Column('files', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('validation', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['base_model_id'], ['base_models.id'], name=op.f('fk_merged_artifacts_base_model_id_base_models')),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_merged_artifacts_version_id_adapter_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merged_artifacts')),
    sa.UniqueConstraint('cache_key', name=op.f('uq_merged_artifacts_cache_key'))
    )
    with op.batch_alter_table('merged_artifacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_merged_artifacts_version_id'), ['version_id'], unique=False)

    op.create_table('metric_values',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('base_model_id', sa.Integer(), nullable=True),
    sa.Column('rank', sa.Integer(), nullable=True),
    sa.Column('deprecated', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_metric_values_version_id_adapter_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'metric', name=op.f('pk_metric_values'))
    )
    with op.batch_alter_table('metric_values', schema=None) as batch_op:
        batch_op.create_index('ix_metric_values_search', ['metric', 'base_model_id', 'value', 'version_id'], unique=False, postgresql_include=['rank', 'deprecated'])

    op.create_table('tags',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_tags_version_id_adapter_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'key', name=op.f('pk_tags'))
    )
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.create_index('ix_tags_key_value', ['key', 'value'], unique=False)

    op.create_table('verifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('base_model_id', sa.Integer(), nullable=False),
    sa.Column('device_kind', sa.String(length=50), nullable=False),
    sa.Column('dtype', sa.String(length=20), nullable=False),
    sa.Column('versions', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=False),
    sa.Column('figures', sa.JSON().with_variant(sa.JSON(), 'postgresql'), nullable=False),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['base_model_id'], ['base_models.id'], name=op.f('fk_verifications_base_model_id_base_models')),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_verifications_version_id_adapter_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_verifications'))
    )
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.create_index('ix_verifications_version_base', ['version_id', 'base_model_id'], unique=False)

    op.create_table('version_files',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.ForeignKeyConstraint(['digest'], ['blobs.digest'], name=op.f('fk_version_files_digest_blobs')),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_version_files_version_id_adapter_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'path', name=op.f('pk_version_files'))
    )
    with op.batch_alter_table('version_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_version_files_digest'), ['digest'], unique=False)

    op.create_table('version_target_modules',
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('module', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_version_target_modules_version_id_adapter_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('version_id', 'module', name=op.f('pk_version_target_modules'))
    )
    with op.batch_alter_table('version_target_modules', schema=None) as batch_op:
        batch_op.create_index('ix_version_target_modules_module', ['module', 'version_id'], unique=False)

    op.create_table('publications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('merged_id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=20), nullable=False),
    sa.Column('uri', sa.Text(), nullable=False),
    sa.Column('revision', sa.String(length=200), nullable=True),
    sa.Column('manifest_digest', sa.String(length=64), nullable=False),
    sa.Column('forced', sa.Boolean(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['merged_id'], ['merged_artifacts.id'], name=op.f('fk_publications_merged_id_merged_artifacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['version_id'], ['adapter_versions.id'], name=op.f('fk_publications_version_id_adapter_versions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_publications'))
    )
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_publications_merged_id'), ['merged_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_publications_version_id'), ['version_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('publications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_publications_version_id'))
        batch_op.drop_index(batch_op.f('ix_publications_merged_id'))

    op.drop_table('publications')
    with op.batch_alter_table('version_target_modules', schema=None) as batch_op:
        batch_op.drop_index('ix_version_target_modules_module')

    op.drop_table('version_target_modules')
    with op.batch_alter_table('version_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_version_files_digest'))

    op.drop_table('version_files')
    with op.batch_alter_table('verifications', schema=None) as batch_op:
        batch_op.drop_index('ix_verifications_version_base')

    op.drop_table('verifications')
    with op.batch_alter_table('tags', schema=None) as batch_op:
        batch_op.drop_index('ix_tags_key_value')

    op.drop_table('tags')
    with op.batch_alter_table('metric_values', schema=None) as batch_op:
        batch_op.drop_index('ix_metric_values_search', postgresql_include=['rank', 'deprecated'])

    op.drop_table('metric_values')
    with op.batch_alter_table('merged_artifacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_merged_artifacts_version_id'))

    op.drop_table('merged_artifacts')
    with op.batch_alter_table('eval_results', schema=None) as batch_op:
        batch_op.drop_index('ix_eval_results_version_metric')

    op.drop_table('eval_results')
    with op.batch_alter_table('aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aliases_version_id'))

    op.drop_table('aliases')
    op.drop_table('alias_policies')
    with op.batch_alter_table('alias_history', schema=None) as batch_op:
        batch_op.drop_index('ix_alias_history_adapter_alias')

    op.drop_table('alias_history')
    with op.batch_alter_table('adapter_versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adapter_versions_use_dora'))
        batch_op.drop_index(batch_op.f('ix_adapter_versions_rank'))
        batch_op.drop_index(batch_op.f('ix_adapter_versions_peft_type'))
        batch_op.drop_index(batch_op.f('ix_adapter_versions_deprecated'))
        batch_op.drop_index(batch_op.f('ix_adapter_versions_content_digest'))
        batch_op.drop_index('ix_adapter_versions_base_rank')
        batch_op.drop_index('ix_adapter_versions_base_id', postgresql_include=['rank', 'deprecated'])
        batch_op.drop_index(batch_op.f('ix_adapter_versions_adapter_dtype'))

    op.drop_table('adapter_versions')
    op.drop_table('workers')
    op.drop_table('webhooks')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_unique_active', sqlite_where=sa.text("state IN ('queued', 'running')"), postgresql_where=sa.text("state IN ('queued', 'running')"))
        batch_op.drop_index(batch_op.f('ix_jobs_kind'))
        batch_op.drop_index('ix_jobs_claim')

    op.drop_table('jobs')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_kind'))

    op.drop_table('events')
    op.drop_table('blobs')
    with op.batch_alter_table('base_models', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_base_models_name'))
        batch_op.drop_index(batch_op.f('ix_base_models_layout_hash'))
        batch_op.drop_index(batch_op.f('ix_base_models_fingerprint'))

    op.drop_table('base_models')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')
    op.drop_table('api_tokens')
    with op.batch_alter_table('adapters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_adapters_namespace'))

    op.drop_table('adapters')
