"""Images as a collection: listing, search, stars, boards, bulk actions; and the
studio sessions (for the timeline's list of earlier sessions)."""
from __future__ import annotations

from flask import jsonify, request
from flask_login import current_user

from services.library import boards, gallery
from views.api.common import body, bp, flag, listing, paging
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref


@bp.get("/images")
def list_images():
    offset, limit = paging()
    filters = gallery.parse_filters(current_user, request.args)
    return jsonify(gallery.list_images(current_user, filters, offset=offset, limit=limit))


@bp.patch("/images/<image_id>")
def update_image(image_id: str):
    return jsonify(gallery.image_to_dict(gallery.update_image(current_user, image_id, body())))


@bp.delete("/images/<image_id>")
def delete_image(image_id: str):
    gallery.delete_image(current_user, image_id)
    return "", 204


@bp.post("/images/bulk")
def bulk_images():
    return jsonify({"done": gallery.bulk(current_user, body())})


@bp.get("/boards")
def list_boards():
    offset, limit = paging()
    items, total = boards.list_boards(current_user, offset=offset, limit=limit)
    return jsonify({"items": items, "total": total, "offset": offset, "limit": limit,
                    "counts": boards.view_counts(current_user)})


@bp.post("/boards")
def create_board():
    board = boards.create_board(current_user, body())
    return jsonify(boards.describe(current_user, board)), 201


@bp.get("/boards/<board_id>")
def get_board(board_id: str):
    return jsonify(boards.describe(current_user, boards.get_board(current_user, board_id)))


@bp.patch("/boards/<board_id>")
def update_board(board_id: str):
    board = boards.update_board(current_user, board_id, body())
    return jsonify(boards.describe(current_user, board))


@bp.delete("/boards/<board_id>")
def delete_board(board_id: str):
    boards.delete_board(current_user, board_id, delete_images=flag("delete_images"))
    return "", 204


@bp.get("/sessions")
def list_sessions():
    offset, limit = paging()
    items, total = gallery.list_sessions(current_user, offset=offset, limit=limit)
    return listing(items, total, offset, limit)


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {"name": name, "in": "query", "schema": schema or {"type": "string"}, "description": description}


NO_CONTENT = {"204": {"description": "Done"}}
BOARD_BODY = {"type": "object", "properties": {
    # At least one character that is not a space as Python's str.split() reads spaces (the
    # name's spaces are collapsed with it; \x1c-\x1f and \x85 are spaces to it): written
    # out so that it means the same in JSON Schema's regular expressions and in Python's.
    "name": {"type": "string", "minLength": 1, "maxLength": boards.NAME_MAX,
             "pattern": "[^\\s\\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"},
    "cover_image_id": {"type": ["string", "null"], "description": "one of the board's images; null: the newest"}}}
# A date (YYYY-MM-DD, UTC) or an ISO 8601 time; empty: no filter.
_TIME = {"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"},
                   {"type": "string", "maxLength": 0}]}
IMAGE_FILTERS = [
    _query("board", "a board id, or `none` for images in no board"),
    _query("starred", "`true` for starred images only, `false` for the others", {"type": "boolean"}),
    _query("public", "`true` for public images only", {"type": "boolean"}),
    _query("q", "words that must all appear in the prompt", {"type": "string", "maxLength": gallery.QUERY_MAX}),
    _query("kind", "`result` (generated), `upload`, or `mask`, `control`, `reference` (inpainting's masks, ControlNet units' and reference pictures: listed only when asked for)", {"enum": list(gallery.KINDS)}),
    _query("from", "made on or after this date (YYYY-MM-DD, UTC) or ISO time", _TIME),
    _query("to", "made on or before this date (the whole day) or before this ISO time; after `from` "
                 "(else a 422)", _TIME),
    _query("before", "the `before` of the first page: images made since never shift later pages", _TIME),
]

OPENAPI = {
    "/images": {"get": op("Your images, newest first, filtered; the answer's `before` pages on "
                          "without shifting as new images arrive",
                          answer("Images", list_of("Image") | {"properties": list_of("Image")["properties"] | {
                              "before": {"type": "string"}}}),
                          params=PAGING + IMAGE_FILTERS, error_codes=(401, 404, 422))},
    "/images/{id}": {
        "patch": op("Star, move to a board (board_id null: none), make public or private",
                    answer("The image", ref("Image")), params=[path_id("id")],
                    body={"type": "object", "additionalProperties": False, "properties": {
                          "starred": {"type": "boolean"}, "board_id": {"type": ["string", "null"]},
                          "public": {"type": "boolean"}}},
                    error_codes=(401, 404, 422)),
        "delete": op("Delete an image and its files", NO_CONTENT, params=[path_id("id")],
                     error_codes=(401, 404)),
    },
    "/images/bulk": {"post": op(
        "One action on many images; ids that are not your images are skipped",
        answer("How many images were acted on", {"type": "object", "properties": {"done": {"type": "integer"}}}),
        body={"type": "object", "required": ["ids", "action"], "properties": {
            "ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": gallery.BULK_MAX},
            "action": {"enum": list(gallery.BULK_ACTIONS)},
            "board_id": {"type": ["string", "null"], "description": "with move: the board, or null for none"}},
            "if": {"properties": {"action": {"const": "move"}}}, "then": {"required": ["board_id"]}},
        error_codes=(401, 404, 422))},
    "/boards": {
        "get": op("Your boards by name, with `counts` of all images and of images in no board",
                  answer("Boards", list_of("Board")), params=PAGING),
        "post": op("Create a board", answer("The board", ref("Board"), "201"),
                   body={"type": "object", "required": ["name"], "additionalProperties": False,
                         "properties": {"name": BOARD_BODY["properties"]["name"]}},
                   error_codes=(401, 409, 422)),
    },
    "/boards/{id}": {
        "get": op("A board", answer("The board", ref("Board")), params=[path_id("id")], error_codes=(401, 404)),
        "patch": op("Rename a board or choose its cover", answer("The board", ref("Board")),
                    params=[path_id("id")], body=BOARD_BODY, error_codes=(401, 404, 409, 422)),
        "delete": op("Delete a board; its images stay (in no board) unless delete_images=true",
                     NO_CONTENT, params=[path_id("id"), _query("delete_images", "`true` deletes the board's "
                                                                "images too", {"type": "boolean"})],
                     error_codes=(401, 404, 422)),
    },
    "/sessions": {"get": op("Your studio sessions, newest first (GET /tasks?session=ID lists one's tasks)",
                            answer("Sessions", list_of("Session")), params=PAGING)},
}

OPENAPI_SCHEMAS = {
    "Image": {"type": "object", "properties": {
        **{k: {"type": "string"} for k in ("id", "created_at", "url", "thumbnail_url", "metadata_url")},
        "kind": {"enum": list(gallery.KINDS)}, "task_id": {"type": ["string", "null"]},
        "board_id": {"type": ["string", "null"]}, "prompt": {"type": ["string", "null"]},
        "width": {"type": "integer"}, "height": {"type": "integer"}, "seed": {"type": ["integer", "null"]},
        "starred": {"type": "boolean"}, "public": {"type": "boolean"},
        # "held": hidden by the image check until staff release it (its files answer 404)
        "review": {"enum": ["held", "released", None]}}},
    "Board": {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "image_count": {"type": "integer"},
        "cover_image_id": {"type": ["string", "null"]}, "cover_thumbnail_url": {"type": ["string", "null"]},
        "created_at": {"type": "string"}, "updated_at": {"type": "string"}}},
    "Session": {"type": "object", "properties": {
        "id": {"type": "string"}, "current": {"type": "boolean"}, "task_count": {"type": "integer"},
        "image_count": {"type": "integer"}, "first_at": {"type": ["string", "null"]},
        "last_at": {"type": ["string", "null"]}, "latest_prompt": {"type": ["string", "null"]}}},
}
