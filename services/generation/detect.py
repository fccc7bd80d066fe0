"""Control maps on request (POST /api/v1/control/detect): what a preprocessor makes of a
picture, so that the studio can show it before a task uses it.

The picture (and an inpaint mask) is an image id of the user's or a data URL, checked
and decoded as uploads are (services/generation/uploads.py: bytes, pixels, decode budget,
decompression bombs, formats); a bad one is a 422 naming its field. The map comes from
services/generation/preprocess.run, the code the worker runs: built-ins here, annotators
in a child process with a timeout (DETECT_TIMEOUT), one at a time per web process.
Rate-limited per user (DETECT_LIMIT). Nothing is stored."""
from __future__ import annotations

import base64
import io
import threading

import sqlalchemy as sa
from flask import current_app
from PIL import Image as PILImage

from extensions import db
from models import Image, User
from services.core import ratelimit
from services.core.errors import NotFound, ServiceError, TooLarge, Unavailable, UnsupportedImage, ValidationError
from services.generation import masks, preprocess, uploads
from services.generation.annotators import AnnotatorError
from services.library import storage

DEFAULT_LIMIT = "120 per minute"  # detects per user, when DETECT_LIMIT is not set
DEFAULT_TIMEOUT = 60.0  # seconds an annotator's child process may take, when DETECT_TIMEOUT is not set
WANTED = "must be an image id of yours or a data URL (data:image/png;base64,...)"

_annotator_slot = threading.BoundedSemaphore(1)  # one annotator child per web process


def _rules(user: User) -> list[tuple[str, str, str, str]]:
    return [(current_app.config.get("DETECT_LIMIT") or DEFAULT_LIMIT, "control-detect", user.uuid,
             "control map previews")]


def _as_422(exc: ServiceError, field: str) -> ValidationError:
    """An upload check's 413 or 415 for a picture given in a field, as a 422 naming it."""
    message = exc.message.removeprefix(f"{field}: ")
    return ValidationError(field, message[:1].lower() + message[1:])


def _bytes_of(user: User, value, field: str) -> bytes:
    """The picture's bytes: a data URL's, or the stored file of an image of the user's."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, WANTED)
    if value.startswith("data:"):
        data = masks.decode_data_url(value, field)
        uploads.check_bytes(data, field)
        return data
    if len(value) > masks.MAX_ID_LENGTH:
        raise ValidationError(field, WANTED)
    image = db.session.scalar(sa.select(Image).where(  # not one held for review
        Image.id == value, Image.user_id == user.id, Image.review.is_distinct_from("held")))
    if image is None:
        raise ValidationError(field, "is not one of your images")
    try:
        return storage.file_of(image).read_bytes()
    except (NotFound, OSError):
        raise ValidationError(field, "its file could not be read on the server; upload the picture again")


def _picture(user: User, value, size_for, field: str = "image") -> PILImage.Image:
    """The picture, decoded as an upload and fitted to the map's size (size_for(its size))
    before the decoder is free again, so a large picture is held only that long."""
    data = _bytes_of(user, value, field)
    with uploads.decoded(data, field=field) as (picture, _format, _size):
        size = size_for(picture.size)
        fitted = picture.copy() if picture.size == size else picture.resize(size, PILImage.Resampling.LANCZOS)
        del picture
    return fitted


def _mask(user: User, value) -> PILImage.Image:
    return masks.read_mask(_bytes_of(user, value, "mask"), reading="native", field="mask")


def _map_size(settings: dict):
    def size_for(size: tuple[int, int]) -> tuple[int, int]:
        width, height = preprocess.map_size(size, settings["processor_res"])
        if width * height > preprocess.MAX_MAP_PIXELS:
            raise ValidationError("processor_res", f"would make a {width}×{height} map of this picture; at most "
                                                   f"{preprocess.MAX_MAP_PIXELS:,} pixels: choose a lower one")
        return width, height
    return size_for


def _run(picture: PILImage.Image, settings: dict, mask) -> PILImage.Image:
    arguments = {"resolution": settings["processor_res"], "threshold_a": settings["threshold_a"],
                 "threshold_b": settings["threshold_b"], "mask": mask,
                 "models_path": current_app.config["MODELS_PATH"]}
    if settings["preprocessor"] in preprocess.BUILTIN:
        return preprocess.run(picture, settings["preprocessor"], **arguments)
    wait = current_app.config["UPLOAD_WAIT"]
    if not _annotator_slot.acquire(timeout=wait):
        raise Unavailable("Another control map is being detected; try again in a few seconds.",
                          code="detect_busy", headers={"Retry-After": str(max(1, int(wait + 0.5)))})
    try:
        timeout = current_app.config.get("DETECT_TIMEOUT") or DEFAULT_TIMEOUT
        return preprocess.run(picture, settings["preprocessor"], child_timeout=timeout, **arguments)
    except AnnotatorError as exc:
        raise Unavailable(f"The {settings['preprocessor']} preprocessor could not run: {exc}",
                          code="preprocessor_failed", headers={"Retry-After": "30"})
    finally:
        _annotator_slot.release()


def detect(user: User, data) -> dict:
    """{image: the map as a PNG data URL, width, height, preprocessor, processor_res,
    threshold_a, threshold_b} for the body {image, preprocessor, processor_res?,
    threshold_a?, threshold_b?, mask?}."""
    if not isinstance(data, dict):
        raise ValidationError("body", "send a JSON object")
    resolution = data.get("processor_res")
    settings = preprocess.options(
        data.get("preprocessor"), threshold_a=data.get("threshold_a"), threshold_b=data.get("threshold_b"),
        resolution=preprocess.DEFAULT_RESOLUTION if resolution is None else resolution,
        models_path=current_app.config["MODELS_PATH"])
    if not isinstance(data.get("image"), str) or not data["image"].strip():
        raise ValidationError("image", WANTED)
    needs_mask = settings["preprocessor"] == "inpaint"
    if data.get("mask") is not None and not isinstance(data["mask"], str):
        raise ValidationError("mask", WANTED)
    if needs_mask and not (data.get("mask") or "").strip():
        raise ValidationError("mask", "the inpaint preprocessor needs a mask (white: the area to repaint)")
    rules = _rules(user)
    ratelimit.check(rules)
    ratelimit.hit(rules)  # every try counts: each one decodes a picture
    try:
        picture = _picture(user, data["image"], _map_size(settings))
        mask = _mask(user, data["mask"]) if needs_mask else None
    except (TooLarge, UnsupportedImage) as exc:
        raise _as_422(exc, exc.field or "image")
    control_map = _run(picture, settings, mask).convert("RGB")  # inpaint: the masked area black
    buffer = io.BytesIO()
    control_map.save(buffer, format="PNG")
    return {"image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"),
            "width": control_map.width, "height": control_map.height, **settings}
