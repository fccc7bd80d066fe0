"""AUTOMATIC1111's web UI API (views/compat/a1111.py) in Daydream's terms: its txt2img
and img2img bodies as task parameters (field names and types as A1111's
modules/api/models.py; an img2img `mask` with its inpaint fields as Daydream's inpaint
settings), its samplers and schedule types as scheduler keys, and a task as A1111's
answer (`parameters`, `info`) and ProgressResponse. Nothing here knows a request."""
from __future__ import annotations

import re

import redis

from extensions import db
from models import AiModel, Image, Task, TaskState, User
from services.core import keys, queue, redis_client
from services.core.errors import ValidationError
from services.generation import catalog, estimates, upscalers
from services.generation.compat import a1111_controlnet, common
from services.generation.compat.common import (  # noqa: F401 (decode_base64_image: A1111's pictures in)
    decode_base64_image, fit_to_card, in_client_terms, short_hash, truthy,
)
from services.generation.compat.holding import current_task
from services.generation.loratags import extract_loras
from services.generation.schedulers import (
    A1111_SAMPLER_NAMES, DEFAULT_SCHEDULER, FLOW_SCHEDULERS, SCHEDULE_LABELS, SIGMA_SCHEDULES, sampler_of, schedule_of,
    with_schedule,
)
from services.library import storage
from services.library.imaging import HIRES_UPSCALER_NAMES

# Daydream's fields by A1111's names for them: a complaint names the client's field
# (views/errors.py renames it).
A1111_NAMES = {"guidance": "cfg_scale", "samples": "batch_size", "strength": "denoising_strength",
               "scheduler": "sampler_name", "model": "override_settings.sd_model_checkpoint",
               "init_image": "init_images", "loras": "prompt", "init_fit": "resize_mode",
               "inpaint_area": "inpaint_full_res", "inpaint_padding": "inpaint_full_res_padding",
               "masked_content": "inpainting_fill", "mask_invert": "inpainting_mask_invert",
               "hires": "hr_scale", "control": "alwayson_scripts.controlnet.args",
               "references": "alwayson_scripts.controlnet.args"}
# A1111's inpainting_fill ("Masked content") by its number, as Daydream's masked_content.
INPAINTING_FILL = {0: "fill", 1: "original", 2: "latent_noise", 3: "latent_nothing"}
FILL_NUMBERS = {content: number for number, content in INPAINTING_FILL.items()}


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


# --- requests ------------------------------------------------------------------------

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
    ("restore_faces", truthy, "face restoration is not supported here"),
    ("tiling", truthy, "tiling is not supported here"),
    ("latent_mask", truthy, "a separate latent mask is not supported here; send the one mask in `mask`"),
    ("styles", lambda v: isinstance(v, list) and len(v) > 0 or (v and not isinstance(v, list)),
     "prompt styles are not supported here; put the words into the prompt"),
    ("script_name", truthy, "scripts are not supported here"),
    ("subseed_strength", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
     "variation seeds (subseed_strength) are not supported here"),
    ("seed_resize_from_w", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
     "seed resizing is not supported here"),
    ("seed_resize_from_h", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0,
     "seed resizing is not supported here"),
    ("refiner_checkpoint", truthy, "refiner models are not supported here"),
)
RESIZE_MODES = {0: "cover", 1: "cover", 2: "contain", 3: "cover"}


@in_client_terms
def a1111_params(user: User, body: dict, *, img2img: bool) -> dict:
    """Daydream task parameters (without init_image) from an A1111 txt2img / img2img
    body (field names and types as A1111's modules/api/models.py). Unknown fields are
    ignored; ones that would change the picture in a way Daydream cannot are refused.
    txt2img's enable_hr with its hr_* fields is a hires fix (hires_params); the ControlNet
    script's units are `control` and `references` (a1111_controlnet.script_units)."""
    if img2img and truthy(body.get("enable_hr")):
        raise ValidationError("enable_hr", "hires fix applies to txt2img; img2img takes no enable_hr")
    for field, asks, message in A1111_UNSUPPORTED:
        if asks(body.get(field)):
            raise ValidationError(field, message)
    scripts = body.get("alwayson_scripts")
    if scripts is not None and not isinstance(scripts, dict):
        raise ValidationError("alwayson_scripts", "must be an object")
    guides = {}
    for name, args in (scripts or {}).items():
        if a1111_controlnet.is_controlnet(name):  # sd-webui-controlnet's units: control and references
            guides = a1111_controlnet.script_units(user, name, args, img2img=img2img)
        elif _script_enabled(args):
            raise ValidationError("alwayson_scripts", f"the {str(name)[:40]} script is not available here")
    overrides = body.get("override_settings")
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise ValidationError("override_settings", "must be an object")
    clip_skip = overrides.get("CLIP_stop_at_last_layers")
    if clip_skip not in (None, 0, 1) and not (isinstance(clip_skip, (int, float)) and clip_skip <= 1):
        raise ValidationError("override_settings.CLIP_stop_at_last_layers", "clip skip is not supported here; use 1")
    model = common.resolve_model(user, overrides.get("sd_model_checkpoint"), "override_settings.sd_model_checkpoint")

    counts = {}
    for field in ("batch_size", "n_iter"):
        value = body.get(field)
        if value is None:
            value = 1
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
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
    if not img2img and truthy(body.get("enable_hr")):
        params["hires"] = hires_params(body, model)
    if img2img:
        if body.get("denoising_strength") is not None:
            params["strength"] = body["denoising_strength"]
        mode = body.get("resize_mode", 0)
        if mode is None:
            mode = 0
        if isinstance(mode, bool) or mode not in RESIZE_MODES:
            raise ValidationError("resize_mode", "must be 0, 1, 2 or 3")
        params["init_fit"] = RESIZE_MODES[int(mode)]
        if has_mask(body):
            params.update(inpaint_params(body))
    params.update(guides)
    card = catalog.cards().get(model)
    if params.get("hires") and card is not None and not card.uses_negative_prompt:
        params["hires"].pop("negative_prompt", None)  # (dropped as the first pass's is: fit_to_card)
    return fit_to_card(params)


# A1111's hires upscalers by name (its latent modes, its built-in resamplers, "None": a plain
# resize) as Daydream's ids; an upscaler model goes by its name or its id.
HR_UPSCALERS = {"latent": "latent", "latent (antialiased)": "latent-antialiased", "latent (bicubic)": "latent-bicubic",
                "latent (bicubic antialiased)": "latent-bicubic-antialiased", "latent (nearest)": "latent-nearest",
                "latent (nearest-exact)": "latent-nearest-exact", "lanczos": "lanczos", "nearest": "nearest",
                "none": "lanczos"}
SAME = ("", "use same sampler", "use same scheduler", "use same checkpoint")


def hr_upscaler_id(name) -> str:
    """Daydream's id of an A1111 hr_upscaler name (None: "Latent", A1111's default)."""
    if name is None or (isinstance(name, str) and not name.strip()):
        return "latent"
    if not isinstance(name, str):
        raise ValidationError("hr_upscaler", "must be an upscaler's name; see GET /sdapi/v1/upscalers")
    wanted = name.strip().lower()
    if wanted in HR_UPSCALERS:
        return HR_UPSCALERS[wanted]
    for item in upscalers.available():
        if wanted in (str(item["id"]).lower(), str(item["name"]).lower()):
            return item["id"]
    known = ["Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
             "Latent (nearest-exact)", "None"] + [item["name"] for item in upscalers.available()]
    raise ValidationError("hr_upscaler", f"'{name[:60]}' is not an upscaler here; choose one of {', '.join(known)}")


def hr_upscaler_name(upscaler_id: str | None) -> str:
    """A1111's name of a hires upscaler id: "Latent", "Lanczos", an upscaler model's name."""
    if not upscaler_id or upscaler_id in HIRES_UPSCALER_NAMES:
        return HIRES_UPSCALER_NAMES.get(upscaler_id or "latent")
    found = upscalers.find(upscaler_id)
    return found["name"] if found else upscaler_id


def _hr_number(body: dict, field: str, low: float, high: float, whole: bool = False):
    value = body.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and value != int(value)):
        raise ValidationError(field, "must be a whole number" if whole else "must be a number")
    if not low <= value <= high:
        raise ValidationError(field, f"must be from {low:g} to {high:g}")
    return int(value) if whole else float(value)


def hires_params(body: dict, model: str) -> dict:
    """Daydream's hires fix from A1111's txt2img fields (enable_hr on): hr_scale (default 2)
    or hr_resize_x / hr_resize_y (the final size; 0: unused), hr_upscaler, hr_second_pass_steps
    (0: the first pass's), denoising_strength, hr_prompt and hr_negative_prompt ("": the
    first pass's), hr_sampler_name with hr_scheduler ("Use same sampler": the first pass's).
    A checkpoint of its own for the second pass (hr_checkpoint_name) is refused."""
    checkpoint = body.get("hr_checkpoint_name")
    if checkpoint is not None and (not isinstance(checkpoint, str) or checkpoint.strip().lower() not in SAME):
        raise ValidationError("hr_checkpoint_name", "a checkpoint of its own for the hires pass is not supported "
                                                    "here; leave it out (the first pass's model is used)")
    hires: dict = {"upscaler": hr_upscaler_id(body.get("hr_upscaler"))}
    sides = {side: _hr_number(body, f"hr_resize_{axis}", 0, 16384, whole=True)
             for side, axis in (("width", "x"), ("height", "y"))}
    if any(sides.values()):
        hires.update({side: value for side, value in sides.items() if value})
    else:
        scale = _hr_number(body, "hr_scale", 1, 4)
        hires["scale"] = 2.0 if scale is None else scale
    steps = _hr_number(body, "hr_second_pass_steps", 0, 150, whole=True)
    if steps is not None:
        hires["steps"] = steps
    denoising = _hr_number(body, "denoising_strength", 0, 1)
    if denoising is not None:
        hires["denoising"] = denoising
    for theirs, ours in (("hr_prompt", "prompt"), ("hr_negative_prompt", "negative_prompt")):
        value = body.get(theirs)
        if value is not None and not isinstance(value, str):
            raise ValidationError(theirs, "must be text")
        if value:
            hires[ours] = value
    sampler, schedule = body.get("hr_sampler_name"), body.get("hr_scheduler")
    if isinstance(sampler, str) and sampler.strip().lower() in SAME:
        sampler = None
    if isinstance(schedule, str) and schedule.strip().lower() in SAME:
        schedule = None
    if sampler or schedule:
        try:
            key = scheduler_key(sampler, schedule, model)
        except ValidationError as exc:
            raise ValidationError("hr_sampler_name" if exc.field == "sampler_name" else "hr_scheduler", exc.message)
        if key:
            hires["scheduler"] = key
    return hires


def has_mask(body: dict) -> bool:
    """Whether an img2img body brings a mask (A1111 reads an empty one as none)."""
    return body.get("mask") not in (None, "")


def _whole(body: dict, field: str, low: int, high: int, default: int) -> int:
    value = body.get(field)
    if value is None:
        return default
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole:
        raise ValidationError(field, "must be a whole number")
    if not low <= value <= high:
        raise ValidationError(field, f"must be from {low} to {high}")
    return int(value)


def _switch(body: dict, field: str) -> bool:
    """A1111's booleans and its 0/1 switches (inpainting_mask_invert is an int there)."""
    value = body.get(field)
    if value is None:
        return False
    if isinstance(value, str) and value.strip().lower() in ("0", "1", "true", "false"):
        return value.strip().lower() in ("1", "true")
    if value in (0, 1) and not isinstance(value, (list, dict)):  # (True and False among them)
        return bool(value)
    raise ValidationError(field, "must be true or false (or 1 or 0)")


def inpaint_params(body: dict) -> dict:
    """Daydream's inpaint settings from an img2img body with a mask, A1111's meanings:
    mask_blur (default 4; without it the larger of mask_blur_x and mask_blur_y),
    inpainting_fill 0 fill | 1 original | 2 latent noise | 3 latent nothing (default 1),
    inpaint_full_res "Only masked" (else the whole picture), inpaint_full_res_padding
    (default 32), inpainting_mask_invert 0/1, initial_noise_multiplier 0.5–1.5. Without a
    mask A1111 ignores them, and so does this (clients send them always)."""
    if body.get("mask_blur") is not None:
        blur = _whole(body, "mask_blur", 0, 64, 4)
    else:
        blur = max(_whole(body, "mask_blur_x", 0, 64, 4), _whole(body, "mask_blur_y", 0, 64, 4))
    fill = body.get("inpainting_fill")
    if fill is None:
        fill = 1
    if isinstance(fill, bool) or fill not in INPAINTING_FILL:
        raise ValidationError("inpainting_fill", "must be 0 (fill), 1 (original), 2 (latent noise) "
                                                 "or 3 (latent nothing)")
    params = {"mask_blur": blur, "masked_content": INPAINTING_FILL[int(fill)],
              "inpaint_area": "masked" if _switch(body, "inpaint_full_res") else "whole",
              "inpaint_padding": _whole(body, "inpaint_full_res_padding", 0, 256, 32),
              "mask_invert": _switch(body, "inpainting_mask_invert")}
    noise = body.get("initial_noise_multiplier")
    if noise is not None:
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0.5 <= noise <= 1.5:
            raise ValidationError("initial_noise_multiplier", "must be a number from 0.5 to 1.5")
        params["initial_noise_multiplier"] = float(noise)
    return params


# --- answers ---------------------------------------------------------------------------

def a1111_seeds(task: Task) -> list[int]:
    seeds = [image.seed for image in task.images if image.seed is not None]
    return seeds or [task.seed + n for n in range(task.samples)]


def infotext(image: Image) -> str:
    """The PNG's A1111-style `parameters` text."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(storage.path_of(image)) as picture:
            return (getattr(picture, "text", None) or picture.info).get("parameters", "")
    except OSError:
        return ""


def a1111_info(task: Task, body: dict, *, img2img: bool) -> dict:
    """The `info` of an A1111 answer (sent as a JSON string)."""
    row = db.session.get(AiModel, task.model)
    seeds = a1111_seeds(task)
    prompt = body.get("prompt") if isinstance(body.get("prompt"), str) else task.prompt
    batch = body.get("batch_size") if isinstance(body.get("batch_size"), int) else task.samples
    info = {
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
    } | inpaint_info(task) | hires_info(task)
    info["extra_generation_params"] = {**info["extra_generation_params"], **a1111_controlnet.extras(task)}
    return info


def task_inpaint(task: Task) -> dict | None:
    """The task's inpaint settings (Task.inpaint), None for a task without a mask."""
    settings = getattr(task, "inpaint", None)
    return settings if isinstance(settings, dict) and getattr(task, "mask_image_id", None) else None


def inpaint_extras(settings: dict) -> dict:
    """The inpaint settings as A1111's extra_generation_params names them (its infotext's)."""
    extras = {"Mask blur": settings.get("mask_blur"),
              "Inpaint area": "Only masked" if settings.get("inpaint_area") == "masked" else "Whole picture",
              "Masked content": (settings.get("masked_content") or "original").replace("_", " ")}
    if settings.get("inpaint_area") == "masked":
        extras["Masked area padding"] = settings.get("inpaint_padding")
    if settings.get("mask_invert"):
        extras["Mask mode"] = "Inpaint not masked"
    noise = settings.get("noise_multiplier")
    if noise is not None and float(noise) != 1:
        extras["Noise multiplier"] = float(noise)
    return extras


def inpaint_info(task: Task) -> dict:
    """What an inpaint task adds to the `info` (nothing for image-to-image): its settings in
    extra_generation_params, and whether the model is an inpainting model of its own."""
    settings = task_inpaint(task)
    if settings is None:
        return {}
    lora_hashes = {"Lora hashes": ", ".join(f"{l['name']}: {short_hash(l['id'])}"
                                            for l in task.loras)} if task.loras else {}
    card = catalog.cards().get(task.model)
    return {"extra_generation_params": {**inpaint_extras(settings), **lora_hashes},
            "is_using_inpainting_conditioning": getattr(card, "inpainting", None) == "dedicated"}


def inpaint_echo(task: Task) -> dict:
    """The inpaint fields of `parameters`, in A1111's shapes, as the task used them."""
    settings = task_inpaint(task)
    if settings is None:
        return {}
    echo = {"mask": None, "mask_blur": settings.get("mask_blur"),
            "inpainting_fill": FILL_NUMBERS.get(settings.get("masked_content"), 1),
            "inpaint_full_res": settings.get("inpaint_area") == "masked",
            "inpaint_full_res_padding": settings.get("inpaint_padding"),
            "inpainting_mask_invert": 1 if settings.get("mask_invert") else 0}
    if settings.get("noise_multiplier") is not None:
        echo["initial_noise_multiplier"] = settings["noise_multiplier"]
    return echo


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


def task_hires(task: Task) -> dict | None:
    """The task's hires fix (Task.hires), None without one."""
    hires = getattr(task, "hires", None)
    return hires if isinstance(hires, dict) and hires else None


def hires_extras(hires: dict) -> dict:
    """A hires fix as A1111's extra_generation_params names it (its infotext's)."""
    extras = {}
    if hires.get("scale") is not None:
        extras["Hires upscale"] = hires["scale"]
    else:
        extras["Hires resize"] = f"{hires.get('width')}x{hires.get('height')}"
    if hires.get("steps"):
        extras["Hires steps"] = hires["steps"]
    extras["Hires upscaler"] = hr_upscaler_name(hires.get("upscaler"))
    if hires.get("scheduler"):
        extras["Hires sampler"] = A1111_SAMPLER_NAMES.get(hires["scheduler"], hires["scheduler"])
    if hires.get("prompt"):
        extras["Hires prompt"] = hires["prompt"]
    if hires.get("negative_prompt"):
        extras["Hires negative prompt"] = hires["negative_prompt"]
    return extras


def hires_info(task: Task) -> dict:
    """What a hires fix adds to the `info`: its denoising strength (A1111's txt2img shows
    the second pass's), its fields in extra_generation_params. width and height stay the
    first pass's, as A1111 answers."""
    hires = task_hires(task)
    if hires is None:
        return {}
    lora_hashes = {"Lora hashes": ", ".join(f"{l['name']}: {short_hash(l['id'])}"
                                            for l in task.loras)} if task.loras else {}
    return {"denoising_strength": hires.get("denoising"),
            "extra_generation_params": {**hires_extras(hires), **lora_hashes}}


def hires_echo(task: Task) -> dict:
    """The hires fields of txt2img's `parameters`, in A1111's shapes, as the task used them."""
    hires = task_hires(task)
    if hires is None:
        return {}
    sized = hires.get("scale") is None
    return {"enable_hr": True, "hr_scale": hires.get("scale") if not sized else None,
            "hr_upscaler": hr_upscaler_name(hires.get("upscaler")),
            "hr_second_pass_steps": hires.get("steps") or 0,
            "hr_resize_x": hires.get("width") if sized else 0, "hr_resize_y": hires.get("height") if sized else 0,
            "denoising_strength": hires.get("denoising"), "hr_prompt": hires.get("prompt") or "",
            "hr_negative_prompt": hires.get("negative_prompt") or "",
            "hr_sampler_name": (A1111_SAMPLER_NAMES.get(hires["scheduler"], hires["scheduler"])
                                if hires.get("scheduler") else None)}


def a1111_parameters(task: Task, body: dict, *, img2img: bool = False) -> dict:
    """The `parameters` of an A1111 answer: the request's fields that A1111's API defines
    (nothing else the client sent), with what the task used filled in. Pictures are not
    sent back (init_images: null, as A1111 answers)."""
    defined = A1111_IMG2IMG_FIELDS if img2img else A1111_TXT2IMG_FIELDS
    echoed = {k: v for k, v in body.items() if k in defined and k not in ("init_images", "mask", "latent_mask")}
    if "alwayson_scripts" in echoed:
        echoed["alwayson_scripts"] = a1111_controlnet.without_pictures(echoed["alwayson_scripts"])
    echoed.update({"prompt": body.get("prompt", task.prompt), "negative_prompt": task.negative_prompt,
                   "steps": task.steps, "cfg_scale": task.guidance, "width": task.width, "height": task.height,
                   "seed": body.get("seed", -1), "batch_size": body.get("batch_size", task.samples),
                   "n_iter": body.get("n_iter", 1),
                   "sampler_name": A1111_SAMPLER_NAMES.get(task.scheduler, task.scheduler),
                   "scheduler": schedule_label(task.scheduler)})
    if img2img:
        echoed["init_images"] = None
        echoed["denoising_strength"] = task.strength
        if "mask" in body:
            echoed["mask"] = None  # (A1111 does not send the mask back either)
        echoed.update(inpaint_echo(task))
    else:
        echoed.update(hires_echo(task))
    return echoed


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
        preview = redis_client.connection().get(keys.preview(task.id)) if with_image else None
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
