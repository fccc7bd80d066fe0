"""What the compatibility APIs (views/compat/: AUTOMATIC1111's /sdapi/v1 and OpenAI's
/v1/images) share: translating their fields into Daydream task parameters, holding a
request until its task ends, the answers' images, and signed image links.

Nothing here knows a request: the views parse, call these, and answer in their API's
shape. Every picture is an ordinary task made by tasks.submit_task (validation, cost,
queue bounds, fairness, idempotency, the timeline, the gallery).

Holding: a compat request keeps one web thread (gunicorn gthread) while its task
waits and runs. A process lets at most `max_waiting()` of its threads be held so
(half of DAYDREAM_WEB_THREADS), so pages and the JSON API always have the other half;
one more is answered 429 with Retry-After, nothing charged."""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import os
import re
import threading
import time
from collections.abc import Callable

import redis
import sqlalchemy as sa
from flask import Flask, current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from extensions import db
from models import AiModel, Image, Task, TaskState, User
from services.core import queue, redis_client
from services.core.errors import Conflict, NotFound, QueueFull, ServiceError, TooLarge, Unavailable, ValidationError
from services.generation import catalog, estimates, tasks, uploads
from services.generation.loratags import extract_loras
from services.generation.params import fit_size, model_limits
from services.generation.schedulers import (
    A1111_SAMPLER_NAMES, DEFAULT_SCHEDULER, FLOW_SCHEDULERS, SCHEDULE_LABELS, SIGMA_SCHEDULES, sampler_of, schedule_of,
    with_schedule,
)
from services.library import storage

log = logging.getLogger(__name__)

URL_TTL = 3600  # seconds a signed image link works
URL_SALT = "daydream-compat-image"
DEFAULT_TIMEOUT = 600


class TimedOut(ServiceError):
    status = 504
    code = "timeout"


class LinkExpired(ServiceError):
    status = 410
    code = "link_expired"


# --- models ----------------------------------------------------------------------

def short_hash(model_id: str) -> str:
    """A stable 10-hex-digit "hash" like the one A1111 shows in a checkpoint's title."""
    return hashlib.sha256(model_id.encode()).hexdigest()[:10]


def model_title(row: AiModel) -> str:
    """A1111's checkpoint title, "name [hash]"."""
    return f"{row.name} [{short_hash(row.id)}]"


def find_model(name) -> AiModel | None:
    """An enabled model by id, name, A1111-style title ("name [hash]"), file name
    (with or without .safetensors / .ckpt) or hash; any case."""
    if not isinstance(name, str) or not name.strip():
        return None
    wanted = name.strip().lower()
    bare = re.sub(r"\s*\[[0-9a-f]{8,64}\]$", "", wanted)
    stems = {wanted, bare} | {w[: -len(ext)] for w in (wanted, bare) for ext in catalog.CHECKPOINTS
                              if w.endswith(ext)}
    rows = catalog.enabled_models()
    for test in (lambda r: r.id.lower() in stems,
                 lambda r: model_title(r).lower() == wanted,
                 lambda r: r.name.lower() in stems,
                 lambda r: short_hash(r.id) in (wanted, bare) or f"[{short_hash(r.id)}]" in wanted):
        for row in rows:
            if test(row):
                return row
    return None


def user_default_model(user: User) -> str:
    """The model the caller chose with POST /sdapi/v1/options (sd_model_checkpoint,
    kept on their own row), while it is enabled; else the server's default."""
    if user.api_model and user.api_model in catalog.model_ids():
        return user.api_model
    return catalog.default_model()


def set_user_default_model(user: User, name, field: str = "sd_model_checkpoint") -> AiModel:
    """The caller's own default model for these APIs; nothing server-wide changes."""
    row = find_model(name)
    if row is None:
        raise ValidationError(field, f"'{str(name)[:80]}' is not an available model; see GET /sdapi/v1/sd-models")
    user.api_model = row.id
    db.session.commit()
    return row


def resolve_model(user: User, name, field: str) -> str:
    """A model asked for by any of its names, or the caller's default when none is given."""
    if name is None or name == "":
        return user_default_model(user)
    row = find_model(name)
    if row is None:
        raise ValidationError(field, f"'{str(name)[:80]}' is not an available model")
    return row.id


def fit_to_card(params: dict) -> dict:
    """Drop what the model's card says it ignores (FLUX.1 schnell takes no guidance,
    FLUX no negative prompt) instead of refusing: these clients send them by default."""
    card = catalog.cards().get(params.get("model") or catalog.default_model())
    if card is not None:
        if not card.uses_guidance:
            params.pop("guidance", None)
        if not card.uses_negative_prompt:
            params.pop("negative_prompt", None)
    return params


# --- samplers ----------------------------------------------------------------------

def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", text.strip().lower())


SAMPLER_ALIASES: dict[str, str] = {}
for _key, _label in A1111_SAMPLER_NAMES.items():
    if _key not in FLOW_SCHEDULERS:
        SAMPLER_ALIASES[_norm(_label)] = _key
    SAMPLER_ALIASES[_norm(_key)] = _key
SAMPLER_ALIASES.update({
    "euler ancestral": "euler_a", "k euler a": "euler_a", "k euler": "euler", "k dpmpp 2m": "dpmpp_2m",
    "k dpmpp 2m ka": "dpmpp_2m_karras", "dpm++ sde": "dpmpp_sde_karras", "k dpmpp sde ka": "dpmpp_sde_karras",
    "pndm": "pndm", "k lcm": "lcm", "flowmatch euler": "flow_euler", "flow match euler": "flow_euler",
})
# A1111's schedule types that leave the sampler's own schedule as it is, and those that
# set one (any sampler diffusers can run on it: SIGMA_SCHEDULES).
PLAIN_SCHEDULES = {"", "automatic", "auto", "default", "normal", "simple", "uniform", "sgm uniform"}
SCHEDULE_TYPES = [("automatic", "Automatic"), ("uniform", "Uniform"), ("karras", "Karras"),
                  ("exponential", "Exponential"), ("sgm_uniform", "SGM Uniform"), ("simple", "Simple"),
                  ("normal", "Normal")]
# The schedule variants /samplers lists as samplers of their own, as A1111 did before it had
# schedule types (DPM++ SDE has no plain key); the others are a sampler + a schedule type.
LISTED_VARIANTS = ("dpmpp_2m_karras", "dpmpp_sde_karras")


def scheduler_key(sampler, schedule, model_id: str) -> str | None:
    """A1111's sampler_name (+ scheduler, its schedule type) as a Daydream scheduler key;
    None: the model's default. A schedule type sent beside a sampler name that has one
    ("DPM++ 2M Karras" + "Exponential") wins; a Karras or Exponential schedule with no
    sampler applies to the model's default sampler. Euler on a flow-matching model
    (SD 3, FLUX) is its FlowMatch Euler."""
    card = catalog.cards().get(model_id)
    if sampler is not None and not isinstance(sampler, str):
        raise ValidationError("sampler_name", "must be a sampler name; see GET /sdapi/v1/samplers")
    if schedule is not None and not isinstance(schedule, str):
        raise ValidationError("scheduler", "must be a schedule type; see GET /sdapi/v1/schedulers")
    schedule = _norm(schedule or "")
    key = None
    if sampler and sampler.strip():
        key = SAMPLER_ALIASES.get(_norm(sampler))
        if key is None:
            raise ValidationError("sampler_name", f"'{sampler[:60]}' is not a sampler here; "
                                  f"choose one of {', '.join(sampler_names())}")
    flow = card is not None and tuple(card.schedulers) == FLOW_SCHEDULERS
    if schedule in SCHEDULE_LABELS:
        label = SCHEDULE_LABELS[schedule]
        if flow:
            raise ValidationError("scheduler", f"{card.label} models keep their own schedule; "
                                  f"use Automatic instead of {label}")
        base = key or (card.scheduler if card is not None else DEFAULT_SCHEDULER)
        scheduled = with_schedule(base, schedule)
        if scheduled is None:
            takers = sorted({A1111_SAMPLER_NAMES[sampler_of(k)] if sampler_of(k) in A1111_SAMPLER_NAMES
                             else "DPM++ SDE" for k in SIGMA_SCHEDULES})
            raise ValidationError("scheduler", f"{label} works here with {', '.join(takers)}; "
                                  f"use Automatic with {A1111_SAMPLER_NAMES.get(base, base)}")
        key = scheduled
    elif schedule not in PLAIN_SCHEDULES:
        raise ValidationError("scheduler", f"'{schedule[:40]}' is not supported; use one of "
                              + ", ".join(label for _, label in SCHEDULE_TYPES))
    if flow and key in (None, "euler", "euler_a", "flow_euler"):
        return "flow_euler" if key else None
    return key


def schedule_label(key: str | None) -> str:
    """The A1111 schedule type a scheduler key runs on ("Karras"), else "Automatic"."""
    schedule = schedule_of(key) if key else None
    return SCHEDULE_LABELS[schedule] if schedule else "Automatic"


def sampler_names() -> list[str]:
    """A1111's names of the samplers some enabled model can use, in Daydream's order."""
    usable = {key for card in catalog.cards().values() for key in card.schedulers}
    names: list[str] = []
    for key, label in A1111_SAMPLER_NAMES.items():
        if key in SIGMA_SCHEDULES and key not in LISTED_VARIANTS:
            continue  # a sampler + a schedule type (GET /sdapi/v1/schedulers)
        if key in usable and label not in names:
            names.append(label)
    return names


# --- init images ----------------------------------------------------------------------

DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)


def decode_base64_image(value, field: str) -> bytes:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a base64-encoded PNG, JPEG or WebP image")
    value = value.strip()
    if value.startswith(("http://", "https://")):
        raise ValidationError(field, "image links are not fetched; send the image itself, base64-encoded")
    value = re.sub(r"\s+", "", DATA_URL.sub("", value))
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if len(value) > limit * 4 // 3 + 4:
        raise TooLarge(f"The image is larger than {limit // (1024 * 1024)} MB; scale it down first.")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "is not valid base64: send a base64-encoded PNG, JPEG or WebP image")


def store_init_image(user: User, data: bytes, field: str) -> Image:
    """The init image stored as the user's upload, by the studio's upload checks (format,
    pixels, decompression bombs, decode budget); their complaints name `field`."""
    try:
        return uploads.store_upload(user, io.BytesIO(data), None)
    except (Unavailable, TooLarge):
        raise
    except ValidationError as exc:
        raise ValidationError(field, exc.fields.get("file") or exc.message)
    except ServiceError as exc:  # not an image, damaged, another format
        raise ValidationError(field, exc.message)


def discard_upload(image: Image | None) -> None:
    """Remove an init image stored for a request whose task was refused."""
    if image is None:
        return
    try:
        db.session.rollback()
        row = db.session.get(Image, image.id)
        if row is not None:
            relatives = storage.files_of([row])
            db.session.delete(row)
            db.session.commit()
            storage.remove_files(relatives)
    except Exception as exc:  # tidying only
        log.warning("could not remove the refused request's init image: %s", exc)
        db.session.rollback()


def image_size(image: Image, model_id: str, user: User) -> tuple[int, int]:
    """A size for image-to-image when the client gives none: the init image's shape,
    in the card's size steps, within the caller's limits."""
    card = catalog.cards().get(model_id) or catalog.card_for(model_id)
    limits = model_limits(tasks.limits_for(user), card)
    step = card.size_step
    width, height = image.width, image.height
    side = limits.get("max_side") or card.max_side
    if max(width, height) > side:
        scale = side / max(width, height)
        width, height = width * scale, height * scale
    width, height = max(64, int(width) // step * step), max(64, int(height) // step * step)
    return fit_size(width, height, limits, step)


def parse_size(value, field: str = "size") -> tuple[int, int] | None:
    """"WxH" as (w, h); "auto" (or nothing) as None: the model's own size."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    match = re.fullmatch(r"\s*(\d{1,6})\s*[x×X]\s*(\d{1,6})\s*", value) if isinstance(value, str) else None
    if not match:
        raise ValidationError(field, "must be \"WIDTHxHEIGHT\" (e.g. \"512x512\") or \"auto\"")
    return int(match.group(1)), int(match.group(2))


# --- holding the request until the task ends ----------------------------------------------

def timeout_s() -> float:
    return float(current_app.config.get("COMPAT_TIMEOUT") or DEFAULT_TIMEOUT)


def max_waiting() -> int:
    """Compat requests one web process holds at once: half its threads."""
    configured = current_app.config.get("COMPAT_MAX_WAITING")
    if configured:
        return int(configured)
    return max(1, int(os.environ.get("DAYDREAM_WEB_THREADS") or 64) // 2)


_slots_lock = threading.Lock()


def _slots(app: Flask) -> threading.BoundedSemaphore:
    slots = app.extensions.get("daydream_compat_waiters")
    if slots is None:
        with _slots_lock:
            slots = app.extensions.setdefault("daydream_compat_waiters", threading.BoundedSemaphore(max_waiting()))
    return slots


class Holding:
    """`with Holding():` around a held request: refused (429) when the process holds
    max_waiting() already."""

    def __enter__(self):
        self.slots = _slots(current_app._get_current_object())
        if not self.slots.acquire(blocking=False):
            raise QueueFull("The server is holding as many waiting image requests as it may; "
                            "try again shortly. Nothing was charged.", code="too_many_waiting",
                            headers={"Retry-After": "5"})
        return self

    def __exit__(self, *exc):
        self.slots.release()
        return False


def require_worker() -> None:
    """A held request would only wait out its timeout with no worker to run it: 503 at
    once instead, nothing charged."""
    try:
        alive = queue.workers()
    except redis.RedisError:
        alive = None
    if not alive:
        raise Unavailable("No generation worker is running right now; nothing was charged. "
                          "Try again in a minute.", code="no_worker", headers={"Retry-After": "30"})


def _state(task_id: str) -> str | None:
    db.session.rollback()  # a fresh snapshot, and no connection held while waiting
    state = db.session.scalar(sa.select(Task.state).where(Task.id == task_id))
    db.session.rollback()
    return state


def wait_for_task(task: Task, *, timeout: float | None = None,
                  pause: Callable[[float], bool] | None = None) -> Task | None:
    """Hold until the task is done, failed or canceled, and return it. `pause(s)` waits
    up to s seconds and says True when the client has gone away: a task that has not
    started is then canceled (refunded) and None returned; a running one goes on (its
    pictures land in the gallery) and None is returned. At the deadline an unfinished
    task is canceled (refunded) and TimedOut raised."""
    timeout = timeout_s() if timeout is None else timeout
    pause = pause or (lambda seconds: time.sleep(seconds) or False)
    deadline = time.monotonic() + timeout
    interval = 0.05
    task_id = task.id
    while True:
        state = _state(task_id)
        if state is None:
            raise NotFound("The task is gone.")
        if state not in TaskState.unfinished():
            return db.session.get(Task, task_id)
        left = deadline - time.monotonic()
        if left <= 0:
            _cancel_quietly(task_id)
            raise TimedOut(f"The picture was not ready within {timeout:g} s (DAYDREAM_COMPAT_TIMEOUT); "
                           "the task was canceled and your tokens refunded. Try again when the queue is shorter.")
        if pause(min(interval, left)):
            if _state(task_id) == TaskState.QUEUED.value:
                _cancel_quietly(task_id)
            return None
        interval = min(interval * 1.5, 0.5)


def _cancel_quietly(task_id: str) -> None:
    row = db.session.get(Task, task_id)
    if row is None:
        return
    try:
        tasks.cancel(row)
    except Conflict:
        pass  # it finished meanwhile


# --- results ----------------------------------------------------------------------------

def image_base64(image: Image) -> str:
    return base64.b64encode(storage.path_of(image).read_bytes()).decode("ascii")


def infotext(image: Image) -> str:
    """The PNG's A1111-style `parameters` text."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(storage.path_of(image)) as picture:
            return (getattr(picture, "text", None) or picture.info).get("parameters", "")
    except OSError:
        return ""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=URL_SALT)


def signed_token(image: Image) -> str:
    return _serializer().dumps({"i": image.id, "u": image.user_id})


def image_for_token(token: str) -> Image:
    """The image a signed link names, within URL_TTL of its making; the image must
    still be its owner's, its owner active, and the image not held for review: a link
    stops working once its owner is deactivated or deleted, or the image is held."""
    try:
        data = _serializer().loads(token, max_age=URL_TTL)
    except SignatureExpired:
        raise LinkExpired("This image link has expired (links work for 60 minutes); ask for the image again.")
    except BadSignature:
        raise NotFound("No such image.")
    if not isinstance(data, dict):
        raise NotFound("No such image.")
    image = db.session.scalar(sa.select(Image).join(User, User.id == Image.user_id).where(
        Image.id == str(data.get("i")), Image.user_id == data.get("u"), User.active.is_(True),
        storage.not_held()))
    if image is None:
        raise NotFound("No such image.")
    return image


# --- progress and interrupt (the caller's own tasks only) --------------------------------

def _unfinished(user: User) -> list[Task]:
    return list(db.session.scalars(sa.select(Task).where(
        Task.user_id == user.id, Task.state.in_(TaskState.unfinished())).order_by(Task.created_at, Task.id)))


def current_task(user: User) -> tuple[Task | None, int]:
    """The caller's running task (the latest started), else their oldest queued one; and
    how many unfinished tasks they have."""
    mine = _unfinished(user)
    running = [t for t in mine if t.state == TaskState.RUNNING.value]
    if running:
        return max(running, key=lambda t: t.started_at or t.created_at), len(mine)
    return (mine[0] if mine else None), len(mine)


def progress(user: User, *, with_image: bool = True) -> dict:
    """A1111's ProgressResponse for the caller's current task."""
    task, count = current_task(user)
    state = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
             "job_count": count, "job_timestamp": "0", "job_no": 0, "sampling_step": 0, "sampling_steps": 0}
    answer = {"progress": 0.0, "eta_relative": 0.0, "state": state, "current_image": None, "textinfo": None}
    if task is None:
        return answer
    state["job"] = f"task({task.id})"
    state["job_timestamp"] = task.created_at.strftime("%Y%m%d%H%M%S")
    steps = task.effective_steps
    state["sampling_steps"] = steps
    if task.state == TaskState.QUEUED.value:
        answer["textinfo"] = "Waiting in the queue"
        return answer
    try:
        live = queue.get_progress(task.id) or {}
        eta = estimates.remaining_seconds(task)
        preview = redis_client.connection().get(redis_client.key("preview", task.id)) if with_image else None
    except redis.RedisError:
        live, eta, preview = {}, None, None
    total = live.get("total") or steps * task.samples
    done = min(live.get("step") or 0, total)
    answer["progress"] = round(done / total, 4) if total else 0.0
    state["sampling_step"] = min(steps, int(done * steps / total)) if total else 0
    answer["eta_relative"] = round(float(eta), 2) if eta is not None else 0.0
    answer["textinfo"] = "Generating"
    if preview:
        text = preview.decode() if isinstance(preview, bytes) else str(preview)
        answer["current_image"] = text.split(",", 1)[1] if text.startswith("data:") else text
    return answer


def interrupt(user: User) -> int:
    """Cancel (and refund) the caller's running task(s); with none running, the one
    waiting first. Never anyone else's."""
    mine = _unfinished(user)
    targets = [t for t in mine if t.state == TaskState.RUNNING.value] or mine[:1]
    canceled = 0
    for task in targets:
        try:
            tasks.cancel(task)
            canceled += 1
        except Conflict:
            pass
    return canceled


# --- translating requests ------------------------------------------------------------------

def rename_fields(exc: ValidationError, names: dict[str, str]) -> ValidationError:
    """The same complaint, naming the client API's fields instead of Daydream's (a
    complaint made while translating names the client's field already)."""
    if getattr(exc, "client_field", False):
        return exc
    fields = {names.get(name, name): message for name, message in exc.fields.items()}
    field = names.get(exc.field, exc.field)
    renamed = ValidationError(field, fields.get(field) or exc.message, fields=fields)
    renamed.headers = exc.headers
    return renamed


A1111_NAMES = {"guidance": "cfg_scale", "samples": "batch_size", "strength": "denoising_strength",
               "scheduler": "sampler_name", "model": "override_settings.sd_model_checkpoint",
               "init_image": "init_images", "loras": "prompt", "init_fit": "resize_mode"}
OPENAI_NAMES = {"samples": "n", "width": "size", "height": "size", "init_image": "image", "loras": "prompt"}


def _truthy(value) -> bool:
    return bool(value) and value not in ("0", "false", "False")


def _script_enabled(args) -> bool:
    """An alwayson script's args that turn it on (clients send [False] or [] when off)."""
    if isinstance(args, dict):
        args = args.get("args", [])
    if not isinstance(args, list):
        return bool(args)
    if not args:
        return False
    first = args[0]
    return not (first is False or first is None or (isinstance(first, dict) and first.get("enabled") is False))


# (field, does the value ask for something that changes the picture, what to say)
A1111_UNSUPPORTED = (
    ("enable_hr", _truthy, "hires fix is not supported here; ask for the final size directly"),
    ("restore_faces", _truthy, "face restoration is not supported here"),
    ("tiling", _truthy, "tiling is not supported here"),
    ("mask", _truthy, "inpainting masks are not supported here (image-to-image only)"),
    ("latent_mask", _truthy, "inpainting masks are not supported here"),
    ("styles", lambda v: isinstance(v, list) and len(v) > 0 or (v and not isinstance(v, list)),
     "prompt styles are not supported here; put the words into the prompt"),
    ("script_name", _truthy, "scripts are not supported here"),
    ("subseed_strength", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
     "variation seeds (subseed_strength) are not supported here"),
    ("seed_resize_from_w", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
     "seed resizing is not supported here"),
    ("seed_resize_from_h", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
     "seed resizing is not supported here"),
    ("refiner_checkpoint", _truthy, "refiner models are not supported here"),
)
RESIZE_MODES = {0: "cover", 1: "cover", 2: "contain", 3: "cover"}


def _in_client_terms(translate):
    """Complaints raised while translating name the client's own fields: not renamed."""
    def wrapper(*args, **kwargs):
        try:
            return translate(*args, **kwargs)
        except ValidationError as exc:
            exc.client_field = True
            raise
    wrapper.__doc__, wrapper.__name__ = translate.__doc__, translate.__name__
    return wrapper


@_in_client_terms
def a1111_params(user: User, body: dict, *, img2img: bool) -> dict:
    """Daydream task parameters (without init_image) from an A1111 txt2img / img2img
    body (field names and types as A1111's modules/api/models.py). Unknown fields are
    ignored; ones that would change the picture in a way Daydream cannot are refused."""
    for field, asks, message in A1111_UNSUPPORTED:
        if asks(body.get(field)):
            raise ValidationError(field, message)
    scripts = body.get("alwayson_scripts")
    if scripts is not None and not isinstance(scripts, dict):
        raise ValidationError("alwayson_scripts", "must be an object")
    for name, args in (scripts or {}).items():
        if _script_enabled(args):
            raise ValidationError("alwayson_scripts", f"the {str(name)[:40]} script is not available here")
    overrides = body.get("override_settings")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ValidationError("override_settings", "must be an object")
    clip_skip = overrides.get("CLIP_stop_at_last_layers")
    if clip_skip not in (None, 0, 1) and not (isinstance(clip_skip, (int, float)) and clip_skip <= 1):
        raise ValidationError("override_settings.CLIP_stop_at_last_layers", "clip skip is not supported here; use 1")
    model = resolve_model(user, overrides.get("sd_model_checkpoint"), "override_settings.sd_model_checkpoint")

    counts = {}
    for field in ("batch_size", "n_iter"):
        value = body.get(field)
        if value is None:
            value = 1
        if isinstance(value, bool) or not isinstance(value, int) and not (isinstance(value, float) and value.is_integer()):
            raise ValidationError(field, "must be a whole number")
        if int(value) < 1:
            raise ValidationError(field, "must be at least 1")
        counts[field] = int(value)
    for field in ("send_images", "save_images"):
        if body.get(field) is not None and not isinstance(body[field], bool):
            raise ValidationError(field, "must be true or false")

    prompt, loras = extract_loras(body.get("prompt"), "prompt", "GET /sdapi/v1/loras")
    if prompt is None:
        prompt = ""
    params = {"prompt": prompt, "model": model, "samples": counts["batch_size"] * counts["n_iter"]}
    if loras:
        params["loras"] = loras
    if body.get("negative_prompt") is not None:
        params["negative_prompt"] = body["negative_prompt"]
    for theirs, ours in (("steps", "steps"), ("cfg_scale", "guidance"), ("width", "width"), ("height", "height")):
        if body.get(theirs) is not None:
            params[ours] = body[theirs]
    seed = body.get("seed")
    if seed is not None and not (isinstance(seed, (int, float)) and not isinstance(seed, bool) and seed < 0):
        params["seed"] = seed  # -1 (or any negative): random
    scheduler = scheduler_key(body.get("sampler_name") or body.get("sampler_index"), body.get("scheduler"), model)
    if scheduler:
        params["scheduler"] = scheduler
    if img2img:
        if body.get("denoising_strength") is not None:
            params["strength"] = body["denoising_strength"]
        mode = body.get("resize_mode", 0)
        if mode is None:
            mode = 0
        if isinstance(mode, bool) or mode not in RESIZE_MODES:
            raise ValidationError("resize_mode", "must be 0, 1, 2 or 3")
        params["init_fit"] = RESIZE_MODES[int(mode)]
    return fit_to_card(params)


def a1111_seeds(task: Task) -> list[int]:
    seeds = [image.seed for image in task.images if image.seed is not None]
    return seeds or [task.seed + n for n in range(task.samples)]


def a1111_info(task: Task, body: dict, *, img2img: bool) -> dict:
    """The `info` of an A1111 answer (sent as a JSON string)."""
    row = db.session.get(AiModel, task.model)
    seeds = a1111_seeds(task)
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else task.prompt
    batch = body.get("batch_size") if isinstance(body.get("batch_size"), int) else task.samples
    return {
        "prompt": prompt, "all_prompts": [prompt] * len(seeds),
        "negative_prompt": task.negative_prompt, "all_negative_prompts": [task.negative_prompt] * len(seeds),
        "seed": seeds[0] if seeds else task.seed, "all_seeds": seeds,
        "subseed": -1, "all_subseeds": [-1] * len(seeds), "subseed_strength": 0,
        "width": task.width, "height": task.height,
        "sampler_name": A1111_SAMPLER_NAMES.get(task.scheduler, task.scheduler),
        "scheduler": schedule_label(task.scheduler),
        "cfg_scale": task.guidance, "steps": task.steps, "batch_size": batch,
        "restore_faces": False, "face_restoration_model": None,
        "sd_model_name": row.name if row else task.model, "sd_model_hash": short_hash(task.model),
        "sd_vae_name": None, "sd_vae_hash": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
        "denoising_strength": task.strength if img2img else None,
        "extra_generation_params": ({"Lora hashes": ", ".join(f"{l['name']}: {short_hash(l['id'])}"
                                                            for l in task.loras)} if task.loras else {}),
        "index_of_first_image": 0, "infotexts": [infotext(image) for image in task.images],
        "styles": [], "job_timestamp": task.created_at.strftime("%Y%m%d%H%M%S"), "clip_skip": 1,
        "is_using_inpainting_conditioning": False, "version": "daydream",
        "daydream_task_id": task.id, "cost": task.cost,
    }


# The fields A1111's API defines for txt2img and img2img (its modules/api/models.py builds
# them from StableDiffusionProcessingTxt2Img / Img2Img's fields, less API_NOT_ALLOWED, plus
# its extra fields): `parameters` echoes these only, never whatever else a client sent
# along (SillyTavern sends its `auth` and `url` in the body).
A1111_COMMON_FIELDS = frozenset((
    "prompt", "negative_prompt", "styles", "seed", "subseed", "subseed_strength", "seed_resize_from_h",
    "seed_resize_from_w", "sampler_name", "scheduler", "batch_size", "n_iter", "steps", "cfg_scale", "width",
    "height", "restore_faces", "tiling", "do_not_save_samples", "do_not_save_grid", "eta", "denoising_strength",
    "s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise", "override_settings",
    "override_settings_restore_afterwards", "refiner_checkpoint", "refiner_switch_at", "disable_extra_networks",
    "firstpass_image", "comments", "sampler_index", "script_name", "script_args", "send_images", "save_images",
    "alwayson_scripts", "force_task_id", "infotext",
))
A1111_TXT2IMG_FIELDS = A1111_COMMON_FIELDS | {
    "enable_hr", "firstphase_width", "firstphase_height", "hr_scale", "hr_upscaler", "hr_second_pass_steps",
    "hr_resize_x", "hr_resize_y", "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "hr_prompt",
    "hr_negative_prompt",
}
A1111_IMG2IMG_FIELDS = A1111_COMMON_FIELDS | {
    "init_images", "resize_mode", "image_cfg_scale", "mask", "mask_blur_x", "mask_blur_y", "mask_blur",
    "inpainting_fill", "inpaint_full_res", "inpaint_full_res_padding", "inpainting_mask_invert",
    "initial_noise_multiplier", "latent_mask",
}


def a1111_parameters(task: Task, body: dict, *, img2img: bool = False) -> dict:
    """The `parameters` of an A1111 answer: the request's fields that A1111's API defines
    (nothing else the client sent), with what the task used filled in. Pictures are not
    sent back (init_images: null, as A1111 answers)."""
    defined = A1111_IMG2IMG_FIELDS if img2img else A1111_TXT2IMG_FIELDS
    echoed = {k: v for k, v in body.items() if k in defined and k not in ("init_images", "mask", "latent_mask")}
    echoed.update({"prompt": body.get("prompt", task.prompt), "negative_prompt": task.negative_prompt,
                   "steps": task.steps, "cfg_scale": task.guidance, "width": task.width, "height": task.height,
                   "seed": body.get("seed", -1), "batch_size": body.get("batch_size", task.samples),
                   "n_iter": body.get("n_iter", 1),
                   "sampler_name": A1111_SAMPLER_NAMES.get(task.scheduler, task.scheduler),
                   "scheduler": schedule_label(task.scheduler)})
    if img2img:
        echoed["init_images"] = None
        echoed["denoising_strength"] = task.strength
    return echoed


OPENAI_DEFAULT_MODELS = ("dall-e-2", "dall-e-3", "gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5")


@_in_client_terms
def openai_params(user: User, data: dict, *, edit: bool) -> dict:
    """Daydream task parameters from an OpenAI images request (JSON, or the form
    fields of an edit). `model` is a Daydream model (id or name); OpenAI's own model
    names mean the caller's default. quality, style, user and the like are accepted
    and ignored; what Daydream cannot do (masks, transparent backgrounds, streaming,
    formats other than PNG) is refused."""
    prompt = data.get("prompt")
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        raise ValidationError("prompt", "is required: describe the image you want")
    if not isinstance(prompt, str):
        raise ValidationError("prompt", "must be text")
    if _truthy(data.get("stream")):
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
    model = resolve_model(user, model_name, "model")
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
