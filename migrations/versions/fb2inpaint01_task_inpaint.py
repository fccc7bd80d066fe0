"""task mask_image_id and inpaint: inpainting and outpainting (issue 23)

Revision ID: fb2inpaint01
Revises: fa1didemhash01
Create Date: 2026-12-07 08:10:00.000000

Tasks made before this have no mask and no inpaint settings (NULL): plain tasks.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fb2inpaint01'
down_revision = 'fa1didemhash01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('tasks', sa.Column('mask_image_id', sa.String(length=22), nullable=True))
    op.add_column('tasks', sa.Column('inpaint', sa.JSON(), nullable=True))


def downgrade():
    # Plain DROP COLUMN (SQLite 3.35+): a batch copy would drop the tasks table, and with
    # foreign keys on that cascades to what points at it.
    op.drop_column('tasks', 'inpaint')
    op.drop_column('tasks', 'mask_image_id')
