"""The OpenAI Images API (views/compat/openai.py) in Daydream's terms: a generations
request (JSON) or an edit's form fields as task parameters. Nothing here knows a request."""
from __future__ import annotations

import re

from models import User
from services.core.errors import ValidationError
from services.generation.compat import common
from services.generation.compat.common import fit_to_card, in_client_terms, truthy
from services.generation.loratags import extract_loras

# Daydream's fields by OpenAI's names for them: a complaint names the client's field
# (views/errors.py renames it).
OPENAI_NAMES = {"samples": "n", "width": "size", "height": "size", "init_image": "image", "loras": "prompt"}
OPENAI_DEFAULT_MODELS = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")


def parse_size(value, field: str = "size") -> tuple[int, int] | None:
    """"WxH" as (w, h); "auto" (or nothing) as None: the model's own size."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    match = re.fullmatch(r"\s*(\d{1,6})\s*[x×X]\s*(\d{1,6})\s*", value) if isinstance(value, str) else None
    if not match:
        raise ValidationError(field, "must be \"WIDTHxHEIGHT\" (e.g. \"512x512\") or \"auto\"")
    return int(match.group(1)), int(match.group(2))


@in_client_terms
def openai_params(user: User, data: dict, *, edit: bool) -> dict:
    """Daydream task parameters from an OpenAI images request (JSON, or the form
    fields of an edit). `model` is a Daydream model (id or name); OpenAI's own model
    names mean the caller's default. quality, style, user and the like are accepted
    and ignored; what Daydream cannot do (transparent backgrounds, streaming, formats
    other than PNG) is refused. An edit's mask is a file: the view reads it
    (common.submit_with_picture, "openai" reading: its fully transparent pixels are the
    area to edit)."""
    prompt = data.get("prompt")
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise ValidationError("prompt", "is required: describe the image you want")
    if not isinstance(prompt, str):
        raise ValidationError("prompt", "must be text")
    if truthy(data.get("stream")):
        raise ValidationError("stream", "streaming is not supported here; leave it out")
    if data.get("background") not in (None, "", "auto", "opaque"):
        raise ValidationError("background", "only opaque backgrounds are made here")
    if data.get("output_format") not in (None, "", "png"):
        raise ValidationError("output_format", "images are PNG here; leave it out or send \"png\"")
    if data.get("response_format") not in (None, "", "url", "b64_json"):
        raise ValidationError("response_format", "must be \"url\" or \"b64_json\"")
    model_name = data.get("model")
    if isinstance(model_name, str) and model_name.strip().lower() in OPENAI_DEFAULT_MODELS:
        model_name = None
    if model_name is not None and not isinstance(model_name, str):
        raise ValidationError("model", "must be a model id; see GET /v1/models")
    model = common.resolve_model(user, model_name, "model")
    n = data.get("n")
    if n is None or n == "":
        n = 1
    if isinstance(n, str):
        n = n.strip()
        if not re.fullmatch(r"\d{1,3}", n):
            raise ValidationError("n", "must be a whole number")
        n = int(n)
    if isinstance(n, bool) or not isinstance(n, int):
        raise ValidationError("n", "must be a whole number")
    text, loras = extract_loras(prompt, "prompt")
    params = {"prompt": text, "model": model, "samples": n}
    if loras:
        params["loras"] = loras
    size = parse_size(data.get("size"))
    if size is not None:
        params["width"], params["height"] = size
    if edit:
        strength = data.get("strength")  # not OpenAI's: Daydream's own, for image-to-image
        if strength not in (None, ""):
            try:
                params["strength"] = float(strength)
            except (TypeError, ValueError):
                raise ValidationError("strength", "must be a number from 0 to 1")
    return fit_to_card(params)
