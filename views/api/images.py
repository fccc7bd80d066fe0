"""Images: metadata and files, served only to their owner."""
from __future__ import annotations

from flask import jsonify, send_file
from flask_login import current_user

from models import Image
from services.library import imaging, storage
from views.api.common import bp
from views.api.openapi import answer, op, path_id, ref

IMMUTABLE = "private, max-age=31536000, immutable"


@bp.get("/images/<image_id>")
def get_image(image_id: str):
    return jsonify(storage.get_image(current_user, image_id).to_dict())


def _send(image: Image, variant: str, mimetype: str):
    response = send_file(storage.file_of(image, variant), mimetype=mimetype, conditional=True,
                         etag=True, max_age=31536000)
    response.headers["Cache-Control"] = IMMUTABLE
    return response


@bp.get("/images/<image_id>/full")
def image_full(image_id: str):
    return _send(storage.get_image(current_user, image_id), "full", "image/png")


@bp.get("/images/<image_id>/thumbnail")
def image_thumbnail(image_id: str):
    return _send(storage.get_image(current_user, image_id), "thumbnail", "image/webp")


@bp.get("/images/<image_id>/metadata")
def image_metadata(image_id: str):
    image = storage.get_image(current_user, image_id)
    return jsonify(imaging.read_metadata(storage.file_of(image)))


OPENAPI = {
    "/images/{id}": {"get": op("An image", answer("The image", ref("Image")), params=[path_id("id")],
                                error_codes=(401, 404))},
    "/images/{id}/full": {"get": op("The PNG, parameters embedded",
                                     {"200": {"description": "PNG", "content": {"image/png": {}}}},
                                     params=[path_id("id")], error_codes=(401, 404))},
    "/images/{id}/thumbnail": {"get": op("The WebP thumbnail (longest side 256)",
                                          {"200": {"description": "WebP", "content": {"image/webp": {}}}},
                                          params=[path_id("id")], error_codes=(401, 404))},
    "/images/{id}/metadata": {"get": op("The generation parameters", answer("Parameters", {"type": "object"}),
                                         params=[path_id("id")], error_codes=(401, 404))},
}
