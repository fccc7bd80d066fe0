"""Masks for inpainting (issue 23): untrusted pictures read the way each API defines
them, then stored as the user's own image of kind "mask".

A stored mask is an RGB PNG at the size of the picture it belongs to (the task's
init image), white = repaint, black = keep, nothing in between. It is the mask as the
client meant it: `mask_invert` is not applied here (the worker applies it), so Reuse
brings back what was painted.

The readings:
- "native" (POST /api/v1/tasks) and "a1111" (/sdapi/v1/img2img): if the picture has an
  alpha channel with any pixel below 255, the alpha is the mask (opaque = repaint, as
  A1111 reads it); otherwise its luminance (white = repaint).
- "openai" (/v1/images/edits): the fully transparent pixels (alpha 0) are the area to
  edit, the rest is kept; a mask without transparency is refused.
Each is binarized at 128. Decoding goes through the upload decoder (uploads.decoded):
the same byte, pixel and memory limits, bomb checks and decoder slots."""
from __future__ import annotations

import base64
import binascii
import re

import sqlalchemy as sa
from PIL import Image as PILImage

from extensions import db
from models import Image, User
from services.core.errors import ValidationError
from services.generation import uploads
from services.library import storage

READINGS = ("native", "a1111", "openai")
THRESHOLD = 128  # a mask value >= this is "repaint"
DATA_URL = re.compile(r"data:image/[a-z0-9.+-]+;base64,(.*)", re.IGNORECASE | re.DOTALL)
# Image ids are shortuuids (22 characters); anything longer is neither an id nor a data URL.
MAX_ID_LENGTH = 40


def _binary(gray: PILImage.Image) -> PILImage.Image:
    """0/255 from an 8-bit grayscale picture, at THRESHOLD."""
    return gray.point(lambda v: 255 if v >= THRESHOLD else 0)


def reading_of(picture: PILImage.Image, reading: str, field: str = "mask") -> PILImage.Image:
    """A decoded picture (RGB, or RGBA with transparency) read as a mask: mode "L", 0/255."""
    if reading not in READINGS:
        raise ValueError(f"unknown mask reading {reading!r}")
    alpha = picture.getchannel("A") if picture.mode == "RGBA" else None
    if reading == "openai":
        if alpha is None:
            raise ValidationError(field, "must be a PNG with transparency: its fully transparent pixels "
                                         "are the area to edit")
        return alpha.point(lambda v: 255 if v == 0 else 0)
    if alpha is not None and alpha.getextrema()[0] < 255:
        return _binary(alpha)
    return _binary(picture.convert("L"))


def read_mask(data: bytes, *, reading: str, field: str = "mask") -> PILImage.Image:
    """An uploaded mask's bytes read as `reading` says: mode "L", 0 (keep) / 255 (repaint).
    A 4xx naming `field` when it is not a picture, too large, a bomb, or (openai) has no
    transparency."""
    uploads.check_bytes(data, field)
    with uploads.decoded(data, field=field, keep_alpha=True) as (picture, _format, _size):
        mask = reading_of(picture, reading, field)
        del picture
    return mask


def scaled(mask: PILImage.Image, size: tuple[int, int]) -> PILImage.Image:
    """A 0/255 mask at `size`: scaled bilinearly, then thresholded again (so an edge is
    where the smooth scaling puts it, and no grey is left)."""
    if mask.size == tuple(size):
        return mask
    return _binary(mask.convert("L").resize(tuple(size), PILImage.Resampling.BILINEAR))


def selects_anything(mask_image, invert: bool = False) -> bool:
    """Whether a mask (a PIL picture, or a stored mask Image) selects any pixel to repaint,
    after inverting it if asked."""
    if isinstance(mask_image, Image):
        with PILImage.open(storage.file_of(mask_image)) as stored:
            picture = stored.convert("L")
    else:
        picture = mask_image.convert("L")
    low, high = picture.getextrema()
    return low < THRESHOLD if invert else high >= THRESHOLD


def _save(user: User, mask: PILImage.Image, picture: Image, source: str) -> Image:
    """Store a 0/255 mask at the picture's size as the user's image of kind "mask" (the
    row is added; the caller commits)."""
    mask = scaled(mask, (picture.width, picture.height))
    metadata = {"source": source, "mask_for": picture.id, "width": mask.width, "height": mask.height}
    return storage.save_image(user_id=user.id, picture=mask.convert("RGB"), metadata=metadata, kind="mask")


def store_mask(user: User, data: bytes, *, reading: str, picture: Image, field: str = "mask",
               commit: bool = True) -> Image:
    """Read an uploaded mask (read_mask), scale it to the picture's size and store it as
    the user's image of kind "mask". The compatibility routes call this and pass the
    mask's id on as the task's `mask`."""
    image = _save(user, read_mask(data, reading=reading, field=field), picture, f"mask ({reading})")
    if commit:
        db.session.commit()
    return image


def _own_image(user: User, image_id: str, field: str) -> Image:
    image = db.session.scalar(sa.select(Image).where(  # not one held for review
        Image.id == image_id, Image.user_id == user.id, Image.review.is_distinct_from("held")))
    if image is None:
        raise ValidationError(field, "is not one of your images")
    return image


def mask_from_image(user: User, image_id: str, picture: Image, field: str = "mask", *,
                    commit: bool = True) -> Image:
    """A mask given as the id of one of the user's images (an upload, a result, a mask):
    the stored mask itself when it is one already at the picture's size, else that image
    read by luminance (white = repaint) and stored as a new mask at the picture's size."""
    image = _own_image(user, image_id, field)
    if image.kind == "mask" and (image.width, image.height) == (picture.width, picture.height):
        return image
    try:
        with PILImage.open(storage.file_of(image)) as stored:
            mask = _binary(stored.convert("L"))
    except OSError:
        raise ValidationError(field, "its file could not be read; upload the mask again")
    mask_image = _save(user, mask, picture, "mask (image)")
    if commit:
        db.session.commit()
    return mask_image


def decode_data_url(value: str, field: str = "mask") -> bytes:
    match = DATA_URL.fullmatch(value.strip())
    if match is None:
        raise ValidationError(field, "must be an image id of yours or a data URL (data:image/png;base64,...)")
    try:
        return base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "its data URL does not hold valid base64")


def task_mask(user: User, value: str, picture: Image, *, invert: bool, widening: bool,
              field: str = "mask") -> tuple[Image, bool]:
    """The mask of a native task: `value` is an image id of the user's or a data URL (read
    "native"). Returns (the mask image, whether it is new: its row added, not committed,
    its files written; the caller commits it with the task, or removes its files).
    A mask that selects nothing (after invert; outpaint selects the new area) is a 422."""
    if value.startswith("data:"):
        mask = read_mask(decode_data_url(value, field), reading="native", field=field)
        _check_selects(mask, invert, widening, field)
        return _save(user, mask, picture, "mask (native)"), True
    if len(value) > MAX_ID_LENGTH:
        raise ValidationError(field, "must be an image id of yours or a data URL (data:image/png;base64,...)")
    image = _own_image(user, value, field)
    if image.kind == "mask" and (image.width, image.height) == (picture.width, picture.height):
        _check_selects(image, invert, widening, field)
        return image, False
    mask_image = mask_from_image(user, value, picture, field, commit=False)
    try:
        _check_selects(mask_image, invert, widening, field)
    except ValidationError:
        storage.delete_files(mask_image)
        db.session.expunge(mask_image)
        raise
    return mask_image, True


def _check_selects(mask, invert: bool, widening: bool, field: str) -> None:
    if widening or selects_anything(mask, invert):
        return
    if invert:
        raise ValidationError(field, "selects nothing (mask_invert is on and the mask is all white: "
                                     "inverted, nothing is left to repaint)")
    raise ValidationError(field, "selects nothing (it is all black or fully transparent: paint "
                                 "the area to repaint in white, or opaque)")
