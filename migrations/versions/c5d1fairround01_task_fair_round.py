"""task fair_round: the fair queue's stored round, and the indexes of the fair order

Revision ID: c5d1fairround01
Revises: b9f3families01
Create Date: 2026-12-02 18:00:00.000000

Tasks made before this get round 0, except queued ones: each user's queued tasks get
their rank among that user's (0 for the oldest, 1 for the next, ...), which is the
round-robin order the queue had (round k holds each user's k-th task).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'c5d1fairround01'
down_revision = 'b9f3families01'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('fair_round', sa.Integer(), nullable=False, server_default=sa.text('0')))
        batch_op.create_index('ix_tasks_fair_order', ['state', 'fair_round', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_tasks_user_round', ['user_id', 'fair_round'], unique=False)
    op.execute(
        "UPDATE tasks SET fair_round = (SELECT count(*) FROM tasks AS earlier"
        " WHERE earlier.user_id = tasks.user_id AND earlier.state = 'queued'"
        " AND (earlier.created_at < tasks.created_at"
        " OR (earlier.created_at = tasks.created_at AND earlier.id < tasks.id)))"
        " WHERE state = 'queued'"
    )


def downgrade():
    # A plain DROP COLUMN (SQLite 3.35+), not a batch copy of the table: SQLite's copy
    # drops the old table, which with foreign keys on would cascade to every task's images.
    op.drop_index('ix_tasks_user_round', table_name='tasks')
    op.drop_index('ix_tasks_fair_order', table_name='tasks')
    op.drop_column('tasks', 'fair_round')
