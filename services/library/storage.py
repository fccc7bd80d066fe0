"""Image files: named by random ids (never by user input), stored under the images
folder, and served only after an ownership check in the database."""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
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
    _write(f"{folder}/{image_id}.webp", encoded.thumbnail.result())
    image = Image(id=image_id, user_id=user_id, task_id=task_id, kind=kind, index=index,
                  filename=f"{folder}/{image_id}.png", thumbnail=f"{folder}/{image_id}.webp",
                  width=encoded.width, height=encoded.height, seed=seed, size_bytes=len(png),
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
