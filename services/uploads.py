"""Uploads for image-to-image: checked (format, bytes, pixels, integrity) before a
single pixel is decoded, then stored like any image, as a PNG of the user's own."""
from __future__ import annotations

import io
import warnings

from flask import current_app
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from models import Image, User
from services import storage
from services.errors import TooLarge, UnsupportedImage, ValidationError

ALLOWED = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}


def store_upload(user: User, stream, filename: str | None = None) -> Image:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"The file is larger than {limit // (1024 * 1024)} MB; scale it down first.")
    if not data:
        raise ValidationError("file", "is empty: choose a PNG, JPEG or WebP image")
    max_pixels = current_app.config["MAX_UPLOAD_PIXELS"]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            picture = PILImage.open(io.BytesIO(data))  # reads the header only
    except (PILImage.DecompressionBombWarning, PILImage.DecompressionBombError):
        raise ValidationError("file", f"has far more than {max_pixels:,} pixels; scale it down first")
    except UnidentifiedImageError:
        raise UnsupportedImage("That file is not a PNG, JPEG or WebP image.")
    if picture.format not in ALLOWED:
        raise UnsupportedImage(f"{picture.format or 'This'} images are not supported; "
                               "upload a PNG, JPEG or WebP image.")
    width, height = picture.size
    if width * height > max_pixels or width < 1 or height < 1:
        raise ValidationError("file", f"is {width}×{height} pixels; at most {max_pixels:,} pixels "
                                      "are accepted — scale it down first")
    try:
        picture.load()
        picture = ImageOps.exif_transpose(picture).convert("RGB")
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError):
        raise UnsupportedImage("The image is damaged or truncated; export it again and retry.")
    metadata = {"source": "upload", "original_format": picture.format or ALLOWED.get("PNG"),
                "width": width, "height": height}
    image = storage.save_image(user_id=user.id, picture=picture, metadata=metadata, kind="upload")
    from extensions import db

    db.session.commit()
    return image
