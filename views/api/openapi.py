"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Each module of views/api documents its own routes in a module-level OPENAPI dict
(paths relative to /api/v1) built with the helpers here, and may add OPENAPI_SCHEMAS;
document() merges them. The task parameters' schema comes from the rules table
(services/generation/params.py)."""
from __future__ import annotations

import sys

from flask import jsonify

from services.core.args import MAX_JSON_DEPTH, MAX_JSON_INT
from services.generation.guides import CONTROL_MODES, PROCESSOR_RES, RESIZE_MODES, UNIT_DEFAULTS, WEIGHT
from services.generation.params import (
    BUILTIN_UPSCALERS,
    HIRES_DEFAULT_UPSCALER,
    HIRES_RULES,
    LATENT_UPSCALERS,
    RULES,
    Rule,
)
from services.generation.schedulers import SCHEDULERS
from views.api.common import bp, public

ERROR = {"$ref": "#/components/schemas/Error"}


def answer(description: str, schema: dict | None = None, status: str = "200") -> dict:
    body = {"description": description}
    if schema:
        body["content"] = {"application/json": {"schema": schema}}
    return {status: body}


def errors(*codes: int) -> dict:
    names = {400: "Bad request", 401: "Not signed in", 402: "Not enough tokens", 403: "Not allowed",
             404: "Not found", 409: "State conflict", 413: "Too large", 415: "Unsupported media type",
             422: "Invalid field", 429: "Rate limited or queue full",
             503: "A dependency is down"}
    return {str(c): {"description": names[c], "content": {"application/json": {"schema": ERROR}}}
            for c in codes}


def op(summary: str, answers: dict, *, body: dict | None = None, params: list | None = None,
        public: bool = False, error_codes=(401,)) -> dict:
    op = {"summary": summary, "responses": {**answers, **errors(*error_codes)}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


def path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


MAX_OFFSET = 10**9  # as paging() (views/api/common.py) allows
PAGING = [{"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET,
                                                        "default": 0}},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}]


def list_of(item: str) -> dict:
    return {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def parameter_schema(rule: Rule) -> dict:
    """A task parameter's JSON Schema from its rule. A maximum that only the user's
    limits set (sizes, samples) is left out: it differs from user to user."""
    if rule.kind == "choice":
        return {"type": "string", "enum": list(rule.choices), "default": rule.default}
    if rule.kind == "bool":
        return {"type": ["boolean", "null"], "default": rule.default}
    if rule.kind == "text":
        if rule.required:
            return {"type": "string", "minLength": 1, "maxLength": rule.max_length}
        return {"type": "string", "maxLength": rule.max_length, "default": rule.default}
    kind = "integer" if rule.kind == "int" else "number"
    schema: dict = {"type": kind if rule.default is not None else [kind, "null"]}
    if rule.kind == "int" and rule.step > 1:
        schema["multipleOf"] = rule.step
    schema["minimum"] = rule.min
    if rule.max is not None:
        schema["maximum"] = rule.max
    if rule.default is not None:
        schema["default"] = rule.default
    return schema


# What a task's parameters may be whatever the state. What else decides (a 422 naming the
# field): the model's card (its size step, schedulers, whether it takes guidance and a
# negative prompt), your plan (the largest side, pixels and samples), the ids of your
# images, boards and the enabled models and LoRAs, and image-to-image's one step at
# least (int(steps × strength) >= 1).
INPAINT_NOTE = "; needs init_image and a mask or outpaint (else it is refused at any value but its default)"
OUTPAINT_SIDE = {"type": "integer", "minimum": 0, "maximum": 16384, "default": 0,
                 "description": "pixels added on this side; a multiple of the model's size_step"}
OUTPAINT = {"type": ["object", "null"], "additionalProperties": False,
            "properties": {side: OUTPAINT_SIDE for side in ("left", "right", "top", "bottom")},
            "description": "Extend the picture: the new area is the mask, pre-filled from the edges. width and "
                           "height are the size the picture is fitted to (init_fit); the result, and the cost, "
                           "are (width + left + right) × (height + top + bottom). Needs init_image."}
INPAINT_DESCRIPTIONS = {
    "mask_blur": "feathering radius of the mask's edge, px (Gaussian, as A1111's Mask blur)",
    "inpaint_area": "whole: the whole picture is rendered; masked: only the mask's box plus inpaint_padding, "
                    "at the model's native size, pasted back (A1111's Only masked)",
    "inpaint_padding": "px around the mask's box with inpaint_area masked",
    "masked_content": "what the masked area starts from: the original pixels, fill (its blurred surroundings), "
                      "latent_noise (seeded noise) or latent_nothing (flat grey)",
    "mask_invert": "repaint what the mask leaves out instead",
    "initial_noise_multiplier": "A1111's extra-noise multiplier, recorded with the task",
}
# Hires fix (services/generation/params.py:validate_hires): the task's width × height is the
# first pass; the final size is `scale` times it or `width` and/or `height`. What else
# decides (a 422 naming hires): the model's size step, your plan's side and pixel limits
# on the final size, the enabled upscaler models, the model's schedulers and negative
# prompt, the prompt rules, and int(steps × denoising) >= 1 unless denoising is 0.
HIRES_SIDE = {"type": ["integer", "null"], "minimum": 1, "multipleOf": RULES["width"].step,
              "description": "the final size (a multiple of the model's size_step, at least the first pass's); "
                             "give width and/or height (one alone keeps the first pass's shape) or scale, not both"}
HIRES = {
    "type": ["object", "null"], "additionalProperties": False,
    "description": "Hires fix (text to image only: refused with init_image, a mask or outpaint): a first pass "
                   "at width × height, its picture (or latents) upscaled to the final size, then an "
                   "image-to-image pass there at `denoising`; one task, one progress bar of "
                   "steps + int(hires steps × denoising) per image. The size limits apply to the final size. "
                   "Cost: the first pass plus samples × ceil(int(hires steps × denoising) × final width × final "
                   "height / (50 × 512 × 512)).",
    "properties": {
        "scale": {"type": ["number", "null"], "minimum": HIRES_RULES["scale"].min,
                  "maximum": HIRES_RULES["scale"].max, "default": HIRES_RULES["scale"].default,
                  "description": "the final size as a multiple of width × height (each side rounded to the "
                                 "model's size_step); not with width or height"},
        "width": HIRES_SIDE, "height": HIRES_SIDE,
        "upscaler": {"type": ["string", "null"], "default": HIRES_DEFAULT_UPSCALER, "description": (
            "a latent mode (" + ", ".join(LATENT_UPSCALERS) + "), a built-in resampler ("
            + ", ".join(BUILTIN_UPSCALERS) + ") or an enabled upscaler model's id (GET /models, kind upscaler); "
            "the latent modes enlarge the first pass's latents on every family but FLUX.1 Kontext "
            "(there, and with denoising 0, the picture is resized with Lanczos)")},
        "steps": {"type": ["integer", "null"], "minimum": HIRES_RULES["steps"].min,
                  "maximum": HIRES_RULES["steps"].max, "default": HIRES_RULES["steps"].default,
                  "description": "the second pass's steps; 0: the first pass's. int(steps × denoising) of them run"},
        "denoising": {"type": ["number", "null"], "minimum": HIRES_RULES["denoising"].min,
                      "maximum": HIRES_RULES["denoising"].max, "default": HIRES_RULES["denoising"].default,
                      "description": "the second pass's strength; 0: the upscale alone"},
        "prompt": {"type": ["string", "null"], "maxLength": RULES["prompt"].max_length,
                   "description": "the second pass's prompt; empty or null: the task's"},
        "negative_prompt": {"type": ["string", "null"], "maxLength": RULES["negative_prompt"].max_length,
                            "description": "the second pass's negative prompt; empty or null: the task's"},
        "scheduler": {"type": ["string", "null"], "enum": [*SCHEDULERS, None],
                      "description": "the second pass's scheduler (one of the model's); null: the task's"},
    },
}
# Guides (services/generation/guides.py; API.md, "Guides and editing"). What else decides (a
# 422 naming control, references or edit): the model's card (controlnet, ip_adapter, edits,
# max_references), the enabled guide models of its family, this install's preprocessors
# and their thresholds, your images, the counts (DAYDREAM_MAX_CONTROL, DAYDREAM_MAX_REFERENCES),
# start after end, and what an edit leaves out (init_image, mask, outpaint, hires, strength).
GUIDE_PICTURE = {"type": "string", "minLength": 1, "maxLength": 24 * 1024 * 1024, "description": (
    "an image id of yours or a data URL (data:image/png;base64,…; PNG, JPEG or WebP), checked as an upload "
    "and stored as your image")}
GUIDE_WEIGHT = {"type": ["number", "null"], "minimum": WEIGHT[0], "maximum": WEIGHT[1], "default": 1}
FRACTION = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
CONTROL_UNIT = {
    "type": "object", "required": ["image", "model"], "additionalProperties": False,
    "properties": {
        "image": GUIDE_PICTURE,
        "model": {"type": "string", "minLength": 1,
                  "description": "an enabled ControlNet of the model's family (GET /models, kind controlnet)"},
        "preprocessor": {"type": ["string", "null"], "default": UNIT_DEFAULTS["preprocessor"],
                         "description": "one of GET /control/preprocessors; none: the image is the map"},
        "weight": GUIDE_WEIGHT,
        "start": {**FRACTION, "default": 0, "description": "the fraction of the steps where it starts"},
        "end": {**FRACTION, "default": 1, "description": "where it ends; not before start"},
        "control_mode": {"type": ["string", "null"], "enum": [*CONTROL_MODES, None], "default": "balanced",
                         "description": "A1111's Balanced, My prompt is more important, ControlNet is more "
                                        "important; FLUX: balanced only"},
        "resize_mode": {"type": ["string", "null"], "enum": [*RESIZE_MODES, None], "default": "crop",
                        "description": "how the image is fitted to the task: resize (Just Resize), crop (Crop "
                                       "and Resize), fill (Resize and Fill)"},
        "processor_res": {"type": ["integer", "null"], "minimum": PROCESSOR_RES[0], "maximum": PROCESSOR_RES[1],
                          "default": UNIT_DEFAULTS["processor_res"]},
        "threshold_a": {"type": ["number", "null"], "description": "the preprocessor's own (canny: low, 1–255, "
                                                                   "100); null: its default"},
        "threshold_b": {"type": ["number", "null"], "description": "the preprocessor's own (canny: high, 1–255, "
                                                                   "200); null: its default"},
        "pixel_perfect": {"type": ["boolean", "null"], "default": False},
    },
}
REFERENCE = {
    "type": "object", "required": ["image", "model"], "additionalProperties": False,
    "properties": {
        "image": GUIDE_PICTURE, "weight": GUIDE_WEIGHT,
        "model": {"type": "string", "minLength": 1,
                  "description": "an enabled IP-Adapter of the model's family (GET /models, kind ipadapter)"},
    },
}
EDIT = {
    "type": ["object", "null"], "required": ["images"], "additionalProperties": False,
    "description": "Edit by instruction (a model whose card has edits true; the prompt is the instruction): "
                   "1 to the card's max_references pictures, the first the one to edit. Without width and "
                   "height, the first picture's shape at the model's native pixel count. Not with init_image, "
                   "mask, outpaint, hires, strength, control or references. Cost: the task's and its reference's, "
                   "or each picture's when the card says edit_each (FLUX.2, Qwen-Image-Edit Plus), each "
                   "reference at the pixels the card's edit_reference_pixels says the model encodes it at "
                   "(the result's where null).",
    "properties": {"images": {"type": "array", "minItems": 1, "items": GUIDE_PICTURE}},
}
TASK_PARAMS = {
    "type": "object", "required": [name for name, rule in RULES.items() if rule.required],
    "additionalProperties": False,  # "is not a task parameter"
    "description": "Sizes and samples are limited by your plan; the model's card sets the size step, "
                   "its schedulers and whether guidance and a negative prompt apply; image-to-image "
                   "needs int(steps × strength) >= 1. Each is a 422 naming the field.",
    "properties": {
        **{name: parameter_schema(rule) for name, rule in RULES.items()},
        "scheduler": {"type": ["string", "null"], "enum": [*SCHEDULERS, None],
                      "description": "one of the model's schedulers (GET /schedulers); null: the model's"},
        "model": {"type": ["string", "null"], "description": "an enabled model's id (GET /models); "
                                                           "null: the default model"},
        "init_image": {"type": ["string", "null"], "description": "an image of yours (an upload or a result)"},
        **{name: {**parameter_schema(RULES[name]), "description": text + INPAINT_NOTE}
           for name, text in INPAINT_DESCRIPTIONS.items()},
        "mask": {"type": ["string", "null"], "maxLength": 24 * 1024 * 1024, "description": (
            "Inpainting: an image id of yours (an upload, a result or a mask) or a data URL "
            "(data:image/png;base64,…; PNG, JPEG or WebP). With transparency (any alpha below 255) its "
            "alpha is the mask, opaque = repaint; else its luminance, white = repaint; binarized at 128 and "
            "scaled to the init image. Needs init_image. A mask that selects nothing is a 422.")},
        "outpaint": OUTPAINT,
        "hires": HIRES,
        "control": {"type": ["array", "null"], "items": CONTROL_UNIT, "description": (
            "ControlNet units, at most DAYDREAM_MAX_CONTROL (3), for a model whose card has controlnet true; not "
            "with hires. Each adds ceil(base cost / 2) to the cost")},
        "references": {"type": ["array", "null"], "items": REFERENCE, "description": (
            "reference images (IP-Adapter), at most DAYDREAM_MAX_REFERENCES (2), for a model whose card has "
            "ip_adapter true; not with hires. Each adds samples tokens to the cost")},
        "edit": EDIT,
        "board_id": {"type": ["string", "null"], "description": "a board of yours: the results go there"},
        "loras": {"type": ["array", "null"], "description": "enabled LoRAs of the model's family (GET /models, "
                  "kind lora), at most DAYDREAM_MAX_LORAS, each once", "items": {
                      "type": "object", "required": ["id"], "additionalProperties": False, "properties": {
                          "id": {"type": "string", "minLength": 1},
                          "name": {"type": "string", "description": "ignored (the LoRA's own name is used)"},
                          "weight": {"type": "number", "minimum": -2, "maximum": 2, "default": 1}}}},
    },
}
STRING, INTEGER, BOOLEAN = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}

# Any JSON value a body may hold (services/core/args.py refuses the rest in every body, as
# a 422 naming the field): numbers within 64 bits, text without lone surrogates (JSON
# Schema cannot say that one), nested at most MAX_JSON_DEPTH levels.
NUMBER_BOUNDS = {"minimum": -MAX_JSON_INT, "maximum": MAX_JSON_INT}
JSON_VALUE = {"anyOf": [
    {"type": ["string", "boolean", "null"]},
    {"type": "number", **NUMBER_BOUNDS},
    {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
    {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/JsonValue"}},
]}

SCHEMAS = {
    "JsonValue": JSON_VALUE,
    "Error": {"type": "object", "properties": {"error": {"type": "object", "required": ["code", "message"],
              "properties": {"code": STRING, "message": STRING, "field": STRING}}}},
    "User": {"type": "object", "properties": {k: STRING for k in (
        "id", "username", "email", "first_name", "last_name", "mobile", "role", "created_at")}
        | {"tokens": INTEGER, "active": BOOLEAN, "pending": BOOLEAN, "settings": {"type": "object"}}},
    "Image": {"type": "object", "properties": {k: STRING for k in (
        "id", "kind", "task_id", "created_at", "url", "thumbnail_url", "metadata_url")}
        | {"width": INTEGER, "height": INTEGER, "seed": INTEGER,
           "source_image": {"type": "string", "description": "an upscale's result only: the id of the "
                                                             "image it was made from"}}},
    "Task": {"type": "object", "properties": TASK_PARAMS["properties"] | {
        # An upscale task's prompts are its source's (or its refining pass's, up to 2,000
        # characters; an upload's: ""), and its width × height the output's, any size.
        "prompt": STRING, "negative_prompt": STRING,
        "width": {"type": "integer", "minimum": 1}, "height": {"type": "integer", "minimum": 1},
        "hires": {"type": ["object", "null"], "description": "null without a hires fix; else its settings with "
                  "the final width and height (scale null when a size was asked for); the task's width and "
                  "height are the first pass's", "properties": {
                      "scale": {"type": ["number", "null"]}, "width": INTEGER, "height": INTEGER,
                      "upscaler": STRING, "steps": INTEGER, "denoising": {"type": "number"},
                      "prompt": STRING, "negative_prompt": STRING, "scheduler": {"type": ["string", "null"]}}},
        "upscale": {"type": ["object", "null"], "description": "null unless the task is an upscale "
                    "(POST /upscales); its width and height are the output's", "properties": {
                        "image": STRING, "scale": {"type": "number"}, "upscaler": STRING,
                        "refine": {"type": ["object", "null"], "properties": {
                            "strength": {"type": "number"}, "steps": INTEGER, "prompt": STRING,
                            "negative_prompt": STRING}}}},
        # null when the task has no init image (strength applies to image-to-image only)
        "strength": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
        "init_fit": {"enum": [*RULES["init_fit"].choices, None]},
        "mask": {"type": ["string", "null"], "description": "the id of the task's mask image (kind mask)"},
        "inpaint": {"type": ["object", "null"], "description": "null unless the task has a mask or outpaint",
                    "properties": {"mask_blur": INTEGER, "inpaint_area": {"enum": list(RULES["inpaint_area"].choices)},
                                   "inpaint_padding": INTEGER,
                                   "masked_content": {"enum": list(RULES["masked_content"].choices)},
                                   "mask_invert": BOOLEAN, "noise_multiplier": {"type": "number"},
                                   "outpaint": {"type": "object", "properties": {
                                       side: INTEGER for side in ("left", "right", "top", "bottom")}}}},
        "control": {"type": "array", "description": "the ControlNet units ([] for none), each image stored "
                    "as yours (kind control, or the image id given)", "items": {"type": "object", "properties": {
                        **{key: STRING for key in ("image", "preprocessor", "model", "model_name",
                                                   "control_mode", "resize_mode")},
                        "weight": {"type": "number"}, "start": {"type": "number"}, "end": {"type": "number"},
                        "processor_res": INTEGER, "threshold_a": {"type": ["number", "null"]},
                        "threshold_b": {"type": ["number", "null"]}, "pixel_perfect": BOOLEAN}}},
        "references": {"type": "array", "description": "the reference images ([] for none), each stored as "
                       "yours (kind reference, or the image id given)", "items": {"type": "object", "properties": {
                           "image": STRING, "weight": {"type": "number"}, "model": STRING, "model_name": STRING}}},
        "edit": {"type": ["object", "null"], "description": "null unless the task is an edit; its pictures' "
                 "image ids (a data URL stored as your upload)", "properties": {
                     "images": {"type": "array", "items": STRING}}},
        "id": STRING, "state": {"enum": ["queued", "running", "done", "failed", "canceled"]},
        "cost": INTEGER, "refunded": BOOLEAN, "position": {"type": ["integer", "null"]},
        "progress": {"type": "object", "properties": {"step": INTEGER, "total": INTEGER}},
        "eta_s": {"type": ["number", "null"]}, "run_s": {"type": ["number", "null"]},
        "images": {"type": "array", "items": ref("Image")},
        "error": {"type": ["string", "null"]}, "created_at": STRING,
        "duration_s": {"type": ["number", "null"]}}},
}


PAGING_NAMES = {p["name"] for p in PAGING}


def _shared_answers(operation: dict) -> dict:
    """Add the answers every route gets from views/api's shared helpers: a JSON body that
    does not parse is a 400 (`bad_json`, body()) and a field that does not fit is a 422;
    `offset` or `limit` out of range is a 422 (paging())."""
    extra = []
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        extra += [400, 422]
    if any(p.get("in") == "query" and p.get("name") in PAGING_NAMES for p in operation.get("parameters", ())):
        extra.append(422)
    missing = [c for c in extra if str(c) not in operation["responses"]]
    if missing:
        operation = {**operation, "responses": {**operation["responses"], **errors(*missing)}}
    return operation


def _bounded(schema):
    """A request body's schema with what every body shares spelled out: a field it does not
    name is ignored, but its value is still checked (JsonValue); a number is within 64
    bits. (Where a route refuses unknown fields, its schema says additionalProperties:
    false itself.)"""
    if isinstance(schema, list):
        return [_bounded(item) for item in schema]
    if not isinstance(schema, dict) or "$ref" in schema:
        return schema
    out = {key: _bounded(value) if key not in ("enum", "const", "default") else value
           for key, value in schema.items()}
    types = out.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types and "additionalProperties" not in out:
        out["additionalProperties"] = ref("JsonValue")
    if "integer" in types or "number" in types:
        out = {**NUMBER_BOUNDS, **out}
    return out


def _with_bounded_body(operation: dict) -> dict:
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return operation
    schema = _bounded(content["application/json"]["schema"])
    return {**operation, "requestBody": {**operation["requestBody"], "content": {
        **content, "application/json": {**content["application/json"], "schema": schema}}}}


def document() -> dict:
    paths: dict = {}
    schemas = dict(SCHEMAS)
    for name in sorted(sys.modules):
        module = sys.modules[name]
        if name.startswith("views.api.") and module is not None:
            for path, operations in getattr(module, "OPENAPI", {}).items():
                paths.setdefault(path, {}).update(
                    {method: _shared_answers(_with_bounded_body(operation))
                     for method, operation in operations.items()})
            schemas.update(getattr(module, "OPENAPI_SCHEMAS", {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "Daydream API", "version": "1", "description": (
            "Every JSON body: a field an operation does not name is ignored unless its schema "
            "says additionalProperties: false (then it is a 422 naming it), but its value is "
            "checked all the same: text with a lone surrogate, or a number beyond 64 bits "
            "(±9223372036854775807) or not finite, is a 422 naming the field; nesting deeper than "
            f"{MAX_JSON_DEPTH} levels, or a body that is not a JSON object, is a 400 (bad_json).")},
        "servers": [{"url": "/api/v1"}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "session"}}},
        "security": [{"bearer": []}, {"session": []}],
    }


@public
@bp.get("/openapi.json")
def openapi():
    return jsonify(document())
