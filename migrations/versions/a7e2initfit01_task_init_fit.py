"""task init_fit: how an init image of another shape is fitted (cover or contain)

Revision ID: a7e2initfit01
Revises: f4c9acctokens01
Create Date: 2026-12-02 12:00:00.000000

Tasks made before this have no value (NULL): the worker fits those as "cover".
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'a7e2initfit01'
down_revision = 'f4c9acctokens01'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('init_fit', sa.String(length=10), nullable=True))


def downgrade():
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('init_fit')
