"""Staff: convert a single-file checkpoint into a diffusers folder, merge two or three
models of one family (services/generation/model_ops.py). Each answers 202 with the
queued job (services/generation/model_jobs.py shows it); the archive worker runs it
(worker/model_ops.py) and `model_job` events follow its progress. GET
/admin/model-jobs lists the jobs (views/api/model_jobs.py). Starting one needs a recent
sign-in from a browser session, like the other staff writes."""
from __future__ import annotations

from flask import jsonify
from flask_login import current_user

from services.generation import model_jobs, model_ops
from views.api.common import body, staff_bp
from views.api.openapi import answer, op, ref
from views.reauth import require_recent_sign_in


@staff_bp.post("/admin/models/convert")
def admin_convert_model():
    data = body()
    require_recent_sign_in()
    job = model_ops.start_convert(data, current_user._get_current_object())
    return jsonify(model_jobs.job_to_dict(job)), 202


@staff_bp.post("/admin/models/merge")
def admin_merge_models():
    data = body()
    require_recent_sign_in()
    job = model_ops.start_merge(data, current_user._get_current_object())
    return jsonify(model_jobs.job_to_dict(job)), 202


_STR = {"type": "string"}
_DESTINATION = {"type": "string", "minLength": 1, "maxLength": model_ops.MAX_DESTINATION,
                "description": "a new folder under the models folder (\"merged/my-model\"); not one that exists, "
                               "leads out of the folder, or is a folder of LoRAs, upscalers, guides or configs"}
_DTYPE = {"enum": list(model_ops.DTYPES), "default": "source",
          "description": "the precision the result is saved in: source (the source's; a merge: model A's), "
                         "fp16, bf16 or fp32"}
OPENAPI = {
    "/admin/models/convert": {"post": op(
        "Convert a single-file checkpoint into a diffusers folder, as a background job (staff)",
        answer("The queued job (options: models, method, alpha, dtype, family, stage, saved_dtype)",
               ref("ModelJob"), "202"),
        body={"type": "object", "required": ["model", "destination"], "properties": {
            "model": {"type": "string", "description": "a single-file model's id (.safetensors; a .ckpt only "
                                                       "when it is in the models folder)"},
            "destination": _DESTINATION, "dtype": _DTYPE, "reason": _STR}},
        error_codes=(401, 403, 422))},
    "/admin/models/merge": {"post": op(
        "Merge two or three models of one family into a diffusers folder, as a background job (staff)",
        answer("The queued job (options: models, method, alpha, dtype, family, stage, saved_dtype)",
               ref("ModelJob"), "202"),
        body={"type": "object", "required": ["models", "destination"], "properties": {
            "models": {"type": "array", "minItems": 2, "maxItems": 3, "items": _STR,
                       "description": "[A, B] for a weighted sum, [A, B, C] for add difference; models of one "
                                      "family and architecture (no LoRAs, guides or upscalers)"},
            "method": {"enum": list(model_ops.METHODS), "default": "weighted_sum",
                       "description": "weighted_sum: A·(1−α) + B·α; add_difference: A + (B − C)·α"},
            "alpha": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "destination": _DESTINATION, "dtype": _DTYPE, "reason": _STR}},
        error_codes=(401, 403, 422))},
}
