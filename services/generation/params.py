"""Task parameters: one table of rules (RULES, API.md's table) and the cost formula
(COST). The table feeds the validation here, the OpenAPI document
(views/api/openapi.py) and the studio page (views/studio.py → rules()). A user's
limits (tasks.limits_for: their tier's, or staff's) narrow the sizes and the samples;
the model's card (families.py) sets the defaults, the size step, the schedulers, and
which of guidance and the negative prompt apply."""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any

from services.core.errors import ValidationError
from services.generation import fast, guides
from services.generation.families import FAMILIES, Card
from services.generation.schedulers import SCHEDULERS

MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Rule:
    """kind: "int", "float", "text", "bool" or "choice" (one of `choices`). max None: the
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
    # Inpainting (with `mask`) and outpainting (with `outpaint`), named as A1111 names them;
    # each needs init_image, and a mask or outpaint (validate_inpaint).
    "mask_blur": Rule("int", 4, min=0, max=64, step=1),  # feathering radius, px (Gaussian)
    "inpaint_area": Rule("choice", "whole", choices=("whole", "masked")),  # "Only masked": "masked"
    "inpaint_padding": Rule("int", 32, min=0, max=256, step=1),  # px around the mask's box ("masked")
    "masked_content": Rule("choice", "original", choices=("original", "fill", "latent_noise", "latent_nothing")),
    "mask_invert": Rule("bool", False),
    "initial_noise_multiplier": Rule("float", 1.0, min=0.5, max=1.5, step=0.05),
}
# The inpaint settings (RULES above) and the key each has in Task.inpaint.
INPAINT_FIELDS = {"mask_blur": "mask_blur", "inpaint_area": "inpaint_area", "inpaint_padding": "inpaint_padding",
                  "masked_content": "masked_content", "mask_invert": "mask_invert",
                  "initial_noise_multiplier": "noise_multiplier"}
OUTPAINT_SIDES = ("left", "right", "top", "bottom")
# Hires fix (the `hires` object, text-to-image only): a first pass at width × height, the
# picture (or its latents) upscaled to the final size, and a second image-to-image pass
# there. Its own table: `hires` is one nested field, not in RULES (validate_hires).
HIRES_RULES: dict[str, Rule] = {
    "scale": Rule("float", 2.0, min=1, max=4, step=0.25),
    "steps": Rule("int", 0, min=0, max=150, step=1),  # 0: the first pass's steps
    "denoising": Rule("float", 0.5, min=0, max=1, step=0.05),
}
# The latent upscale modes (torch.nn.functional.interpolate's, as A1111 names them) and the
# default; any other upscaler is a built-in resampler or an enabled upscaler model's id.
LATENT_UPSCALERS = {"latent": "Latent", "latent-antialiased": "Latent (antialiased)",
                    "latent-bicubic": "Latent (bicubic)", "latent-bicubic-antialiased": "Latent (bicubic antialiased)",
                    "latent-nearest": "Latent (nearest)", "latent-nearest-exact": "Latent (nearest-exact)"}
BUILTIN_UPSCALERS = {"lanczos": "Lanczos", "nearest": "Nearest"}
HIRES_DEFAULT_UPSCALER = "latent"
HIRES_KEYS = ("scale", "width", "height", "upscaler", "steps", "denoising", "prompt", "negative_prompt",
              "scheduler")
NUMERIC = tuple(name for name, rule in RULES.items() if rule.kind in ("int", "float"))
DEFAULTS = {name: rule.default for name, rule in RULES.items()}

# One token buys up to steps_unit steps of a pixels_unit-pixel image (API.md):
# cost = samples × ceil(steps × width × height / (steps_unit × pixels_unit)).
COST = {"steps_unit": 50, "pixels_unit": 512 * 512}
_SIDE = math.isqrt(COST["pixels_unit"])
COST_FORMULA = f"samples × ceil(steps × width × height / ({COST['steps_unit']} × {_SIDE} × {_SIDE}))"


def task_cost(steps: int, width: int, height: int, samples: int) -> int:
    return pixels_cost(steps, width * height, samples)


def pixels_cost(steps: int, pixels: int, samples: int) -> int:
    """The formula for `pixels` pixels of tokens a step (task_cost: width × height)."""
    return samples * math.ceil(steps * pixels / (COST["steps_unit"] * COST["pixels_unit"]))


def reference_pixels(card: Card | None, width: int | None, height: int | None) -> int | None:
    """The pixels each of an edit's references is encoded at with the model of `card`, for
    a width × height result: the result's pixel count held between the card's
    edit_reference_pixels (least, most) (Qwen-Image-Edit: a megapixel whatever the result;
    FLUX.2: the result's, at most a megapixel); None where it is the result's (Kontext;
    FLUX.2 up to a megapixel): the reference then costs the base again."""
    rule = card.edit_reference_pixels if card is not None else None
    if rule is None:
        return None
    least, most = rule
    result = int(width) * int(height)
    pixels = min(max(result, least), most)
    return None if pixels == result else pixels


def guide_cost(params: dict, base: int, card: Card | None = None) -> int:
    """What a task's guides add to its cost `base` (the task's cost without them: its
    steps, size and samples, and a hires fix): each ControlNet unit ceil(base / 2) (it runs
    beside the denoiser at every step, about half its work); each reference image
    `samples` tokens (an image encoder pass, and a little more attention); an edit its
    references' tokens, which join the image's at every step: once for a model that
    stitches several pictures into one reference (Kontext, Qwen-Image-Edit), and once for
    each picture for one that gives each its own tokens (card.edit_each: FLUX.2,
    Qwen-Image-Edit Plus). A reference costs `base` again where the pipeline encodes it at
    the result's size, else the formula at the pixels it encodes it at (reference_pixels:
    a 512 × 512 Qwen-Image-Edit task computes 512² + 1024² pixels a step, and pays for
    both). card: the task model's."""
    units = len(params.get("control") or ())
    references = len(params.get("references") or ())
    pictures = len((params.get("edit") or {}).get("images") or ())
    encoded = pictures if card is not None and card.edit_each else min(pictures, 1)
    pixels = reference_pixels(card, params.get("width"), params.get("height")) if encoded else None
    each = base if pixels is None else pixels_cost(params["steps"], pixels, int(params.get("samples") or 1))
    return units * math.ceil(base / 2) + references * int(params.get("samples") or 1) + encoded * each


def hires_steps(steps: int, hires: dict | None) -> int:
    """The denoising steps a hires fix's second pass runs per image: int(its steps ×
    denoising), its steps 0 meaning the first pass's (as image-to-image runs them);
    0 without a hires fix (or at denoising 0: the upscale alone)."""
    if not hires:
        return 0
    second = int(hires.get("steps") or 0) or int(steps)
    return max(0, min(second, int(second * float(hires.get("denoising") or 0))))


def hires_cost(params: dict) -> int:
    """What a hires fix adds to a task's cost: its second pass at the final size."""
    hires = params.get("hires")
    if not hires:
        return 0
    return task_cost(hires_steps(params["steps"], hires), hires["width"], hires["height"], params["samples"])


STUDIO_FIELDS = ("prompt", "negative_prompt", "steps", "guidance", "width", "height", "samples", "seed",
                 "scheduler")
LORA_WEIGHT = (-2.0, 2.0)


def fit_size(width: int, height: int, limits: dict | None, step: int) -> tuple[int, int]:
    """width × height scaled down (same shape) until it fits the pixel limit, in
    multiples of step."""
    if limits and limits.get("max_pixels") and width * height > limits["max_pixels"]:
        scale = math.sqrt(limits["max_pixels"] / (width * height))
        width = max(step, int(width * scale) // step * step)
        height = max(step, int(height * scale) // step * step)
    return width, height


def model_limits(limits: dict | None, card: Card) -> dict:
    """The user's limits with this model. A tier's side limit is meant for SD 1.x-sized
    models (512 px native); for a larger model it grows in proportion (SDXL, 1024 px:
    twice), so that a 1344 × 768 SDXL picture is a normal one. The pixel limit holds."""
    factor = max(1.0, max(card.native_width, card.native_height) / 512)
    if not limits:
        return {"max_side": card.max_side}
    side = limits.get("max_side") or card.max_side
    return {**limits, "max_side": int(side * factor) // card.size_step * card.size_step}


def card_defaults(card: Card, limits: dict | None = None) -> dict:
    """{width, height, steps, guidance, scheduler} a task with this model starts from
    (the API's defaults for omitted fields, the studio's starting values)."""
    width, height = fit_size(*card.start_size(), model_limits(limits, card), card.size_step)
    return {"width": width, "height": height, "steps": card.steps, "guidance": card.guidance,
            "scheduler": card.scheduler}


def studio_defaults(card: Card, limits: dict | None = None) -> dict:
    """The panel's starting values with this model: the table's, overridden by the card's."""
    values = {name: DEFAULTS.get(name) for name in STUDIO_FIELDS}
    values.update(card_defaults(card, limits))
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


def _int(data: dict, field: str, low: int, high: int, errors: dict, default=None) -> int | None:
    value = data.get(field)
    if value is None:  # omitted or null: the default
        value = DEFAULTS.get(field) if default is None else default
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


def _float(data: dict, field: str, low: float, high: float, errors: dict, default=None) -> float | None:
    value = data.get(field)
    if value is None:  # omitted or null: the default
        value = DEFAULTS.get(field) if default is None else default
    if isinstance(value, bool):
        errors[field] = "must be a number"
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors[field] = "must be a number"
        return None
    except OverflowError:  # an integer of more than 308 digits
        errors[field] = f"must be between {low:g} and {high:g}"
        return None
    if not math.isfinite(number) or not low <= number <= high:
        errors[field] = f"must be between {low:g} and {high:g}"
        return None
    return number


def _finite(number: int | float) -> bool:
    """False for infinities, NaN and integers too large for a float (OverflowError)."""
    try:
        return math.isfinite(number)
    except OverflowError:
        return False


def _number(data: dict, field: str, limits: dict, errors: dict, *, default=None, step: int | None = None):
    rule = RULES[field]
    check = _int if rule.kind == "int" else _float
    value = check(data, field, rule.min, highest(field, limits), errors, default)
    step = step or rule.step
    if value is not None and rule.kind == "int" and step > 1 and value % step:
        errors[field] = (f"must be a multiple of {step} "
                         f"(try {round(value / step) * step or rule.min})")
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


def fewest_steps(strength: float) -> int | None:
    """The fewest steps at which image-to-image at this strength denoises at all: it
    runs int(steps × strength) of them, skipping the rest as diffusers' img2img
    pipelines do (models.effective_steps). None at strength 0, or one so small that no
    number of steps a task may take is near enough."""
    if strength <= 0 or 1 / strength > 10**6:
        return None
    steps = max(1, math.floor(1 / strength))
    while int(steps * strength) < 1:
        steps += 1
    return steps


def lowest_strength(steps: int) -> float:
    """The lowest strength (in thousandths) at which `steps` steps denoise at least once."""
    strength = math.ceil(1000 / steps) / 1000
    while int(steps * strength) < 1:
        strength += 0.001
    return round(strength, 3)


def _check_denoising_steps(steps: int, strength: float, steps_given: bool, errors: dict) -> None:
    """Image-to-image with less than one step to run would fail in the worker (after
    charging): refuse it here, saying the minimum. The complaint is about steps when the
    client chose them and they can be enough; else about the strength."""
    if "steps" in errors or "strength" in errors or int(steps * strength) >= 1:
        return
    need, most = fewest_steps(strength), RULES["steps"].max
    if steps_given and need is not None and need <= most:
        errors["steps"] = (f"at strength {strength:g}, steps must be at least {need} "
                           f"(image-to-image runs int(steps × strength) steps: {steps} runs none)")
    else:
        errors["strength"] = (f"at {steps} steps, strength must be at least {lowest_strength(steps):g} "
                              f"(image-to-image runs int(steps × strength) steps: {strength:g} runs none)")


def _loras(data: dict, model: str | None, card: Card | None, loras: dict, max_loras: int,
           errors: dict) -> list[dict]:
    """[{id, name, weight}] of the task's LoRAs, each an enabled LoRA of the model's family."""
    raw = data.get("loras")
    if raw is None:
        return []
    if not isinstance(raw, list):
        errors["loras"] = 'must be a list of {"id": LoRA id, "weight": number}'
        return []
    if len(raw) > max_loras:
        errors["loras"] = f"at most {max_loras} LoRAs may be applied at once (got {len(raw)})"
        return []
    out, seen = [], set()
    low, high = LORA_WEIGHT
    for n, item in enumerate(raw, start=1):
        where = f"LoRA {n}" if len(raw) > 1 else "the LoRA"
        if isinstance(item, str):
            item = {"id": item}
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            errors["loras"] = f'{where}: must be {{"id": LoRA id, "weight": number}}'
            return []
        extra = set(item) - {"id", "weight", "name"}
        if extra:
            errors["loras"] = f"{where}: '{sorted(extra)[0]}' is not a LoRA setting (id, weight)"
            return []
        lora_id, weight = item["id"], item.get("weight", 1.0)
        known = loras.get(lora_id)
        if known is None:
            errors["loras"] = f"'{lora_id[:80]}' is not an available LoRA; see GET /api/v1/models (kind \"lora\")"
            return []
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not _finite(weight):
            errors["loras"] = f"{where} ({known['name']}): the weight must be a number from {low:g} to {high:g}"
            return []
        if not low <= weight <= high:
            errors["loras"] = f"{where} ({known['name']}): the weight must be from {low:g} to {high:g} (got {weight:g})"
            return []
        if lora_id in seen:
            errors["loras"] = f"{known['name']} is listed twice; give each LoRA once"
            return []
        if card is not None and known["family"] != card.family:
            theirs = FAMILIES.get(known["family"])
            errors["loras"] = (f"{known['name']} is a LoRA for {theirs.label if theirs else known['family']} "
                               f"models; '{model}' is a {card.label} model")
            return []
        seen.add(lora_id)
        out.append({"id": lora_id, "name": known["name"], "weight": round(float(weight), 3)})
    return out


def _choice(data: dict, field: str, errors: dict) -> str | None:
    rule = RULES[field]
    value = data.get(field)
    if value is None:
        return rule.default
    if not isinstance(value, str) or value not in rule.choices:
        errors[field] = "must be one of " + ", ".join(rule.choices)
        return None
    return value


def _bool(data: dict, field: str, errors: dict) -> bool | None:
    value = data.get(field)
    if value is None:
        return RULES[field].default
    if not isinstance(value, bool):
        errors[field] = "must be true or false"
        return None
    return value


def _outpaint(raw: Any, step: int | None, errors: dict) -> dict | None:
    """{left, right, top, bottom} of an outpaint request (missing keys 0), or None."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        errors["outpaint"] = 'must be {"left": px, "right": px, "top": px, "bottom": px}'
        return None
    extra = set(raw) - set(OUTPAINT_SIDES)
    if extra:
        errors["outpaint"] = f"'{str(sorted(extra)[0])[:40]}' is not a side (left, right, top, bottom)"
        return None
    sides = {}
    for side in OUTPAINT_SIDES:
        value = raw.get(side)
        if value is None:
            value = 0
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors["outpaint"] = f"{side} must be a whole number of pixels, 0 or more"
            return None
        if value > 16384:
            errors["outpaint"] = f"{side} is {value} px; the result would be far too large"
            return None
        if step and value % step:
            errors["outpaint"] = (f"{side} must be a multiple of {step} px with this model "
                                  f"(try {round(value / step) * step})")
            return None
        sides[side] = value
    return sides


def validate_inpaint(data: dict, params: dict, card: Card | None, sizes: dict | None, limits: dict,
                     errors: dict) -> None:
    """The mask, outpaint and inpaint settings of a task (API.md, "Inpainting and
    outpainting"): params gets "mask" (the id or data URL as sent; tasks.submit_task reads
    it), "inpaint" (the settings, or None without a mask or outpaint) and, with outpaint,
    the result's width × height (the request's are the size the picture is fitted to)."""
    params["mask"] = params["inpaint"] = None
    mask = data.get("mask")
    if mask is not None and (not isinstance(mask, str) or not mask.strip()):
        errors["mask"] = "must be an image id of yours or a data URL (data:image/png;base64,...)"
        mask = None
    mask = mask.strip() if mask else None
    settings = {}
    for field in INPAINT_FIELDS:
        rule = RULES[field]
        if rule.kind == "choice":
            settings[field] = _choice(data, field, errors)
        elif rule.kind == "bool":
            settings[field] = _bool(data, field, errors)
        else:
            settings[field] = _number(data, field, limits, errors)
    outpaint = _outpaint(data.get("outpaint"), card.size_step if card else None, errors)
    widening = bool(outpaint and any(outpaint.values()))
    if not mask and not widening:
        for field, value in settings.items():
            if field not in errors and value is not None and value != RULES[field].default:
                errors[field] = "applies only with a mask or outpaint"
        if card is not None and card.inpainting == "dedicated" and "mask" not in errors:
            errors["mask"] = (f"'{params['model']}' is an inpainting model: give it a picture "
                              "(init_image) and a mask")
        return
    field = "mask" if mask else "outpaint"
    if not params.get("init_image"):
        errors.setdefault(field, "needs init_image: the picture to " + ("repaint" if mask else "extend"))
    if card is not None and card.inpainting is None:
        what = " ".join(part for part in (card.label, card.variant) if part)
        errors.setdefault(field, f"'{params['model']}' cannot inpaint ({what} models cannot); choose a "
                                 "model whose card has inpainting (GET /api/v1/models)")
    params["mask"] = mask
    params["inpaint"] = {key: settings[name] for name, key in INPAINT_FIELDS.items()}
    params["inpaint"]["outpaint"] = outpaint or {side: 0 for side in OUTPAINT_SIDES}
    if widening and params.get("width") and params.get("height") and "width" not in errors \
            and "height" not in errors:
        width = params["width"] + outpaint["left"] + outpaint["right"]
        height = params["height"] + outpaint["top"] + outpaint["bottom"]
        side = (sizes or {}).get("max_side")
        pixels = limits.get("max_pixels") if limits else None
        if side and max(width, height) > side:
            errors.setdefault("outpaint", f"makes the result {width}×{height}; at most {side} px a side is "
                                          "allowed (width and height are the picture before outpainting)")
        elif pixels and width * height > pixels:
            errors.setdefault("outpaint", f"makes the result {width}×{height}, {width * height} pixels; "
                                          f"at most {pixels} are allowed (width and height are the picture "
                                          "before outpainting)")
        params["width"], params["height"] = width, height


def _hires_size(raw: dict, params: dict, step: int, errors: dict) -> tuple[float | None, int, int] | None:
    """(scale or None, final width, final height) of a hires request: `scale` times the
    first pass's size (each side rounded to the model's size step), or `width` and/or
    `height` (one alone keeps the first pass's shape)."""
    base_w, base_h = params["width"], params["height"]
    sized = raw.get("width") is not None or raw.get("height") is not None
    if sized and raw.get("scale") is not None:
        errors["hires"] = "give scale or width and height (the final size), not both"
        return None
    if not sized:
        rule = HIRES_RULES["scale"]
        local: dict[str, str] = {}
        scale = _float(raw, "scale", rule.min, rule.max, local, default=rule.default)
        if scale is None:
            errors["hires"] = "scale " + local["scale"]
            return None
        return scale, max(step, round(base_w * scale / step) * step), max(step, round(base_h * scale / step) * step)
    sides = {}
    for side in ("width", "height"):
        value = raw.get(side)
        if value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors["hires"] = f"{side} must be a whole number of pixels (the final size)"
            return None
        if value % step:
            errors["hires"] = f"{side} must be a multiple of {step} with this model (try {round(value / step) * step})"
            return None
        sides[side] = value
    width = sides.get("width") or max(step, round(base_w * sides["height"] / base_h / step) * step)
    height = sides.get("height") or max(step, round(base_h * sides["width"] / base_w / step) * step)
    if width < base_w or height < base_h:
        errors["hires"] = (f"the final size {width}×{height} must be at least the first pass's "
                           f"{base_w}×{base_h} (width and height are the first pass)")
        return None
    return None, width, height


def validate_hires(data: dict, params: dict, card: Card | None, sizes: dict | None, limits: dict,
                   upscalers: dict | None, errors: dict) -> None:
    """The hires fix of a text-to-image task (API.md, "Hires fix"): params["hires"] =
    {scale, width, height (the final size), upscaler, steps, denoising, prompt,
    negative_prompt, scheduler}, or None. width × height stay the first pass's; the
    side and pixel limits apply to the final size. upscalers: {id: name} of the upscaler
    models and built-ins a hires fix may use (the latent modes always)."""
    params["hires"] = None
    raw = data.get("hires")
    if raw is None:
        return
    if not isinstance(raw, dict):
        errors["hires"] = 'must be {"scale": 2, "upscaler": "latent", "steps": 0, "denoising": 0.5} or null'
        return
    extra = set(raw) - set(HIRES_KEYS)
    if extra:
        errors["hires"] = f"'{str(sorted(extra)[0])[:40]}' is not a hires setting ({', '.join(HIRES_KEYS)})"
        return
    if params.get("init_image") or data.get("mask") or data.get("outpaint"):
        given = "a mask" if data.get("mask") else "outpaint" if data.get("outpaint") else "init_image"
        errors["hires"] = f"applies to text to image only: leave it out with {given}"
        return
    if "width" in errors or "height" in errors or params.get("width") is None or params.get("height") is None:
        return
    step = card.size_step if card else (RULES["width"].step or 8)
    size = _hires_size(raw, params, step, errors)
    if size is None:
        return
    scale, width, height = size
    side = (sizes or {}).get("max_side")
    pixels = limits.get("max_pixels") if limits else None
    if side and max(width, height) > side:
        errors["hires"] = (f"makes the result {width}×{height}; at most {side} px a side is allowed "
                           f"(lower the scale, or width and height: the first pass)")
        return
    if pixels and width * height > pixels:
        errors["hires"] = (f"makes the result {width}×{height}, {width * height} pixels; at most {pixels} "
                           "are allowed (lower the scale, or width and height: the first pass)")
        return
    upscaler = raw.get("upscaler")
    if upscaler is None or upscaler == "":
        upscaler = HIRES_DEFAULT_UPSCALER
    known = {**LATENT_UPSCALERS, **BUILTIN_UPSCALERS, **(upscalers or {})}
    if not isinstance(upscaler, str) or upscaler not in known:
        errors["hires"] = (f"upscaler '{str(upscaler)[:80]}' is not available; choose "
                           f"{', '.join(list(LATENT_UPSCALERS) + list(BUILTIN_UPSCALERS))} or an upscaler "
                           "model (GET /api/v1/models, kind \"upscaler\")")
        return
    found = {}
    for name in ("steps", "denoising"):
        rule = HIRES_RULES[name]
        check = _int if rule.kind == "int" else _float
        local = {}
        found[name] = check(raw, name, rule.min, rule.max, local, default=rule.default)
        if found[name] is None:
            errors["hires"] = f"{name} " + local[name]
            return
    if found["denoising"] > 0 and card is not None and not card.image_to_image:
        errors["hires"] = (f"'{params.get('model')}' cannot run a second pass (it cannot start from a picture); "
                           "give denoising 0 for the upscale alone, or leave hires out")
        return
    if found["denoising"] > 0 and params.get("steps") is not None \
            and hires_steps(params["steps"], {**found}) < 1:
        second = found["steps"] or params["steps"]
        need = fewest_steps(found["denoising"])
        remedy = (f"give steps {need} or more" if need is not None and need <= HIRES_RULES["steps"].max
                  else "raise denoising")
        errors["hires"] = (f"at denoising {found['denoising']:g}, {second} hires steps run none "
                           f"(the second pass runs int(steps × denoising)); {remedy}, "
                           "or denoising 0 for the upscale alone")
        return
    texts = {}
    for name in ("prompt", "negative_prompt"):
        value = raw.get(name)
        if value is None:
            value = ""
        if not isinstance(value, str):
            errors["hires"] = f"{name} must be text"
            return
        value = value.replace("\x00", "").strip()
        if len(value) > RULES[name].max_length:
            errors["hires"] = f"{name} is {len(value)} characters long; at most {RULES[name].max_length} are allowed"
            return
        texts[name] = value
    if texts["negative_prompt"] and card is not None and not card.uses_negative_prompt:
        errors["hires"] = f"negative_prompt: {card.label} models ignore negative prompts; leave it empty"
        return
    scheduler = raw.get("scheduler") or None
    if scheduler is not None:
        if not isinstance(scheduler, str) or scheduler not in SCHEDULERS:
            errors["hires"] = f"scheduler must be one of {', '.join(SCHEDULERS)} (or left out: the first pass's)"
            return
        if card is not None and scheduler not in card.schedulers:
            errors["hires"] = (f"scheduler: {SCHEDULERS[scheduler]} does not work with {card.label} models; "
                               f"choose one of {', '.join(card.schedulers)}")
            return
    params["hires"] = {"scale": scale, "width": width, "height": height, "upscaler": upscaler,
                       "steps": found["steps"], "denoising": found["denoising"], **texts,
                       "scheduler": scheduler}


def edit_size(picture: tuple[int, int], card: Card, sizes: dict | None, limits: dict | None) -> tuple[int, int]:
    """An edit's default width × height: its first picture's shape at the model's native
    pixel count (a demo model's: its small starting size), in multiples of the size step,
    within the user's side and pixel limits."""
    width, height = picture
    step = card.size_step
    start_width, start_height = card.start_size()
    scale = math.sqrt(start_width * start_height / max(1, width * height))
    width = max(step, round(width * scale / step) * step)
    height = max(step, round(height * scale / step) * step)
    side = (sizes or {}).get("max_side")
    if side and max(width, height) > side:
        shrink = side / max(width, height)
        width = max(step, int(width * shrink) // step * step)
        height = max(step, int(height * shrink) // step * step)
    return fit_size(width, height, limits, step)


def validate_task_params(data: Any, *, limits: dict, cards: dict[str, Card], default_model: str,
                         loras: dict | None = None, max_loras: int = 4, upscalers: dict | None = None,
                         guide_models: dict | None = None, preprocessors: dict | None = None,
                         max_control: int = 3, max_references: int = 2, picture_size=None,
                         fast_modes: dict[str, str] | None = None) -> dict:
    """Return clean parameters or raise ValidationError naming every bad field.

    cards: {model id: card} of the enabled models; loras: {LoRA id: {name, family}} of
    the enabled LoRAs; upscalers: {id: name} of the upscalers a hires fix may use beside
    the latent modes and the built-ins. The model's card gives the defaults of omitted fields, the size
    step and the schedulers; a negative prompt or guidance the model ignores is refused
    rather than silently dropped. The guides (control, references, edit: guides.validate)
    are checked against guide_models ({id: {name, family, adapter, architecture}} of the
    enabled ControlNets and IP-Adapters) and preprocessors ({id: info} of this install's);
    picture_size(value) -> (width, height) reads an edit's first picture's size, the
    default size of an edit; fast_modes: {model id: fast_mode} (fast.choose: the task's
    `fast` against its model's setting)."""
    if not isinstance(data, dict):
        raise ValidationError("body", "send a JSON object with the task parameters")
    errors: dict[str, str] = {}
    model = data.get("model") or default_model
    card = None
    if not isinstance(model, str):
        errors["model"] = "must be a model id; see GET /api/v1/models"
    elif model not in cards:
        errors["model"] = f"'{model[:80]}' is not an available model; see GET /api/v1/models"
    else:
        card = cards[model]
    fallback = cards.get(default_model)
    defaults = card_defaults(card or fallback, limits) if (card or fallback) else {}
    sizes = model_limits(limits, card) if card else limits
    step = card.size_step if card else None
    params: dict[str, Any] = {
        "prompt": _text(data, "prompt", errors),
        "negative_prompt": _text(data, "negative_prompt", errors),
    }
    if card is not None and not card.uses_negative_prompt and params["negative_prompt"]:
        errors["negative_prompt"] = (f"{card.label} models ignore negative prompts: leave it empty "
                                     "(describe what you want in the prompt instead)")
    for side in ("width", "height"):
        params[side] = _number(data, side, sizes, errors, default=defaults.get(side), step=step)
    if "width" not in errors and "height" not in errors:
        pixels = params["width"] * params["height"]
        if pixels > limits["max_pixels"]:
            errors["width"] = (f"{params['width']}×{params['height']} is {pixels} pixels; "
                               f"at most {limits['max_pixels']} are allowed")
    params["steps"] = _number(data, "steps", limits, errors, default=defaults.get("steps"))
    if card is not None and not card.uses_guidance:
        given = data.get("guidance")
        if given not in (None, "", 0, 0.0) and not isinstance(given, bool):
            errors["guidance"] = (f"{card.label} {card.variant} takes no guidance (it is guidance-distilled): "
                                  "leave it out")
        params["guidance"] = card.guidance
    else:
        params["guidance"] = _number(data, "guidance", limits, errors, default=defaults.get("guidance"))
    params["samples"] = _number(data, "samples", limits, errors)
    seed = data.get("seed")
    if seed is None or seed == "":
        params["seed"] = secrets.randbelow(MAX_SEED + 1)
    else:
        params["seed"] = _number(data, "seed", limits, errors)
    scheduler = data.get("scheduler") or defaults.get("scheduler") or "euler"
    if not isinstance(scheduler, str) or scheduler not in SCHEDULERS:
        errors["scheduler"] = f"must be one of {', '.join(SCHEDULERS)}"
    elif card is not None and scheduler not in card.schedulers:
        fitting = ", ".join(card.schedulers)
        errors["scheduler"] = (f"{SCHEDULERS[scheduler]} does not work with {card.label} models; "
                               f"choose one of {fitting}")
    params["scheduler"] = scheduler
    params["model"] = model
    params["loras"] = _loras(data, model, card, loras or {}, max_loras, errors)
    init_image = data.get("init_image")
    if init_image is not None and not isinstance(init_image, str):
        errors["init_image"] = "must be an image id"
    params["init_image"] = init_image or None
    if params["init_image"] and card is not None and not card.image_to_image and "init_image" not in errors:
        what = " ".join(part for part in (card.label, card.variant) if part)
        errors["init_image"] = (f"'{model}' cannot start from a picture ({what} models cannot here); choose "
                                "a model whose card has image_to_image (GET /api/v1/models)")
    strength = _number(data, "strength", limits, errors)  # checked even where it does not apply
    params["strength"] = strength if params["init_image"] else None
    if params["init_image"] and strength is not None and params["steps"] is not None:
        _check_denoising_steps(params["steps"], strength, "steps" in data and data["steps"] is not None,
                               errors)
    fit = data.get("init_fit")
    if fit is None:
        fit = RULES["init_fit"].default
    if fit not in RULES["init_fit"].choices:
        errors["init_fit"] = "must be one of " + ", ".join(RULES["init_fit"].choices)
    params["init_fit"] = fit if params["init_image"] and "init_fit" not in errors else None
    validate_inpaint(data, params, card, sizes, limits, errors)
    validate_hires(data, params, card, sizes, limits, upscalers, errors)
    guides.validate(data, params, card, cards, guide_models=guide_models, preprocessors=preprocessors,
                    max_control=max_control, max_references=max_references, errors=errors)
    if params["edit"] and picture_size is not None and data.get("width") is None and data.get("height") is None:
        try:
            params["width"], params["height"] = edit_size(picture_size(params["edit"]["images"][0]), card,
                                                          sizes, limits)
        except ValidationError as exc:
            errors.setdefault(exc.field, exc.fields.get(exc.field, exc.message))
    params["fast"], fast_error = fast.choose((fast_modes or {}).get(model) if card else "off",
                                             card.family if card else None, data.get("fast"))
    if fast_error:
        errors["fast"] = fast_error
    board_id = data.get("board_id")
    if board_id is not None and not isinstance(board_id, str):
        errors["board_id"] = "must be a board id, or null"
    params["board_id"] = board_id or None
    unknown = set(data) - set(DEFAULTS) - {"scheduler", "model", "init_image", "board_id", "loras", "mask",
                                           "outpaint", "hires", "control", "references", "edit", "fast"}
    if unknown:
        errors[sorted(unknown)[0]] = "is not a task parameter"
    if errors:
        field = next(iter(errors))
        raise ValidationError(field, errors[field], fields=errors)
    return params
