"""The pipeline cache: one model resident per worker (PipelineCache), and the other
pipelines a task kind calls (image-to-image, inpaint) made from its components (derived: from_pipe, no weights
copied or loaded)."""
from __future__ import annotations

import weakref
from pathlib import Path

from diffusers import (
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    ChromaImg2ImgPipeline,
    ChromaInpaintPipeline,
    DiffusionPipeline,
    Flux2KleinInpaintPipeline,
    FluxFillPipeline,
    StableDiffusionPipeline,
)

from worker.pipelines import prompt_cache
from worker.pipelines.compiling import compile_pipeline
from worker.pipelines.errors import ModelLoadError
from worker.pipelines.flux2 import Flux2KleinImg2ImgPipeline, check_klein
from worker.pipelines.info import family_of, memory_mode
from worker.pipelines.load import load_pipeline
from worker.pipelines.memory import free_memory

# pipe -> {auto class: the pipeline made from it}; weak, freed with the pipeline.
_derived: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def derived(pipe: DiffusionPipeline, auto_class) -> DiffusionPipeline:
    """The family's pipeline of `auto_class` (AutoPipelineForImage2Image, …) made of the
    same component objects as `pipe` (from_pipe: no weights are copied or loaded), made
    once per pipeline. It follows the text-to-image pipeline's current scheduler (see
    apply_scheduler)."""
    made = _derived.setdefault(pipe, {})
    other = made.get(auto_class)
    if other is None:
        extra = {"requires_safety_checker": False} if isinstance(pipe, StableDiffusionPipeline) else {}
        other = auto_class.from_pipe(pipe, **extra)
        other.set_progress_bar_config(disable=True)
        if memory_mode(pipe) == "low" and pipe.device.type == "cuda":  # pragma: no cover - GPU only
            other.enable_model_cpu_offload(device=pipe.device)
        prompt_cache.share(pipe, other)  # the same text encoders: the same cached prompts
        made[auto_class] = other
    if other.scheduler is not pipe.scheduler:
        other.scheduler = pipe.scheduler
    return other


# The families diffusers' AutoPipelineFor* do not map (yet): family -> pipeline class.
IMG2IMG_PIPELINES = {"chroma": ChromaImg2ImgPipeline, "flux2": Flux2KleinImg2ImgPipeline}
INPAINT_PIPELINES = {"chroma": ChromaInpaintPipeline, "flux2": Flux2KleinInpaintPipeline}


def _family(pipe) -> str | None:
    try:
        return family_of(pipe)
    except ModelLoadError:  # a pipeline of no family served here: AutoPipelineFor* says
        return None


def img2img_from(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """The family's image-to-image pipeline made from `pipe` (derived)."""
    family = _family(pipe)
    if family == "flux2":
        check_klein(pipe, "image-to-image")
    return derived(pipe, IMG2IMG_PIPELINES.get(family, AutoPipelineForImage2Image))


# A FLUX.1 Fill transformer's input: 64 packed latent + 64 packed masked-picture latent +
# 256 packed mask channels (services/generation/families.FILL_TRANSFORMER_CHANNELS).
FILL_CHANNELS = 384


def inpaint_from(pipe: DiffusionPipeline) -> DiffusionPipeline:
    """The family's inpaint pipeline made from `pipe` (derived): FluxFillPipeline for a
    FLUX.1 Fill transformer, else AutoPipelineForInpainting's (a 9-channel SD inpainting
    UNet goes through the SD inpaint pipelines, which feed it the mask and masked picture)."""
    transformer = getattr(pipe, "transformer", None)
    if getattr(getattr(transformer, "config", None), "in_channels", None) == FILL_CHANNELS:
        return derived(pipe, FluxFillPipeline)
    family = _family(pipe)
    if family == "flux2":
        check_klein(pipe, "inpaint")
    if family == "chroma" and "guidance_embeds" not in transformer.config:
        # ChromaInpaintPipeline (diffusers 0.36-0.42) reads transformer.config.guidance_embeds,
        # which a Chroma transformer has not: it has no guidance embedding (False).
        transformer.register_to_config(guidance_embeds=False)
    return derived(pipe, INPAINT_PIPELINES.get(family, AutoPipelineForInpainting))


class PipelineCache:
    """Keeps one pipeline loaded: the one used last. A worker serves one GPU and
    a second model rarely fits beside the first, so switching models frees
    the old one before loading the new one."""

    def __init__(self, models_path: Path, device: str = "auto", vram: str = "auto", compile: bool = False,
                 follow_links: bool = False, prompt_entries: int = prompt_cache.DEFAULT_ENTRIES):
        self.models_path = Path(models_path)
        self.follow_links = follow_links  # DAYDREAM_MODELS_FOLLOW_LINKS
        self.device = device
        self.vram = vram
        self.compile = compile  # DAYDREAM_COMPILE: compile_pipeline() each pipeline loaded
        self.prompt_entries = prompt_entries  # DAYDREAM_PROMPT_CACHE: entries (0: off); prompt_cache.py
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
            prompt_cache.configure(self.prompt_entries)
            prompt_cache.install(self.pipe, spec)
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
        prompt_cache.forget(self.pipe)  # its prompts' embeddings go with it
        self.pipe = None
        self.loaded_spec = None
        free_memory()  # drop the weights now, before the next model is loaded
