"""ControlNet preprocessors: the ones this install can run, and the map one makes of a
picture (services/generation/preprocess.py; the detect service is
services/generation/detect.py)."""
from __future__ import annotations

from flask import current_app, jsonify
from flask_login import current_user

from services.generation import detect, preprocess
from views.api.common import body, bp
from views.api.openapi import answer, op

PICTURE = ("an image id of yours, or a data URL (data:image/png;base64,…; PNG, JPEG or WebP), "
           "checked as an upload is")


@bp.get("/control/preprocessors")
def preprocessors():
    return jsonify({"preprocessors": preprocess.available(current_app.config["MODELS_PATH"])})


@bp.post("/control/detect")
def detect_map():
    return jsonify(detect.detect(current_user, body()))


THRESHOLD = {"type": ["object", "null"], "required": ["label", "min", "max", "default", "step"], "properties": {
    "label": {"type": "string"}, "min": {"type": "number"}, "max": {"type": "number"},
    "default": {"type": "number"}, "step": {"type": "number"}}}
PREPROCESSOR = {"type": "object", "required": ["id", "label", "builtin", "thresholds", "needs_mask", "union_type",
                                             "sdxl_union_type"],
                "properties": {
    "id": {"type": "string", "description": "what a control unit's preprocessor names (the annotators: "
                                            "sd-webui-controlnet's module names)"},
    "label": {"type": "string"},
    "builtin": {"type": "boolean", "description": "needs no weights; false: an annotator model in "
                                                  "<models>/annotators/"},
    "thresholds": {"type": "object", "required": ["a", "b"], "properties": {"a": THRESHOLD, "b": THRESHOLD},
                   "description": "what threshold_a and threshold_b mean to it (null: not taken)"},
    "needs_mask": {"type": "boolean"},
    "union_type": {"type": ["integer", "null"], "description": "the FLUX ControlNet Union mode it feeds "
                                                               "(canny 0, tile 1, depth 2, blur 3, pose 4, "
                                                               "gray 5, lq 6)"},
    "sdxl_union_type": {"type": ["integer", "null"], "description": "the SDXL ControlNet Union mode it feeds "
                                                                    "(xinsir's: openpose 0, depth 1, hed/pidi/"
                                                                    "scribble 2, canny/lineart/mlsd 3, normal 4, "
                                                                    "segment 5, tile 6, repaint 7; null: 3)"}}}
DETECT_BODY = {
    "type": "object", "required": ["image", "preprocessor"],
    "description": "The control map a preprocessor makes of a picture, at processor_res along its short side "
                   "(the aspect kept). Nothing is stored and nothing is charged; limited per user "
                   "(429 with Retry-After).",
    "properties": {
        "image": {"type": "string", "minLength": 1, "description": f"the picture: {PICTURE}"},
        "preprocessor": {"type": "string", "minLength": 1,
                         "description": "an id of GET /control/preprocessors (built-ins: "
                                        + ", ".join(preprocess.BUILTINS) + ")"},
        "processor_res": {"type": ["integer", "null"], "minimum": preprocess.RESOLUTION[0],
                          "maximum": preprocess.RESOLUTION[1], "default": preprocess.DEFAULT_RESOLUTION},
        "threshold_a": {"type": ["number", "null"], "description": "the preprocessor's own (canny: the low "
                                                                  "threshold, 1–255, default 100; tile: the "
                                                                  "down-sampling rate, 1–8, default 1); "
                                                                  "null: its default"},
        "threshold_b": {"type": ["number", "null"], "description": "the preprocessor's own (canny: the high "
                                                                  "threshold, 1–255, default 200)"},
        "mask": {"type": ["string", "null"], "description": f"inpaint only (needed there): {PICTURE}; white "
                                                            "(or opaque, where it has transparency) is the "
                                                            "area to repaint"},
    },
}
DETECTED = {"type": "object", "required": ["image", "width", "height", "preprocessor", "processor_res",
                                           "threshold_a", "threshold_b"], "properties": {
    "image": {"type": "string", "description": "the map, data:image/png;base64,…"},
    "width": {"type": "integer"}, "height": {"type": "integer"},
    "preprocessor": {"type": "string"}, "processor_res": {"type": "integer"},
    "threshold_a": {"type": ["number", "null"], "description": "as used (a default filled in)"},
    "threshold_b": {"type": ["number", "null"]}}}

OPENAPI = {
    "/control/preprocessors": {"get": op(
        "The ControlNet preprocessors this install can run (the built-ins, and the annotators whose "
        "weights are installed)",
        answer("Preprocessors", {"type": "object", "required": ["preprocessors"], "properties": {
            "preprocessors": {"type": "array", "items": PREPROCESSOR}}}))},
    "/control/detect": {"post": op("A control map of a picture (a preview of what a control unit uses)",
                                   answer("The map", DETECTED), body=DETECT_BODY,
                                   error_codes=(400, 401, 413, 422, 429, 503))},
}
