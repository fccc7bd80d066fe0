"""Guide model files (issue 25): ControlNets under <models>/controlnet/ and IP-Adapters
under <models>/ipadapter/, told apart by reading config.json files and .safetensors
headers only: no torch, no Flask (the scan runs on the web tier; the worker asks
image_encoder_for() where an IP-Adapter's image encoder is).

- ControlNet: a diffusers folder (config.json `_class_name` ControlNetModel,
  ControlNetUnionModel, FluxControlNetModel; SD3ControlNetModel is listed as unsupported)
  or a single .safetensors file: the original layout (`control_model.…`, sd-webui-controlnet's
  files) or diffusers' (`controlnet_cond_embedding.…`, `controlnet_x_embedder.…`). The
  family of an SD ControlNet is its cross-attention width (768 SD 1.x, 1024 SD 2.x, 2048
  SDXL); FLUX's shows in its key names. A Union (several control types in one model:
  `task_embedding` in SDXL's, `controlnet_mode_embedder` or `num_mode` in FLUX's) is
  architecture "union". An SD Union (ControlNetUnionModel, xinsir's controlnet-union-sdxl
  and ProMax) is SDXL's whatever its width, unless that width is SD 1.x's or 2.x's:
  diffusers runs it with its SDXL pipelines only. A Union's number of control modes
  (Guide.control_modes: 6 on xinsir's first Union, 8 on ProMax) is its config's
  `num_control_type` (FLUX's `num_mode`), else the rows of its control-type embedding
  (`task_embedding`, FLUX's `controlnet_mode_embedder.weight`: one row a mode) in the
  weights' header; an SDXL Union that says neither is taken to have all eight.
- IP-Adapter: a .safetensors file (`image_proj.…` + `ip_adapter.N.to_k_ip.…`, the family
  from to_k_ip's input width; "ip-adapter-plus" when its projection is a resampler with
  `latents`; FLUX's XLabs layout `ip_adapter_proj_model.…`), with an `image_encoder/`
  folder beside it (or in a folder above it under ipadapter/, or in another folder there:
  the first whose embedding width fits). One without a usable encoder is an error with
  the reason. A FluxPriorReduxPipeline folder (model_index.json) is architecture "redux".
- Pickled weights (.bin, .pth, .pt, .ckpt) are listed as unsupported: the web tier does
  not unpickle, and guides are read from .safetensors (diffusers folders may hold .bin).

Guides of a family whose card takes none (families.Card.controlnet / ip_adapter) are
listed as unsupported with the reason."""
from __future__ import annotations

import json
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from services.generation import families
from services.generation.families import Guard

CONTROLNET_FOLDER = "controlnet"
IPADAPTER_FOLDER = "ipadapter"
# The folder under the models folder -> the adapter of the guides found in it.
FOLDERS = {CONTROLNET_FOLDER: "controlnet", IPADAPTER_FOLDER: "ipadapter"}
ADAPTER_LABELS = {"controlnet": "ControlNet", "ipadapter": "IP-Adapter"}
IMAGE_ENCODER = "image_encoder"
WEIGHTS = (".safetensors",)
PICKLES = (".bin", ".pth", ".pt", ".ckpt")
ARCHITECTURES = ("controlnet", "union", "ip-adapter", "ip-adapter-plus", "redux")

# The width of a UNet's cross-attention (its text encoder's) -> the family.
CROSS_ATTENTION_FAMILIES = {768: "sd1", 1024: "sd2", 2048: "sdxl"}
CONTROLNET_CLASSES = {"ControlNetModel": "controlnet", "ControlNetUnionModel": "union"}
# The control modes of an SDXL Union that does not say how many it has: all of xinsir's
# (ProMax's eight, preprocess.SDXL_UNION_MODES); submit then refuses none of them.
SDXL_UNION_ALL_MODES = 8
# A Union's control-type embedding (one row a mode): SDXL's (xinsir's) and FLUX's.
MODE_EMBEDDINGS = ("task_embedding", "controlnet_mode_embedder.weight")
# Folder weights diffusers' from_pretrained reads (it loads a .bin without running code).
FOLDER_WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                  "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.bin")
ENCODER_WEIGHTS = ("model.safetensors", "model.fp16.safetensors", "model.safetensors.index.json",
                   "pytorch_model.bin")


@dataclass(frozen=True)
class Guide:
    adapter: str  # "controlnet" | "ipadapter"
    family: str  # the family of the models it guides
    architecture: str  # one of ARCHITECTURES
    control_modes: int | None = None  # a Union's number of control modes (None: not a Union, or not known)


class GuideError(Exception):
    """A guide file that cannot be used (unreadable, incomplete, no image encoder); the
    message says why. `family`: what it was for, where that is known."""

    def __init__(self, message: str, family: str | None = None):
        super().__init__(message)
        self.family = family


class UnsupportedGuide(GuideError):
    """A guide of a kind or family Daydream does not use (an SD 3 ControlNet, a T2I-Adapter,
    an IP-Adapter FaceID, …), or not a guide at all."""


@dataclass(frozen=True)
class Found:
    """What the scan found at one path under controlnet/ or ipadapter/: a guide, or why
    it cannot be one (state "error" or "unsupported")."""

    adapter: str
    is_dir: bool
    guide: Guide | None = None
    state: str = "available"
    why: str = ""
    family: str | None = None


# --- reading -------------------------------------------------------------------------

def _check(path: Path, guard: Guard) -> Path:
    if guard is not None:
        guard(path)
    return path


def _read_json(path: Path, guard: Guard, what: str) -> dict:
    try:
        data = json.loads(_check(path, guard).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GuideError(f"its {what} could not be read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise GuideError(f"its {what} is not valid JSON") from exc
    if not isinstance(data, dict):
        raise GuideError(f"its {what} is not a JSON object")
    return data


def read_header(path: Path, guard: Guard = None) -> dict:
    """The header of a .safetensors file, after checking the file holds all the weights
    the header names (a download cut short is an error, not a model that fails later)."""
    path = _check(Path(path), guard)
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the reader for ever
            raise GuideError(f"{path.name} is not a regular file")
        header = families.safetensors_header(path)
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
        size = path.stat().st_size
    except families.NotSafetensors as exc:
        raise GuideError(str(exc)) from exc
    except OSError as exc:
        raise GuideError(f"{path.name} could not be read ({exc.strerror or exc})") from exc
    ends = [entry["data_offsets"][1] for key, entry in header.items()
            if key != "__metadata__" and isinstance(entry, dict)
            and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
            and isinstance(entry["data_offsets"][1], int)]
    if ends and size < 8 + length + max(ends):
        raise GuideError(f"{path.name} is incomplete ({size} bytes of {8 + length + max(ends)}): "
                         "a download cut short?")
    return header


def _shape(header: dict, key: str) -> list | None:
    entry = header.get(key)
    shape = entry.get("shape") if isinstance(entry, dict) else None
    return shape if isinstance(shape, list) and all(isinstance(n, int) for n in shape) else None


def _modes(header: dict) -> int | None:
    """A Union's number of control modes from its weights' header: the rows of its
    control-type embedding (MODE_EMBEDDINGS), None where it has none."""
    for key in MODE_EMBEDDINGS:
        shape = _shape(header, key) or _shape(header, "control_model." + key)
        if shape and len(shape) == 2 and shape[0] > 0:
            return shape[0]
    return None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _supported(adapter: str, family: str) -> str:
    """`family` when its card takes this adapter; UnsupportedGuide says which do."""
    card = families.FAMILIES.get(family)
    takes = card is not None and (card.controlnet if adapter == "controlnet" else card.ip_adapter)
    if not takes:
        served = [c.label for c in families.FAMILIES.values()
                  if (c.controlnet if adapter == "controlnet" else c.ip_adapter)]
        label = card.label if card is not None else family
        raise UnsupportedGuide(f"{_a(ADAPTER_LABELS[adapter])} for {label} models, which take none here "
                               f"({ADAPTER_LABELS[adapter]}s guide {', '.join(served)} models)", family)
    return family


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "AEIOU" else "a ") + noun


# --- ControlNet ------------------------------------------------------------------------

def controlnet_folder(folder: Path, guard: Guard = None) -> Guide:
    """A diffusers ControlNet folder, by its config.json."""
    folder = Path(folder)
    config = _read_json(folder / "config.json", guard, "config.json")
    name = config.get("_class_name")
    if not isinstance(name, str) or not name:
        raise GuideError("its config.json names no model class")
    modes = None
    if name in CONTROLNET_CLASSES:
        width = config.get("cross_attention_dim")
        family = CROSS_ATTENTION_FAMILIES.get(width) if isinstance(width, int) else None
        architecture = CONTROLNET_CLASSES[name]
        if architecture == "union":
            family, modes = _union_family(family), _count(config.get("num_control_type"))
        elif family is None:
            raise UnsupportedGuide(f"a {name} whose cross-attention width ({width}) is not that of "
                                   "Stable Diffusion 1.x, 2.x or SDXL")
    elif name == "FluxControlNetModel":
        family, architecture = "flux", "union" if config.get("num_mode") else "controlnet"
        modes = _count(config.get("num_mode"))
    elif name == "SD3ControlNetModel":
        family, architecture = "sd3", "controlnet"
    else:
        raise UnsupportedGuide(f"a {name} is not a ControlNet Daydream can use (ControlNetModel, "
                               "ControlNetUnionModel or FluxControlNetModel)")
    _supported("controlnet", family)
    weights = _folder_weights(folder, guard, FOLDER_WEIGHTS, family)
    if architecture != "union":
        return Guide("controlnet", family, architecture)
    if modes is None and weights.name.endswith(".safetensors"):  # (an index.json: not read)
        modes = _modes(read_header(weights, guard))
    return Guide("controlnet", family, architecture, _union_modes(family, modes))


def _folder_weights(folder: Path, guard: Guard, names: tuple[str, ...], family: str | None) -> Path:
    """The folder's weights file (a .safetensors one must be complete)."""
    for name in names:
        path = folder / name
        try:
            present = path.is_file()
        except OSError:
            present = False
        if present:
            if name.endswith(".safetensors"):
                try:
                    read_header(path, guard)
                except GuideError as exc:
                    raise GuideError(str(exc), family) from exc
            else:
                _check(path, guard)
            return path
    raise GuideError(f"{folder.name} has no weights ({names[0]})", family)


def controlnet_keys(header: dict) -> Guide:
    """A single-file ControlNet, by its tensor names and shapes."""
    keys = [k for k in header if k != "__metadata__"]
    names = {k.removeprefix("control_model.") for k in keys}
    if families.is_lora_keys(keys) or "lora_controlnet" in names:
        raise UnsupportedGuide("a Control-LoRA (or a LoRA) is not a ControlNet Daydream can use")
    if any(k.startswith(("double_blocks.", "single_blocks.")) for k in names):
        raise UnsupportedGuide("a FLUX ControlNet in XLabs' layout: Daydream reads FLUX ControlNets in "
                               "diffusers' layout (controlnet_x_embedder, controlnet_blocks)", "flux")
    if "controlnet_x_embedder.weight" in names or (
            any(k.startswith("controlnet_blocks.") for k in names)
            and any(k.startswith(("single_transformer_blocks.", "controlnet_single_blocks.")) for k in names)):
        if "controlnet_mode_embedder.weight" not in names:
            return Guide("controlnet", _supported("controlnet", "flux"), "controlnet")
        return Guide("controlnet", _supported("controlnet", "flux"), "union", _modes(header))
    if "pos_embed_input.proj.weight" in names or any(k.startswith("joint_blocks.") for k in names):
        _supported("controlnet", "sd3")
    sd_markers = ("input_hint_block.", "zero_convs.", "controlnet_cond_embedding.", "controlnet_down_blocks.")
    if not any(k.startswith(sd_markers) for k in names):
        if any(k.startswith(("adapter.", "body.")) for k in names) and not any("attn" in k for k in names):
            raise UnsupportedGuide("a T2I-Adapter is not a ControlNet Daydream can use")
        raise UnsupportedGuide("its tensors are not those of a ControlNet (SD 1.x, SDXL or FLUX.1)")
    width = None
    for key in sorted(names):
        if ("attn2.to_k" in key) and key.endswith(".weight"):
            shape = _shape(header, key) or _shape(header, "control_model." + key)
            if shape and len(shape) == 2:
                width = shape[1]
                break
    family = CROSS_ATTENTION_FAMILIES.get(width)
    union = "task_embedding" in names or any(k.startswith(("control_add_embedding.", "transformer_layes."))
                                            for k in names)
    if union:
        family = _union_family(family)
    elif family is None:
        raise UnsupportedGuide("a ControlNet whose cross-attention width "
                               f"({width if width else 'not found'}) is not that of SD 1.x, 2.x or SDXL")
    if not union:
        return Guide("controlnet", _supported("controlnet", family), "controlnet")
    return Guide("controlnet", _supported("controlnet", family), "union", _union_modes(family, _modes(header)))


def _union_modes(family: str, modes: int | None) -> int | None:
    """A Union's number of control modes as read (None: not said), an SDXL one's all of
    them when nothing says (module doc)."""
    return modes if modes is not None or family != "sdxl" else SDXL_UNION_ALL_MODES


def _union_family(family: str | None) -> str:
    """An SD ControlNet Union's family: SDXL (module doc), unless its width says SD 1.x/2.x."""
    if family in (None, "sdxl"):
        return "sdxl"
    label = families.FAMILIES[family].label
    raise UnsupportedGuide(f"a ControlNet Union for {label} models: Unions run with SDXL models only", family)


# --- IP-Adapter ------------------------------------------------------------------------

def ipadapter_keys(header: dict) -> tuple[Guide, str, int | None]:
    """A single-file IP-Adapter, by its tensor names and shapes: the guide, which width of
    image embedding it takes ("projection": the encoder's image embeds; "hidden": its
    hidden states), and that width (None: not known)."""
    keys = [k for k in header if k != "__metadata__"]
    if any(k.startswith("ip_adapter_proj_model.") for k in keys) or any(
            "ip_adapter_double_stream" in k for k in keys):
        shape = _shape(header, "ip_adapter_proj_model.proj.weight")
        return Guide("ipadapter", _supported("ipadapter", "flux"), "ip-adapter"), "projection", \
            shape[1] if shape and len(shape) == 2 else None
    if not any(k.startswith("image_proj.") for k in keys) or not any(k.startswith("ip_adapter.") for k in keys):
        raise UnsupportedGuide("its tensors are not those of an IP-Adapter (image_proj and ip_adapter)")
    if any("to_k_lora" in k or "perceiver_resampler" in k for k in keys):
        raise UnsupportedGuide("an IP-Adapter FaceID needs face embeddings (insightface): not supported")
    width = None
    for key in sorted(keys):
        if key.startswith("ip_adapter.") and key.endswith("to_k_ip.weight"):
            shape = _shape(header, key)
            if shape and len(shape) == 2:
                width = shape[1]
                break
    family = CROSS_ATTENTION_FAMILIES.get(width)
    if family is None:
        raise UnsupportedGuide(f"an IP-Adapter whose cross-attention width ({width or 'not found'}) is "
                               "not that of SD 1.x, 2.x or SDXL")
    _supported("ipadapter", family)
    if "image_proj.latents" in keys:  # a Perceiver resampler over the encoder's hidden states
        shape = _shape(header, "image_proj.proj_in.weight")
        return Guide("ipadapter", family, "ip-adapter-plus"), "hidden", \
            shape[1] if shape and len(shape) == 2 else None
    shape = _shape(header, "image_proj.proj.weight")
    if shape and len(shape) == 2:
        return Guide("ipadapter", family, "ip-adapter"), "projection", shape[1]
    shape = _shape(header, "image_proj.proj.0.weight")  # "full face": an MLP over hidden states
    return Guide("ipadapter", family, "ip-adapter"), "hidden", shape[1] if shape and len(shape) == 2 else None


def _encoder_width(folder: Path, guard: Guard, takes: str) -> int | None:
    """The width an image encoder folder gives (GuideError when it is not usable)."""
    config = _read_json(folder / "config.json", guard, f"{folder.name}/config.json")
    _folder_weights(folder, guard, ENCODER_WEIGHTS, None)
    vision = config.get("vision_config") if isinstance(config.get("vision_config"), dict) else config
    value = vision.get("projection_dim" if takes == "projection" else "hidden_size",
                       config.get("projection_dim") if takes == "projection" else None)
    return value if isinstance(value, int) else None


def _encoder_candidates(path: Path, root: Path) -> list[Path]:
    """Where an IP-Adapter's image encoder may be: image_encoder/ beside it, then in each
    folder above it up to ipadapter/, then in ipadapter/'s other folders (h94's SDXL
    "vit-h" adapters use the SD 1.5 folder's encoder)."""
    root = Path(root)
    out: list[Path] = []
    folder = Path(path).parent
    while True:
        out.append(folder / IMAGE_ENCODER)
        if folder == root or root not in folder.parents:
            break
        folder = folder.parent
    try:
        others = sorted(p / IMAGE_ENCODER for p in root.iterdir() if not p.name.startswith("."))
    except OSError:
        others = []
    return out + [p for p in others if p not in out]


def image_encoder_for(path: Path, root: Path, guard: Guard = None, takes: str | None = None,
                      width: int | None = None) -> Path:
    """The image encoder folder of the IP-Adapter file `path` (root: <models>/ipadapter):
    the first candidate (_encoder_candidates) that is usable and, when `width` is known,
    gives embeddings that wide. GuideError says why none fits. Without takes/width the
    adapter's header is read for them."""
    path = Path(path)
    if takes is None:
        _, takes, width = ipadapter_keys(read_header(path, guard))
    first_problem = ""
    for folder in _encoder_candidates(path, root):
        try:
            if not folder.is_dir():
                continue
            got = _encoder_width(folder, guard, takes)
        except OSError as exc:  # a link out of the folder, or unreadable
            first_problem = first_problem or f"{IMAGE_ENCODER}/ could not be read ({exc})"
            continue
        except GuideError as exc:
            first_problem = first_problem or f"its {IMAGE_ENCODER}/ is not usable: {exc}"
            continue
        if width is None or got is None or got == width:
            return folder
        first_problem = first_problem or (
            f"its {IMAGE_ENCODER}/ gives {got}-wide image embeddings, but the IP-Adapter takes {width}: "
            "put the image encoder it was trained with beside it")
    raise GuideError(first_problem or f"no {IMAGE_ENCODER}/ folder beside it: an IP-Adapter needs the image "
                     "encoder it was trained with (a CLIP vision model folder named image_encoder)")


def ipadapter_file(path: Path, root: Path, guard: Guard = None) -> Guide:
    guide, takes, width = ipadapter_keys(read_header(path, guard))
    try:
        image_encoder_for(path, root, guard, takes, width)
    except GuideError as exc:
        raise GuideError(str(exc), guide.family) from exc
    return guide


def ipadapter_folder(folder: Path, guard: Guard = None) -> Guide:
    """A diffusers pipeline folder under ipadapter/: FLUX Redux (FluxPriorReduxPipeline)."""
    index = _read_json(Path(folder) / "model_index.json", guard, "model_index.json")
    name = index.get("_class_name")
    if name != "FluxPriorReduxPipeline":
        raise UnsupportedGuide(f"a {name or 'pipeline'} folder is not an IP-Adapter (FluxPriorReduxPipeline "
                               "folders are read here)")
    return Guide("ipadapter", _supported("ipadapter", "flux"), "redux")


# --- the scan --------------------------------------------------------------------------

def is_guide_folder(path: Path) -> bool:
    """A folder that is one guide (or an image encoder), not a folder of guides: the walk
    does not look inside it."""
    path = Path(path)
    if path.name == IMAGE_ENCODER:
        return True
    try:
        return (path / "config.json").is_file() or (path / "model_index.json").is_file()
    except OSError:
        return False


def describe(rel: Path, path: Path, is_dir: bool, models_root: Path, guard: Guard = None) -> Found | None:
    """What the entry at `rel` (under controlnet/ or ipadapter/) is; None when it is not a
    guide to list (a folder of guides, an image encoder, a file of another kind)."""
    rel = Path(rel)
    adapter = FOLDERS.get(rel.parts[0]) if rel.parts else None
    if adapter is None or len(rel.parts) < 2:
        return None
    if is_dir:
        if path.name == IMAGE_ENCODER or not is_guide_folder(path):
            return None
    elif path.suffix.lower() in PICKLES:
        return Found(adapter, False, state="unsupported",
                     why=f"{path.name} holds pickled weights: Daydream reads {ADAPTER_LABELS[adapter]} "
                         "files as .safetensors only (convert it, or use the diffusers folder)")
    elif path.suffix.lower() not in WEIGHTS:
        return None
    try:
        if adapter == "controlnet":
            guide = controlnet_folder(path, guard) if is_dir else controlnet_keys(read_header(path, guard))
        elif is_dir:
            guide = ipadapter_folder(path, guard)
        else:
            guide = ipadapter_file(path, Path(models_root) / IPADAPTER_FOLDER, guard)
    except UnsupportedGuide as exc:
        return Found(adapter, is_dir, state="unsupported", why=str(exc), family=exc.family)
    except GuideError as exc:
        why = str(exc) if str(exc).startswith(path.name) else f"{path.name}: {exc}"
        return Found(adapter, is_dir, state="error", why=why, family=exc.family)
    except OSError as exc:  # a link out of the models folder (the guard), or unreadable
        return Found(adapter, is_dir, state="error", why=f"{path.name} could not be read: {exc}")
    return Found(adapter, is_dir, guide=guide, family=guide.family)
