"""moderation and audit: staff audit rows, prompt rules, blocked prompts, showcase
reports, and the image check's review state on images

Revision ID: e7c3moderation01
Revises: d6e2apimodel01
Create Date: 2026-12-03 09:00:00.000000
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


# The starter prompt rules: (kind, pattern, note). "word" rules match whole words or
# phrases, any case; the two "regex" rules match a word for a minor near a sexual word.
_MINOR = r"(?:child(?:ren)?|kids?|under-?age|pre-?teens?|toddlers?|infants?|school ?(?:girl|boy)s?)"
_SEXUAL = r"(?:nudes?|naked|nsfw|sex(?:y|ual)?|porn\w*|erotic\w*|lewd|topless|undress\w*)"
STARTER_RULES = [
    ('word', 'csam', 'Child sexual abuse material'),
    ('word', 'child porn', 'Sexual content involving minors'),
    ('word', 'lolicon', 'Sexualised depictions of minors'),
    ('word', 'loli', 'Sexualised depictions of minors'),
    ('word', 'shotacon', 'Sexualised depictions of minors'),
    ('regex', rf"\b{_MINOR}\b.{{0,40}}\b{_SEXUAL}\b", 'A minor near a sexual word: sexual content involving minors'),
    ('regex', rf"\b{_SEXUAL}\b.{{0,40}}\b{_MINOR}\b", 'A sexual word near a minor: sexual content involving minors'),
    ('word', 'bestiality', 'Sexual content involving animals'),
    ('word', 'zoophilia', 'Sexual content involving animals'),
    ('word', 'necrophilia', 'Extreme sexual content'),
]

# revision identifiers, used by Alembic.
revision = 'e7c3moderation01'
down_revision = 'd6e2apimodel01'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('actor_name', sa.String(length=40), nullable=False),
        sa.Column('action', sa.String(length=40), nullable=False),
        sa.Column('target_type', sa.String(length=20), nullable=False),
        sa.Column('target_id', sa.String(length=255), nullable=False),
        sa.Column('target_name', sa.String(length=255), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('details', sa.JSON(), nullable=True),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('audit_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_entries_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_actor_id'), ['actor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_entries_target_id'), ['target_id'], unique=False)

    op.create_table(
        'prompt_rules',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('pattern', sa.String(length=255), nullable=False),
        sa.Column('note', sa.String(length=255), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    # A short starter list of prompt rules (services/moderation/rules.py), editable on
    # Admin -> Moderation: sexual content involving minors, and a few extreme terms.
    prompt_rules = sa.table(
        'prompt_rules', sa.column('kind', sa.String), sa.column('pattern', sa.String),
        sa.column('note', sa.String), sa.column('enabled', sa.Boolean), sa.column('created_at', sa.DateTime))
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(prompt_rules, [
        {'kind': kind, 'pattern': pattern, 'note': note, 'enabled': True, 'created_at': now}
        for kind, pattern, note in STARTER_RULES])

    op.create_table(
        'blocked_prompts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('rule_id', sa.Integer(), nullable=True),
        sa.Column('rule', sa.String(length=255), nullable=False),
        sa.Column('prompt', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['rule_id'], ['prompt_rules.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('blocked_prompts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_blocked_prompts_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_blocked_prompts_user_id'), ['user_id'], unique=False)

    op.create_table(
        'reports',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('item_id', sa.String(length=40), nullable=False),
        sa.Column('reporter_id', sa.Integer(), nullable=True),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('resolved_by_id', sa.Integer(), nullable=True),
        sa.Column('resolved_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['reporter_id'], ['users.id'], ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['resolved_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_item_id'), ['item_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_reports_state'), ['state'], unique=False)

    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('review', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('safety_label', sa.String(length=80), nullable=True))
        batch_op.create_index(batch_op.f('ix_images_review'), ['review'], unique=False)


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would drop the images table, and with
    # foreign keys on that cascades to the showcase and everything else that points at it.
    op.drop_index('ix_images_review', table_name='images')
    op.drop_column('images', 'safety_label')
    op.drop_column('images', 'review')
    op.drop_table('reports')
    op.drop_table('blocked_prompts')
    op.drop_table('prompt_rules')
    op.drop_table('audit_entries')
