"""ZIP archives of a selection, a board or the whole account, built in the background
by the archive worker (qarchiver.py). A task's own ZIP is streamed at once:
GET /tasks/{id}/archive (views/api/generation.py)."""
from __future__ import annotations

import click
from flask import jsonify, send_file
from flask.cli import with_appcontext
from flask_login import current_user

from services.library import archives
from views.api.common import body, bp, listing, paging
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref


@bp.post("/archives")
def create_archive():
    return jsonify(archives.request_archive(current_user, body()).to_dict()), 202


@bp.get("/archives")
def list_archives():
    offset, limit = paging()
    items, total = archives.list_archives(current_user, offset=offset, limit=limit)
    return listing([a.to_dict() for a in items], total, offset, limit)


@bp.get("/archives/<archive_id>")
def get_archive(archive_id: str):
    return jsonify(archives.get_archive(current_user, archive_id).to_dict())


@bp.get("/archives/<archive_id>/download")
def download_archive(archive_id: str):
    archive, path = archives.download_path(current_user, archive_id)
    return send_file(path, mimetype="application/zip", as_attachment=True,
                     download_name=archive.download_name, conditional=True, max_age=0)


@bp.delete("/archives/<archive_id>")
def delete_archive(archive_id: str):
    archives.delete_archive(current_user, archive_id)
    return "", 204


@click.command("expire-archives")
@with_appcontext
def expire_archives_command():
    """Delete archives past their time (the archive worker also does this itself)."""
    click.echo(archives.expire_archives())


@bp.record_once
def _register_cli(state) -> None:
    state.app.cli.add_command(expire_archives_command)


ARCHIVE_REQUEST = {
    "type": "object",
    "description": "Exactly one of image_ids (your images: another id is a 404), board_id or all.",
    "properties": {"image_ids": {"type": "array", "items": {"type": "string", "minLength": 1},
                                 "minItems": 1, "maxItems": archives.MAX_SELECTION},
                   "board_id": {"type": "string"}, "all": {"const": True}},
    "oneOf": [{"required": ["image_ids"]}, {"required": ["board_id"]}, {"required": ["all"]}],
}
ZIP = {"200": {"description": "ZIP: the PNGs (named {task_id}_{n}.png, stored) and manifest.csv",
               "content": {"application/zip": {}}}}

OPENAPI = {
    "/archives": {
        "post": op("Ask for a ZIP of some images, a board or all your images; built in the background "
                   "(Socket.IO event `archive` reports its progress)",
                   answer("The archive, queued", ref("Archive"), "202"), body=ARCHIVE_REQUEST,
                   error_codes=(401, 404, 409, 422, 429, 503)),
        "get": op("Your archives, newest first: ready, being made, failed and expired ones (the account page lists them)", answer("Archives", list_of("Archive")), params=PAGING),
    },
    "/archives/{id}": {
        "get": op("An archive: its state and progress", answer("The archive", ref("Archive")),
                  params=[path_id("id")], error_codes=(401, 404)),
        "delete": op("Delete a finished archive and its file", {"204": {"description": "Deleted"}},
                     params=[path_id("id")], error_codes=(401, 404, 409)),
    },
    "/archives/{id}/download": {
        "get": op("The archive's ZIP (once ready; 409 while it is being made or after it expired)", ZIP,
                  params=[path_id("id")], error_codes=(401, 404, 409)),
    },
}

_INT, _STR = {"type": "integer"}, {"type": "string"}
OPENAPI_SCHEMAS = {
    "Archive": {"type": "object", "properties": {
        "id": _STR, "state": {"enum": ["queued", "building", "ready", "failed", "expired"]},
        "scope": {"enum": ["selection", "board", "all"]}, "board_id": {"type": ["string", "null"]},
        "image_count": _INT,
        "progress": {"type": "object", "properties": {"done": _INT, "total": _INT}},
        "size_bytes": {"type": ["integer", "null"]}, "url": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]}, "created_at": _STR,
        "finished_at": {"type": ["string", "null"]}, "expires_at": {"type": ["string", "null"]}}},
}
