"""Generation: models, schedulers, estimates, tasks, the queue, uploads."""
from __future__ import annotations

import redis
from flask import Response, jsonify, request
from flask_login import current_user

from services.accounts import credits
from services.core import queue
from services.core.errors import Conflict, ValidationError
from services.generation import access, catalog, dispatch, estimates, loratags, tasks, uploads, upscales
from services.library import archives
from views.api.common import body, bp, listing, paging
from views.api.openapi import PAGING, TASK_PARAMS, answer, errors, list_of, op, path_id, ref
from views.api.upscales import UPSCALE_BODY


@bp.get("/models")
def models():
    # The models with their cards, then the LoRAs (kind "lora", with their family), then the
    # upscalers (kind "upscaler": the built-in resamplers and the enabled upscaler models),
    # then the guides (kind "controlnet" or "ipadapter", with the family they guide). Models
    # and LoRAs: those the caller may use (access.py), `default` their default.
    user = current_user._get_current_object()
    return jsonify({"items": access.model_items(user) + access.lora_items(user) + catalog.upscaler_items()
                     + catalog.guides()})


@bp.get("/schedulers")
def schedulers():
    return jsonify({"items": [
        {"id": key, "name": label, "default": key == catalog.DEFAULT_SCHEDULER}
        for key, label in catalog.schedulers().items()
    ]})


@bp.post("/estimate")
def estimate():
    data = body()
    user = current_user._get_current_object()
    # funds: what can pay it (the user's tokens, and their class's pool where one pays:
    # credits.funds), so a page says "short" only when the submit would be refused.
    if "upscale" in data:  # an upscale's estimate (POST /upscales's body under "upscale")
        return jsonify({**upscales.estimate(user, data["upscale"]), "funds": credits.funds(user)})
    params = tasks.check_params(user, loratags.apply_to_request(data))
    return jsonify({**estimates.estimate(user, params, tasks.cost_for(user, params)), "funds": credits.funds(user)})


@bp.post("/tasks")
def submit():
    # <lora:name:0.8> in the prompt applies that LoRA, as on the A1111 and OpenAI routes.
    data = loratags.apply_to_request(body())
    task = tasks.submit_task(current_user, data, request.headers.get("Idempotency-Key"))
    # The estimate at submit, so the card shows a time before the first progress event.
    return jsonify({**tasks.task_to_dict(task), "estimate": estimates.for_task(task)}), 202


@bp.get("/tasks")
def list_tasks():
    offset, limit = paging()
    items, total = tasks.list_tasks(current_user, session=request.args.get("session"),
                                    offset=offset, limit=limit)
    positions = dispatch.positions(current_user.id)
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
    images = [image for image in task.images if image.review != "held"]  # (held: staff's only)
    if not images:
        raise Conflict("This task has no images to download yet.", code="no_images")
    response = Response(archives.stream_zip(archives.entries(images)),
                        mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="daydream-{task.id}.zip"'
    return response


@bp.get("/queue")
def queue_status():
    # positions: the caller's own queued tasks (what a page refreshes on a `queue` event).
    mine = dispatch.positions(current_user.id)
    try:
        workers = len(queue.workers())
    except redis.RedisError:  # the rest is the database's: answer it without the count
        workers = None
    return jsonify({**tasks.queue_stats(), "workers": workers,
                    "your_position": min(mine.values(), default=None), "positions": mine})


@bp.post("/uploads")
def upload():
    file = request.files.get("file")
    if file is None:
        raise ValidationError("file", "send the image as multipart/form-data in a field named 'file'")
    return jsonify(uploads.store_upload(current_user, file.stream, file.filename).to_dict()), 201


# --- images -----------------------------------------------------------------------


# An upscale's estimate: POST /upscales's body under "upscale" (views/api/upscales.py).
ESTIMATE_UPSCALE = {"type": "object", "required": ["upscale"], "additionalProperties": False,
                    "properties": {"upscale": UPSCALE_BODY}}

OPENAPI = {
    "/uploads": {"post": {"summary": "Upload an image for image-to-image (PNG, JPEG or WebP)",
                          "requestBody": {"required": True, "content": {"multipart/form-data": {
                              "schema": {"type": "object", "required": ["file"], "properties": {
                                  "file": {"type": "string", "format": "binary", "minLength": 1}}},
                              # bytes that are not such a picture, or a damaged one: 415
                              "encoding": {"file": {"contentType": "image/png, image/jpeg, image/webp"}}}}},
                          "responses": {**answer("The stored image", ref("Image"), "201"),
                                        **errors(401, 413, 415, 422)}}},
    "/models": {"get": op("Models", answer("Models", {"type": "object"}))},
    "/schedulers": {"get": op("Schedulers", answer("Schedulers", {"type": "object"}))},
    "/estimate": {"post": op("What a submit would cost and wait now",
                              answer("Estimate", {"type": "object", "properties": {
                                  "cost": {"type": "integer"}, "eta_s": {"type": ["number", "null"]},
                                  "wait_s": {"type": ["number", "null"]}, "run_s": {"type": ["number", "null"]},
                                  "running": {"type": "object", "additionalProperties": {"type": "number"}},
                                  "position": {"type": "integer"},
                                  "funds": {"type": "object", "description": "what can pay it", "properties": {
                                      "tokens": {"type": "integer"}, "pool": {"type": ["integer", "null"]},
                                      "class": {"type": ["string", "null"]}}},
                                  "width": {"type": "integer", "description": "an upscale's output width"},
                                  "height": {"type": "integer", "description": "an upscale's output height"}}}),
                              body={"anyOf": [TASK_PARAMS, ESTIMATE_UPSCALE]}, error_codes=(401, 422))},
    "/tasks": {
        "post": op("Submit a task", answer("The queued task", ref("Task"), "202"), body=TASK_PARAMS,
                    params=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                    error_codes=(400, 401, 402, 422, 429, 503)),
        "get": op("Your tasks, newest first", answer("Tasks", list_of("Task")),
                   params=PAGING + [{"name": "session", "in": "query", "schema": {"type": "string"},
                                     "description": "`current` for this session's tasks"}]),
    },
    "/tasks/{id}": {"get": op("A task", answer("The task", ref("Task")), params=[path_id("id")],
                               error_codes=(401, 404))},
    "/tasks/{id}/cancel": {"post": op("Cancel a queued or running task (refunded)", answer("The task", ref("Task")),
                                       params=[path_id("id")], error_codes=(401, 404, 409))},
    "/tasks/{id}/archive": {"get": op("The task's images as a ZIP",
                                       {"200": {"description": "ZIP", "content": {"application/zip": {}}}},
                                       params=[path_id("id")], error_codes=(401, 404, 409))},
    "/queue": {"get": op("The queue", answer("Queue", {"type": "object", "properties": {
        "queued": {"type": "integer"}, "running": {"type": "integer"},
        "workers": {"type": ["integer", "null"], "description": "null while the queue service (Redis) is away"},
        "your_position": {"type": ["integer", "null"]},
        "positions": {"type": "object", "additionalProperties": {"type": "integer"},
                      "description": "Your queued tasks: task id → position (1 runs next)"}}}))},
}
