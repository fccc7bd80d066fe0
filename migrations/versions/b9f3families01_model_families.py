"""model families and LoRAs: models.family/variant/native size/lora, tasks.loras

Revision ID: b9f3families01
Revises: a7e2initfit01
Create Date: 2026-12-02 12:00:00.000000

Rows made before this have no family (NULL): they are read as SD 1.x, which is all the
service could load until now; the next scan (or load) fills the family in.
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'b9f3families01'
down_revision = 'a7e2initfit01'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lora', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('family', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('variant', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('native_width', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('native_height', sa.Integer(), nullable=True))
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('loras', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('loras')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('native_height')
        batch_op.drop_column('native_width')
        batch_op.drop_column('variant')
        batch_op.drop_column('family')
        batch_op.drop_column('lora')
