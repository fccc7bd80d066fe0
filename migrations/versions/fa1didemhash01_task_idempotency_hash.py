"""task idempotency_hash: the request an Idempotency-Key was first used with

Revision ID: fa1didemhash01
Revises: f9c4pairrules01
Create Date: 2026-12-07 06:00:00.000000

Tasks made before this have no value (NULL): a key of theirs reused with any request
returns the task, as before.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fa1didemhash01'
down_revision = 'f9c4pairrules01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('tasks', sa.Column('idempotency_hash', sa.String(length=64), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would drop the tasks table, and with
    # foreign keys on that cascades to what points at it.
    op.drop_column('tasks', 'idempotency_hash')
