"""The personal gallery: list (newest first, filtered, searched), star, move, make
public, delete, in bulk too; and the studio sessions a user has had.

Paging while images keep arriving: the first page answers a `before` snapshot (the
creation time of the newest image it could see); later pages send it back, so images
made since never shift them. A client that removes images from its view (deleted,
moved away) lowers its next offset by as many."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models import Image, Task, User, iso, utcnow
from services.core.args import bool_arg
from services.core.errors import ValidationError
from services.library import boards, storage

# Masks (inpainting's, services/generation/masks.py) and the guides' pictures (ControlNet
# units' and reference images, services/generation/guides.py) are listed only when asked for.
KINDS = ("result", "upload", "mask", "control", "reference")
HIDDEN_KINDS = ("mask", "control", "reference")
BULK_ACTIONS = ("move", "delete", "star", "unstar", "public", "private")
BULK_MAX = 1000
QUERY_MAX = 200


def _parse_time(field: str, raw: str, *, end_of_day: bool = False) -> datetime:
    """A date (YYYY-MM-DD: the whole day, UTC) or an ISO 8601 time."""
    text = raw.strip()
    if "T" in text:
        text = text.replace(" ", "+")  # an unescaped "+01:00" arrives as " 01:00"
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(field, "must be a date (YYYY-MM-DD) or an ISO 8601 time")
    try:
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        if end_of_day and len(text) == 10:
            value += timedelta(days=1)  # "to" a date takes in that whole day
    except OverflowError:  # beyond the calendar's first or last day in UTC: as far as it goes
        value = datetime.max if value.year > 1 else datetime.min
    return value


def parse_filters(user: User, args: Mapping[str, str]) -> dict:
    """The list's filters from query arguments: board=ID|none, starred=true|false,
    q=TEXT (words of the prompt), kind=result|upload|mask|control|reference (without it:
    results and uploads), from/to (dates or times),
    before (the snapshot of the first page)."""
    filters: dict[str, Any] = {}
    board = (args.get("board") or "").strip()
    if board:
        filters["board"] = None if board == "none" else boards.get_board(user, board).id
    # Sent but empty is an error too (the OpenAPI document says boolean, and enum).
    if args.get("starred") is not None:
        filters["starred"] = bool_arg("starred", args["starred"])
    if args.get("public") is not None:
        filters["public"] = bool_arg("public", args["public"])
    q = " ".join((args.get("q") or "").split())
    if len(q) > QUERY_MAX:
        raise ValidationError("q", f"is {len(q)} characters long; at most {QUERY_MAX} are allowed")
    if q:
        filters["q"] = q
    kind = args.get("kind")
    if kind is not None:
        kind = kind.strip()
        if kind not in KINDS:
            raise ValidationError("kind", "must be one of " + ", ".join(KINDS))
        filters["kind"] = kind
    if (args.get("from") or "").strip():
        filters["from"] = _parse_time("from", args["from"])
    if (args.get("to") or "").strip():
        filters["to"] = _parse_time("to", args["to"], end_of_day=True)
    if "from" in filters and "to" in filters and filters["from"] >= filters["to"]:
        raise ValidationError("to", "must be after from")
    if (args.get("before") or "").strip():
        filters["before"] = _parse_time("before", args["before"])
    return filters


def _like(term: str) -> str:
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(user: User, filters: dict) -> list:
    where = [Image.user_id == user.id]
    if "board" in filters:
        where.append(Image.board_id.is_(None) if filters["board"] is None else Image.board_id == filters["board"])
    if "starred" in filters:
        where.append(Image.starred.is_(filters["starred"]))
    if "public" in filters:
        where.append(Image.public.is_(filters["public"]))
    if "kind" in filters:
        where.append(Image.kind == filters["kind"])
    else:
        where.append(Image.kind.not_in(HIDDEN_KINDS))
    if "from" in filters:
        where.append(Image.created_at >= filters["from"])
    if "to" in filters:
        where.append(Image.created_at < filters["to"])
    if "q" in filters:
        # Every word must appear in the prompt (case-insensitive).
        prompts = sa.select(Task.id).where(Task.user_id == user.id, *[
            Task.prompt.ilike(_like(word), escape="\\") for word in filters["q"].split()])
        where.append(Image.task_id.in_(prompts))
    return where


def list_images(user: User, filters: dict, *, offset: int, limit: int) -> dict:
    """One page of the user's images, newest first, and the snapshot to page on with."""
    before = filters.get("before")
    if before is None:
        before = db.session.scalar(sa.select(sa.func.max(Image.created_at)).where(
            Image.user_id == user.id)) or utcnow()
    where = _where(user, filters) + [Image.created_at <= before]
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(*where))
    rows = db.session.execute(
        sa.select(Image, Task.prompt).outerjoin(Task, Image.task_id == Task.id).where(*where)
        .options(so.selectinload(Image.task))  # (to_dict reads an upscale's source: one query, not one an image)
        .order_by(Image.created_at.desc(), Image.id.desc()).offset(offset).limit(limit)).all()
    return {"items": [image_to_dict(image, prompt) for image, prompt in rows], "total": total,
            "offset": offset, "limit": limit, "before": iso(before)}


def image_to_dict(image: Image, prompt: str | None = None) -> dict:
    """The API's image, with the prompt of its task for captions and alt text."""
    return {**image.to_dict(), "prompt": prompt if prompt is not None else
            (image.task.prompt if image.task else None)}


def _bool_field(data: dict, field: str) -> bool:
    value = data[field]
    if not isinstance(value, bool):
        raise ValidationError(field, "must be true or false")
    return value


def update_image(user: User, image_id: str, data: dict) -> Image:
    """PATCH: starred, board_id (null: no board), public."""
    image = storage.get_image(user, image_id)
    unknown = set(data) - {"starred", "board_id", "public"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not an image field you can change "
                                                  "(starred, board_id, public)")
    if "starred" in data:
        image.starred = _bool_field(data, "starred")
    if "public" in data:
        image.public = _bool_field(data, "public")
    if "board_id" in data:
        image.board_id = boards.target_board_id(user, data["board_id"])
    db.session.commit()
    return image


def delete_images(images: list[Image]) -> int:
    """Delete rows, commit, then remove their files (a row never names a missing file)."""
    files = storage.files_of(images)
    for image in images:
        db.session.delete(image)
    db.session.commit()
    storage.remove_files(files)
    return len(images)


def delete_image(user: User, image_id: str) -> None:
    delete_images([storage.get_image(user, image_id, held_ok=True)])


def _ids(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValidationError("ids", "must be a non-empty list of image ids")
    if len(value) > BULK_MAX:
        raise ValidationError("ids", f"has {len(value)} ids; at most {BULK_MAX} at a time")
    if not all(isinstance(i, str) for i in value):
        raise ValidationError("ids", "must be a list of image ids (strings)")
    return list(dict.fromkeys(value))


def bulk(user: User, data: dict) -> int:
    """One action on many images. Ids that are not the user's images (another user's,
    deleted, made up) are skipped; the answer counts the images acted on."""
    action = data.get("action")
    if action not in BULK_ACTIONS:
        raise ValidationError("action", f"must be one of {', '.join(BULK_ACTIONS)}")
    ids = _ids(data.get("ids"))
    if action == "move":
        if "board_id" not in data:
            raise ValidationError("board_id", "is required to move images: a board id, or null for no board")
        board_id = boards.target_board_id(user, data["board_id"])
    mine = sa.and_(Image.user_id == user.id, Image.id.in_(ids))
    if action == "public":  # an image held for review never goes public (the showcase)
        mine = sa.and_(mine, storage.not_held())
    if action == "delete":
        return delete_images(list(db.session.scalars(sa.select(Image).where(mine))))
    values = {"move": lambda: {"board_id": board_id}, "star": lambda: {"starred": True},
              "unstar": lambda: {"starred": False}, "public": lambda: {"public": True},
              "private": lambda: {"public": False}}[action]()
    done = db.session.execute(sa.update(Image).where(mine).values(**values)
                              .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return done


# --- studio sessions -----------------------------------------------------------------

def list_sessions(user: User, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """The user's studio sessions (one a sign-in), newest first, with how many tasks
    and images each has, when it began and ended, and its latest prompt. The current
    session heads the list even before it has a task."""
    total = db.session.scalar(sa.select(sa.func.count(sa.distinct(Task.session_id))).where(
        Task.user_id == user.id))
    empty_current = db.session.scalar(sa.select(Task.id).where(
        Task.user_id == user.id, Task.session_id == user.sessionid).limit(1)) is None
    items: list[dict] = []
    if empty_current:
        total += 1
        if offset == 0:
            items.append({"id": user.sessionid, "current": True, "task_count": 0, "image_count": 0,
                          "first_at": None, "last_at": None, "latest_prompt": None})
            limit -= 1
        else:
            offset -= 1
    last = sa.func.max(Task.created_at)
    rows = db.session.execute(
        sa.select(Task.session_id, sa.func.count(), sa.func.min(Task.created_at), last)
        .where(Task.user_id == user.id).group_by(Task.session_id)
        .order_by(last.desc(), Task.session_id).offset(offset).limit(limit)).all() if limit else []
    ids = [row[0] for row in rows]
    images = dict(db.session.execute(
        sa.select(Task.session_id, sa.func.count(Image.id)).join(Image, Image.task_id == Task.id)
        .where(Task.user_id == user.id, Task.session_id.in_(ids)).group_by(Task.session_id)).all()) if ids else {}
    for session_id, tasks, first, latest in rows:
        prompt = db.session.scalar(sa.select(Task.prompt).where(
            Task.user_id == user.id, Task.session_id == session_id)
            .order_by(Task.created_at.desc()).limit(1))
        items.append({"id": session_id, "current": session_id == user.sessionid, "task_count": tasks,
                      "image_count": images.get(session_id, 0), "first_at": iso(first),
                      "last_at": iso(latest), "latest_prompt": prompt})
    return items, total
