"""The OpenAI Images API, /v1 (docs/TOOLS.md): what the `openai` package, Open WebUI's
OpenAI image engine and LibreChat's DALL·E tools call. Errors in OpenAI's shape:
{"error": {"message", "type", "code", "param"}} (views/errors.py). Generations, edits and
variations hold the request until the task ends; `url` answers are signed links that work without
a cookie for 60 minutes."""
from __future__ import annotations

import calendar
import time

from flask import Blueprint, current_app, jsonify, request, send_file, url_for

from models import TaskState
from services.core.errors import NotFound, ValidationError
from services.generation import access, tasks
from services.generation.compat import common, holding, openai
from services.library import storage
from views.compat.common import authenticate, client_watch
from views.errors import Shape, error_response

bp = Blueprint("compat_openai", __name__, url_prefix="/v1")

ROUTES = {"images/generations": ("POST",), "images/edits": ("POST",), "images/variations": ("POST",),
          "models": ("GET",)}


def answer_error(status: int, message: str, *, code: str | None = None, headers: dict | None = None):
    """An answer in OpenAI's error shape (errors raised anywhere take it too: views/errors.py)."""
    return error_response(status, code, message, headers, shape=Shape.OPENAI)


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
    return request.json_object(not_json="invalid_json", not_object=ValidationError("body", "send a JSON object"))


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
            item["url"] = _base_url() + url_for("compat_openai.image_file", token=common.signed_token(image))
        else:
            item["b64_json"] = common.image_base64(image)
        items.append(item)
    finished = task.finished_at
    created = calendar.timegm(finished.utctimetuple()) if finished else int(time.time())
    return jsonify({"created": created, "data": items, "output_format": "png",
                    "size": f"{task.width}x{task.height}"})


@bp.post("/images/generations")
def generations():
    user = _user()
    data = _json()
    params = openai.openai_params(user, data, edit=False)
    holding.require_worker()
    with holding.Holding():
        task = tasks.submit_task(user, params, request.headers.get("Idempotency-Key"))
        task = holding.wait_for_task(task, pause=client_watch())
    return _answer(task, data)


def _pictures(field: str = "image") -> list:
    """The picture files of a multipart request ("image", or "image[]" for several)."""
    if request.mimetype == "application/json":
        raise ValidationError(field, f"send the image as multipart/form-data in a field named '{field}'")
    files = request.files.getlist(field) + request.files.getlist(f"{field}[]")
    if not files:
        raise ValidationError(field, f"send the image as multipart/form-data in a field named '{field}'")
    return files


def _read(file) -> bytes:
    return file.stream.read(current_app.config["MAX_CONTENT_LENGTH"] + 1)


@bp.post("/images/edits")
def edits():
    """One picture: image-to-image, or inpainting with a mask; an edit by instruction (the
    native `edit`) when the chosen model edits, for one picture without a mask or several."""
    user = _user()
    files = _pictures()
    data = {key: request.form.get(key) for key in request.form}
    masks = request.files.getlist("mask")
    if data.get("mask") and not masks:
        raise ValidationError("mask", "send the mask as a PNG file in a multipart field named 'mask'")
    if len(masks) > 1:
        raise ValidationError("mask", "one mask per request is supported here")
    params = openai.openai_params(user, data, edit=True)
    kind = openai.edit_kind(user, params, pictures=len(files), masked=bool(masks))
    holding.require_worker()
    key = request.headers.get("Idempotency-Key")
    if kind == "edit":
        params = openai.edit_params(params, [_read(file) for file in files])
        with holding.Holding():
            task = holding.wait_for_task(tasks.submit_task(user, params, key), pause=client_watch())
        return _answer(task, data)
    # The mask: a PNG whose fully transparent pixels are the area to edit (OpenAI's rule).
    mask = _read(masks[0]) if masks else None
    with holding.Holding():
        task = common.submit_with_picture(user, params, _read(files[0]), "image", key,
                                          size_from_picture=True, mask=mask, mask_reading="openai")
        task = holding.wait_for_task(task, pause=client_watch())
    return _answer(task, data)


@bp.post("/images/variations")
def variations():
    """Variations of a picture: image-to-image at openai.VARIATION_STRENGTH (docs/API.md)."""
    user = _user()
    files = _pictures()
    if len(files) > 1:
        raise ValidationError("image", "a variation is of one picture; send one")
    data = {key: request.form.get(key) for key in request.form}
    params = openai.variation_params(user, data)
    holding.require_worker()
    with holding.Holding():
        task = common.submit_with_picture(user, params, _read(files[0]), "image",
                                          request.headers.get("Idempotency-Key"), size_from_picture=True)
        task = holding.wait_for_task(task, pause=client_watch())
    return _answer(task, data)


def _model_item(row) -> dict:
    return {"id": row.id, "object": "model",
            "created": calendar.timegm(row.created_at.utctimetuple()) if row.created_at else 0,
            "owned_by": "daydream", "name": row.name, "family": row.family or "sd1"}


@bp.get("/models")
def models():
    return jsonify({"object": "list", "data": [_model_item(row) for row in access.usable_models(_user())]})


@bp.get("/models/<path:model_id>")
def model(model_id: str):
    row = common.find_model(model_id)
    if row is None or row.id not in access.usable_model_ids(_user()):
        raise NotFound(f"The model '{model_id[:80]}' does not exist.", code="model_not_found", field="model")
    return jsonify(_model_item(row))


@bp.get("/images/files/<token>.png")
def image_file(token: str):
    image = common.image_for_token(token)
    response = send_file(storage.file_of(image), mimetype="image/png", conditional=True, max_age=0)
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def not_here(rest: str):
    allowed = ROUTES.get(rest)
    if allowed:
        return answer_error(405, "Method not allowed.", code="method_not_allowed",
                            headers={"Allow": ", ".join(allowed)})
    return answer_error(404, f"Unknown route: {request.method} /v1/{rest[:100]}", code="unknown_url")
