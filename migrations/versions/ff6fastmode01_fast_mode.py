"""fast mode: a model's setting and a task's choice (issue 28)

Revision ID: ff6fastmode01
Revises: fe5modeljobs01
Create Date: 2026-12-07 15:05:00.000000

Plain ADD COLUMN: models before this are "off", tasks before it ran without the cache.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'ff6fastmode01'
down_revision = 'fe5modeljobs01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('models', sa.Column('fast_mode', sa.String(length=10), nullable=False, server_default='off'))
    op.add_column('tasks', sa.Column('fast', sa.Boolean(), nullable=True))


def downgrade():
    op.drop_column('tasks', 'fast')
    op.drop_column('models', 'fast_mode')
