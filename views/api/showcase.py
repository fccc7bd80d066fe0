"""The public showcase: featured images and the showcase folder; staff curate it.
Listing and the pictures need no sign-in (visitors see the showcase: @public);
curation is for staff only (staff_bp)."""
from __future__ import annotations

from flask import jsonify, request, send_file
from flask_login import current_user

from services.core import audit
from services.library import showcase
from views.api.common import body, bp, flag, listing, paging, public, staff_bp
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref


def _is_staff() -> bool:
    return bool(current_user.is_authenticated and current_user.is_staff)


@public
@bp.get("/showcase")
def showcase_list():
    offset, limit = paging()
    include_hidden = flag("include_hidden") and _is_staff()
    items, total = showcase.page(offset=offset, limit=limit, include_hidden=include_hidden)
    return listing(items, total, offset, limit)


def _send(item_id: str, variant: str):
    path, mimetype = showcase.file_of(item_id, variant, staff=_is_staff())
    response = send_file(path, mimetype=mimetype, conditional=True, etag=True, max_age=60)
    # Short-lived and not shared: staff may hide it, its owner may make it private.
    response.headers["Cache-Control"] = "public, max-age=60" if not _is_staff() else "private, no-store"
    return response


@public
@bp.get("/showcase/<item_id>/full")
def showcase_full(item_id: str):
    return _send(item_id, "full")


@public
@bp.get("/showcase/<item_id>/thumbnail")
def showcase_thumbnail(item_id: str):
    return _send(item_id, "thumbnail")


@staff_bp.post("/showcase")
def showcase_feature():
    data = body()
    return jsonify(showcase.feature(current_user, data.get("image_id"), audit.reason_of(data.get("reason")))), 201


@staff_bp.patch("/showcase/<item_id>")
def showcase_update(item_id: str):
    data = body()
    return jsonify(showcase.set_hidden(current_user, item_id, data.get("hidden"),
                                       audit.reason_of(data.get("reason"))))


@staff_bp.delete("/showcase/<item_id>")
def showcase_unfeature(item_id: str):
    showcase.unfeature(item_id, audit.reason_of(body().get("reason", request.args.get("reason"))))
    return "", 204


@staff_bp.get("/showcase/candidates")
def showcase_candidates():
    offset, limit = paging()
    items, total = showcase.candidates(offset=offset, limit=limit)
    return listing(items, total, offset, limit)


_PICTURE = {"200": {"description": "The picture (PNG, JPEG or WebP; thumbnails are WebP)",
                    "content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}}}
OPENAPI = {
    "/showcase": {
        "get": op("The showcase, newest first (no sign-in needed); staff add ?include_hidden=true",
                  answer("Showcase items", list_of("ShowcaseItem")),
                  params=PAGING + [{"name": "include_hidden", "in": "query", "schema": {"type": "boolean"}}],
                  public=True, error_codes=(422,)),
        "post": op("Feature a user's public image (staff)", answer("The item", ref("ShowcaseItem"), "201"),
                   body={"type": "object", "required": ["image_id"], "properties": {
                       "image_id": {"type": "string"}, "reason": {"type": "string"}}},
                   error_codes=(401, 403, 404, 409, 422)),
    },
    "/showcase/candidates": {
        "get": op("Public images not featured yet (staff)", answer("Images", list_of("ShowcaseItem")),
                  params=PAGING, error_codes=(401, 403)),
    },
    "/showcase/{id}": {
        "patch": op("Hide or show an item (staff)", answer("The item", ref("ShowcaseItem")),
                    body={"type": "object", "required": ["hidden"], "properties": {
                        "hidden": {"type": "boolean"}, "reason": {"type": "string"}}},
                    params=[path_id("id")], error_codes=(401, 403, 404, 422)),
        "delete": op("Stop featuring an image (staff)", {"204": {"description": "No longer featured"}},
                     params=[path_id("id"), {"name": "reason", "in": "query", "schema": {"type": "string"}}],
                     error_codes=(401, 403, 404, 409)),
    },
    "/showcase/{id}/full": {"get": op("An item's picture (no sign-in needed)", _PICTURE, params=[path_id("id")],
                                      public=True, error_codes=(404,))},
    "/showcase/{id}/thumbnail": {"get": op("An item's thumbnail, WebP (no sign-in needed)", _PICTURE,
                                           params=[path_id("id")], public=True, error_codes=(404,))},
}

_STR = {"type": "string"}
OPENAPI_SCHEMAS = {
    "ShowcaseItem": {"type": "object", "properties": {
        "id": _STR, "kind": {"enum": ["featured", "folder"]}, "title": _STR, "prompt": _STR,
        "width": {"type": "integer"}, "height": {"type": "integer"}, "url": _STR, "thumbnail_url": _STR,
        "featured": {"type": "boolean"}, "hidden": {"type": "boolean"}, "added_at": _STR}},
}
