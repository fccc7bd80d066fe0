"""Uploads for image-to-image: checked (format, bytes, pixels, decoded size, integrity)
before a single pixel is decoded, decoded within a memory budget, then stored like any
image, as an 8-bit RGB PNG of the user's own.

The budget: at most UPLOAD_DECODERS uploads are decoded at once (a waiter that gets no
decoder within UPLOAD_WAIT seconds is answered 503 with Retry-After), and one decode may
hold at most UPLOAD_DECODE_BYTES of pixels, computed from the header. Without it a dozen
small 16-bit PNGs of 4096×4096 pixels decoded at once took gigabytes.

Masks (services/generation/masks.py) are decoded the same way (`decoded`, with the
alpha channel kept), their errors naming the field they came in."""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import io
import math
import struct
import threading
import zlib

from flask import Flask, current_app
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from extensions import db
from models import Image, User
from services.core.errors import TooLarge, Unavailable, UnsupportedImage, ValidationError
from services.library import storage

ALLOWED = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}
SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")  # a damaged one of ours
# Bytes a pixel takes in Pillow's memory, by mode (every other mode takes 4; RGB is
# stored as 4 bytes a pixel too). Pillow decodes 16-bit RGB(A) PNGs to 8 bits row by row,
# so only 16-bit grayscale ("I;16", or "I") arrives wider than it is stored.
BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
OUTPUT_BYTES_PER_PIXEL = 4  # the RGB image that is stored
# Errors Pillow raises on files it cannot read (a damaged chunk, truncated data, a
# malformed header, text or profile chunks too large to inflate, a decompression bomb).
PIL_ERRORS = (ValueError, OSError, SyntaxError, EOFError, IndexError, KeyError, TypeError,
              struct.error, zlib.error, PILImage.DecompressionBombError)
TRIM_AFTER = 8 * 1024 * 1024  # give memory back to the system after decodes this big

_slots_lock = threading.Lock()


def decode_slots(app: Flask) -> threading.BoundedSemaphore:
    """The app's decoders: a semaphore of UPLOAD_DECODERS slots."""
    slots = app.extensions.get("daydream_upload_decoders")
    if slots is None:
        with _slots_lock:
            slots = app.extensions.setdefault(
                "daydream_upload_decoders", threading.BoundedSemaphore(app.config["UPLOAD_DECODERS"]))
    return slots


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _release_memory() -> None:
    """Hand freed memory back to the system: glibc keeps the freed blocks in each
    thread's arena, so without this the web process stays near its peak (measured: 12
    parallel 4096×4096 uploads left 1 GB in use; with it, a few MB)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def decoded_bytes(picture: PILImage.Image) -> int:
    """What decoding `picture` and turning it into RGB holds at most, from its header."""
    width, height = picture.size
    per_pixel = max(BYTES_PER_PIXEL.get(picture.mode, 4), OUTPUT_BYTES_PER_PIXEL)
    return width * height * per_pixel


def _megabytes(n: int) -> str:
    return f"{math.ceil(n / (1024 * 1024))} MB"


def _named(field: str, message: str) -> str:
    """An upload's messages speak of "the file"; a mask's name its field."""
    return message if field == "file" else f"{field}: {message}"


def _unsupported(message: str, field: str) -> UnsupportedImage:
    return UnsupportedImage(_named(field, message), field=None if field == "file" else field)


def _open(data: bytes, field: str = "file") -> PILImage.Image:
    """The picture's header (no pixels yet), or a 4xx saying what is wrong."""
    try:
        # Only the three formats' plugins look at the bytes.
        return PILImage.open(io.BytesIO(data), formats=list(ALLOWED))
    except UnidentifiedImageError:
        if data.startswith(SIGNATURES):
            raise _damaged(field)
        raise _unsupported("That file is not a PNG, JPEG or WebP image; only those can be uploaded.", field)
    except PIL_ERRORS as exc:
        raise _refused(exc, field)


def _damaged(field: str = "file") -> UnsupportedImage:
    return _unsupported("The image is damaged or truncated; export it again and retry.", field)


def _refused(exc: Exception, field: str = "file") -> Exception:
    """A Pillow error as the 4xx the client gets."""
    text = str(exc).lower()
    if isinstance(exc, PILImage.DecompressionBombError):
        return ValidationError(field, "has far more pixels than its size suggests "
                                      "(a decompression bomb); scale it down first")
    if isinstance(exc, ValueError) and ("too large" in text or "too much memory" in text):
        return ValidationError(field, "carries metadata (text or colour-profile chunks) too large "
                                      "to read; export it again without the metadata")
    if isinstance(exc, MemoryError):
        return TooLarge(_named(field, "The image is too large to decode; scale it down first."),
                        field=None if field == "file" else field)
    return _damaged(field)


def has_alpha(picture: PILImage.Image) -> bool:
    """Whether a picture carries transparency (an alpha channel or a transparent colour)."""
    return picture.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in picture.info


def _eight_bit_rgb(picture: PILImage.Image, keep_alpha: bool = False) -> PILImage.Image:
    """The decoded picture upright and in 8-bit RGB (RGBA if it has transparency and
    keep_alpha), holding at most two copies at once."""
    ImageOps.exif_transpose(picture, in_place=True)
    if picture.mode in ("I", "F") or picture.mode.startswith("I;16"):
        # 16-bit grayscale: scale to 8 bits first (a plain convert would clip it to white).
        picture = picture.point(lambda v: v / 256).convert("L")
    mode = "RGBA" if keep_alpha and has_alpha(picture) else "RGB"
    return picture if picture.mode == mode else picture.convert(mode)


def check_bytes(data: bytes, field: str = "file") -> None:
    """Refuse an upload over the byte limit, or an empty one."""
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if len(data) > limit:
        raise TooLarge(_named(field, f"The file is larger than {limit // (1024 * 1024)} MB; scale it down first."),
                       field=None if field == "file" else field)
    if not data:
        raise ValidationError(field, "is empty: choose a PNG, JPEG or WebP image")


@contextlib.contextmanager
def decoded(data: bytes, *, field: str = "file", keep_alpha: bool = False):
    """Decode an untrusted picture within the budget: a decoder slot (503 when none is
    free within UPLOAD_WAIT), the header's checks, then the pixels in 8-bit RGB (RGBA
    with keep_alpha and transparency). Yields (picture, source format, the header's
    (width, height)); the slot is held until the block ends, so drop the picture before."""
    slots = decode_slots(current_app._get_current_object())
    wait = current_app.config["UPLOAD_WAIT"]
    if not slots.acquire(timeout=wait):
        raise Unavailable("The server is busy processing other uploads; try again in a few seconds.",
                          code="uploads_busy", headers={"Retry-After": str(max(1, math.ceil(wait)))})
    budget = 0
    try:
        picture = _open(data, field)  # reads the header and the chunks before the pixels
        budget = _check(picture, field)
        source_format, size = ALLOWED[picture.format], picture.size
        try:
            picture.load()
            picture = _eight_bit_rgb(picture, keep_alpha)
        except (MemoryError, *PIL_ERRORS) as exc:
            raise _refused(exc, field)
        yield picture, source_format, size
        del picture
    except BaseException:
        budget = TRIM_AFTER  # a refused file may have inflated big chunks before its pixels
        raise
    finally:
        slots.release()
        if budget >= TRIM_AFTER:
            _release_memory()


def store_upload(user: User, stream, filename: str | None = None) -> Image:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    data = stream.read(limit + 1)
    check_bytes(data)
    with decoded(data) as (picture, source_format, (width, height)):
        metadata = {"source": "upload", "original_format": source_format,
                    "width": width, "height": height}
        image = storage.save_image(user_id=user.id, picture=picture, metadata=metadata, kind="upload")
        del picture  # before the slot is free again
    db.session.commit()
    return image


def _check(picture: PILImage.Image, field: str = "file") -> int:
    """Refuse a picture of another format, too many pixels, or a decoded size over the
    budget, from its header alone; the bytes its decode will hold."""
    if picture.format not in ALLOWED:
        raise _unsupported(f"{picture.format or 'This'} images are not supported; "
                           "upload a PNG, JPEG or WebP image.", field)
    width, height = picture.size
    max_pixels = current_app.config["MAX_UPLOAD_PIXELS"]
    if width * height > max_pixels or width < 1 or height < 1:
        raise ValidationError(field, f"is {width}×{height} pixels; at most {max_pixels:,} pixels "
                                      "are accepted — scale it down first")
    needed, budget = decoded_bytes(picture), current_app.config["UPLOAD_DECODE_BYTES"]
    if needed > budget:
        raise ValidationError(field, f"is {width}×{height} pixels, which take {_megabytes(needed)} "
                                      f"to decode; at most {_megabytes(budget)} are allowed — "
                                      "scale it down first")
    return needed
