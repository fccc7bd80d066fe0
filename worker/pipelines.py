"""Loading, caching and configuring diffusers pipelines for the worker.

A model "spec" (DAYDREAM_MODEL, or a task's model) is one of:
  - "demo", "demo-sdxl", "demo-sd3", "demo-flux": the tiny built-in models, built on
    first use (worker/demo_model.py);
  - a diffusers folder (with model_index.json), absolute or under the models path;
  - a .safetensors / .ckpt single-file checkpoint, absolute or under the models path;
  - otherwise a Hugging Face hub id, taken from the local HF cache when there.
Families: SD 1.x, SD 2.x, SDXL, SD 3/3.5 and FLUX.1, each through diffusers' own
pipeline class (services/generation/families.py tells the family from the files).
Every failure comes out as ModelLoadError, whose message says what to do.
"""

from __future__ import annotations

import gc
import os
import re
import weakref
from pathlib import Path

import torch
from diffusers import (
    AutoPipelineForImage2Image,
    DiffusionPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from services.generation import families
from services.generation.families import Detected, UnknownModel
from services.generation.model_files import ModelsFolder
from worker.demo_model import build_demo_lora, build_demo_model
from worker.schedulers import DEFAULT_SCHEDULER, apply_scheduler

# The worker's log is for people: no progress bars while loading weights.
diffusers_logging.disable_progress_bar()
transformers_logging.disable_progress_bar()

__all__ = [
    "DEFAULT_SCHEDULER",
    "LoraError",
    "ModelLoadError",
    "PipelineCache",
    "apply_loras",
    "apply_scheduler",
    "family_of",
    "img2img_from",
    "load_pipeline",
    "resolve_device",
]

DEMO_FOLDER = "daydream-demo"
DEMO_LORA_FOLDER = "daydream-demo-loras"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
ADVICE = (
    "Download it into the models folder or set DAYDREAM_MODEL to a local diffusers folder "
    "or .safetensors/.ckpt file."
)

PIPELINES = {
    "sd1": StableDiffusionPipeline,
    "sd2": StableDiffusionPipeline,
    "sdxl": StableDiffusionXLPipeline,
    "sd3": StableDiffusion3Pipeline,
    "flux": FluxPipeline,
}
# The denoiser of each family: (the pipeline's component name, its class), for
# checkpoints that hold only it (most FLUX and many SD 3 files).
DENOISERS = {
    "sd1": ("unet", UNet2DConditionModel),
    "sd2": ("unet", UNet2DConditionModel),
    "sdxl": ("unet", UNet2DConditionModel),
    "sd3": ("transformer", SD3Transformer2DModel),
    "flux": ("transformer", FluxTransformer2DModel),
}
# Where the models folder keeps, per family, a diffusers folder whose configs and
# tokenizers (and, for a denoiser-only file, its other parts) a single file is loaded with.
CONFIG_FOLDER = "configs"


class ModelLoadError(Exception):
    """A model could not be loaded. The message is meant for the operator (staff see it on
    Admin → Models, and the log has it): it may name server paths. `user` is what the
    person who asked sees: the model's name, no paths."""

    def __init__(self, message: str, user: str | None = None):
        super().__init__(message)
        self.user = user or without_paths(message)


class LoraError(Exception):
    """A LoRA could not be applied; the message is meant for the person who asked (no paths)."""


# An absolute path in a message (POSIX, ~/…, or C:\…): not after a word, a dot or a colon,
# so "1.x/2.x", hub ids ("owner/name") and URLs stay as they are.
_PATH = re.compile(r"""(?<![\w.:/~-])(?:~?/|[A-Za-z]:\\)[^\s'"`()\[\]{}<>,;]+""")


def without_paths(text: str) -> str:
    """`text` with every absolute server path cut to its last part ("/srv/models/a/b.safetensors"
    becomes "b.safetensors"): what a user may see of an error."""
    def last_part(match: re.Match) -> str:
        parts = [p for p in re.split(r"[/\\]", match.group(0).rstrip(".:")) if p and p != "~"]
        tail = match.group(0)[len(match.group(0).rstrip(".:")):]
        return (parts[-1] if parts else "…") + tail
    return _PATH.sub(last_part, text)


def model_name(spec: str) -> str:
    """The name a model is listed under (catalog.py names scanned models the same way):
    a file's or folder's name without its folder, a hub id as it is."""
    path = Path(spec)
    if spec.lower().endswith(CHECKPOINT_SUFFIXES):
        return path.stem
    return path.name if _looks_like_path(spec) else spec


def _for_user(spec: str) -> str:
    return (f"The model {model_name(spec)} could not be loaded on this server; staff can see why "
            "on Admin → Models.")


def _cause(exc: BaseException) -> str:
    text = " ".join(str(exc).split()).rstrip(".")  # hub errors span many lines
    if len(text) > 400:
        text = text[:400] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _hub_offline() -> bool:
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - very old huggingface_hub
        return os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")


def _dtype_kwarg() -> str:
    """diffusers renamed from_pretrained's `torch_dtype` to `dtype` (the old name
    warns since 0.42); older releases (>= 0.35 is allowed) only know `torch_dtype`."""
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401  (exists with `dtype`)
    except ImportError:
        return "torch_dtype"
    return "dtype"


def resolve_device(device: str = "auto", family: str | None = None) -> tuple[str, torch.dtype]:
    """"auto" -> CUDA when there is a GPU, else CPU. On CUDA: float16 for SD 1.x/2.x and
    SDXL, bfloat16 for SD 3 and FLUX where the GPU has it (they overflow in float16);
    on the CPU float32 (half precision is slow or unsupported for most CPU kernels)."""
    if device in ("", "auto", None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} was asked for, but torch sees no CUDA GPU "
            f"(torch {torch.__version__}). Set DAYDREAM_DEVICE=auto or cpu, or install a CUDA build of torch."
        )
    if kind != "cuda":
        return device, torch.float32
    if family in ("sd3", "flux") and torch.cuda.is_bf16_supported():
        return device, torch.bfloat16
    return device, torch.float16


def _local_candidate(spec: str, rules: ModelsFolder) -> Path | None:
    """The existing file or folder a spec names (absolute, or under the models folder; a
    relative one may not lead out of it, nor may any file of its folder, unless links
    out are followed)."""
    try:
        candidate = rules.resolve(spec)
    except OSError as exc:
        raise ModelLoadError(f"Model {spec!r} could not be loaded: {exc}.") from exc
    if not candidate.exists():
        return None
    if not Path(spec).expanduser().is_absolute():
        out = rules.first_link_out(candidate)
        if out is not None:
            raise ModelLoadError(f"Model {spec!r} could not be loaded: {rules.rel(out)} links to "
                                 f"{rules.leaves(out)}, outside the models folder, which is not followed "
                                 "(DAYDREAM_MODELS_FOLLOW_LINKS=true follows such links).")
    return candidate


def _looks_like_path(spec: str) -> bool:
    return (
        spec.lower().endswith(CHECKPOINT_SUFFIXES)
        or Path(spec).expanduser().is_absolute()
        or spec.startswith(("./", "../", "~"))
        or "\\" in spec
        or spec.count("/") > 1  # hub ids are "owner/name"
    )


def _extra_kwargs(cls) -> dict:
    # No safety checker: it is a separate 1 GB model, and it is not ours to force.
    if cls is StableDiffusionPipeline:
        return {"safety_checker": None, "requires_safety_checker": False}
    return {}


def _family_of_class(pipe) -> str:
    family = families.PIPELINE_FAMILIES.get(type(pipe).__name__)
    if family is None:
        raise ModelLoadError(
            f"It is a {type(pipe).__name__}; Daydream serves Stable Diffusion 1.x/2.x, SDXL, SD 3/3.5 "
            "and FLUX.1 text-to-image models.")
    if family == "sd1" and getattr(pipe.unet.config, "cross_attention_dim", None) == 1024:
        family = "sd2"
    return family


def _load_hub(spec: str, models_path: Path, device: str) -> tuple[DiffusionPipeline, Detected]:
    hint = None
    for hint_text, family, _variant in (("flux", "flux", ""), ("stable-diffusion-3", "sd3", "")):
        if hint_text in spec.lower():
            hint = family
    _, dtype = resolve_device(device, hint)
    kwargs = {_dtype_kwarg(): dtype}
    # The local cache first: no network round trip when the model is there.
    try:
        pipe = DiffusionPipeline.from_pretrained(spec, local_files_only=True, **kwargs)
    except Exception as cached_exc:
        if _hub_offline():
            raise ModelLoadError(
                f"Model {spec!r} could not be loaded: it is not a local folder or file under {models_path}, "
                f"is not in the Hugging Face cache, and the hub is switched off (HF_HUB_OFFLINE). {ADVICE} "
                f"(cause: {_cause(cached_exc)})"
            ) from cached_exc
        try:
            pipe = DiffusionPipeline.from_pretrained(spec, **kwargs)
        except Exception as exc:
            name = type(exc).__name__
            if name in ("RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"):
                why = (
                    "the Hugging Face hub has no such public model (if it is private or gated, "
                    "log in with `hf auth login` and accept its licence)"
                )
            elif name == "EntryNotFoundError":  # (LocalEntryNotFoundError means offline)
                why = "it is not a diffusers-format model on the hub (no model_index.json)"
            else:
                why = "the hub could not be reached (offline?)"
            raise ModelLoadError(
                f"Model {spec!r} could not be loaded: it is not a local folder or file under {models_path}, "
                f"and {why}. {ADVICE} (cause: {_cause(exc)})"
            ) from exc
    family = _family_of_class(pipe)
    variant = ""
    if family == "flux":
        variant = "dev" if getattr(pipe.transformer.config, "guidance_embeds", True) else "schnell"
    return pipe, Detected(family, variant)


def config_folder(family: str, models_path: Path, exclude: Path | None = None,
                  follow_links: bool = False) -> Path | None:
    """A local diffusers folder of `family` for loading a single file: <models>/configs/<family>
    first, else any diffusers folder of that family in the models folder (not the demo
    models: their configs are a toy's; not one that leads out of the models folder,
    unless links out are followed)."""
    rules = ModelsFolder(models_path, follow_links)
    models_path = rules.root

    def usable(folder: Path) -> bool:
        try:
            return ((folder / "model_index.json").is_file() and rules.first_link_out(folder) is None
                    and families.detect_folder(folder, rules.check).family == family)
        except (OSError, UnknownModel):
            return False

    preferred = models_path / CONFIG_FOLDER / family
    if usable(preferred):
        return preferred

    def descend(rel: Path, path: Path) -> bool:
        try:
            return not path.name.startswith((".", DEMO_FOLDER)) and not (path / "model_index.json").is_file()
        except OSError:
            return False

    for entry in rules.walk(descend, max_depth=5):
        if (entry.is_dir and not entry.why and entry.path != exclude
                and not any(p.startswith((".", DEMO_FOLDER)) for p in entry.rel.parts) and usable(entry.path)):
            return entry.path
    return None


def _load_single_file(path: Path, spec: str, models_path: Path, device: str,
                      follow_links: bool = False) -> tuple[DiffusionPipeline, Detected]:
    if path.suffix.lower() == ".ckpt":
        found = Detected("sd1")  # a pickle: not opened to look (the loader reads it safely)
    else:
        try:
            role, found = families.detect_file(path)
        except (OSError, UnknownModel) as exc:
            raise ModelLoadError(f"Model {spec!r} could not be loaded from {path}: {exc}.") from exc
        if role == "lora":
            raise ModelLoadError(
                f"Model {spec!r} is a LoRA ({families.FAMILIES[found].label}), not a model: put it in "
                f"{models_path / 'loras'} and enable it on Admin → Models.")
    cls = PIPELINES[found.family]
    _, dtype = resolve_device(device, found.family)
    kwargs = {_dtype_kwarg(): dtype, **_extra_kwargs(cls)}
    config = config_folder(found.family, models_path, follow_links=follow_links)
    label = families.FAMILIES[found.family].label
    where = models_path / CONFIG_FOLDER / found.family
    try:
        if found.parts == "denoiser":
            if config is None:
                raise ModelLoadError(
                    f"Model {spec!r} holds only the {label} {DENOISERS[found.family][0]}; its text encoders "
                    f"and VAE come from a diffusers folder of the same family: put one (for example the "
                    f"official {label} diffusers model) in {where}.")
            name, model_cls = DENOISERS[found.family]
            denoiser = model_cls.from_single_file(str(path), config=str(config), subfolder=name,
                                                  local_files_only=True, torch_dtype=dtype)
            return cls.from_pretrained(config, local_files_only=True, **{name: denoiser}, **kwargs), found
        if config is not None:
            return cls.from_single_file(str(path), config=str(config), local_files_only=True, **kwargs), found
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"Model {spec!r} could not be loaded from the checkpoint file {path} with the {label} configs "
            f"of {config}: {_cause(exc)}. Check that the file is a complete {label} checkpoint and that "
            f"{config} is a diffusers folder of the same family."
        ) from exc
    # No local configs: from_single_file takes them (and the tokenizers) from the hub or
    # the HF cache.
    try:
        return cls.from_single_file(str(path), local_files_only=True, **kwargs), found
    except Exception as cached_exc:
        first = cached_exc
    if not _hub_offline():
        try:
            return cls.from_single_file(str(path), **kwargs), found
        except Exception as exc:
            first = exc
    raise ModelLoadError(
        f"Model {spec!r} could not be loaded from the checkpoint file {path}: {_cause(first)}. "
        f"Check that the file is a complete {label} checkpoint. Loading a single file also needs its "
        f"base model's config files: put a diffusers folder of a {label} model in {where} (or anywhere "
        "in the models folder), or load it once with network access so they are cached."
    ) from first


def _load_folder(local: Path, spec: str, device: str) -> tuple[DiffusionPipeline, Detected]:
    if not (local / "model_index.json").is_file():
        raise ModelLoadError(
            f"Model {spec!r} could not be loaded: the folder {local} is not a diffusers model "
            "(it has no model_index.json). Point DAYDREAM_MODEL at a diffusers folder or a "
            ".safetensors/.ckpt file."
        )
    try:
        found = families.detect_folder(local)
    except UnknownModel as exc:
        raise ModelLoadError(f"Model {spec!r} could not be loaded: {exc}.") from exc
    cls = PIPELINES[found.family]
    _, dtype = resolve_device(device, found.family)
    return cls.from_pretrained(local, local_files_only=True, **{_dtype_kwarg(): dtype}, **_extra_kwargs(cls)), found


def load_pipeline(spec: str, models_path: Path, device: str = "auto", vram: str = "auto",
                  follow_links: bool = False) -> DiffusionPipeline:
    """Load the text-to-image pipeline for `spec` (see the module docstring), on `device`
    in the memory mode `vram` (place_on_device), with progress bars silenced. Its family
    is family_of(pipe). follow_links: DAYDREAM_MODELS_FOLLOW_LINKS (model_files.py). A
    failure is a ModelLoadError whose `user` text names the model, not its path."""
    spec = (spec or "").strip()
    try:
        return _load_pipeline(spec, Path(models_path), device, vram, follow_links)
    except ModelLoadError as exc:
        if spec:
            exc.user = _for_user(spec)
        raise


def _load_pipeline(spec: str, models_path: Path, device: str, vram: str, follow_links: bool) -> DiffusionPipeline:
    if not spec:
        raise ModelLoadError(f"No model given. Set DAYDREAM_MODEL to 'demo', a hub id or a file or folder under {models_path}.")
    resolve_device(device)  # a CUDA device without CUDA: say so before anything loads
    rules = ModelsFolder(models_path, follow_links)
    try:
        demo = families.DEMO_MODELS.get(spec)
        if demo is not None:
            folder = build_demo_model(models_path / demo_folder_name(spec), demo)
            pipe, found = _load_folder(folder, spec, device)
        elif (local := _local_candidate(spec, rules)) is not None:
            if local.is_dir():
                pipe, found = _load_folder(local, spec, device)
            elif local.suffix.lower() in CHECKPOINT_SUFFIXES:
                pipe, found = _load_single_file(local, spec, models_path, device, follow_links)
            else:
                raise ModelLoadError(
                    f"Model {spec!r} could not be loaded: {local} is a file but not a .safetensors or .ckpt "
                    "checkpoint."
                )
        elif _looks_like_path(spec):
            raise ModelLoadError(
                f"Model {spec!r} could not be loaded: there is no such file or folder (relative paths are "
                f"looked up under the models folder {models_path}). {ADVICE}"
            )
        else:
            pipe, found = _load_hub(spec, models_path, device)

        if hasattr(pipe, "safety_checker"):
            pipe.safety_checker = None
            pipe.register_to_config(requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        _info[pipe] = {"found": found, "spec": spec}
        place_on_device(pipe, device, vram)
    except ModelLoadError:
        raise
    except torch.OutOfMemoryError:
        raise  # the job reports it with advice, and the cache frees what was loaded
    except Exception as exc:  # e.g. corrupt weights, wrong architecture
        raise ModelLoadError(f"Model {spec!r} could not be loaded: {_cause(exc)}") from exc
    return pipe


def demo_folder_name(spec: str) -> str:
    return DEMO_FOLDER if spec == "demo" else f"{DEMO_FOLDER}-{spec.removeprefix('demo-')}"


# pipe -> {"found": Detected, "spec", "mode", "loras": {adapter: spec}}; weak so that
# a pipeline the cache lets go of is freed.
_info: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def family_of(pipe) -> str:
    info = _info.get(pipe)
    return info["found"].family if info else _family_of_class(pipe)


def detected_of(pipe) -> Detected | None:
    info = _info.get(pipe)
    return info["found"] if info else None


def resident() -> int:
    """How many pipelines this process holds (loaded and not yet freed)."""
    return len(_info)


def memory_mode(pipe) -> str | None:
    info = _info.get(pipe)
    return info.get("mode") if info else None


# --- memory modes ---------------------------------------------------------------

def _weights_bytes(pipe) -> int:
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
    return total


def choose_mode(pipe, device: str, vram: str) -> str:
    """"high" or "low" for DAYDREAM_VRAM: "auto" keeps everything on the GPU when the
    weights and about 3 GB of working memory for a one-megapixel image fit in free memory."""
    vram = (vram or "auto").lower()
    if vram not in ("auto", "high", "low"):
        raise ModelLoadError(f"DAYDREAM_VRAM={vram!r} is not a memory mode: use auto, high or low.")
    if torch.device(device).type != "cuda" or vram != "auto":
        return "high" if vram == "auto" else vram
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return "high" if _weights_bytes(pipe) + 3 * 1024**3 < free else "low"


def place_on_device(pipe, device: str, vram: str = "auto") -> str:
    """Put the pipeline where it runs. "low": on a GPU, each part moves to it only while it
    runs (model CPU offload); everywhere, the VAE decodes in tiles and one image at a time,
    so large images fit in little memory. Returns the mode used."""
    device, _ = resolve_device(device)
    mode = choose_mode(pipe, device, vram)
    if mode == "low":
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            vae.enable_tiling()
            vae.enable_slicing()
        if torch.device(device).type == "cuda":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
    else:
        pipe.to(device)
    if pipe in _info:
        _info[pipe]["mode"] = mode
    return mode


# --- torch.compile (DAYDREAM_COMPILE) ---------------------------------------------

COMPILE_CACHE_SIZE = 64  # graphs kept per compiled module: sizes × batch sizes × LoRA sets


def denoiser_name(pipe) -> str:
    return "unet" if getattr(pipe, "unet", None) is not None else "transformer"


def is_compiled(module) -> bool:
    return isinstance(module, torch._dynamo.eval_frame.OptimizedModule)


def compile_pipeline(pipe) -> bool:
    """Compile the pipeline's UNet or transformer with torch.compile (a UNet first goes
    channels_last, the memory layout its convolutions are fastest in). Each new shape
    (size, images a call) compiles on its first call, which is slow (the worker logs its
    time), and is cached for the process's life; attention stays PyTorch's SDPA. Returns
    False when it was compiled already."""
    name = denoiser_name(pipe)
    module = getattr(pipe, name, None)
    if module is None or is_compiled(module):
        return False
    if name == "unet":
        module.to(memory_format=torch.channels_last)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, COMPILE_CACHE_SIZE)
    setattr(pipe, name, torch.compile(module, dynamic=False))
    if pipe in _info:
        _info[pipe]["compiled"] = True
    return True


# --- img2img ----------------------------------------------------------------

_img2img: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def img2img_from(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """The family's image-to-image pipeline made of the same component objects as
    `pipe` (from_pipe: no weights are copied or loaded), made once per pipeline. It
    follows the text-to-image pipeline's current scheduler (see apply_scheduler)."""
    img = _img2img.get(pipe)
    if img is None:
        extra = {"requires_safety_checker": False} if isinstance(pipe, StableDiffusionPipeline) else {}
        img = AutoPipelineForImage2Image.from_pipe(pipe, **extra)
        img.set_progress_bar_config(disable=True)
        if memory_mode(pipe) == "low" and pipe.device.type == "cuda":  # pragma: no cover - GPU only
            img.enable_model_cpu_offload(device=pipe.device)
        _img2img[pipe] = img
    if img.scheduler is not pipe.scheduler:
        img.scheduler = pipe.scheduler
    return img


# --- LoRAs ------------------------------------------------------------------

MAX_RESIDENT_LORAS = 8  # adapters kept loaded per pipeline; the least recently used go first


def adapter_name(lora_id: str) -> str:
    return "lora_" + re.sub(r"\W", "_", lora_id)


def lora_path(spec: str, models_path: Path, family: str, follow_links: bool = False) -> Path:
    """The file of a LoRA spec: a demo LoRA (built on first use), or a path under the models
    folder (OSError when it leads out of it and links out are not followed)."""
    models_path = Path(models_path)
    demo = families.DEMO_LORAS.get(spec)
    if demo is not None:
        model_id = next(m for m, f in families.DEMO_MODELS.items() if f == demo)
        folder = build_demo_model(models_path / demo_folder_name(model_id), demo)
        return build_demo_lora(models_path / DEMO_LORA_FOLDER / f"{demo}.safetensors", demo, folder)
    return ModelsFolder(models_path, follow_links).resolve(spec)


def apply_loras(pipe, loras: list[dict], resolve) -> list[str]:
    """Make exactly the task's LoRAs active on `pipe` at their weights; none for a task
    without LoRAs. loras: [{id, name, weight}]; resolve(id) -> the file. Each is loaded
    once as a named peft adapter and kept (up to MAX_RESIDENT_LORAS). Returns the active
    adapter names. A LoRA that cannot be read raises LoraError."""
    info = _info.setdefault(pipe, {})
    loaded: dict = info.setdefault("loras", {})
    if not loras:
        if loaded:
            pipe.disable_lora()
        return []
    names, weights = [], []
    for lora in loras:
        name = adapter_name(lora["id"])
        if name not in loaded:
            try:
                path = resolve(lora["id"])
                pipe.load_lora_weights(str(path), adapter_name=name)
            except Exception as exc:
                try:
                    pipe.delete_adapters([name])
                except Exception:
                    pass
                raise LoraError(f"The LoRA {lora.get('name') or lora['id']} could not be applied "
                                f"({without_paths(_cause(exc))}); tell staff it may be damaged or made "
                                "for another kind of model.") from exc
        loaded.pop(name, None)
        loaded[name] = lora["id"]  # most recently used last
        names.append(name)
        weights.append(float(lora["weight"]))
    while len(loaded) > MAX_RESIDENT_LORAS:
        oldest = next(n for n in loaded if n not in names)
        pipe.delete_adapters([oldest])
        loaded.pop(oldest)
    pipe.enable_lora()
    pipe.set_adapters(names, adapter_weights=weights)
    return names


# --- cache ------------------------------------------------------------------


class PipelineCache:
    """Keeps one pipeline loaded: the one used last. A worker serves one GPU and
    a second model rarely fits beside the first, so switching models frees
    the old one before loading the new one."""

    def __init__(self, models_path: Path, device: str = "auto", vram: str = "auto", compile: bool = False,
                 follow_links: bool = False):
        self.models_path = Path(models_path)
        self.follow_links = follow_links  # DAYDREAM_MODELS_FOLLOW_LINKS
        self.device = device
        self.vram = vram
        self.compile = compile  # DAYDREAM_COMPILE: compile_pipeline() each pipeline loaded
        self.pipe: DiffusionPipeline | None = None
        self.loaded_spec: str | None = None
        self.loads = 0  # loads done by this process, for tests and logs

    def get(self, spec: str) -> DiffusionPipeline:
        if self.pipe is not None and spec == self.loaded_spec:
            return self.pipe
        self.unload()
        try:
            self.pipe = load_pipeline(spec, self.models_path, self.device, self.vram, self.follow_links)
            if self.compile:
                compile_pipeline(self.pipe)
        except BaseException:
            free_memory()  # what a failed load left behind
            raise
        self.loaded_spec = spec
        self.loads += 1
        return self.pipe

    def img2img_from(self, pipe: DiffusionPipeline | None = None) -> DiffusionPipeline:
        """img2img_from() for `pipe`, or for the loaded pipeline."""
        pipe = pipe if pipe is not None else self.pipe
        if pipe is None:
            raise RuntimeError("No pipeline is loaded; call get(spec) first.")
        return img2img_from(pipe)

    def unload(self) -> None:
        if self.pipe is None:
            return
        self.pipe = None
        self.loaded_spec = None
        free_memory()  # drop the weights now, before the next model is loaded


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
