"""Staff: convert a single-file checkpoint into a diffusers folder, merge two or three
models of one family (services/generation/model_ops.py). Each answers 202 with the
queued job; the archive worker runs it (worker/model_ops.py) and a `model_job` event
follows its progress. GET /admin/model-jobs lists the jobs."""
from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from services.generation import model_ops
from views.api.common import body, staff_bp
from views.api.openapi import answer, op


@staff_bp.post("/admin/models/convert")
def admin_convert_model():
    return jsonify(model_ops.job_to_dict(model_ops.start_convert(body(), current_user))), 202


@staff_bp.post("/admin/models/merge")
def admin_merge_models():
    return jsonify(model_ops.job_to_dict(model_ops.start_merge(body(), current_user))), 202


_STR = {"type": "string"}
_DESTINATION = {"type": "string", "minLength": 1, "maxLength": model_ops.MAX_DESTINATION,
                "description": "a new folder under the models folder (\"merged/my-model\"); not one that exists, "
                               "leads out of the folder, or is a folder of LoRAs, upscalers, guides or configs"}
_JOB = {"type": "object", "properties": {
    "id": _STR, "kind": {"enum": ["convert", "merge"]},
    "state": {"enum": ["queued", "running", "done", "failed"]}, "source": _STR, "destination": _STR,
    "models": {"type": "array", "items": _STR}, "method": {"type": ["string", "null"]},
    "alpha": {"type": ["number", "null"]},
    "stage": {"type": ["string", "null"], "description": "queued, loading …, merging tensor i/N, saving, "
                                                          "scanning, done, failed"},
    "step": {"type": "integer"}, "steps": {"type": ["integer", "null"]},
    "error": {"type": ["string", "null"]}, "model_id": {"type": ["string", "null"],
                                                        "description": "the catalog row the result got (disabled)"},
    "created_at": _STR, "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]}}}

OPENAPI = {
    "/admin/models/convert": {"post": op(
        "Convert a single-file checkpoint into a diffusers folder, as a background job (staff)",
        answer("The queued job", _JOB, "202"),
        body={"type": "object", "required": ["model", "destination"], "properties": {
            "model": {"type": "string", "description": "a single-file model's id (.safetensors; a .ckpt only "
                                                       "when it is in the models folder)"},
            "destination": _DESTINATION, "reason": _STR}},
        error_codes=(401, 403, 422))},
    "/admin/models/merge": {"post": op(
        "Merge two or three models of one family into a diffusers folder, as a background job (staff)",
        answer("The queued job", _JOB, "202"),
        body={"type": "object", "required": ["models", "destination"], "properties": {
            "models": {"type": "array", "minItems": 2, "maxItems": 3, "items": _STR,
                       "description": "[A, B] for a weighted sum, [A, B, C] for add difference; models of one "
                                      "family and architecture (no LoRAs, guides or upscalers)"},
            "method": {"enum": list(model_ops.METHODS), "default": "weighted_sum",
                       "description": "weighted_sum: A·(1−α) + B·α; add_difference: A + (B − C)·α"},
            "alpha": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "destination": _DESTINATION, "reason": _STR}},
        error_codes=(401, 403, 422))},
}
