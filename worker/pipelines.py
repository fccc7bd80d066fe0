"""Loading, caching and configuring diffusers pipelines for the worker.

A model "spec" (DAYDREAM_MODEL, or a task's model) is one of:
  - "demo": the tiny built-in model, built on first use (worker/demo_model.py);
  - a diffusers folder (with model_index.json), absolute or under the models path;
  - a .safetensors / .ckpt single-file checkpoint, absolute or under the models path;
  - otherwise a Hugging Face hub id, taken from the local HF cache when there.
Every failure comes out as ModelLoadError, whose message says what to do.
"""

from __future__ import annotations

import gc
import inspect
import os
import weakref
from pathlib import Path

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
)

from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from services.generation.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from worker.demo_model import build_demo_model

# The worker's log is for people: no progress bars while loading weights.
diffusers_logging.disable_progress_bar()
transformers_logging.disable_progress_bar()

__all__ = [
    "DEFAULT_SCHEDULER",
    "SCHEDULERS",
    "ModelLoadError",
    "PipelineCache",
    "apply_scheduler",
    "img2img_from",
    "load_pipeline",
    "resolve_device",
]

DEMO_SPEC = "demo"
DEMO_FOLDER = "daydream-demo"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
ADVICE = (
    "Download it into the models folder or set DAYDREAM_MODEL to a local diffusers folder "
    "or .safetensors/.ckpt file."
)


class ModelLoadError(Exception):
    """A model could not be loaded; the message is meant for the operator."""


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


def resolve_device(device: str = "auto") -> tuple[str, torch.dtype]:
    """"auto" -> CUDA in float16 when there is a GPU, else CPU in float32
    (half precision is slow or unsupported for most CPU kernels)."""
    if device in ("", "auto", None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} was asked for, but torch sees no CUDA GPU "
            f"(torch {torch.__version__}). Set DAYDREAM_DEVICE=auto or cpu, or install a CUDA build of torch."
        )
    return device, (torch.float16 if kind == "cuda" else torch.float32)


def _local_candidate(spec: str, models_path: Path) -> Path | None:
    """The existing file or folder a spec names (absolute, or under models_path)."""
    path = Path(spec).expanduser()
    candidate = path if path.is_absolute() else Path(models_path) / path
    return candidate if candidate.exists() else None


def _looks_like_path(spec: str) -> bool:
    return (
        spec.lower().endswith(CHECKPOINT_SUFFIXES)
        or Path(spec).expanduser().is_absolute()
        or spec.startswith(("./", "../", "~"))
        or "\\" in spec
        or spec.count("/") > 1  # hub ids are "owner/name"
    )


def _load_hub(spec: str, models_path: Path, kwargs: dict) -> StableDiffusionPipeline:
    # The local cache first: no network round trip when the model is there.
    try:
        return StableDiffusionPipeline.from_pretrained(spec, local_files_only=True, **kwargs)
    except Exception as cached_exc:
        if _hub_offline():
            raise ModelLoadError(
                f"Model {spec!r} could not be loaded: it is not a local folder or file under {models_path}, "
                f"is not in the Hugging Face cache, and the hub is switched off (HF_HUB_OFFLINE). {ADVICE} "
                f"(cause: {_cause(cached_exc)})"
            ) from cached_exc
    try:
        return StableDiffusionPipeline.from_pretrained(spec, **kwargs)
    except Exception as exc:
        name = type(exc).__name__
        if name in ("RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"):
            why = (
                "the Hugging Face hub has no such public model (if it is private or gated, "
                "log in with `hf auth login` and accept its licence)"
            )
        elif name == "EntryNotFoundError":  # (LocalEntryNotFoundError means offline)
            why = "it is not a diffusers-format Stable Diffusion model on the hub (no model_index.json)"
        else:
            why = "the hub could not be reached (offline?)"
        raise ModelLoadError(
            f"Model {spec!r} could not be loaded: it is not a local folder or file under {models_path}, "
            f"and {why}. {ADVICE} (cause: {_cause(exc)})"
        ) from exc


def _load_single_file(path: Path, spec: str, kwargs: dict) -> StableDiffusionPipeline:
    # from_single_file reads the weights locally but takes the component configs
    # (and tokenizer) of the matching base model from the hub or the HF cache.
    try:
        return StableDiffusionPipeline.from_single_file(str(path), local_files_only=True, **kwargs)
    except Exception as cached_exc:
        first = cached_exc
    if not _hub_offline():
        try:
            return StableDiffusionPipeline.from_single_file(str(path), **kwargs)
        except Exception as exc:
            first = exc
    raise ModelLoadError(
        f"Model {spec!r} could not be loaded from the checkpoint file {path}: {_cause(first)}. "
        "Check that the file is a complete Stable Diffusion 1.x/2.x checkpoint. Loading a single file "
        "also needs its base model's config files from the Hugging Face hub (downloaded once, then "
        "cached): load it once with network access, or use a diffusers folder instead."
    ) from first


def load_pipeline(spec: str, models_path: Path, device: str = "auto") -> StableDiffusionPipeline:
    """Load the text-to-image pipeline for `spec` (see the module docstring),
    on `device` with the safety checker off and progress bars silenced."""
    spec = (spec or "").strip()
    models_path = Path(models_path)
    if not spec:
        raise ModelLoadError(f"No model given. Set DAYDREAM_MODEL to 'demo', a hub id or a file or folder under {models_path}.")
    device, dtype = resolve_device(device)
    # No safety checker: it is a separate 1 GB model, and it is not ours to force.
    kwargs = {_dtype_kwarg(): dtype, "safety_checker": None, "requires_safety_checker": False}
    try:
        if spec == DEMO_SPEC:
            folder = build_demo_model(models_path / DEMO_FOLDER)
            pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **kwargs)
        elif (local := _local_candidate(spec, models_path)) is not None:
            if local.is_dir():
                if not (local / "model_index.json").is_file():
                    raise ModelLoadError(
                        f"Model {spec!r} could not be loaded: the folder {local} is not a diffusers model "
                        "(it has no model_index.json). Point DAYDREAM_MODEL at a diffusers folder or a "
                        ".safetensors/.ckpt file."
                    )
                pipe = StableDiffusionPipeline.from_pretrained(local, local_files_only=True, **kwargs)
            elif local.suffix.lower() in CHECKPOINT_SUFFIXES:
                pipe = _load_single_file(local, spec, kwargs)
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
            pipe = _load_hub(spec, models_path, kwargs)

        pipe.safety_checker = None
        pipe.register_to_config(requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        pipe = pipe.to(device)
    except ModelLoadError:
        raise
    except Exception as exc:  # e.g. corrupt weights, out of memory, wrong architecture
        raise ModelLoadError(f"Model {spec!r} could not be loaded: {_cause(exc)}") from exc
    return pipe


# --- schedulers -------------------------------------------------------------

SCHEDULER_CLASSES = {
    "euler": EulerDiscreteScheduler,
    "euler_a": EulerAncestralDiscreteScheduler,
    "dpmpp_2m": DPMSolverMultistepScheduler,  # algorithm_type="dpmsolver++", order 2 by default
    "ddim": DDIMScheduler,
    "pndm": PNDMScheduler,
}
assert SCHEDULER_CLASSES.keys() == SCHEDULERS.keys(), "services/generation/schedulers.py and worker/pipelines.py disagree"

# What SD 1.x/2.x scheduler configs say; used only where a model's config lacks
# the key (the class defaults differ: DDIM would clip samples, PNDM run PRK steps).
_SD_SCHEDULER_DEFAULTS = {"clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True}

# pipe -> {"base": the model's own scheduler, name: scheduler instance}; weak so
# that a pipeline the cache lets go of is freed with its schedulers.
_schedulers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _make_scheduler(cls, base_config):
    accepted = inspect.signature(cls.__init__).parameters
    config = {**_SD_SCHEDULER_DEFAULTS, **dict(base_config)}
    # Only the keys this class takes: keeps diffusers from warning about the rest.
    return cls.from_config({k: v for k, v in config.items() if k in accepted})


def apply_scheduler(pipe, name: str | None = None):
    """Give `pipe` the scheduler called `name` (a key of SCHEDULERS) and return it.

    Each is made once per pipeline from the model's own scheduler config (not
    from whatever was swapped in last, so settings do not drift), then reused;
    the pipeline resets a scheduler's state in set_timesteps on every call."""
    name = name or DEFAULT_SCHEDULER
    if name not in SCHEDULER_CLASSES:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}.")
    made = _schedulers.get(pipe)
    if made is None:
        made = _schedulers[pipe] = {"base": pipe.scheduler}
    scheduler = made.get(name)
    if scheduler is None:
        base = made["base"]
        cls = SCHEDULER_CLASSES[name]
        scheduler = base if type(base) is cls else _make_scheduler(cls, base.config)
        made[name] = scheduler
    if pipe.scheduler is not scheduler:
        pipe.scheduler = scheduler
    return scheduler


# --- img2img ----------------------------------------------------------------

_img2img: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def img2img_from(pipe: StableDiffusionPipeline) -> StableDiffusionImg2ImgPipeline:
    """An image-to-image pipeline made of the same component objects as `pipe`
    (no weights are copied or loaded), made once per pipeline. It follows the
    text-to-image pipeline's current scheduler (see apply_scheduler)."""
    img = _img2img.get(pipe)
    if img is None:
        # `components` leaves out requires_safety_checker; without it diffusers
        # warns about the (deliberately) missing safety checker.
        img = StableDiffusionImg2ImgPipeline(**pipe.components, requires_safety_checker=False)
        img.set_progress_bar_config(disable=True)
        _img2img[pipe] = img
    if img.scheduler is not pipe.scheduler:
        img.scheduler = pipe.scheduler
    return img


# --- cache ------------------------------------------------------------------


class PipelineCache:
    """Keeps one pipeline loaded: the one used last. A worker serves one GPU and
    a second SD model rarely fits beside the first, so switching models frees
    the old one before loading the new one."""

    def __init__(self, models_path: Path, device: str = "auto"):
        self.models_path = Path(models_path)
        self.device = device
        self.pipe: StableDiffusionPipeline | None = None
        self.loaded_spec: str | None = None
        self.loads = 0  # loads done by this process, for tests and logs

    def get(self, spec: str) -> StableDiffusionPipeline:
        if self.pipe is not None and spec == self.loaded_spec:
            return self.pipe
        self.unload()
        self.pipe = load_pipeline(spec, self.models_path, self.device)
        self.loaded_spec = spec
        self.loads += 1
        return self.pipe

    def img2img_from(self, pipe: StableDiffusionPipeline | None = None) -> StableDiffusionImg2ImgPipeline:
        """img2img_from() for `pipe`, or for the loaded pipeline."""
        pipe = pipe if pipe is not None else self.pipe
        if pipe is None:
            raise RuntimeError("No pipeline is loaded; call get(spec) first.")
        return img2img_from(pipe)

    def unload(self) -> None:
        if self.pipe is None:
            return
        on_cuda = self.pipe.device.type == "cuda"
        self.pipe = None
        self.loaded_spec = None
        gc.collect()  # drop the weights now, before the next model is loaded
        if on_cuda:
            torch.cuda.empty_cache()
