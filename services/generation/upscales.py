"""Upscale tasks: make one of a user's images bigger with an upscaler (a model that
services/generation/upscalers.py lists, or a built-in resampler), optionally followed by
a refining pass (a low-strength tiled image-to-image pass at the model's native size,
A1111's "SD upscale"). An upscale is a task like a generation: the same queue, fairness,
progress, cancel, refund, timeline and gallery; worker/kinds/upscale.py runs it.

    upscale_params(user, data)  the request checked (ValidationError naming the field)
    upscale_cost(user, params)  1 token a megapixel of output, plus the refining pass
    submit_upscale(user, data)  validate, debit and queue, in one transaction
    estimate(user, data)        what POST /api/v1/estimate answers for {"upscale": {...}}

The task row: upscale = {image, scale, upscaler, refine}; width × height the output's
size; prompt, negative prompt, model, guidance, scheduler and seed the source task's (an
upload: no prompt, the default model); steps the refining pass's (1 without one);
samples 1; no init image (the source is upscale["image"])."""
from __future__ import annotations

import math
import secrets

import redis
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Image, Task, TaskState, User
from services.accounts import caps, credits, tiers
from services.core import queue, redis_client
from services.core.errors import Unavailable, ValidationError
from services.generation import access, catalog, dispatch, estimates, upscalers
from services.generation import tasks as task_service
from services.generation.params import MAX_SEED, task_cost
from services.library import boards
from services.moderation import rules as prompt_rules

DEFAULT_UPSCALER = "lanczos"
MAX_SCALE = 8.0
REFINE_STRENGTH = (0.05, 0.6)
DEFAULT_REFINE_STRENGTH = 0.3
MAX_REFINE_STEPS = 150
MAX_SIDE = 16384  # a side no upscale makes, whatever the pixel limit
DEFAULT_MAX_UPSCALE_PIXELS = tiers.MAX_UPSCALE_PIXELS
PIXELS_PER_TOKEN = 1024 * 1024
FIELDS = ("image", "scale", "width", "height", "upscaler", "refine", "board_id")
REFINE_FIELDS = ("strength", "steps", "prompt", "negative_prompt")


def max_upscale_pixels(user: User) -> int:
    """The largest output (pixels) the user's tier allows; staff: the largest tier's."""
    if user.is_staff:
        return max([int(t.get("max_upscale_pixels") or DEFAULT_MAX_UPSCALE_PIXELS) for t in tiers.tiers()]
                   + [DEFAULT_MAX_UPSCALE_PIXELS])
    return int(tiers.tier_for(user).get("max_upscale_pixels") or DEFAULT_MAX_UPSCALE_PIXELS)


def _number(value, field: str, *, integer: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(field, "must be a number")
    if integer:
        if float(value) != int(value):
            raise ValidationError(field, "must be a whole number")
        return int(value)
    return float(value)


def source_image(user: User, image_id) -> Image:
    """The user's own picture (a result or an upload; not a mask, not one held for review)."""
    if not isinstance(image_id, str) or not image_id.strip():
        raise ValidationError("image", "is required: the id of one of your images")
    image = db.session.scalar(sa.select(Image).where(
        Image.id == image_id.strip(), Image.user_id == user.id, Image.kind != "mask",
        Image.review.is_distinct_from("held")))
    if image is None:
        raise ValidationError("image", "is not one of your images")
    return image


def output_size(data: dict, source: Image) -> tuple[int, int, float]:
    """(width, height, scale) of the output: from `scale`, or from width and height."""
    has_size = data.get("width") is not None or data.get("height") is not None
    if data.get("scale") is not None and has_size:
        raise ValidationError("scale", "give a scale or a width and height, not both")
    if has_size:
        width = _number(data.get("width"), "width", integer=True)
        height = _number(data.get("height"), "height", integer=True)
        for field, value in (("width", width), ("height", height)):
            if not 1 <= value <= MAX_SIDE:
                raise ValidationError(field, f"must be between 1 and {MAX_SIDE}")
        scale = max(width / source.width, height / source.height)
        if scale > MAX_SCALE:
            raise ValidationError("width", f"is more than {MAX_SCALE:g} times the image's size "
                                           f"({source.width}×{source.height})")
        if width * height <= source.width * source.height:
            raise ValidationError("width", f"must make the image bigger than it is ({source.width}×{source.height})")
        return width, height, round(scale, 4)
    scale = _number(data.get("scale", 2), "scale")
    if not 1 < scale <= MAX_SCALE:
        raise ValidationError("scale", f"must be more than 1 and at most {MAX_SCALE:g}")
    return max(1, round(source.width * scale)), max(1, round(source.height * scale)), scale


def refine_params(value, card) -> dict | None:
    """The refining pass: None (or false) for none; else {strength, steps, prompt?,
    negative_prompt?} with the defaults filled in."""
    if value is None or value is False:
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise ValidationError("refine", "must be an object {strength, steps, prompt} or null")
    unknown = sorted(set(value) - set(REFINE_FIELDS))
    if unknown:
        raise ValidationError("refine", f"unknown field(s): {', '.join(unknown)}")
    strength = value.get("strength")
    strength = DEFAULT_REFINE_STRENGTH if strength is None else _number(strength, "refine.strength")
    low, high = REFINE_STRENGTH
    if not low <= strength <= high:
        raise ValidationError("refine.strength", f"must be between {low:g} and {high:g}")
    steps = value.get("steps")
    steps = card.steps if steps is None else _number(steps, "refine.steps", integer=True)
    if not 1 <= steps <= MAX_REFINE_STEPS:
        raise ValidationError("refine.steps", f"must be between 1 and {MAX_REFINE_STEPS}")
    refine = {"strength": round(strength, 4), "steps": steps}
    for field in ("prompt", "negative_prompt"):
        text = value.get(field)
        if text is not None:
            if not isinstance(text, str) or len(text) > 2000:
                raise ValidationError(f"refine.{field}", "must be text of at most 2000 characters")
            refine[field] = text
    return refine


def upscale_params(user: User, data) -> dict:
    """The request checked, and what the task is made of: {image, scale, width, height,
    upscaler, refine, board_id, model, prompt, negative_prompt, guidance, scheduler, seed,
    steps}. A ValidationError names the field; nothing is charged."""
    if not isinstance(data, dict):
        raise ValidationError("body", "must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise ValidationError(unknown[0], "is not a field of an upscale (" + ", ".join(FIELDS) + ")")
    source = source_image(user, data.get("image"))
    upscaler_id = data.get("upscaler")
    upscaler_id = DEFAULT_UPSCALER if upscaler_id in (None, "") else upscaler_id
    found = upscalers.find(upscaler_id) if isinstance(upscaler_id, str) else None
    if found is None:
        known = ", ".join(u["id"] for u in upscalers.available())
        raise ValidationError("upscaler", f"is not an upscaler on this server (one of: {known})")
    upscaler_id = found["id"]
    width, height, scale = output_size(data, source)
    most = max_upscale_pixels(user)
    if width * height > most:
        field = "width" if data.get("scale") is None and data.get("width") is not None else "scale"
        raise ValidationError(field, f"makes {width}×{height}, more than the {most:,} pixels your tier "
                                     "allows for an upscale")
    origin = source.task
    cards = catalog.cards()
    # (the source's model refines, when the user may still use it: else their default)
    usable = access.usable_model_ids(user)
    model = origin.model if origin is not None and origin.model in cards and origin.model in usable \
        else access.default_model_for(user, usable)
    card = cards.get(model) or catalog.card_for(model)
    refine = refine_params(data.get("refine"), card)
    board_id = data.get("board_id")
    if board_id is not None and (not isinstance(board_id, str) or not boards.live_board_id(user.id, board_id)):
        raise ValidationError("board_id", "is not one of your boards")
    prompt = origin.prompt if origin is not None else ""
    negative = origin.negative_prompt if origin is not None else ""
    if refine is not None:
        prompt = refine.get("prompt", prompt)
        negative = refine.get("negative_prompt", negative)
    same_model = origin is not None and origin.model == model
    return {
        "image": source.id, "scale": scale, "width": width, "height": height, "upscaler": upscaler_id,
        "refine": refine, "board_id": board_id, "model": model, "prompt": prompt or "",
        "negative_prompt": negative or "",
        "guidance": origin.guidance if same_model else card.guidance,
        "scheduler": origin.scheduler if same_model else card.scheduler,
        "seed": source.seed if source.seed is not None else secrets.randbelow(MAX_SEED + 1),
        "steps": refine["steps"] if refine else 1,
        "source_width": source.width, "source_height": source.height,
    }


def refine_steps(refine: dict | None) -> int:
    """The denoising steps the refining pass runs a tile (0 without one)."""
    if not refine:
        return 0
    return max(1, math.ceil(int(refine["steps"]) * float(refine["strength"])))


def upscale_cost(user: User, params: dict) -> int:
    """ceil(output pixels / 1024²) tokens, plus the refining pass as a generation of
    ceil(steps × strength) steps at the output size. Staff: free where STAFF_FREE."""
    if user.is_staff and current_app.config["STAFF_FREE"]:
        return 0
    width, height = int(params["width"]), int(params["height"])
    cost = math.ceil(width * height / PIXELS_PER_TOKEN)
    if params.get("refine"):
        cost += task_cost(refine_steps(params["refine"]), width, height, 1)
    return cost


def _fingerprint(user: User, data: dict) -> str:
    """The request's fingerprint (tasks.request_fingerprint), the picture by its pixels."""
    body = {key: value for key, value in data.items() if key != "image"}
    return task_service.request_fingerprint(user, {"kind": "upscale", "init_image": data.get("image"), **body})


def submit_upscale(user: User, data: dict, idempotency_key: str | None = None, *,
                   fingerprint: str | None = None) -> Task:
    """Validate, debit and create the upscale task in one transaction, then queue it.
    The same Idempotency-Key with the same request returns the first task; with another
    request it is a 422 (idempotency_key_reused), as for generation tasks. `fingerprint`:
    the request's, when the caller's request is more than this task (A1111's extras)."""
    if idempotency_key is not None:
        idempotency_key = idempotency_key.strip()[:255] or None
    if not idempotency_key:
        fingerprint = None
    elif fingerprint is None:
        fingerprint = _fingerprint(user, data if isinstance(data, dict) else {})
    if idempotency_key:
        existing = db.session.scalar(sa.select(Task).where(
            Task.user_id == user.id, Task.idempotency_key == idempotency_key))
        if existing:
            return task_service._same_request(existing, fingerprint)
    params = upscale_params(user, data)
    if params["refine"]:  # a prompt is used again: the rules as they are now
        prompt_rules.check_prompt(user, params)
    if not redis_client.available():
        raise Unavailable("The queue (Redis) is unavailable; nothing was charged. "
                          "Try again in a moment.", headers={"Retry-After": "10"})
    task = Task(
        user_id=user.id, session_id=user.sessionid, state=TaskState.QUEUED.value,
        prompt=params["prompt"], negative_prompt=params["negative_prompt"],
        width=params["width"], height=params["height"], steps=params["steps"],
        guidance=params["guidance"], samples=1, seed=params["seed"], scheduler=params["scheduler"],
        model=params["model"], init_image_id=None, strength=None,
        upscale={"image": params["image"], "scale": params["scale"], "upscaler": params["upscaler"],
                 "refine": params["refine"]},
        board_id=params["board_id"], cost=upscale_cost(user, params),
        idempotency_key=idempotency_key, idempotency_hash=fingerprint,
        fair_round=dispatch.next_round(user.id),
    )
    try:
        db.session.add(task)
        db.session.flush()
        caps.check(user, 1)  # an upscale makes an image: the image caps count it
        credits.debit_task(task)
        task_service.check_queue_bounds(user)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another request with the same Idempotency-Key won the race
        existing = db.session.scalar(sa.select(Task).where(
            Task.user_id == user.id, Task.idempotency_key == idempotency_key)) if idempotency_key else None
        if existing:
            return task_service._same_request(existing, fingerprint)
        raise
    except Exception:
        db.session.rollback()
        raise
    try:
        queue.enqueue_slot(task.id)
    except redis.RedisError:  # the reconciler queues it when Redis is back
        pass
    task_service.announce_task(task)
    task_service.announce_queue()
    return task


def estimate(user: User, data) -> dict:
    """What an upscale would cost and wait now (POST /api/v1/estimate {"upscale": {...}}):
    {cost, position, wait_s, run_s, eta_s, running, width, height}."""
    params = upscale_params(user, data)
    answer = estimates.estimate(user, {**params, "samples": 1, "init_image": None, "strength": None},
                                upscale_cost(user, params))
    return {**answer, "width": params["width"], "height": params["height"]}
