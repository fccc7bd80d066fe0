"""PNG info: the generation settings a picture carries (Daydream's, A1111's, ComfyUI's,
InvokeAI's), as native task fields (services/library/pnginfo.py). Nothing is stored."""
from __future__ import annotations

from flask import current_app, jsonify, request

from services.core.errors import ValidationError
from services.generation.compat.a1111 import decode_base64_image
from services.library import pnginfo
from views.api.common import body, bp
from views.api.openapi import answer, errors


@bp.post("/png-info")
def png_info():
    """multipart `file`, or JSON {image: a data URL or base64}."""
    if request.mimetype == "multipart/form-data":
        file = request.files.get("file")
        if file is None:
            raise ValidationError("file", "send the picture as multipart/form-data in a field named 'file'")
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return jsonify(pnginfo.read_png_info(file.stream.read(limit + 1), "file"))
    data = decode_base64_image(body().get("image"), "image")
    return jsonify(pnginfo.read_png_info(data, "image"))


INFO = {"type": "object", "required": ["source", "text", "parameters"], "properties": {
    "source": {"type": ["string", "null"], "enum": ["daydream", "a1111", "comfyui", "invokeai", None]},
    "text": {"type": "string", "description": "The settings as A1111's infotext (\"\" when there are none)"},
    "parameters": {"type": "object", "description": "The settings as task fields (model: an enabled model's id; "
                                                      "model_name: a model that is not here, as written)"}}}

OPENAPI = {
    "/png-info": {"post": {
        "summary": "The generation settings a picture carries (Daydream, A1111, ComfyUI, InvokeAI)",
        "requestBody": {"required": True, "content": {
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary", "minLength": 1}}}},
            "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {
                "image": {"type": "string", "minLength": 1, "description": "A data URL, or base64"}}}}}},
        "responses": {**answer("The settings", INFO), **errors(401, 413, 415, 422)}}},
}
