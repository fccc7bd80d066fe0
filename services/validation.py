"""Task parameters: the rules of API.md's table, one clear message per field; and the
one parser of true/false arguments."""
from __future__ import annotations

import math
import secrets
from typing import Any

from services.errors import ValidationError

MAX_SEED = 2**32 - 1
DEFAULTS = {
    "prompt": "",
    "negative_prompt": "",
    "width": 512,
    "height": 512,
    "steps": 30,
    "guidance": 7.5,
    "samples": 1,
    "seed": None,
    "strength": 0.75,
}


def bool_arg(field: str, raw: str) -> bool:
    """A true/false argument as sent (true/1/yes, false/0/no); anything else is a 422."""
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ValidationError(field, "must be true or false")


def task_cost(steps: int, width: int, height: int, samples: int) -> int:
    """One token buys up to 50 steps of a 512×512 image (API.md)."""
    return samples * math.ceil(steps * width * height / (50 * 512 * 512))


def _int(data: dict, field: str, low: int, high: int, errors: dict) -> int | None:
    value = data.get(field, DEFAULTS.get(field))
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        errors[field] = "must be a whole number"
        return None
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except ValueError:
        number = None
    if number is None:
        errors[field] = "must be a whole number"
        return None
    if not low <= number <= high:
        errors[field] = f"must be between {low} and {high}"
        return None
    return number


def _float(data: dict, field: str, low: float, high: float, errors: dict) -> float | None:
    value = data.get(field, DEFAULTS.get(field))
    if isinstance(value, bool):
        errors[field] = "must be a number"
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors[field] = "must be a number"
        return None
    if not math.isfinite(number) or not low <= number <= high:
        errors[field] = f"must be between {low:g} and {high:g}"
        return None
    return number


def _text(data: dict, field: str, required: bool, errors: dict) -> str:
    value = data.get(field, DEFAULTS[field])
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[field] = "must be text"
        return ""
    value = value.replace("\x00", "").strip()
    if required and not value:
        errors[field] = "is required: describe the image you want"
    elif len(value) > 1000:
        errors[field] = f"is {len(value)} characters long; at most 1000 are allowed"
    return value


def validate_task_params(data: Any, *, limits: dict, models: list[str], schedulers: dict,
                         default_model: str, default_scheduler: str) -> dict:
    """Return clean parameters or raise ValidationError naming every bad field."""
    if not isinstance(data, dict):
        raise ValidationError("body", "send a JSON object with the task parameters")
    errors: dict[str, str] = {}
    params: dict[str, Any] = {
        "prompt": _text(data, "prompt", True, errors),
        "negative_prompt": _text(data, "negative_prompt", False, errors),
    }
    max_side = limits["max_side"]
    for side in ("width", "height"):
        value = _int(data, side, 64, max_side, errors)
        if value is not None and value % 8:
            errors[side] = f"must be a multiple of 8 (try {round(value / 8) * 8 or 64})"
        params[side] = value
    if "width" not in errors and "height" not in errors:
        pixels = params["width"] * params["height"]
        if pixels > limits["max_pixels"]:
            errors["width"] = (f"{params['width']}×{params['height']} is {pixels} pixels; "
                               f"at most {limits['max_pixels']} are allowed")
    params["steps"] = _int(data, "steps", 1, 150, errors)
    params["guidance"] = _float(data, "guidance", 0, 30, errors)
    params["samples"] = _int(data, "samples", 1, limits["max_samples"], errors)
    seed = data.get("seed")
    if seed is None or seed == "":
        params["seed"] = secrets.randbelow(MAX_SEED + 1)
    else:
        params["seed"] = _int(data, "seed", 0, MAX_SEED, errors)
    scheduler = data.get("scheduler") or default_scheduler
    if not isinstance(scheduler, str) or scheduler not in schedulers:
        errors["scheduler"] = f"must be one of {', '.join(schedulers)}"
    params["scheduler"] = scheduler
    model = data.get("model") or default_model
    if not isinstance(model, str):
        errors["model"] = "must be a model id; see GET /api/v1/models"
    elif model not in models:
        errors["model"] = f"'{model}' is not an available model; see GET /api/v1/models"
    params["model"] = model
    init_image = data.get("init_image")
    if init_image is not None and not isinstance(init_image, str):
        errors["init_image"] = "must be an image id"
    params["init_image"] = init_image or None
    strength = _float(data, "strength", 0, 1, errors)  # checked even where it does not apply
    params["strength"] = strength if params["init_image"] else None
    board_id = data.get("board_id")
    if board_id is not None and not isinstance(board_id, str):
        errors["board_id"] = "must be a board id, or null"
    params["board_id"] = board_id or None
    unknown = set(data) - set(DEFAULTS) - {"scheduler", "model", "init_image", "board_id"}
    if unknown:
        errors[sorted(unknown)[0]] = "is not a task parameter"
    if errors:
        field = next(iter(errors))
        raise ValidationError(field, errors[field], fields=errors)
    return params
