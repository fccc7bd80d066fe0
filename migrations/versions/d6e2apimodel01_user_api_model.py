"""user api_model: the caller's own default model of the A1111-compatible API

Revision ID: d6e2apimodel01
Revises: c5d1fairround01
Create Date: 2026-12-02 19:15:00.000000
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'd6e2apimodel01'
down_revision = 'c5d1fairround01'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_model', sa.String(length=255), nullable=True))


def downgrade():
    # A plain DROP COLUMN (SQLite 3.35+), not a batch copy of the table: SQLite's copy
    # drops the old users table, which with foreign keys on would cascade to everything.
    op.drop_column('users', 'api_model')
