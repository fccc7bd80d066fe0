"""The JSON API, /api/v1 (API.md). Thin: parse, call one service, answer."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, g, jsonify, request, send_file
from flask_login import current_user

from extensions import csrf, db
from models import Image, Task
from services import (accounts, archives, catalog, dispatch, estimates, imaging, queue, storage,
                      tasks, uploads)
from services.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC_ENDPOINTS = {"api.register", "api.create_token", "api.openapi"}
IMMUTABLE = "private, max-age=31536000, immutable"


class NotSignedIn(ServiceError):
    status = 401
    code = "not_signed_in"


@bp.before_request
def authenticate():
    """Bearer tokens need no CSRF token; cookie-authenticated writes do."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        user = accounts.user_for_api_token(header[7:].strip())
        if user is None:
            raise NotSignedIn("The API token is unknown, revoked or its account is deactivated.")
        g._login_user = user  # Flask-Login's current_user for this request only
        g.auth_via = "bearer"
        return None
    if not current_user.is_authenticated:
        if request.endpoint not in PUBLIC_ENDPOINTS:
            raise NotSignedIn("Sign in, or send Authorization: Bearer <api token>.")
    elif request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()  # a browser session: writes carry the X-CSRFToken header
    return None


def body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        if request.get_data(cache=True):
            raise ServiceError("The body is not valid JSON.", code="bad_json")
        return {}
    if not isinstance(data, dict):
        raise ServiceError("Send a JSON object.", code="bad_json")
    return data


def paging() -> tuple[int, int]:
    values = {}
    for name, default, high in (("offset", 0, 10**9), ("limit", 50, 200)):
        raw = request.args.get(name, default)
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise ValidationError(name, "must be a whole number")
        if not (0 if name == "offset" else 1) <= values[name] <= high:
            raise ValidationError(name, f"must be between {0 if name == 'offset' else 1} and {high}")
    return values["offset"], values["limit"]


def listing(items: list, total: int, offset: int, limit: int):
    return jsonify({"items": items, "total": total, "offset": offset, "limit": limit})


@bp.get("/openapi.json")
def openapi():
    from services.openapi import document

    return jsonify(document())


# --- accounts ---------------------------------------------------------------------

@bp.post("/auth/register")
def register():
    data = body()
    user = accounts.register_user(data.get("username"), data.get("email"), data.get("password"))
    return jsonify(user.to_dict()), 201


@bp.post("/auth/tokens")
def create_token():
    data = body()
    if current_user.is_authenticated and "password" not in data:
        user = current_user
    else:
        user = accounts.authenticate(data.get("login"), data.get("password"))
    token, secret = accounts.create_api_token(user, data.get("name"))
    return jsonify({**token.to_dict(), "token": secret}), 201


@bp.get("/auth/tokens")
def list_tokens():
    items = [t.to_dict() for t in accounts.list_api_tokens(current_user)]
    return listing(items, len(items), 0, len(items))


@bp.delete("/auth/tokens/<token_id>")
def revoke_token(token_id: str):
    accounts.revoke_api_token(current_user, token_id)
    return "", 204


@bp.get("/me")
def me():
    return jsonify(current_user.to_dict())


@bp.patch("/me")
def update_me():
    return jsonify(accounts.update_profile(current_user, body()).to_dict())


# --- generation -------------------------------------------------------------------

@bp.get("/models")
def models():
    return jsonify({"items": catalog.models()})


@bp.get("/schedulers")
def schedulers():
    return jsonify({"items": [
        {"id": key, "name": label, "default": key == catalog.DEFAULT_SCHEDULER}
        for key, label in catalog.schedulers().items()
    ]})


@bp.post("/estimate")
def estimate():
    params = tasks.check_params(current_user, body())
    return jsonify(estimates.estimate(current_user, params, tasks.cost_for(current_user, params)))


@bp.post("/tasks")
def submit():
    task = tasks.submit_task(current_user, body(), request.headers.get("Idempotency-Key"))
    return jsonify(tasks.task_to_dict(task)), 202


@bp.get("/tasks")
def list_tasks():
    offset, limit = paging()
    items, total = tasks.list_tasks(current_user, session=request.args.get("session"),
                                    offset=offset, limit=limit)
    positions = dispatch.positions()
    return listing([tasks.task_to_dict(t, positions) for t in items], total, offset, limit)


@bp.get("/tasks/<task_id>")
def get_task(task_id: str):
    return jsonify(tasks.task_to_dict(tasks.get_task(current_user, task_id)))


@bp.post("/tasks/<task_id>/cancel")
def cancel_task(task_id: str):
    return jsonify(tasks.task_to_dict(tasks.cancel_task(current_user, task_id)))


@bp.get("/tasks/<task_id>/archive")
def task_archive(task_id: str):
    task = tasks.get_task(current_user, task_id)
    if not task.images:
        raise Conflict("This task has no images to download yet.", code="no_images")
    response = Response(archives.stream_zip(archives.entries(task.images)),
                        mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="daydream-{task.id}.zip"'
    return response


@bp.get("/queue")
def queue_status():
    order = dispatch.fair_order()
    mine = next((n for n, t in enumerate(order, start=1) if t.user_id == current_user.id), None)
    return jsonify({**tasks.queue_stats(), "workers": len(queue.workers()), "your_position": mine})


@bp.post("/uploads")
def upload():
    file = request.files.get("file")
    if file is None:
        raise ValidationError("file", "send the image as multipart/form-data in a field named 'file'")
    return jsonify(uploads.store_upload(current_user, file.stream, file.filename).to_dict()), 201


# --- images -----------------------------------------------------------------------

@bp.get("/images/<image_id>")
def get_image(image_id: str):
    return jsonify(storage.get_image(current_user, image_id).to_dict())


def _send(image: Image, variant: str, mimetype: str):
    response = send_file(storage.path_of(image, variant), mimetype=mimetype, conditional=True,
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
    return jsonify(imaging.read_metadata(storage.path_of(image)))


# --- staff ----------------------------------------------------------------------------

def staff_only() -> None:
    if not current_user.is_staff:
        raise Forbidden("This is for staff only.")


@bp.get("/admin/models")
def admin_models():
    staff_only()
    return jsonify({"folder": str(catalog.models_folder()),
                    "items": [m.to_dict(staff=True) for m in catalog.all_models()]})


@bp.post("/admin/models/scan")
def admin_scan_models():
    staff_only()
    return jsonify({"folder": str(catalog.models_folder()),
                    "items": [m.to_dict(staff=True) for m in catalog.scan()]})


@bp.patch("/admin/models/<model_id>")
def admin_update_model(model_id: str):
    staff_only()
    return jsonify(catalog.update_model(model_id, body()).to_dict(staff=True))


@bp.post("/admin/tasks/<task_id>/cancel")
def admin_cancel_task(task_id: str):
    staff_only()
    task = db.session.get(Task, task_id)
    if task is None:
        raise NotFound("No such task.")
    return jsonify(tasks.task_to_dict(tasks.cancel(task)))
