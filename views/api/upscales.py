"""Upscales: POST /api/v1/upscales makes one of your images bigger, as a task
(services/generation/upscales.py; the worker's kind is worker/kinds/upscale.py)."""
from __future__ import annotations

from flask import jsonify, request
from flask_login import current_user

from services.generation import estimates, tasks, upscales
from views.api.common import body, bp
from views.api.openapi import answer, op, ref


@bp.post("/upscales")
def submit_upscale():
    task = upscales.submit_upscale(current_user, body(), request.headers.get("Idempotency-Key"))
    return jsonify({**tasks.task_to_dict(task), "estimate": estimates.for_task(task)}), 202


UPSCALE_BODY = {
    "type": "object", "required": ["image"], "additionalProperties": False,
    "description": "An upscale of one of your images: a scale or an output width and height (not both), "
                   "an upscaler (GET /models, kind upscaler, or a built-in: lanczos, nearest) and an optional "
                   "refining pass. Costs 1 token a megapixel of output, plus the refining pass as a generation "
                   "of ceil(steps × strength) steps at the output size. The output is capped by your plan "
                   "(max_upscale_pixels): over it is a 422 naming scale (or width).",
    "properties": {
        "image": {"type": "string", "minLength": 1, "description": "an image of yours (a result or an upload)"},
        "scale": {"type": ["number", "null"], "exclusiveMinimum": 1, "maximum": upscales.MAX_SCALE,
                  "description": "the output's size as a multiple of the image's (default 2)"},
        "width": {"type": ["integer", "null"], "minimum": 1, "maximum": upscales.MAX_SIDE},
        "height": {"type": ["integer", "null"], "minimum": 1, "maximum": upscales.MAX_SIDE},
        "upscaler": {"type": ["string", "null"], "description": "an upscaler's id; null: lanczos"},
        "refine": {"type": ["object", "null"], "additionalProperties": False,
                   "description": "a low-strength tiled image-to-image pass at the model's native size "
                                  "(A1111's SD upscale); null: none",
                   "properties": {
                       "strength": {"type": "number", "minimum": upscales.REFINE_STRENGTH[0],
                                    "maximum": upscales.REFINE_STRENGTH[1], "default": upscales.DEFAULT_REFINE_STRENGTH},
                       "steps": {"type": "integer", "minimum": 1, "maximum": upscales.MAX_REFINE_STEPS,
                                 "description": "default: the model card's"},
                       "prompt": {"type": "string", "maxLength": 2000,
                                  "description": "default: the source image's prompt"},
                       "negative_prompt": {"type": "string", "maxLength": 2000}}},
        "board_id": {"type": ["string", "null"], "description": "a board of yours: the result goes there"},
    },
}

OPENAPI = {
    "/upscales": {"post": op("Upscale one of your images (a task)", answer("The queued task", ref("Task"), "202"),
                             body=UPSCALE_BODY,
                             params=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                             error_codes=(400, 401, 402, 422, 429, 503))},
}
