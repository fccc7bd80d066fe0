"""task hires and upscale; upscaler models (issue 24)

Revision ID: fc3upscale01
Revises: fb2inpaint01
Create Date: 2026-12-07 08:45:00.000000

Tasks made before this are one-pass generations (hires and upscale NULL); models rows made
before this are models or LoRAs (upscaler false).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fc3upscale01'
down_revision = 'fb2inpaint01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('tasks', sa.Column('hires', sa.JSON(), nullable=True))
    op.add_column('tasks', sa.Column('upscale', sa.JSON(), nullable=True))
    op.add_column('models', sa.Column('upscaler', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('models', sa.Column('scale', sa.Integer(), nullable=True))
    op.add_column('models', sa.Column('architecture', sa.String(length=40), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+), never a batch copy of tasks (see fb2inpaint01).
    op.drop_column('models', 'architecture')
    op.drop_column('models', 'scale')
    op.drop_column('models', 'upscaler')
    op.drop_column('tasks', 'upscale')
    op.drop_column('tasks', 'hires')
