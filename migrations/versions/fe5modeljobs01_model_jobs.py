"""model jobs (install, convert, merge) and the quantization and size of a model
(issue 26)

Revision ID: fe5modeljobs01
Revises: fd4guides01
Create Date: 2026-12-07 14:50:00.000000

A new table, and plain ADD COLUMN on models: rows made before this have no
quantization recorded (full precision) and no size (the next scan reads it).
"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'fe5modeljobs01'
down_revision = 'fd4guides01'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('models', sa.Column('quant', sa.String(length=20), nullable=True))
    op.add_column('models', sa.Column('size_bytes', sa.BigInteger(), nullable=True))
    op.create_table(
        'model_jobs',
        sa.Column('id', sa.String(length=22), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('state', sa.String(length=10), nullable=False),
        sa.Column('source', sa.String(length=2048), nullable=False),
        sa.Column('options', sa.JSON(), nullable=True),
        sa.Column('destination', sa.String(length=1024), nullable=True),
        sa.Column('done_bytes', sa.BigInteger(), server_default=sa.text('0'), nullable=False),
        sa.Column('total_bytes', sa.BigInteger(), nullable=True),
        sa.Column('sha256', sa.String(length=64), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('model_id', sa.String(length=80), nullable=True),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_model_jobs_state', 'model_jobs', ['state'], unique=False)
    op.create_index('ix_model_jobs_created_at', 'model_jobs', ['created_at'], unique=False)


def downgrade():
    op.drop_index('ix_model_jobs_created_at', table_name='model_jobs')
    op.drop_index('ix_model_jobs_state', table_name='model_jobs')
    op.drop_table('model_jobs')
    op.drop_column('models', 'size_bytes')
    op.drop_column('models', 'quant')
