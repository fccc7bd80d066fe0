"""a ControlNet Union's number of control modes, read by the scan

Revision ID: fg7unionmodes01
Revises: ff6fastmode01
Create Date: 2026-12-09 10:00:00.000000

Plain ADD COLUMN: a guide row before this has none (every mode let through) until the
next scan reads it.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fg7unionmodes01'
down_revision = 'ff6fastmode01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('models', sa.Column('control_modes', sa.Integer(), nullable=True))


def downgrade():
    op.drop_column('models', 'control_modes')
