"""The OpenAI Images API, /v1 (docs/TOOLS.md): what the `openai` package, Open WebUI's
OpenAI image engine and LibreChat's DALL·E tools call. Errors in OpenAI's shape:
{"error": {"message", "type", "code", "param"}}. Generations and edits hold the
request until the task ends; `url` answers are signed links that work without a
cookie for 60 minutes."""
from __future__ import annotations

import calendar
import logging
import time

import redis
from flask import Blueprint, current_app, jsonify, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from extensions import db
from models import TaskState
from services.core.errors import ServiceError, ValidationError
from services.generation import catalog, compat, tasks
from services.library import storage
from views.compat.common import authenticate, client_watch, error_answer

log = logging.getLogger(__name__)

bp = Blueprint("compat_openai", __name__, url_prefix="/v1")

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 402: "insufficient_quota",
         403: "invalid_request_error", 404: "invalid_request_error", 409: "invalid_request_error",
         410: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
         422: "invalid_request_error", 429: "rate_limit_exceeded", 503: "server_error", 504: "server_error"}
ROUTES = {"images/generations": ("POST",), "images/edits": ("POST",), "models": ("GET",)}


def answer_error(status: int, message: str, *, code: str | None = None, param: str | None = None,
                 headers: dict | None = None):
    error = {"message": message, "type": TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
             "code": code, "param": param}
    return error_answer({"error": error}, status, headers)


@bp.errorhandler(Exception)
def handle_error(exc: Exception):
    if isinstance(exc, ValidationError):
        exc = compat.rename_fields(exc, compat.OPENAI_NAMES)
        db.session.rollback()
        # OpenAI answers a bad parameter with 400 invalid_request_error naming it.
        return answer_error(400, exc.message, code="invalid_value", param=exc.field, headers=exc.headers)
    if isinstance(exc, ServiceError):
        db.session.rollback()
        code = {"not_signed_in": "invalid_api_key", "not_found": "not_found"}.get(exc.code, exc.code)
        return answer_error(exc.status, exc.message, code=code, param=exc.field, headers=exc.headers)
    if isinstance(exc, HTTPException):
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return answer_error(exc.code or 400, exc.description or exc.name, code=None, headers=headers)
    db.session.rollback()
    if isinstance(exc, redis.RedisError):
        log.warning("Redis unavailable on %s %s: %s", request.method, request.path, exc)
        return answer_error(503, "The queue service (Redis) is not answering right now; nothing was "
                            "changed. Try again in a moment.", code="unavailable", headers={"Retry-After": "10"})
    log.exception("unhandled error on %s %s", request.method, request.path)
    return answer_error(500, "Something went wrong on the server; it has been logged.", code="internal_error")


@bp.before_request
def before():
    if request.endpoint == "compat_openai.image_file":
        return None  # a signed link: the signature is the credential
    authenticate()
    return None


def _user():
    from flask_login import current_user

    return current_user._get_current_object()


def _json() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        if request.get_data(cache=True):
            raise ServiceError("The body is not valid JSON.", code="invalid_json")
        return {}
    if not isinstance(data, dict):
        raise ValidationError("body", "send a JSON object")
    return data


def _base_url() -> str:
    return (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")


def _answer(task, data: dict):
    if task is None:
        return answer_error(499, "The client closed the connection.", code="client_closed_request")
    if task.state == TaskState.FAILED.value:
        return answer_error(500, task.error or "The generation failed; your tokens were refunded.",
                            code="generation_failed")
    if task.state == TaskState.CANCELED.value:
        return answer_error(409, "The task was canceled; your tokens were refunded.", code="canceled")
    # OpenAI's default: a link, except for the gpt-image models, which always answer base64.
    model = str(data.get("model") or "")
    as_url = (data.get("response_format") or ("b64_json" if model.startswith("gpt-image") else "url")) == "url"
    items = []
    for image in [image for image in task.images if image.review != "held"]:  # (held: staff's only)
        item = {"revised_prompt": task.prompt}
        if as_url:
            item["url"] = _base_url() + url_for("compat_openai.image_file", token=compat.signed_token(image))
        else:
            item["b64_json"] = compat.image_base64(image)
        items.append(item)
    finished = task.finished_at
    created = calendar.timegm(finished.utctimetuple()) if finished else int(time.time())
    return jsonify({"created": created, "data": items, "output_format": "png",
                    "size": f"{task.width}x{task.height}"})


@bp.post("/images/generations")
def generations():
    user = _user()
    data = _json()
    params = compat.openai_params(user, data, edit=False)
    compat.require_worker()
    with compat.Holding():
        task = tasks.submit_task(user, params, request.headers.get("Idempotency-Key"))
        task = compat.wait_for_task(task, pause=client_watch())
    return _answer(task, data)


@bp.post("/images/edits")
def edits():
    user = _user()
    if request.mimetype == "application/json":
        raise ValidationError("image", "send the image as multipart/form-data in a field named 'image'")
    data = {key: request.form.get(key) for key in request.form}
    if request.files.get("mask") is not None or data.get("mask"):
        raise ValidationError("mask", "masks are not supported here: the whole image is reworked")
    files = request.files.getlist("image") + request.files.getlist("image[]")
    if not files:
        raise ValidationError("image", "send the image as multipart/form-data in a field named 'image'")
    if len(files) > 1:
        raise ValidationError("image", "one image per request is supported here")
    params = compat.openai_params(user, data, edit=True)
    compat.require_worker()
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    raw = files[0].stream.read(limit + 1)
    init = None
    with compat.Holding():
        init = compat.store_init_image(user, raw, "image")
        params["init_image"] = init.id
        if "width" not in params:
            params["width"], params["height"] = compat.image_size(init, params["model"], user)
        try:
            task = tasks.submit_task(user, params, request.headers.get("Idempotency-Key"))
        except Exception:
            compat.discard_upload(init)
            raise
        if task.init_image_id != init.id:
            compat.discard_upload(init)
        task = compat.wait_for_task(task, pause=client_watch())
    return _answer(task, data)


def _model_item(row) -> dict:
    return {"id": row.id, "object": "model",
            "created": calendar.timegm(row.created_at.utctimetuple()) if row.created_at else 0,
            "owned_by": "daydream", "name": row.name, "family": row.family or "sd1"}


@bp.get("/models")
def models():
    return jsonify({"object": "list", "data": [_model_item(row) for row in catalog.enabled_models()]})


@bp.get("/models/<path:model_id>")
def model(model_id: str):
    row = compat.find_model(model_id)
    if row is None:
        return answer_error(404, f"The model '{model_id[:80]}' does not exist.", code="model_not_found", param="model")
    return jsonify(_model_item(row))


@bp.get("/images/files/<token>.png")
def image_file(token: str):
    image = compat.image_for_token(token)
    response = send_file(storage.file_of(image), mimetype="image/png", conditional=True, max_age=0)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_here(rest: str):
    allowed = ROUTES.get(rest)
    if allowed:
        return answer_error(405, "Method not allowed.", code="method_not_allowed", headers={"Allow": ", ".join(allowed)})
    return answer_error(404, f"Unknown route: {request.method} /v1/{rest[:100]}", code="unknown_url")
