"""guides (ControlNet, references, edit: issue 25); classes, single sign-on, caps,
model access and moderation presets (issue 27)

Revision ID: fd4guides01
Revises: fc3upscale01
Create Date: 2026-12-07 11:20:00.000000

Plain ADD COLUMN on the existing tables (no batch copy of tasks or images: the new
columns there carry no foreign key); new tables for settings and classes. Rows made
before this: no guides, no class, every tier may use every model, rules in "standard".
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fd4guides01'
down_revision = 'fc3upscale01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('tasks', sa.Column('control', sa.JSON(), nullable=True))
    op.add_column('tasks', sa.Column('reference_images', sa.JSON(), nullable=True))
    op.add_column('tasks', sa.Column('edit', sa.JSON(), nullable=True))
    op.add_column('tasks', sa.Column('class_id', sa.String(length=22), nullable=True))
    op.create_index('ix_tasks_class_id', 'tasks', ['class_id'], unique=False)
    op.add_column('models', sa.Column('adapter', sa.String(length=20), nullable=True))
    op.add_column('models', sa.Column('tiers', sa.JSON(), nullable=True))
    op.add_column('users', sa.Column('sso_issuer', sa.String(length=255), nullable=True))
    op.add_column('users', sa.Column('sso_subject', sa.String(length=255), nullable=True))
    op.create_index('uq_users_sso', 'users', ['sso_issuer', 'sso_subject'], unique=True)
    op.add_column('images', sa.Column('class_id', sa.String(length=22), nullable=True))
    op.add_column('images', sa.Column('hidden_by_id', sa.Integer(), nullable=True))
    op.create_index('ix_images_class_id', 'images', ['class_id'], unique=False)
    op.add_column('ledger', sa.Column('class_id', sa.String(length=22), nullable=True))
    op.create_index('ix_ledger_class_id', 'ledger', ['class_id'], unique=False)
    op.add_column('prompt_rules', sa.Column('preset', sa.String(length=10), nullable=False,
                                            server_default='standard'))
    op.create_index('ix_prompt_rules_preset', 'prompt_rules', ['preset'], unique=False)
    op.create_table(
        'settings',
        sa.Column('key', sa.String(length=60), nullable=False),
        sa.Column('value', sa.JSON(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_table(
        'classes',
        sa.Column('id', sa.String(length=22), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('sso_group', sa.String(length=255), nullable=True),
        sa.Column('budget_mode', sa.String(length=10), nullable=False, server_default='none'),
        sa.Column('budget_tokens', sa.Integer(), nullable=False, server_default=sa.text('0')),
        sa.Column('budget_period', sa.String(length=10), nullable=False, server_default='week'),
        sa.Column('budget_at', sa.DateTime(), nullable=True),
        sa.Column('pool_tokens', sa.Integer(), nullable=False, server_default=sa.text('0')),
        sa.Column('images_per_hour', sa.Integer(), nullable=True),
        sa.Column('images_per_day', sa.Integer(), nullable=True),
        sa.Column('allowed_models', sa.JSON(), nullable=True),
        sa.Column('allowed_loras', sa.JSON(), nullable=True),
        sa.Column('moderation_preset', sa.String(length=10), nullable=True),
        sa.Column('gallery', sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.CheckConstraint('pool_tokens >= 0', name='pool_tokens_not_negative'),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('sso_group'),
    )
    op.create_table(
        'class_members',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('class_id', sa.String(length=22), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=10), nullable=False),
        sa.Column('via', sa.String(length=10), nullable=False),
        sa.Column('joined_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['class_id'], ['classes.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('class_id', 'user_id', name='uq_class_members'),
    )
    op.create_index('ix_class_members_class_id', 'class_members', ['class_id'], unique=False)
    op.create_index('ix_class_members_user_id', 'class_members', ['user_id'], unique=False)
    op.create_table(
        'class_join_codes',
        sa.Column('id', sa.String(length=22), nullable=False),
        sa.Column('class_id', sa.String(length=22), nullable=False),
        sa.Column('code', sa.String(length=40), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('max_uses', sa.Integer(), nullable=True),
        sa.Column('uses', sa.Integer(), nullable=False, server_default=sa.text('0')),
        sa.ForeignKeyConstraint(['class_id'], ['classes.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code'),
    )
    op.create_index('ix_class_join_codes_class_id', 'class_join_codes', ['class_id'], unique=False)


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+), never a batch copy of tasks (see fb2inpaint01).
    op.drop_index('ix_class_join_codes_class_id', table_name='class_join_codes')
    op.drop_table('class_join_codes')
    op.drop_index('ix_class_members_user_id', table_name='class_members')
    op.drop_index('ix_class_members_class_id', table_name='class_members')
    op.drop_table('class_members')
    op.drop_table('classes')
    op.drop_table('settings')
    op.drop_index('ix_prompt_rules_preset', table_name='prompt_rules')
    op.drop_column('prompt_rules', 'preset')
    op.drop_index('ix_ledger_class_id', table_name='ledger')
    op.drop_column('ledger', 'class_id')
    op.drop_index('ix_images_class_id', table_name='images')
    op.drop_column('images', 'hidden_by_id')
    op.drop_column('images', 'class_id')
    op.drop_index('uq_users_sso', table_name='users')
    op.drop_column('users', 'sso_subject')
    op.drop_column('users', 'sso_issuer')
    op.drop_column('models', 'tiers')
    op.drop_column('models', 'adapter')
    op.drop_index('ix_tasks_class_id', table_name='tasks')
    op.drop_column('tasks', 'class_id')
    op.drop_column('tasks', 'edit')
    op.drop_column('tasks', 'reference_images')
    op.drop_column('tasks', 'control')
