"""users: pending (registered under approval, waiting for staff) and held_tokens
(starting tokens held until the email is confirmed)

Revision ID: f8a2registration01
Revises: e7c3moderation01
Create Date: 2026-12-04 10:00:00.000000

Existing accounts are neither pending nor owed tokens (both default to none).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'f8a2registration01'
down_revision = 'e7c3moderation01'
branch_labels = None
depends_on = None


def upgrade():
    # Plain ADD COLUMNs: a batch on SQLite would copy the users table (its defaults are SQL
    # expressions), and dropping the old one cascades to every row that points at a user.
    op.add_column('users', sa.Column('pending', sa.Boolean(), server_default=sa.text('false'), nullable=False))
    op.add_column('users', sa.Column('held_tokens', sa.Integer(), server_default=sa.text('0'), nullable=False))


def downgrade():
    # Plain DROP COLUMNs (SQLite 3.35+), not a batch copy of the users table: the copy
    # drops the old table, which with foreign keys on would cascade to everything.
    op.drop_column('users', 'held_tokens')
    op.drop_column('users', 'pending')
