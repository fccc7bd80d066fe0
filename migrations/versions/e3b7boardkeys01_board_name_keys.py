"""board names unique per user ignoring case, for all of Unicode: boards.name_key

Revision ID: e3b7boardkeys01
Revises: d8a1sessions01
Create Date: 2026-12-01 12:00:00.000000

The key is the name NFKC-normalized and case-folded (services/library/boards.py name_key),
filled here in Python for the boards that exist (SQLite's lower() folds only ASCII).
Boards whose names were already the same but for case ("Ábc" and "ábc") keep their
images; the later ones are renamed "Ábc (2)", "Ábc (3)", ...
"""
import unicodedata

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = 'e3b7boardkeys01'
down_revision = 'd8a1sessions01'
branch_labels = None
depends_on = None

NAME_MAX, KEY_MAX = 80, 320

boards = sa.table('boards', sa.column('id', sa.String), sa.column('user_id', sa.Integer),
                  sa.column('name', sa.String), sa.column('name_key', sa.String),
                  sa.column('created_at', sa.DateTime))


def name_key(name):
    # A copy of services/library/boards.py name_key as it was when this migration was written.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())[:KEY_MAX]


def fill_keys(connection):
    taken = set()
    rows = connection.execute(sa.select(boards.c.id, boards.c.user_id, boards.c.name)
                              .order_by(boards.c.user_id, boards.c.created_at, boards.c.id)).all()
    for board_id, user_id, name in rows:
        new_name, key, n = name, name_key(name), 2
        while (user_id, key) in taken:
            suffix = f" ({n})"
            new_name = name[:NAME_MAX - len(suffix)] + suffix
            key, n = name_key(new_name), n + 1
        taken.add((user_id, key))
        connection.execute(sa.update(boards).where(boards.c.id == board_id)
                           .values(name=new_name, name_key=key))


def rebuild_boards(connection, change):
    """Run a batch change of boards. On SQLite that copies the table and drops the old
    one, and with foreign keys on, dropping it would set every image's board_id to
    null (ON DELETE SET NULL): the images' boards are kept aside and put back."""
    sqlite = connection.dialect.name == 'sqlite'
    if sqlite:
        connection.exec_driver_sql('CREATE TEMPORARY TABLE board_of_image AS '
                                   'SELECT id, board_id FROM images WHERE board_id IS NOT NULL')
    with op.batch_alter_table('boards', schema=None) as batch_op:
        change(batch_op)
    if sqlite:
        connection.exec_driver_sql(
            'UPDATE images SET board_id = (SELECT board_id FROM board_of_image '
            'WHERE board_of_image.id = images.id) WHERE id IN (SELECT id FROM board_of_image)')
        connection.exec_driver_sql('DROP TABLE board_of_image')


def upgrade():
    connection = op.get_bind()
    with op.batch_alter_table('boards', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name_key', sa.String(length=320), nullable=True))
    fill_keys(connection)

    def keyed(batch_op):
        batch_op.alter_column('name_key', existing_type=sa.String(length=320), nullable=False)
        batch_op.drop_constraint('uq_boards_user_name', type_='unique')
        batch_op.create_unique_constraint('uq_boards_user_name_key', ['user_id', 'name_key'])

    rebuild_boards(connection, keyed)


def downgrade():
    def named(batch_op):
        batch_op.drop_constraint('uq_boards_user_name_key', type_='unique')
        batch_op.create_unique_constraint('uq_boards_user_name', ['user_id', 'name'])
        batch_op.drop_column('name_key')

    rebuild_boards(op.get_bind(), named)
