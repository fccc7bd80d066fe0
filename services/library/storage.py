"""Image files: named by random ids (never by user input), stored under the images
folder, and served only after an ownership check in the database."""
from __future__ import annotations

import os
from pathlib import Path

import shortuuid
import sqlalchemy as sa
from flask import current_app
from PIL import Image as PILImage

from extensions import db
from models import Image, User
from services.core.errors import NotFound
from services.library import imaging


# Image.review: "held" by the image check (worker/safety.py) until staff release or delete
# it (services/moderation/review.py). A held image's files are staff's only.
HELD = "held"


def not_held():
    """The SQL condition of an image anyone may see (not held for review)."""
    return Image.review.is_distinct_from(HELD)


def root() -> Path:
    return Path(current_app.config["IMAGES_PATH"])


def _write(relative: str, data: bytes) -> None:
    path = root() / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_image(*, user_id: int, picture: PILImage.Image, metadata: dict, kind: str = "result",
               task_id: str | None = None, index: int = 0, seed: int | None = None,
               board_id: str | None = None) -> Image:
    """Write the PNG (parameters embedded) and its WebP thumbnail; add the row (the
    caller commits)."""
    image_id = shortuuid.uuid()
    folder = image_id[:2]
    png = imaging.encode_png(picture, {**metadata, "image_id": image_id})
    _write(f"{folder}/{image_id}.png", png)
    _write(f"{folder}/{image_id}.webp", imaging.encode_thumbnail(picture))
    image = Image(id=image_id, user_id=user_id, task_id=task_id, kind=kind, index=index,
                  filename=f"{folder}/{image_id}.png", thumbnail=f"{folder}/{image_id}.webp",
                  width=picture.width, height=picture.height, seed=seed, size_bytes=len(png),
                  board_id=board_id)
    db.session.add(image)
    return image


def path_of(image: Image, variant: str = "full") -> Path:
    return root() / (image.filename if variant == "full" else image.thumbnail)


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
