"""The OpenAI Images API (views/compat/openai.py) in Daydream's terms: a generations
request (JSON), an edit's form fields (image-to-image, inpainting, or an edit by
instruction on a model that edits: the native `edit`) and a variation's, as task
parameters. Nothing here knows a request."""
from __future__ import annotations

import re

from models import User
from services.core.errors import ValidationError
from services.generation import access, catalog
from services.generation.compat import common
from services.generation.compat.common import fit_to_card, in_client_terms, truthy
from services.generation.loratags import extract_loras

# Daydream's fields by OpenAI's names for them: a complaint names the client's field
# (views/errors.py renames it).
OPENAI_NAMES = {"samples": "n", "width": "size", "height": "size", "init_image": "image", "loras": "prompt",
                "edit": "image"}
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


# --- edits by instruction, and variations ------------------------------------------------

# What a variation asks for when the caller gives no prompt (OpenAI's variations take
# none): words that steer nowhere, so the picture itself leads.
VARIATION_PROMPT = "a picture"
VARIATION_STRENGTH = 0.6  # image-to-image at this strength keeps the layout, redraws the rest


def editing_models(user: User, pictures: int = 1) -> list[str]:
    """The enabled models that edit by instruction and take this many pictures (the one
    list every refusal names, so it can be narrowed to what the caller may use)."""
    cards = catalog.cards()
    return [row.id for row in access.usable_models(user)
            if getattr(cards.get(row.id), "edits", False) and cards[row.id].max_references >= pictures]


@in_client_terms
def edit_kind(user: User, params: dict, *, pictures: int, masked: bool) -> str:
    """"edit" when the request is an edit by instruction (the chosen model edits and takes
    this many pictures; one picture with a mask is inpainting and stays "picture"), else
    "picture" (image-to-image, or inpainting with the mask). Several pictures on a model
    that does not take them: a 400 naming the models that do."""
    card = catalog.cards().get(params["model"])
    edits = card is not None and card.edits
    if pictures > 1:
        if edits and card.max_references >= pictures and not masked:
            return "edit"
        takers = editing_models(user, pictures)
        which = (f"choose one that does: {', '.join(takers)}" if takers
                 else "no model here edits that many pictures")
        if masked:
            raise ValidationError("mask", f"a mask goes with one picture; several pictures are an edit by "
                                          f"instruction, without a mask ({which})")
        if edits:
            raise ValidationError("image", f"'{params['model']}' takes at most {card.max_references} pictures; "
                                           f"{which}")
        raise ValidationError("image", f"'{params['model']}' does not edit several pictures by instruction; {which}")
    if edits and masked:
        raise ValidationError("mask", f"'{params['model']}' edits by instruction and takes no mask; leave the "
                                      "mask out, or choose an inpainting model")
    return "edit" if edits else "picture"


def edit_params(params: dict, pictures: list[bytes]) -> dict:
    """An edit by instruction (the native `edit`): the prompt is the instruction, the
    pictures go as data URLs (stored as the caller's uploads with the task); the size,
    when none is asked for, follows the first picture."""
    params = {key: value for key, value in params.items() if key != "strength"}
    params["edit"] = {"images": [common.data_url(data) for data in pictures]}
    return params


@in_client_terms
def variation_params(user: User, data: dict) -> dict:
    """A variation (POST /v1/images/variations): image-to-image of the picture at
    VARIATION_STRENGTH with VARIATION_PROMPT, unless the request gives Daydream's own
    `prompt` and `strength` fields. A model that only edits by instruction is refused."""
    prompt = data.get("prompt")
    asked = {**data, "prompt": prompt if isinstance(prompt, str) and prompt.strip() else VARIATION_PROMPT}
    if asked.get("strength") in (None, ""):
        asked["strength"] = VARIATION_STRENGTH
    params = openai_params(user, asked, edit=True)
    card = catalog.cards().get(params["model"])
    if card is not None and card.edits:
        raise ValidationError("model", f"'{params['model']}' edits by instruction; variations are made by "
                                       "image-to-image: choose another model (GET /v1/models)")
    return params
