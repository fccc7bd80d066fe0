"""Image files: named by random ids (never by user input), stored under the images
folder, and served only after an ownership check in the database."""
from __future__ import annotations

import errno
import logging
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import shortuuid
import sqlalchemy as sa
from flask import current_app
from PIL import Image as PILImage

from extensions import db
from models import Image, User
from services.core.errors import InsufficientStorage, NotFound
from services.library import imaging

log = logging.getLogger(__name__)

# The errors of a full disk (or a user's quota on it).
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


# Image.review: "held" by the image check (worker/safety.py) until staff release or delete
# it (services/moderation/review.py). A held image's files are staff's only.
HELD = "held"


def not_held():
    """The SQL condition of an image anyone may see (not held for review)."""
    return Image.review.is_distinct_from(HELD)


def root() -> Path:
    return Path(current_app.config["IMAGES_PATH"])


class StorageFull(InsufficientStorage):
    """The images folder's disk (or quota) is full: nothing was kept of the file."""


def storage_full(exc: OSError | None = None) -> StorageFull:
    where = f" ({exc.strerror})" if exc is not None and exc.strerror else ""
    return StorageFull("The server has no room left to store images" + where + "; nothing was "
                       "kept. Try again later, and tell staff if it keeps happening.",
                       headers={"Retry-After": "60"})


def _write(relative: str, data: bytes) -> None:
    """Write a file whole or not at all: a temporary file renamed into place, removed
    if the write fails (a full disk leaves nothing behind). A full disk raises
    StorageFull (507)."""
    path = root() / relative
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise storage_full(exc) from exc
        raise


def free_bytes() -> int | None:
    """Free space on the images folder's disk, for this process (None: it cannot say)."""
    folder = root()
    for candidate in (folder, *folder.parents):  # the folder may not exist yet
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def space_status(min_free_mb: float) -> str:
    """"ok", or why the images folder's disk is too full for a worker to take tasks
    (below MIN_FREE_MB of free space)."""
    free = free_bytes()
    if free is None or min_free_mb <= 0 or free >= min_free_mb * 1024 * 1024:
        return "ok"
    return (f"low: {free / (1024 * 1024):.1f} MB free under {root()}, below DAYDREAM_MIN_FREE_MB="
            f"{min_free_mb:g}")


# PNG and WebP encoding release the GIL: a picture's two files, and the pictures of one
# pipeline call, are encoded side by side instead of one after another.
_encoders = ThreadPoolExecutor(max_workers=max(2, min(8, os.cpu_count() or 2)), thread_name_prefix="encode")


@dataclass
class Encoded:
    """A picture's files being encoded (start_encoding), for save_image."""
    image_id: str
    width: int
    height: int
    png: Future
    thumbnail: Future


def start_encoding(picture: PILImage.Image, metadata: dict) -> Encoded:
    """Begin encoding the PNG (parameters embedded) and the WebP thumbnail in the
    background; save_image(encoded=...) waits for them."""
    image_id = shortuuid.uuid()
    return Encoded(image_id, picture.width, picture.height,
                   _encoders.submit(imaging.encode_png, picture, {**metadata, "image_id": image_id}),
                   _encoders.submit(imaging.encode_thumbnail, picture))


def save_image(*, user_id: int, picture: PILImage.Image | None = None, metadata: dict | None = None,
               kind: str = "result", task_id: str | None = None, index: int = 0, seed: int | None = None,
               board_id: str | None = None, encoded: Encoded | None = None) -> Image:
    """Write the PNG (parameters embedded) and its WebP thumbnail, from `picture` or
    from what start_encoding began; add the row (the caller commits)."""
    if encoded is None:
        encoded = start_encoding(picture, metadata or {})
    image_id = encoded.image_id
    folder = image_id[:2]
    png = encoded.png.result()
    _write(f"{folder}/{image_id}.png", png)
    try:
        _write(f"{folder}/{image_id}.webp", encoded.thumbnail.result())
    except BaseException:
        (root() / folder / f"{image_id}.png").unlink(missing_ok=True)  # no row names it
        raise
    image = Image(id=image_id, user_id=user_id, task_id=task_id, kind=kind, index=index,
                  filename=f"{folder}/{image_id}.png", thumbnail=f"{folder}/{image_id}.webp",
                  width=encoded.width, height=encoded.height, seed=seed, size_bytes=len(png),
                  board_id=board_id)
    db.session.add(image)
    return image


def path_of(image: Image, variant: str = "full") -> Path:
    return root() / (image.filename if variant == "full" else image.thumbnail)


def file_of(image: Image, variant: str = "full") -> Path:
    """The path of an image's file that is there to be served; a file that is gone
    (deleted by hand, lost with a disk) is a 404, not a 500."""
    path = path_of(image, variant)
    if not path.is_file():
        log.warning("image %s: its %s file %s is missing", image.id, variant, path)
        raise NotFound("This image's file is missing on the server.", code="file_missing")
    return path


def get_image(user: User, image_id: str, *, held_ok: bool = False) -> Image:
    """The user's own image; anything else (another user's, or none) is a 404. An image
    held for review is a 404 too (its owner sees a placeholder card), except to staff
    and where held_ok (its owner may delete it)."""
    image = db.session.scalar(sa.select(Image).where(Image.id == image_id, Image.user_id == user.id))
    if image is None or (image.review == HELD and not held_ok and not user.is_staff):
        raise NotFound("No such image.")
    return image


def delete_files(image: Image) -> None:
    """Remove an image's PNG and thumbnail (the caller deletes the row)."""
    for relative in (image.filename, image.thumbnail):
        (root() / relative).unlink(missing_ok=True)


def files_of(images) -> list[str]:
    """The files (relative paths) of images, read before their rows are deleted."""
    return [relative for image in images for relative in (image.filename, image.thumbnail)]


def remove_files(relatives: list[str]) -> None:
    """Remove files by relative path, after the rows that named them are gone."""
    base = root()
    for relative in relatives:
        (base / relative).unlink(missing_ok=True)
