"""Staff review of the images held by the image check (DAYDREAM_SAFETY=flag):
services/moderation/review.py. Every route is on staff_bp (staff only)."""
from __future__ import annotations

from flask import jsonify, request, send_file

from services.core import audit
from services.moderation import review
from views.api.common import body, listing, paging, staff_bp
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref

_STR = {"type": "string"}
_PREFIX = "/admin/moderation/held"


@staff_bp.get(_PREFIX)
def held_images():
    offset, limit = paging()
    items, total = review.list_held(offset=offset, limit=limit)
    return listing(items, total, offset, limit)


def _send(image_id: str, variant: str):
    path, mimetype = review.held_file(image_id, variant)
    response = send_file(path, mimetype=mimetype, conditional=True, etag=True, max_age=0)
    response.headers["Cache-Control"] = "private, no-store"  # staff's eyes only, never kept
    return response


@staff_bp.get(f"{_PREFIX}/<image_id>/full")
def held_image_full(image_id: str):
    return _send(image_id, "full")


@staff_bp.get(f"{_PREFIX}/<image_id>/thumbnail")
def held_image_thumbnail(image_id: str):
    return _send(image_id, "thumbnail")


@staff_bp.post(f"{_PREFIX}/<image_id>/release")
def release_held_image(image_id: str):
    return jsonify(review.release(image_id, audit.reason_of(body().get("reason"))))


@staff_bp.delete(f"{_PREFIX}/<image_id>")
def delete_held_image(image_id: str):
    review.delete(image_id, audit.reason_of(request.args.get("reason")))
    return "", 204


_ERRORS = (401, 403, 404)
_ID = [path_id("id")]

OPENAPI_SCHEMAS = {
    "HeldImage": {"type": "object", "properties": {
        **{k: _STR for k in ("id", "created_at", "url", "thumbnail_url")},
        "review": {"enum": ["held", "released"]}, "safety_label": {"type": ["string", "null"]},
        "width": {"type": "integer"}, "height": {"type": "integer"},
        "task_id": {"type": ["string", "null"]}, "prompt": {"type": ["string", "null"]},
        "negative_prompt": {"type": ["string", "null"]},
        "owner": {"type": ["object", "null"], "properties": {"id": _STR, "username": _STR}}}},
}

OPENAPI = {
    _PREFIX: {"get": op("Images held by the image check, the longest waiting first (staff)",
                        answer("Held images", list_of("HeldImage")), params=PAGING, error_codes=(401, 403))},
    f"{_PREFIX}/{{id}}/full": {"get": op("A held (or released) image's PNG (staff)",
                                         {"200": {"description": "PNG", "content": {"image/png": {}}}},
                                         params=_ID, error_codes=_ERRORS)},
    f"{_PREFIX}/{{id}}/thumbnail": {"get": op("A held (or released) image's WebP thumbnail (staff)",
                                              {"200": {"description": "WebP", "content": {"image/webp": {}}}},
                                              params=_ID, error_codes=_ERRORS)},
    f"{_PREFIX}/{{id}}/release": {"post": op("Release a held image: its owner sees it again (staff; audited)",
                                             answer("The image", ref("HeldImage")),
                                             body={"type": "object", "properties": {"reason": _STR}},
                                             params=_ID, error_codes=(401, 403, 404, 422))},
    f"{_PREFIX}/{{id}}": {"delete": op("Delete a held image, its files and row; not refunded (staff; audited)",
                                       {"204": {"description": "Deleted"}},
                                       params=_ID + [{"name": "reason", "in": "query", "schema": _STR}],
                                       error_codes=(401, 403, 404, 422))},
}
