"""Task parameters: one table of rules (RULES, API.md's table) and the cost formula
(COST). The table feeds the validation here, the OpenAPI document
(views/api/openapi.py) and the studio page (views/studio.py → rules()). A user's
limits (tasks.limits_for: their tier's, or staff's) narrow the sizes and the samples."""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from services.core.errors import ValidationError

MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Rule:
    """kind: "int", "float", "text" or "choice" (one of `choices`). max None: the
    user's limit named by `limit` decides. An int's step above 1 is enforced (a
    multiple of it); a float's step is the studio's slider step only."""
    kind: str
    default: Any
    min: int | float | None = None
    max: int | float | None = None
    step: int | float | None = None
    limit: str | None = None
    max_length: int | None = None
    required: bool = False
    choices: tuple[str, ...] | None = None


RULES: dict[str, Rule] = {
    "prompt": Rule("text", "", max_length=1000, required=True),
    "negative_prompt": Rule("text", "", max_length=1000),
    "width": Rule("int", 512, min=64, step=8, limit="max_side"),
    "height": Rule("int", 512, min=64, step=8, limit="max_side"),
    "steps": Rule("int", 30, min=1, max=150, step=1),
    "guidance": Rule("float", 7.5, min=0, max=30, step=0.5),
    "samples": Rule("int", 1, min=1, step=1, limit="max_samples"),
    "seed": Rule("int", None, min=0, max=MAX_SEED, step=1),
    "strength": Rule("float", 0.75, min=0, max=1, step=0.05),
    # How an init image of another shape is fitted to width × height: "cover" scales it
    # to fill and crops the overflow (centred); "contain" scales it to fit and pads.
    "init_fit": Rule("choice", "cover", choices=("cover", "contain")),
}
NUMERIC = tuple(name for name, rule in RULES.items() if rule.kind in ("int", "float"))
DEFAULTS = {name: rule.default for name, rule in RULES.items()}

# One token buys up to steps_unit steps of a pixels_unit-pixel image (API.md):
# cost = samples × ceil(steps × width × height / (steps_unit × pixels_unit)).
COST = {"steps_unit": 50, "pixels_unit": 512 * 512}
_SIDE = math.isqrt(COST["pixels_unit"])
COST_FORMULA = f"samples × ceil(steps × width × height / ({COST['steps_unit']} × {_SIDE} × {_SIDE}))"


def task_cost(steps: int, width: int, height: int, samples: int) -> int:
    return samples * math.ceil(steps * width * height / (COST["steps_unit"] * COST["pixels_unit"]))


# What the studio starts from with a given model, where it differs from the table: the
# built-in demo model runs on the CPU, so a small, quick picture (a few seconds) rather
# than 512 × 512 at 30 steps (about a minute on two cores). The API's defaults for an
# omitted field stay the table's (RULES), whatever the model.
MODEL_DEFAULTS: dict[str, dict[str, int]] = {
    "demo": {"width": 256, "height": 256, "steps": 8},
}
STUDIO_FIELDS = ("prompt", "negative_prompt", "steps", "guidance", "width", "height", "samples", "seed")


def studio_defaults(model_id: str | None) -> dict:
    """The panel's starting values with this model: the table's, overridden by the model's."""
    values = {name: DEFAULTS[name] for name in STUDIO_FIELDS}
    values.update(MODEL_DEFAULTS.get(model_id or "", {}))
    return values


def choice_rules() -> dict:
    """{field: {choices, default}} of the choice fields."""
    return {name: {"choices": list(rule.choices), "default": rule.default}
            for name, rule in RULES.items() if rule.kind == "choice"}


def highest(name: str, limits: dict | None = None) -> int | float | None:
    """The largest value of a field: the table's, narrowed by the user's limit."""
    rule = RULES[name]
    cap = limits.get(rule.limit) if limits and rule.limit else None
    if rule.max is None:
        return cap
    return rule.max if cap is None else min(rule.max, cap)


def rules(limits: dict | None = None) -> dict:
    """The numeric rules as JSON for a page: {field: {min, max, step, default}}, the
    maxima narrowed by `limits` (None where only a limit decides and none is given)."""
    return {name: {"min": RULES[name].min, "max": highest(name, limits), "step": RULES[name].step,
                   "default": RULES[name].default} for name in NUMERIC}


def text_rules() -> dict:
    """{field: {max_length, required}} of the text fields."""
    return {name: {"max_length": rule.max_length, "required": rule.required}
            for name, rule in RULES.items() if rule.kind == "text"}


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


def _number(data: dict, field: str, limits: dict, errors: dict):
    rule = RULES[field]
    check = _int if rule.kind == "int" else _float
    value = check(data, field, rule.min, highest(field, limits), errors)
    if value is not None and rule.kind == "int" and rule.step > 1 and value % rule.step:
        errors[field] = (f"must be a multiple of {rule.step} "
                         f"(try {round(value / rule.step) * rule.step or rule.min})")
    return value


def _text(data: dict, field: str, errors: dict) -> str:
    rule = RULES[field]
    value = data.get(field, rule.default)
    if value is None:
        value = ""
    if not isinstance(value, str):
        errors[field] = "must be text"
        return ""
    value = value.replace("\x00", "").strip()
    if rule.required and not value:
        errors[field] = "is required: describe the image you want"
    elif len(value) > rule.max_length:
        errors[field] = f"is {len(value)} characters long; at most {rule.max_length} are allowed"
    return value


def validate_task_params(data: Any, *, limits: dict, models: list[str], schedulers: dict,
                         default_model: str, default_scheduler: str) -> dict:
    """Return clean parameters or raise ValidationError naming every bad field."""
    if not isinstance(data, dict):
        raise ValidationError("body", "send a JSON object with the task parameters")
    errors: dict[str, str] = {}
    params: dict[str, Any] = {
        "prompt": _text(data, "prompt", errors),
        "negative_prompt": _text(data, "negative_prompt", errors),
    }
    for side in ("width", "height"):
        params[side] = _number(data, side, limits, errors)
    if "width" not in errors and "height" not in errors:
        pixels = params["width"] * params["height"]
        if pixels > limits["max_pixels"]:
            errors["width"] = (f"{params['width']}×{params['height']} is {pixels} pixels; "
                               f"at most {limits['max_pixels']} are allowed")
    params["steps"] = _number(data, "steps", limits, errors)
    params["guidance"] = _number(data, "guidance", limits, errors)
    params["samples"] = _number(data, "samples", limits, errors)
    seed = data.get("seed")
    if seed is None or seed == "":
        params["seed"] = secrets.randbelow(MAX_SEED + 1)
    else:
        params["seed"] = _number(data, "seed", limits, errors)
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
    strength = _number(data, "strength", limits, errors)  # checked even where it does not apply
    params["strength"] = strength if params["init_image"] else None
    fit = data.get("init_fit")
    if fit is None:
        fit = RULES["init_fit"].default
    if fit not in RULES["init_fit"].choices:
        errors["init_fit"] = "must be one of " + ", ".join(RULES["init_fit"].choices)
    params["init_fit"] = fit if params["init_image"] and "init_fit" not in errors else None
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
