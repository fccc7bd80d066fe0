"""Boards: a user's collections of images. An image is in at most one board; a board
shows a cover (chosen, or else its newest image) and how many images it holds.

Another user's board is a 404, like one that does not exist."""
from __future__ import annotations

import unicodedata
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Board, Image, User, iso, utcnow
from services.core.errors import Conflict, NotFound, ValidationError
from services.library import storage

NAME_MAX = 80
KEY_MAX = 320  # Board.name_key's length: normalizing can make a name longer
BOARDS_MAX = 500  # per user: plenty for people, a bound for scripts


def get_board(user: User, board_id: Any) -> Board:
    board = None
    if isinstance(board_id, str) and board_id:
        board = db.session.scalar(sa.select(Board).where(Board.id == board_id, Board.user_id == user.id))
    if board is None:
        raise NotFound("No such board.")
    return board


def target_board_id(user: User, value: Any) -> str | None:
    """A board id sent by a client to put images in: null (or "none") takes them out of
    their board; anything else must be one of the user's boards (404 otherwise)."""
    if value is None or value == "none":
        return None
    if not isinstance(value, str):
        raise ValidationError("board_id", "must be a board id, or null for no board")
    return get_board(user, value).id


def live_board_id(user_id: int, board_id: str | None) -> str | None:
    """The board new results of a task go into: the task's board, if it still exists
    and is its owner's (the worker calls this as it saves each image)."""
    if not board_id:
        return None
    return db.session.scalar(sa.select(Board.id).where(Board.id == board_id, Board.user_id == user_id))


def _clean_name(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("name", "is required: give the board a name")
    name = " ".join(value.replace("\x00", "").split())
    if not name:
        raise ValidationError("name", "is required: give the board a name")
    if len(name) > NAME_MAX:
        raise ValidationError("name", f"is {len(name)} characters long; at most {NAME_MAX} are allowed")
    return name


def name_key(name: str) -> str:
    """What two board names are compared by: NFKC-normalized and case-folded (all of
    Unicode, not only ASCII as SQLite's lower()), spaces collapsed. "Ábc", "ÁBC" and
    "ábc" have one key; so do "ﬁles" and "Files"."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    return " ".join(folded.split())


def _key_of(name: str) -> str:
    key = name_key(name)
    if len(key) > KEY_MAX:
        raise ValidationError("name", f"is too long once normalized ({len(key)} characters; "
                                      f"at most {KEY_MAX}); pick a shorter name")
    return key


def _name_taken(name: str) -> Conflict:
    return Conflict(f"You have a board named “{name}” already (names are compared ignoring case); "
                    "pick another name.", code="board_exists")


def _check_unique(user: User, name: str, key: str, except_id: str | None = None) -> None:
    where = [Board.user_id == user.id, Board.name_key == key]
    if except_id:
        where.append(Board.id != except_id)
    if db.session.scalar(sa.select(Board.id).where(*where)):
        raise _name_taken(name)


def _commit_name(user_id: int, name: str, key: str) -> None:
    """Commit; a board of the same name committed in between (a race the check above
    cannot see) is a 409 as well, not a 500."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if db.session.scalar(sa.select(Board.id).where(Board.user_id == user_id, Board.name_key == key)):
            raise _name_taken(name) from None
        raise


def create_board(user: User, data: dict) -> Board:
    unknown = set(data) - {"name"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not a field of a new board (name)")
    name = _clean_name(data.get("name"))
    key = _key_of(name)
    _check_unique(user, name, key)
    count = db.session.scalar(sa.select(sa.func.count()).select_from(Board).where(Board.user_id == user.id))
    if count >= BOARDS_MAX:
        raise Conflict(f"You have {BOARDS_MAX} boards, the most allowed; delete one first.",
                       code="too_many_boards")
    user_id = user.id
    board = Board(user_id=user_id, name=name, name_key=key)
    db.session.add(board)
    _commit_name(user_id, name, key)
    return board


def update_board(user: User, board_id: str, data: dict) -> Board:
    """Rename (`name`) and/or choose the cover (`cover_image_id`: one of the board's
    images, or null for the newest)."""
    board = get_board(user, board_id)
    unknown = set(data) - {"name", "cover_image_id"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not a board field (name, cover_image_id)")
    key = None
    if "name" in data:
        name = _clean_name(data["name"])
        key = _key_of(name)
        _check_unique(user, name, key, except_id=board.id)
        board.name, board.name_key = name, key
    if "cover_image_id" in data:
        cover = data["cover_image_id"]
        if cover is not None:
            if not isinstance(cover, str) or not db.session.scalar(sa.select(Image.id).where(
                    Image.id == cover, Image.user_id == user.id, Image.board_id == board.id)):
                raise ValidationError("cover_image_id", "must be an image in this board, or null")
        board.cover_image_id = cover
    board.updated_at = utcnow()
    if key is None:
        db.session.commit()
    else:
        _commit_name(user.id, board.name, key)
    return board


def delete_board(user: User, board_id: str, *, delete_images: bool = False) -> int:
    """Delete a board. Its images stay (in no board) unless delete_images; then they
    go too, files included. Returns how many images were deleted."""
    board = get_board(user, board_id)
    files: list[str] = []
    images = []
    if delete_images:
        images = list(db.session.scalars(sa.select(Image).where(
            Image.user_id == user.id, Image.board_id == board.id)))
        files = storage.files_of(images)
        for image in images:
            db.session.delete(image)
    else:
        db.session.execute(sa.update(Image).where(Image.board_id == board.id)
                           .values(board_id=None).execution_options(synchronize_session=False))
    db.session.delete(board)
    db.session.commit()
    storage.remove_files(files)  # after the commit: a row never points at a missing file
    return len(images)


def _counts_and_covers(user: User, boards: list[Board]) -> tuple[dict, dict]:
    ids = [b.id for b in boards]
    if not ids:
        return {}, {}
    counts = dict(db.session.execute(
        sa.select(Image.board_id, sa.func.count()).where(Image.user_id == user.id, Image.board_id.in_(ids))
        .group_by(Image.board_id)).all())
    # The chosen cover if it is still in the board, else the board's newest image.
    chosen = {b.cover_image_id for b in boards if b.cover_image_id}
    still_there = set(db.session.scalars(sa.select(Image.id).where(
        Image.id.in_(chosen), Image.user_id == user.id, Image.board_id.in_(ids)))) if chosen else set()
    covers = {b.id: b.cover_image_id for b in boards if b.cover_image_id in still_there}
    missing = [i for i in ids if i not in covers and counts.get(i)]
    if missing:
        newest = (sa.select(Image.board_id, Image.id, sa.func.row_number().over(
            partition_by=Image.board_id, order_by=(Image.created_at.desc(), Image.id.desc())).label("n"))
            .where(Image.user_id == user.id, Image.board_id.in_(missing)).subquery())
        for board_id, image_id in db.session.execute(
                sa.select(newest.c.board_id, newest.c.id).where(newest.c.n == 1)).all():
            covers[board_id] = image_id
    return counts, covers


def board_to_dict(board: Board, count: int, cover: str | None) -> dict:
    return {
        "id": board.id,
        "name": board.name,
        "image_count": count,
        "cover_image_id": cover,
        "cover_thumbnail_url": f"/api/v1/images/{cover}/thumbnail" if cover else None,
        "created_at": iso(board.created_at),
        "updated_at": iso(board.updated_at),
    }


def describe(user: User, board: Board) -> dict:
    counts, covers = _counts_and_covers(user, [board])
    return board_to_dict(board, counts.get(board.id, 0), covers.get(board.id))


def list_boards(user: User, *, offset: int = 0, limit: int = 200) -> tuple[list[dict], int]:
    """The user's boards by name, with their image counts and covers."""
    where = Board.user_id == user.id
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Board).where(where))
    boards = list(db.session.scalars(sa.select(Board).where(where)
                                     .order_by(Board.name_key, Board.id)
                                     .offset(offset).limit(limit)))
    counts, covers = _counts_and_covers(user, boards)
    return [board_to_dict(b, counts.get(b.id, 0), covers.get(b.id)) for b in boards], total


def view_counts(user: User) -> dict:
    """How many images "All images" and "No board" show."""
    total, loose = db.session.execute(sa.select(
        sa.func.count(), sa.func.count().filter(Image.board_id.is_(None))
    ).where(Image.user_id == user.id, Image.kind != "mask")).one()  # (masks: listed by kind only)
    return {"all": total, "none": loose or 0}
