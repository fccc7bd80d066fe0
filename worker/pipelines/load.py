"""Loading diffusers pipelines for the worker.

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

import os
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import (
    ChromaPipeline,
    ChromaTransformer2DModel,
    DiffusionPipeline,
    Flux2KleinPipeline,
    Flux2Pipeline,
    Flux2Transformer2DModel,
    FluxKontextPipeline,
    FluxPipeline,
    FluxTransformer2DModel,
    QwenImageEditPipeline,
    QwenImageEditPlusPipeline,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
    ZImagePipeline,
    ZImageTransformer2DModel,
)
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from services.generation import families
from services.generation.families import Detected, UnknownModel
from services.generation.model_files import ModelsFolder
from worker.demo_model import build_demo_model
from worker.pipelines import info, quant, qwen
from worker.pipelines.errors import ModelLoadError, cause
from worker.pipelines.memory import place_on_device, resolve_device

# The worker's log is for people: no progress bars while loading weights.
diffusers_logging.disable_progress_bar()
transformers_logging.disable_progress_bar()

DEMO_FOLDER = "daydream-demo"
CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".gguf")  # (.gguf: a quantized denoiser)
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
    "zimage": ZImagePipeline,
    "chroma": ChromaPipeline,
    "flux2": Flux2KleinPipeline,  # klein (and klein base); dev below
    "qwen": QwenImagePipeline,
}
# The pipelines of variants that are not their family's: FLUX.1 Kontext edits by instruction.
VARIANT_PIPELINES = {("flux", "kontext"): FluxKontextPipeline, ("flux2", "dev"): Flux2Pipeline,
                     # Qwen-Image-Edit and Edit Plus (2509 and later)
                     ("qwen", "edit"): QwenImageEditPipeline, ("qwen", "edit-plus"): QwenImageEditPlusPipeline}
# Demo models that are another demo model's weights run another way (their folder is that
# model's, families.DEMO_SHARED_FOLDERS): demo-kontext is the demo FLUX.1 through
# FluxKontextPipeline, demo-qwen-edit and demo-qwen-edit-plus the demo Qwen-Image through
# QwenImageEditPipeline and QwenImageEditPlusPipeline.
# The denoiser of each family: (the pipeline's component name, its class), for
# checkpoints that hold only it (most FLUX and many SD 3 files).
DENOISERS = {
    "sd1": ("unet", UNet2DConditionModel),
    "sd2": ("unet", UNet2DConditionModel),
    "sdxl": ("unet", UNet2DConditionModel),
    "sd3": ("transformer", SD3Transformer2DModel),
    "flux": ("transformer", FluxTransformer2DModel),
    "zimage": ("transformer", ZImageTransformer2DModel),  # from_single_file: original and diffusers names
    "chroma": ("transformer", ChromaTransformer2DModel),
    "flux2": ("transformer", Flux2Transformer2DModel),  # from_single_file: BFL's and diffusers' names
    "qwen": ("transformer", QwenImageTransformer2DModel),  # from_single_file: diffusers' names (ComfyUI's too)
}
# Where the models folder keeps, per family, a diffusers folder whose configs and
# tokenizers (and, for a denoiser-only file, its other parts) a single file is loaded with.
CONFIG_FOLDER = "configs"


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


def pipeline_class(found: Detected):
    """The pipeline class a model of `found`'s family and variant is loaded as."""
    return VARIANT_PIPELINES.get((found.family, found.variant), PIPELINES[found.family])


def _extra_kwargs(cls) -> dict:
    # No safety checker: it is a separate 1 GB model, and it is not ours to force.
    if cls is StableDiffusionPipeline:
        return {"safety_checker": None, "requires_safety_checker": False}
    return {}



def _load_hub(spec: str, models_path: Path, device: str) -> tuple[DiffusionPipeline, Detected]:
    hint = None
    for hint_text, family, _variant in (("flux", "flux", ""), ("stable-diffusion-3", "sd3", ""),
                                        ("chroma", "chroma", ""), ("z-image", "zimage", ""),
                                        ("qwen-image", "qwen", "")):
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
                f"(cause: {cause(cached_exc)})"
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
                f"and {why}. {ADVICE} (cause: {cause(exc)})"
            ) from exc
    family = info.family_of_class(pipe)
    variant = ""
    if family == "flux":
        variant = "dev" if getattr(pipe.transformer.config, "guidance_embeds", True) else "schnell"
        if getattr(pipe.transformer.config, "in_channels", 64) == 384:  # FLUX.1 Fill (dedicated inpainting)
            variant = "fill"
        elif isinstance(pipe, FluxKontextPipeline):  # FLUX.1 Kontext (edits by instruction)
            variant = "kontext"
    elif family == "flux2":  # dev (Mistral), or klein step-distilled or base (its config says)
        variant = "dev" if isinstance(pipe, Flux2Pipeline) else (
            "klein" if getattr(pipe.config, "is_distilled", False) else "klein-base")
    elif family == "qwen":  # Qwen-Image-Edit: its pipeline class says so
        variant = families.QWEN_EDIT_PIPELINES.get(type(pipe).__name__, "")
    elif family == "zimage":  # Turbo and base have the same configs: the hub id tells them apart
        variant = families.zimage_variant(spec.rsplit("/", 1)[-1])
    elif getattr(getattr(getattr(pipe, "unet", None), "config", None), "in_channels", 4) == 9:
        variant = "inpainting"  # an SD inpainting UNet (latents, mask, masked picture)
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
    cls = pipeline_class(found)
    _, dtype = resolve_device(device, found.family)
    kwargs = {_dtype_kwarg(): dtype, **_extra_kwargs(cls)}
    if found.family == "flux2" and found.variant.startswith("klein"):  # (the file's name said which)
        kwargs["is_distilled"] = found.variant == "klein"
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
            # A GGUF file's weights stay quantized (dequantized layer by layer as they run).
            gguf = {"quantization_config": quant.gguf_config(dtype)} if path.suffix.lower() == ".gguf" else {}
            # diffusers' Qwen-Image and FLUX.2 converters read the original names without
            # ComfyUI's "model.diffusion_model." prefix: a ComfyUI file's tensors lose it first.
            source = qwen.single_file_source(path) if found.family in ("qwen", "flux2") and not gguf else str(path)
            denoiser = model_cls.from_single_file(source, config=str(config), subfolder=name,
                                                  local_files_only=True, torch_dtype=dtype, **gguf)
            extra = _quant_kwargs(found, device, dtype, skip=name)
            return cls.from_pretrained(config, local_files_only=True, **{name: denoiser}, **kwargs, **extra), found
        if config is not None:
            return cls.from_single_file(str(path), config=str(config), local_files_only=True, **kwargs), found
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(
            f"Model {spec!r} could not be loaded from the checkpoint file {path} with the {label} configs "
            f"of {config}: {cause(exc)}. Check that the file is a complete {label} checkpoint and that "
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
        f"Model {spec!r} could not be loaded from the checkpoint file {path}: {cause(first)}. "
        f"Check that the file is a complete {label} checkpoint. Loading a single file also needs its "
        f"base model's config files: put a diffusers folder of a {label} model in {where} (or anywhere "
        "in the models folder), or load it once with network access so they are cached."
    ) from first


def _load_folder(local: Path, spec: str, device: str,
                 variant: str | None = None, demo: bool = False) -> tuple[DiffusionPipeline, Detected]:
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
    if variant:  # (a demo model run as another variant of its family)
        found = replace(found, variant=variant)
    cls = pipeline_class(found)
    _, dtype = resolve_device(device, found.family)
    extra = _quant_kwargs(found, device, dtype, demo=demo)
    return cls.from_pretrained(local, local_files_only=True, **{_dtype_kwarg(): dtype}, **_extra_kwargs(cls),
                               **extra), found


def _quant_kwargs(found: Detected, device: str, dtype, demo: bool = False, skip: str = "") -> dict:
    """from_pretrained's quantization_config for NF4/fp8 on loading (DAYDREAM_QUANT, the
    memory plan: worker/pipelines/quant.py), or nothing; `skip`: a component loaded already."""
    device, _ = resolve_device(device)
    plan = quant.plan_for(found, device, quant.setting(), demo=demo)
    choice, why = quant.choose(quant.setting(), torch.device(device).type, found.family, found.quant, plan)
    _planned[found] = plan
    if choice is not None and skip:
        kept = tuple(c for c in choice.components if c != skip)
        choice = replace(choice, components=kept) if kept else None
    quant.say_once(why if choice is None else f"{choice.method} for {', '.join(choice.components)}")
    return {} if choice is None else {"quantization_config": quant.pipeline_config(choice, dtype)}


# The memory plan each load was made with (the placement follows its offload).
_planned: dict[Detected, object] = {}


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
            pipe, found = _load_folder(folder, spec, device, _demo_variant(spec), demo=True)
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
        plan = _planned.pop(found, None)
        info.note(pipe, found=found, spec=spec, plan=plan)
        place_on_device(pipe, device, vram, getattr(plan, "offload", None))
    except ModelLoadError:
        raise
    except torch.OutOfMemoryError:
        raise  # the job reports it with advice, and the cache frees what was loaded
    except Exception as exc:  # e.g. corrupt weights, wrong architecture
        raise ModelLoadError(f"Model {spec!r} could not be loaded: {cause(exc)}") from exc
    return pipe


def demo_folder_name(spec: str) -> str:
    spec = families.DEMO_SHARED_FOLDERS.get(spec, spec)
    return DEMO_FOLDER if spec == "demo" else f"{DEMO_FOLDER}-{spec.removeprefix('demo-')}"


def _demo_variant(spec: str) -> str | None:
    """The variant a demo model is run as when it is not its folder's (demo-kontext)."""
    return getattr(families, "DEMO_MODEL_VARIANTS", {}).get(spec)
