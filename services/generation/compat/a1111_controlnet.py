"""sd-webui-controlnet's API in Daydream's terms (views/compat/a1111.py): the units of
`alwayson_scripts.controlnet.args` on txt2img and img2img (its ControlNetUnit's fields,
internal_controlnet/args.py) as the native task's `control` and `references`, its module
names as Daydream's preprocessors (services/generation/preprocess.py), its model names
("name [hash]") as the enabled guide models, and what /controlnet/model_list,
/module_list and /detect answer. Nothing here knows a request."""
from __future__ import annotations

import re

from flask import current_app

from models import AiModel, User
from services.core.errors import ValidationError
from services.generation import catalog, detect as detect_service, guides
from services.generation.compat.common import data_url, decode_base64_image, short_hash
from services.library import imaging

API_VERSION = 2  # what sd-webui-controlnet's /controlnet/version answers
# The image of an img2img unit that brings none: sd-webui-controlnet uses the init image
# (replaced by its id once it is stored: use_init_image).
INIT_IMAGE = "init_image"

# Its resize modes (by label, by number, and the older labels it still reads) and control
# modes, as the native unit's.
RESIZE_MODES = {"just resize": "resize", "crop and resize": "crop", "resize and fill": "fill",
                "inner fit (scale to fit)": "crop", "scale to fit (inner fit)": "crop",
                "outer fit (shrink to fit)": "fill", "envelope (outer fit)": "fill",
                "just resize (latent upscale)": "resize"}
RESIZE_NUMBERS = {0: "resize", 1: "crop", 2: "fill", 3: "resize"}
RESIZE_LABELS = imaging.RESIZE_MODE_NAMES
CONTROL_MODES = {"balanced": "balanced", "my prompt is more important": "prompt",
                 "controlnet is more important": "control"}
CONTROL_NUMBERS = {0: "balanced", 1: "prompt", 2: "control"}
CONTROL_LABELS = imaging.CONTROL_MODE_NAMES

# sd-webui-controlnet's modules (in its own order) by the Daydream preprocessors that do
# their work, the first one available on this install winning. The annotators' ids are its
# module names (services/generation/annotators.py); the model-free modules go to the
# built-in that does the same (a drawing's lines, a blurred tile, the inpaint mask), and a
# line art or scribble module to its annotator where installed, else to the built-in.
MODULES: dict[str, tuple[str, ...]] = {
    "none": ("none",),
    "canny": ("canny",),
    "depth_midas": ("depth_midas",),
    "openpose": ("openpose",), "openpose_face": ("openpose_face",), "openpose_hand": ("openpose_hand",),
    "openpose_full": ("openpose_full",), "dw_openpose_full": ("openpose_full",),
    "lineart_standard": ("lineart",), "lineart_realistic": ("lineart_realistic", "lineart"),
    "lineart_coarse": ("lineart_coarse", "lineart"), "lineart_anime": ("lineart_anime", "lineart"),
    "lineart_anime_denoise": ("lineart_anime", "lineart"), "invert": ("lineart",),
    "softedge_hed": ("softedge_hed",), "softedge_hedsafe": ("softedge_hedsafe",),
    "softedge_pidinet": ("softedge_pidinet",), "softedge_pidisafe": ("softedge_pidisafe",),
    "scribble_pidinet": ("scribble_pidinet", "scribble"), "scribble_hed": ("scribble_hed", "scribble"),
    "scribble_xdog": ("scribble",),
    "mlsd": ("mlsd",), "normal_bae": ("normal_bae",),
    "tile_resample": ("tile",), "tile_colorfix": ("tile",), "tile_colorfix+sharp": ("tile",),
    "blur_gaussian": ("tile",),
    "inpaint": ("inpaint",), "inpaint_only": ("inpaint",), "inpaint_global_harmonious": ("inpaint",),
    "inpaint_only+lama": ("inpaint",),
}
# Its older names for some of them (it still reads them).
MODULE_ALIASES = {"depth": "depth_midas", "hed": "softedge_hed", "pidinet": "softedge_pidinet",
                  "hed_safe": "softedge_hedsafe", "pidinet_safe": "softedge_pidisafe",
                  "pidinet_scribble": "scribble_pidinet", "fake_scribble": "scribble_hed",
                  "openpose_hand_face": "openpose_full", "normal_map": "normal_bae"}
# Modules whose sliders mean what the preprocessor's thresholds mean (their own, or the
# same under another name); another module's sliders (tile_colorfix's "Variation") are
# left to the preprocessor's defaults.
SAME_SLIDERS = {"tile_resample": "tile"}
# Modules that are a reference picture (an IP-Adapter) rather than a control map.
REFERENCE_PREFIXES = ("ip-adapter", "ip_adapter")
REFERENCE_MODULES = ("ip-adapter-auto", "ip-adapter_clip_sd15", "ip-adapter_clip_sdxl", "ip-adapter_clip_h",
                     "ip-adapter_clip_sdxl_plus_vith", "ip-adapter_clip_g")
REFERENCE_FAMILIES = {"ip-adapter_clip_sd15": "sd1", "ip-adapter_clip_h": "sd1", "ip-adapter_clip_sdxl": "sdxl",
                      "ip-adapter_clip_sdxl_plus_vith": "sdxl", "ip-adapter_clip_g": "sdxl"}
RESOLUTION_SLIDER = {"name": "Preprocessor Resolution", "value": 512, "min": 64, "max": 2048}


def _norm(name: str) -> str:
    """A module name as sd-webui-controlnet's UI shows it too ("invert (from white bg & black line)")."""
    return re.sub(r"\s*\(.*\)\s*$", "", name.strip().lower())


# --- what there is ---------------------------------------------------------------------

def guide_models(user: User, adapter: str | None = None) -> list[AiModel]:
    """The guide models (ControlNets, IP-Adapters) the caller may use: the one list that
    /controlnet/model_list shows and unit models are looked up in."""
    return catalog.enabled_guides(adapter)


def model_title(row: AiModel) -> str:
    """A guide's name as sd-webui-controlnet lists models, "name [hash]"."""
    return f"{row.name} [{short_hash(row.id)}]"


FILE_SUFFIX = re.compile(r"\.(safetensors|pth|pt|bin|ckpt)$")


def _file_stem(row: AiModel) -> str:
    """A guide's file (or folder) name without its suffix: what A1111 names a model by."""
    return FILE_SUFFIX.sub("", (row.spec or "").replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower())


def find_guide(user: User, name, adapter: str | None = None) -> AiModel | None:
    """An enabled guide model by id, name, title ("name [hash]", the hash as anything) or
    file name (with or without its suffix); any case."""
    if not isinstance(name, str) or not name.strip():
        return None
    wanted = name.strip().lower()
    bare = re.sub(r"\s*\[[0-9a-z]{6,64}\]$", "", wanted)
    stems = {wanted, bare, FILE_SUFFIX.sub("", bare)}
    rows = guide_models(user, adapter)
    for test in (lambda r: r.id.lower() in stems, lambda r: model_title(r).lower() == wanted,
                 lambda r: r.name.lower() in stems, lambda r: _file_stem(r) in stems):
        for row in rows:
            if test(row):
                return row
    return None


def unit_count() -> int:
    """The units a task may take (sd-webui-controlnet's control_net_unit_count setting)."""
    return int(current_app.config["MAX_CONTROL"])


def model_list(user: User) -> list[str]:
    """/controlnet/model_list: the guides' titles, IP-Adapters among them as its list has them."""
    return [model_title(row) for row in guide_models(user)]


def _module_name(module: str, available: dict) -> str:
    name = _norm(module)
    return name if name in available or name in MODULES else MODULE_ALIASES.get(name, name)


def preprocessor_of(module: str, available: dict[str, dict]) -> str | None:
    """The Daydream preprocessor that does an sd-webui-controlnet module's work here (its
    names, older names, and Daydream's own ids all read), None when none does."""
    name = _module_name(module, available)
    for candidate in MODULES.get(name, (name,)):
        if candidate in available:
            return candidate
    return None


def same_sliders(module: str, preprocessor: str, available: dict) -> bool:
    """Whether the module's threshold sliders are the preprocessor's thresholds."""
    name = _module_name(module, available)
    return name == preprocessor or SAME_SLIDERS.get(name) == preprocessor


def is_reference_module(module) -> bool:
    return isinstance(module, str) and (_norm(module).startswith(REFERENCE_PREFIXES) or _norm(module) == "clip_vision")


def module_list(user: User) -> list[str]:
    """/controlnet/module_list: sd-webui-controlnet's names of the modules that work here, then
    Daydream's own preprocessors no name of its stands for, then the IP-Adapter modules
    when an IP-Adapter is enabled."""
    available = guides.preprocessors()
    names = [name for name in MODULES if preprocessor_of(name, available)]
    covered = {preprocessor_of(name, available) for name in names}
    names += [pid for pid in available if pid not in covered and pid not in names]
    families = {row.family for row in guide_models(user, "ipadapter")}
    if families:
        names += [name for name in REFERENCE_MODULES
                  if name not in REFERENCE_FAMILIES or REFERENCE_FAMILIES[name] in families]
    return names


def _slider(spec: dict | None) -> dict | None:
    if not spec:
        return None
    slider = {"name": spec.get("label") or "", "value": spec.get("default"), "min": spec.get("min"),
              "max": spec.get("max")}
    if spec.get("step") is not None:
        slider["step"] = spec["step"]
    return slider


def module_detail(user: User, names: list[str]) -> dict:
    """/controlnet/module_list's module_detail: each module's sliders as its UI shows them
    (processor resolution, threshold A, threshold B) and whether it needs no model."""
    available = guides.preprocessors()
    detail = {}
    for name in names:
        found = preprocessor_of(name, available)
        item = available.get(found) if found else None
        if item is None or found in ("none", "inpaint"):
            detail[name] = {"model_free": False, "sliders": []}
            continue
        thresholds = (item.get("thresholds") or {}) if same_sliders(name, found, available) else {}
        sliders = [dict(RESOLUTION_SLIDER)] + [_slider(thresholds.get(key)) for key in ("a", "b")]
        while sliders and sliders[-1] is None:
            sliders.pop()
        detail[name] = {"model_free": False, "sliders": sliders}
    return detail


# --- units in ----------------------------------------------------------------------------

def is_controlnet(script_name) -> bool:
    return isinstance(script_name, str) and script_name.strip().lower() == "controlnet"


def _units_of(args, field: str) -> list:
    if isinstance(args, dict):
        args = args.get("args", [])
    if args is None:
        return []
    if not isinstance(args, list):
        raise ValidationError(field, "must be {\"args\": [units]}: a list of ControlNet units")
    return args


def _enabled(unit: dict, field: str) -> bool:
    """Whether a unit runs: `enabled` (when left out, as sd-webui-controlnet's API read it for
    years: on), and something to run (a unit with neither an image nor a model is the
    empty slot some clients fill the list with)."""
    enabled = unit.get("enabled", True)
    if not isinstance(enabled, bool) and enabled not in (0, 1, None):
        raise ValidationError(f"{field}.enabled", "must be true or false")
    if enabled is False or enabled == 0:
        return False
    model = unit.get("model")
    no_model = model is None or (isinstance(model, str) and model.strip().lower() in ("", "none"))
    return not (no_model and not _images(unit) and not is_reference_module(unit.get("module")))


def _images(unit: dict) -> list:
    """The unit's pictures as sent: "image" (or "input_image"): one picture, a {"image",
    "mask"} pair, an [image, mask] pair, or a list of pairs (several references)."""
    image = unit.get("image", unit.get("input_image"))
    if image is None or image == "":
        return []
    if isinstance(image, dict):
        return [image.get("image")]
    if isinstance(image, (list, tuple)):
        if image and all(isinstance(item, dict) for item in image):
            return [item.get("image") for item in image]
        return [image[0]] if image else []
    return [image]


def _data_url(value, field: str) -> str:
    """A base64 picture (complaints naming the unit's field) as a data URL."""
    return data_url(decode_base64_image(value, field))


def _number(unit: dict, key: str, field: str, low: float, high: float, default):
    value = unit.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValidationError(f"{field}.{key}", "must be a number")
    if not low <= value <= high:
        raise ValidationError(f"{field}.{key}", f"must be from {low:g} to {high:g}")
    return float(value)


def _loose(value) -> float | None:
    """A slider's value as sent (-1, or anything not a number: the preprocessor's default)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def _mode(value, by_label: dict, by_number: dict, labels: dict, field: str, default: str) -> str:
    """A resize or control mode by its label, its number, or Daydream's own word for it."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        word = value.strip().lower()
        if word in by_label:
            return by_label[word]
        if word in labels:
            return word
        value = int(word) if word.isdigit() else value
    if isinstance(value, int) and not isinstance(value, bool) and value in by_number:
        return by_number[value]
    raise ValidationError(field, "must be one of " + ", ".join(f'"{label}"' for label in labels.values())
                          + f" (or 0 to {len(labels) - 1})")


def _threshold(value, spec: dict | None) -> float | None:
    """A threshold slider within the preprocessor's range, else its default (None), as
    sd-webui-controlnet's bound check resets one out of range (clients send -1 or 64)."""
    number = _loose(value)
    if number is None or not spec:
        return None
    low, high = spec.get("min"), spec.get("max")
    if (low is not None and number < low) or (high is not None and number > high):
        return None
    return number


def _control_unit(unit: dict, field: str, module: str, model: AiModel, available: dict, images: list,
                  *, img2img: bool) -> dict:
    preprocessor = preprocessor_of(module, available)
    if preprocessor is None:
        raise ValidationError(f"{field}.module", f"'{str(module)[:60]}' is not available here; "
                                                 "see GET /controlnet/module_list")
    if not images:
        if not img2img:
            raise ValidationError(f"{field}.image", "send the unit's picture (base64), or use img2img, "
                                                    "whose init image a unit without one takes")
        image = INIT_IMAGE
    else:
        image = _data_url(images[0], f"{field}.image")
    thresholds = (available[preprocessor].get("thresholds") or {}) if same_sliders(module, preprocessor,
                                                                                   available) else {}
    resolution = _loose(unit.get("processor_res"))
    control = {
        "image": image, "preprocessor": preprocessor, "model": model.id,
        "weight": _number(unit, "weight", field, 0, 2, 1.0),
        "start": _number(unit, "guidance_start", field, 0, 1, 0.0),
        "end": _number(unit, "guidance_end", field, 0, 1, None) if "guidance_end" in unit
        else _number(unit, "guidance", field, 0, 1, 1.0),
        "control_mode": _mode(unit.get("control_mode"), CONTROL_MODES, CONTROL_NUMBERS, CONTROL_LABELS,
                              f"{field}.control_mode", "balanced"),
        "resize_mode": _mode(unit.get("resize_mode"), RESIZE_MODES, RESIZE_NUMBERS, RESIZE_LABELS,
                             f"{field}.resize_mode", "crop"),
        "processor_res": int(resolution) if resolution is not None and 64 <= resolution <= 2048 else None,
        "threshold_a": _threshold(unit.get("threshold_a"), thresholds.get("a")),
        "threshold_b": _threshold(unit.get("threshold_b"), thresholds.get("b")),
        "pixel_perfect": unit.get("pixel_perfect") is True,
    }
    if control["end"] is None:
        control["end"] = 1.0
    if control["start"] > control["end"]:
        raise ValidationError(f"{field}.guidance_start", f"({control['start']:g}) is after guidance_end "
                                                         f"({control['end']:g})")
    return {key: value for key, value in control.items() if value is not None}


def _reference_units(unit: dict, field: str, model: AiModel, images: list) -> list[dict]:
    if not images:
        raise ValidationError(f"{field}.image", "send the reference picture (base64)")
    weight = _number(unit, "weight", field, 0, 2, 1.0)
    return [{"image": _data_url(image, f"{field}.image"), "weight": weight, "model": model.id} for image in images]


def script_units(user: User, script_name: str, args, *, img2img: bool) -> dict:
    """The native task fields ({"control": [...], "references": [...]}, those with units) of
    the ControlNet script's args: its enabled units, in order. A unit names its model by
    id, name or title ("control_v11p_sd15_canny [d14c016b]"); an IP-Adapter's module
    ("ip-adapter_clip_sd15", …) or model makes it a reference picture. Complaints name the
    unit's field as sent: alwayson_scripts.ControlNet.args[1].model."""
    base = f"alwayson_scripts.{str(script_name)[:40]}.args"
    units = _units_of(args, base)
    available = guides.preprocessors()
    control: list[dict] = []
    references: list[dict] = []
    for index, unit in enumerate(units):
        field = f"{base}[{index}]"
        if unit is None or isinstance(unit, bool):
            continue  # (a placeholder among the units)
        if not isinstance(unit, dict):
            raise ValidationError(field, "must be a ControlNet unit (an object)")
        if not _enabled(unit, field):
            continue
        module = unit.get("module")
        if module is None or module == "":
            module = "none"
        if not isinstance(module, str):
            raise ValidationError(f"{field}.module", "must be a module name; see GET /controlnet/module_list")
        name = unit.get("model")
        if name is not None and not isinstance(name, str):
            raise ValidationError(f"{field}.model", "must be a model name; see GET /controlnet/model_list")
        model = find_guide(user, name)
        if model is None:
            said = "no model" if not name or name.strip().lower() == "none" else f"'{name[:80]}'"
            kind = "IP-Adapter" if is_reference_module(module) else "ControlNet"
            raise ValidationError(f"{field}.model", f"{said} is not an available {kind} here; "
                                                    "see GET /controlnet/model_list")
        if model.adapter == "ipadapter" or is_reference_module(module):
            if model.adapter != "ipadapter":
                raise ValidationError(f"{field}.model", f"{model.name} is a ControlNet; the {module} module "
                                                        "takes an IP-Adapter model")
            references += _reference_units(unit, field, model, _images(unit))
        else:
            control.append(_control_unit(unit, field, module, model, available, _images(unit), img2img=img2img))
    fields = {}
    if control:
        fields["control"] = control
    if references:
        fields["references"] = references
    return fields


def without_pictures(scripts):
    """alwayson_scripts as `parameters` echoes it: the units without their pictures (A1111
    sends no init_images back either)."""
    if not isinstance(scripts, dict):
        return scripts
    echoed = {}
    for name, args in scripts.items():
        units = args.get("args") if isinstance(args, dict) else None
        if is_controlnet(name) and isinstance(units, list):
            args = {**args, "args": [{key: (None if key in ("image", "input_image", "mask", "mask_image") else value)
                                      for key, value in unit.items()} if isinstance(unit, dict) else unit
                                     for unit in units]}
        echoed[name] = args
    return echoed


def use_init_image(params: dict, init_id: str) -> None:
    """Units that take the init image (img2img units sent without a picture) get its id."""
    for unit in params.get("control") or []:
        if unit.get("image") == INIT_IMAGE:
            unit["image"] = init_id


# --- units out ----------------------------------------------------------------------------

def extras(task) -> dict:
    """What a task's guides add to A1111's extra_generation_params ("ControlNet 0": "Module:
    canny, Model: …", "IP-Adapter 0": …), as its infotext writes them."""
    return dict(imaging.guide_fields({"control": getattr(task, "control", None),
                                      "references": getattr(task, "reference_images", None)}))


# --- /controlnet/detect ------------------------------------------------------------------

MAX_DETECT_IMAGES = 4
# The native detect's fields by this route's names for them.
DETECT_NAMES = {"preprocessor": "controlnet_module", "processor_res": "controlnet_processor_res",
                "threshold_a": "controlnet_threshold_a", "threshold_b": "controlnet_threshold_b",
                "mask": "controlnet_masks"}


def detect_request(body: dict) -> dict:
    """/controlnet/detect's fields (controlnet_module, controlnet_input_images — or
    controlnet_images, as older clients send them —, controlnet_masks,
    controlnet_processor_res, controlnet_threshold_a/_b) as {preprocessor, images, field,
    masks, resolution, threshold_a, threshold_b}; the pictures still base64. Sliders out of
    the module's range are its defaults, as sd-webui-controlnet reads them."""
    module = body.get("controlnet_module", "none")
    if module is None or module == "":
        module = "none"
    if not isinstance(module, str):
        raise ValidationError("controlnet_module", "must be a module name; see GET /controlnet/module_list")
    if is_reference_module(module):
        raise ValidationError("controlnet_module", f"{module[:60]} makes no map to detect (an IP-Adapter "
                                                   "takes the picture itself)")
    available = guides.preprocessors()
    preprocessor = preprocessor_of(module, available)
    if preprocessor is None:
        raise ValidationError("controlnet_module", f"'{module[:60]}' is not available here; "
                                                   "see GET /controlnet/module_list")
    field = "controlnet_input_images" if "controlnet_input_images" in body else "controlnet_images"
    images = body.get(field)
    if not isinstance(images, list) or not images:
        raise ValidationError(field, "send the pictures in a list, base64-encoded")
    if len(images) > MAX_DETECT_IMAGES:
        raise ValidationError(field, f"at most {MAX_DETECT_IMAGES} pictures a request")
    masks = body.get("controlnet_masks") or []
    if not isinstance(masks, list):
        raise ValidationError("controlnet_masks", "must be a list of base64-encoded masks")
    if available[preprocessor].get("needs_mask") and len(masks) < len(images):
        raise ValidationError("controlnet_masks", f"the {module[:60]} module needs a mask for each picture")
    thresholds = (available[preprocessor].get("thresholds") or {}) if same_sliders(module, preprocessor,
                                                                                   available) else {}
    resolution = _loose(body.get("controlnet_processor_res"))
    return {"preprocessor": preprocessor, "images": images, "field": field, "masks": masks,
            "resolution": int(resolution) if resolution is not None and 64 <= resolution <= 2048 else 512,
            "threshold_a": _threshold(body.get("controlnet_threshold_a"), thresholds.get("a")),
            "threshold_b": _threshold(body.get("controlnet_threshold_b"), thresholds.get("b"))}


def detect(user: User, body: dict) -> list[str]:
    """/controlnet/detect: the map of each picture (raw base64 PNGs, as its answer has them),
    made by the native detect (services/generation/detect.py: the upload checks, the rate
    limit, annotators in a child process) with the module's preprocessor."""
    job = detect_request(body)
    maps = []
    for index, image in enumerate(job["images"]):
        names = {**DETECT_NAMES, "image": job["field"]}
        asked = {"image": _data_url(image, job["field"]), "preprocessor": job["preprocessor"],
                 "processor_res": job["resolution"], "threshold_a": job["threshold_a"],
                 "threshold_b": job["threshold_b"]}
        if index < len(job["masks"]) and job["masks"][index] not in (None, ""):
            asked["mask"] = _data_url(job["masks"][index], "controlnet_masks")
        try:
            made = detect_service.detect(user, asked)
        except ValidationError as exc:
            raise ValidationError(names.get(exc.field, exc.field), exc.message.removeprefix(f"{exc.field}: "))
        maps.append(made["image"].split(",", 1)[1])
    return maps
