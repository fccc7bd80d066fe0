"""Model families and model cards. A card says what a model wants: its family, native
size, default steps, guidance and scheduler, which controls apply, the schedulers that
fit and its latent channels. Validation (params.py), the studio and the APIs read cards;
nothing else hard-codes a family's numbers (DESIGN.md, "The generation engine").

Also here, without torch: telling a model's family from its files (a diffusers folder's
model_index.json and configs, or the tensor names in a .safetensors header), for the
models-folder scan on the web tier and for the worker's loader."""
from __future__ import annotations

import json
import math
import re
import stat
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from services.generation import fast, gguf_files
from services.generation.schedulers import FLOW_SCHEDULERS, UNET_SCHEDULERS

# The SDXL sizes (about one megapixel), as SDXL, SD3 and FLUX were trained on them.
MEGAPIXEL_SIZES = ((1024, 1024), (1152, 896), (896, 1152), (1216, 832), (832, 1216), (1344, 768), (768, 1344))
SD1_SIZES = ((512, 512), (576, 448), (448, 576), (640, 384), (384, 640), (768, 512), (512, 768))
SD2_SIZES = ((768, 768), (896, 640), (640, 896), (1024, 576), (576, 1024))
# The area editing pipelines fit a reference picture to (diffusers' 1024 * 1024).
MEGAPIXEL = 1024 * 1024
# Qwen-Image's own aspect presets (its model card), rounded to multiples of 16.
QWEN_SIZES = ((1328, 1328), (1664, 928), (928, 1664), (1472, 1136), (1136, 1472), (1584, 1056), (1056, 1584))


@dataclass(frozen=True)
class Card:
    family: str
    label: str
    native_width: int
    native_height: int
    steps: int
    guidance: float
    scheduler: str
    schedulers: tuple[str, ...]
    uses_guidance: bool = True
    uses_negative_prompt: bool = True
    latent_channels: int = 4
    size_step: int = 8  # width and height are multiples of this (VAE factor × patch size)
    sizes: tuple[tuple[int, int], ...] = ()  # presets at the native size
    variant: str = ""  # "v-prediction", "schnell", "dev", "demo", "inpainting", "fill"
    # Which inpainting the model does: "standard" (its family's inpaint pipeline, from the
    # plain model), "dedicated" (an inpainting model: a 9-channel SD UNet, variant
    # "inpainting", or a FLUX.1 Fill transformer, variant "fill"; it needs a picture and a
    # mask) or None (it cannot inpaint: a mask or outpaint is refused).
    inpainting: str | None = "standard"
    # Can it start from a picture (image to image)? FLUX.2 dev cannot here: diffusers has
    # image-to-image pipelines for FLUX.2 klein only.
    image_to_image: bool = True
    # Where the studio starts (the demo models: small and quick on a CPU); None: native.
    start_width: int | None = None
    start_height: int | None = None
    # What else it takes (issue 25): an instruction edit of up to max_references pictures
    # (several are stitched side by side into one reference picture, as ComfyUI's Kontext
    # workflows do, unless edit_each); ControlNet units; reference images (IP-Adapter).
    edits: bool = False
    max_references: int = 0
    # An editing model is for edits only (Kontext, Qwen-Image-Edit); one whose edits are
    # optional also makes pictures from text alone (FLUX.2 takes reference pictures natively).
    edit_optional: bool = False
    # Each of an edit's pictures is given to the model as its own reference (FLUX.2,
    # Qwen-Image-Edit Plus), not stitched into one: each adds its tokens to the result's,
    # and an edit pays for each (params.guide_cost).
    edit_each: bool = False
    # At how many pixels the editing pipeline (called as worker/kinds/edit.py calls it)
    # encodes each of an edit's references, whose tokens join the result's at every step:
    # (least, most), the result's pixel count held between them (None: the result's; the
    # rule of each family is set where its card is: FAMILIES' flux2, QWEN_EDIT). The cost
    # counts each reference at this size (params.reference_pixels).
    edit_reference_pixels: tuple[int, int] | None = None
    controlnet: bool = False
    ip_adapter: bool = False
    notes: dict = field(default_factory=dict, compare=False)

    @property
    def max_side(self) -> int:
        """The longest side of the model's own sizes: a user may ask for it whatever a
        tier's side limit says (the tier's pixel limit still holds)."""
        return max(max(size) for size in self.preset_sizes())

    def start_size(self) -> tuple[int, int]:
        return (self.start_width or self.native_width, self.start_height or self.native_height)

    def to_dict(self) -> dict:
        width, height = self.start_size()
        return {
            "family": self.family, "family_label": self.label, "variant": self.variant,
            "native_width": self.native_width, "native_height": self.native_height,
            "defaults": {"steps": self.steps, "guidance": self.guidance, "scheduler": self.scheduler,
                         "width": width, "height": height},
            "schedulers": list(self.schedulers), "uses_guidance": self.uses_guidance,
            "uses_negative_prompt": self.uses_negative_prompt,
            "latent_channels": self.latent_channels, "size_step": self.size_step,
            "max_side": self.max_side, "sizes": [list(s) for s in self.preset_sizes()],
            "inpainting": self.inpainting, "image_to_image": self.image_to_image, "edits": self.edits, "max_references": self.max_references,
            "edit_optional": self.edit_optional, "edit_each": self.edit_each,
            "edit_reference_pixels": list(self.edit_reference_pixels) if self.edit_reference_pixels else None,
            "controlnet": self.controlnet, "ip_adapter": self.ip_adapter,
            "fast": fast.card(self.family),
        }

    def preset_sizes(self) -> list[tuple[int, int]]:
        """The family's presets scaled to this model's native size, multiples of size_step."""
        base = FAMILIES[self.family]
        scale = math.sqrt(self.native_width * self.native_height / (base.native_width * base.native_height))
        step = self.size_step
        out = []
        for w, h in self.sizes or base.sizes:
            size = (max(step, round(w * scale / step) * step), max(step, round(h * scale / step) * step))
            if size not in out:
                out.append(size)
        return out


FAMILIES: dict[str, Card] = {
    "sd1": Card("sd1", "Stable Diffusion 1.x", 512, 512, steps=30, guidance=7.5, scheduler="euler",
                schedulers=UNET_SCHEDULERS, sizes=SD1_SIZES, controlnet=True, ip_adapter=True),
    "sd2": Card("sd2", "Stable Diffusion 2.x", 768, 768, steps=30, guidance=7.5, scheduler="euler",
                schedulers=UNET_SCHEDULERS, sizes=SD2_SIZES, variant="v-prediction"),
    "sdxl": Card("sdxl", "Stable Diffusion XL", 1024, 1024, steps=30, guidance=7.0, scheduler="euler",
                 schedulers=UNET_SCHEDULERS, sizes=MEGAPIXEL_SIZES, controlnet=True, ip_adapter=True),
    "sd3": Card("sd3", "Stable Diffusion 3 / 3.5", 1024, 1024, steps=28, guidance=4.5,
                scheduler="flow_euler", schedulers=FLOW_SCHEDULERS, latent_channels=16, size_step=16,
                sizes=MEGAPIXEL_SIZES),
    "flux": Card("flux", "FLUX.1", 1024, 1024, steps=28, guidance=3.5, scheduler="flow_euler",
                 schedulers=FLOW_SCHEDULERS, uses_negative_prompt=False, latent_channels=16,
                 size_step=16, sizes=MEGAPIXEL_SIZES, variant="dev", controlnet=True, ip_adapter=True),
    # Z-Image Turbo (the card's default: most Z-Image files are Turbo) is distilled to 8
    # steps without guidance or a negative prompt (ZImagePipeline runs CFG only when
    # guidance_scale > 0); Z-Image base is ZIMAGE_BASE. FLUX.1's VAE: 16 channels.
    "zimage": Card("zimage", "Z-Image", 1024, 1024, steps=8, guidance=0.0, scheduler="flow_euler",
                   schedulers=FLOW_SCHEDULERS, uses_guidance=False, uses_negative_prompt=False,
                   latent_channels=16, size_step=16, sizes=MEGAPIXEL_SIZES, variant="turbo"),
    # Chroma: FLUX.1 schnell's blocks with one T5 encoder, real classifier-free guidance
    # and a negative prompt; FLUX.1's VAE. Steps and guidance: ChromaPipeline's defaults.
    "chroma": Card("chroma", "Chroma", 1024, 1024, steps=35, guidance=5.0, scheduler="flow_euler",
                   schedulers=FLOW_SCHEDULERS, latent_channels=16, size_step=16, sizes=MEGAPIXEL_SIZES),
    # FLUX.2: klein 4B/9B (Flux2KleinPipeline, a Qwen3 text encoder; step-distilled: 4 steps,
    # no guidance) by default; variants "klein-base" (undistilled, real CFG against an
    # empty prompt) and "dev" (Flux2Pipeline, a Mistral encoder, embedded guidance). Its
    # VAE has 32 latent channels; it edits with up to max_references pictures natively.
    # Each reference is given at the result's pixel count (worker/kinds/edit.py), and
    # Flux2Pipeline and Flux2KleinPipeline scale one above 1024 * 1024 pixels down to that
    # area (image_processor._resize_to_target_area) before the VAE encodes it: a reference
    # is encoded at the result's pixels, at most a megapixel (edit_reference_pixels).
    "flux2": Card("flux2", "FLUX.2", 1024, 1024, steps=4, guidance=1.0, scheduler="flow_euler",
                  schedulers=FLOW_SCHEDULERS, uses_guidance=False, uses_negative_prompt=False,
                  latent_channels=32, size_step=16, sizes=MEGAPIXEL_SIZES, variant="klein", edits=True,
                  max_references=4, edit_optional=True, edit_each=True, edit_reference_pixels=(0, MEGAPIXEL)),
    # Qwen-Image: a Qwen2.5-VL text encoder, real classifier-free guidance with a negative
    # prompt (the pipelines' true_cfg_scale: worker/pipelines/qwen.py), Wan's VAE (16
    # channels), 1328 px native with Qwen's aspect presets. Its editing models are the
    # variants in QWEN_EDIT.
    "qwen": Card("qwen", "Qwen-Image", 1328, 1328, steps=50, guidance=4.0, scheduler="flow_euler",
                 schedulers=FLOW_SCHEDULERS, latent_channels=16, size_step=16, sizes=QWEN_SIZES),
}
# FLUX.1 schnell is timestep- and guidance-distilled: four steps, no guidance.
SCHNELL = dict(variant="schnell", steps=4, guidance=0.0, uses_guidance=False)
# FLUX.1 Kontext edits a picture by instruction (FluxKontextPipeline), at BFL's defaults.
# It takes no mask, ControlNet or IP-Adapter here: diffusers has no such Kontext pipelines
# to derive from it (yet). Its reference is encoded at the result's pixels (no
# edit_reference_pixels): the worker scales it to the result's pixel count and calls the
# pipeline with _auto_resize=False, so it is not moved to a preferred Kontext resolution.
KONTEXT = dict(variant="kontext", steps=28, guidance=2.5, edits=True, max_references=3, inpainting=None,
               controlnet=False, ip_adapter=False)
# Z-Image base (not distilled): real classifier-free guidance with a negative prompt, at
# Tongyi-MAI's suggested steps and guidance.
ZIMAGE_BASE = dict(variant="base", steps=30, guidance=4.0, uses_guidance=True, uses_negative_prompt=True)
EDIT_VARIANTS = {"kontext": ("flux",)}
# Qwen-Image-Edit (QwenImageEditPipeline: one picture; several are stitched as for
# Kontext) and Edit Plus (2509/2511, QwenImageEditPlusPipeline: up to three pictures
# given to the model one by one), at Qwen's defaults, about a megapixel (Qwen's presets
# scaled). No mask, ControlNet or IP-Adapter: diffusers' Qwen-Image-Edit inpaint pipeline
# is not wired here. Whatever the result's size, both pipelines resize each picture they
# are given (Edit: the stitched reference; Edit Plus: each picture) to
# calculate_dimensions(1024 * 1024, its aspect), sides multiples of 32 (within about 1% of
# a megapixel), for the VAE, and its latent tokens join the result's at every step: a
# reference is encoded at a megapixel (edit_reference_pixels). (Each also gives the
# pictures to its Qwen2.5-VL prompt encoder, Edit at that size and Edit Plus at 384 * 384:
# once a call, not every step, and not counted.)
QWEN_EDIT = {variant: dict(variant=variant, steps=50, guidance=4.0, edits=True, max_references=3, inpainting=None,
                           native_width=1024, native_height=1024, edit_each=variant == "edit-plus",
                           edit_reference_pixels=(MEGAPIXEL, MEGAPIXEL))
             for variant in ("edit", "edit-plus")}
# FLUX.2 klein base (undistilled) and dev, at BFL's defaults. diffusers has no inpaint
# pipeline for dev (Flux2KleinInpaintPipeline takes klein's Qwen3 encoder only).
FLUX2_VARIANTS = {"klein-base": dict(variant="klein-base", steps=50, guidance=4.0, uses_guidance=True),
                  "dev": dict(variant="dev", steps=50, guidance=4.0, uses_guidance=True, inpainting=None,
                               image_to_image=False)}
FAMILY_IDS = tuple(FAMILIES)
# The variants of dedicated inpainting models: an SD UNet of 9 input channels (4 latent +
# 1 mask + 4 masked-picture latent) and a FLUX.1 Fill transformer (384 = 64 packed latent
# + 64 packed masked-picture latent + 256 packed mask).
DEDICATED_INPAINTING = {"inpainting": ("sd1", "sd2", "sdxl"), "fill": ("flux",)}
INPAINT_UNET_CHANNELS = 9
FILL_TRANSFORMER_CHANNELS = 384


def card(family: str | None, *, variant: str | None = None, native_width: int | None = None,
         native_height: int | None = None, demo: bool = False) -> Card:
    """The card of a model of `family` (unknown: sd1, the safe guess for an old file)."""
    base = FAMILIES.get(family or "sd1", FAMILIES["sd1"])
    changes: dict = {}
    if base.family == "flux" and variant == "schnell":
        changes.update(SCHNELL)
    elif base.family == "flux" and variant == "kontext":
        changes.update(KONTEXT)
    elif base.family == "flux2" and variant in FLUX2_VARIANTS:
        changes.update(FLUX2_VARIANTS[variant])
    elif base.family == "zimage" and variant == "base":
        changes.update(ZIMAGE_BASE)
    elif base.family == "qwen" and variant in QWEN_EDIT:
        changes.update(QWEN_EDIT[variant])
    elif base.family == "sd2" and variant == "base":  # SD 2.x base: 512 px, epsilon
        changes.update(variant="base", native_width=512, native_height=512)
    elif variant and variant not in ("demo",):
        changes["variant"] = variant
    if variant and base.family in DEDICATED_INPAINTING.get(variant, ()):
        # A dedicated inpainting model takes no guides here: its extra input channels
        # have no ControlNet or IP-Adapter pipeline that fits them all.
        changes.update(inpainting="dedicated", controlnet=False, ip_adapter=False)
        if variant == "fill":  # FLUX.1 Fill dev is run at a high distilled guidance
            changes["guidance"] = 30.0
    if native_width and native_height:
        changes.update(native_width=int(native_width), native_height=int(native_height))
    if demo:
        # The tiny built-in models run on the CPU: a small, quick picture.
        steps = changes.get("steps", base.steps)
        changes.update(start_width=256, start_height=256, steps=min(steps, 8))
    return replace(base, **changes) if changes else base


# --- telling a family from files ----------------------------------------------------

PIPELINE_FAMILIES = {
    "StableDiffusionPipeline": "sd1", "StableDiffusionImg2ImgPipeline": "sd1",
    "StableDiffusionXLPipeline": "sdxl", "StableDiffusionXLImg2ImgPipeline": "sdxl",
    "StableDiffusion3Pipeline": "sd3", "StableDiffusion3Img2ImgPipeline": "sd3",
    "FluxPipeline": "flux", "FluxImg2ImgPipeline": "flux",
    # Inpainting pipelines (dedicated inpainting models are saved with theirs).
    "StableDiffusionInpaintPipeline": "sd1", "StableDiffusionXLInpaintPipeline": "sdxl",
    "StableDiffusion3InpaintPipeline": "sd3", "FluxInpaintPipeline": "flux", "FluxFillPipeline": "flux",
    # FLUX.1 Kontext (an editing model: variant "kontext").
    "FluxKontextPipeline": "flux", "FluxKontextInpaintPipeline": "flux",
    "ZImagePipeline": "zimage", "ZImageImg2ImgPipeline": "zimage", "ZImageInpaintPipeline": "zimage",
    # FLUX.2: klein (Qwen3; its inpaint pipeline) and dev (Mistral).
    "Flux2KleinPipeline": "flux2", "Flux2KleinInpaintPipeline": "flux2", "Flux2Pipeline": "flux2",
    "ChromaPipeline": "chroma", "ChromaImg2ImgPipeline": "chroma", "ChromaInpaintPipeline": "chroma",
    # Qwen-Image, and Qwen-Image-Edit (variant "edit"; Edit Plus, 2509 and later: "edit-plus").
    "QwenImagePipeline": "qwen", "QwenImageImg2ImgPipeline": "qwen", "QwenImageInpaintPipeline": "qwen",
    "QwenImageEditPipeline": "qwen", "QwenImageEditInpaintPipeline": "qwen", "QwenImageEditPlusPipeline": "qwen",
}
# The variant of each Qwen-Image editing pipeline class.
QWEN_EDIT_PIPELINES = {"QwenImageEditPipeline": "edit", "QwenImageEditInpaintPipeline": "edit",
                       "QwenImageEditPlusPipeline": "edit-plus"}


class UnknownModel(ValueError):
    """The files are not a model of a family Daydream serves; the message says why."""


class NotSafetensors(UnknownModel):
    """The file is not a readable .safetensors file (damaged, or another format)."""


class Unsupported(UnknownModel):
    """A model (or LoRA) of a family Daydream does not serve (yet): a Z-Image, FLUX.2 or
    Qwen-Image folder, say. `name` is what it is (the pipeline class, or the family)."""

    def __init__(self, message: str, name: str = "", lora: bool = False):
        super().__init__(message)
        self.name = name
        self.lora = lora


@dataclass(frozen=True)
class Detected:
    family: str
    variant: str = ""
    native_width: int | None = None
    native_height: int | None = None
    parts: str = "full"  # a checkpoint: "full" pipeline, or only the "denoiser" (UNet/transformer)
    # A quantized file's type ("Q4_K", "Q8_0", … of a GGUF file; None: as stored) and the
    # file's size, for the memory planner (planner.py).
    quant: str | None = None
    size_bytes: int | None = None

    def card(self, demo: bool = False) -> Card:
        return card(self.family, variant=self.variant, native_width=self.native_width,
                    native_height=self.native_height, demo=demo)


# guard(path) raises an OSError when a file may not be opened (a link out of the models
# folder: services/generation/model_files.py); None: any file may be.
Guard = Callable[[Path], object] | None


def _read_json(path: Path, guard: Guard = None) -> dict:
    try:
        if guard is not None:
            guard(path)
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def detect_folder(folder: Path, guard: Guard = None) -> Detected:
    """The family of a diffusers folder, from model_index.json and the component configs.
    Unsupported: a pipeline class of a family Daydream does not serve."""
    folder = Path(folder)
    index_path = folder / "model_index.json"
    try:
        if guard is not None:
            guard(index_path)
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UnknownModel(f"{folder.name}: its model_index.json could not be read "
                           f"({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise UnknownModel(f"{folder.name}: its model_index.json is not valid JSON") from exc
    name = index.get("_class_name", "") if isinstance(index, dict) else ""
    if not name or not isinstance(name, str):
        raise UnknownModel(f"{folder.name}: its model_index.json names no pipeline class")
    family = PIPELINE_FAMILIES.get(name)
    if family is None:
        raise Unsupported(f"{name} is not supported yet (Daydream serves Stable Diffusion 1.x/2.x, "
                          "SDXL, SD 3/3.5, FLUX.1, FLUX.2, Z-Image, Chroma and Qwen-Image)", name)
    variant, native = "", None
    if family == "sd1":
        unet = _read_json(folder / "unet" / "config.json", guard)
        scheduler = _read_json(folder / "scheduler" / "scheduler_config.json", guard)
        if unet.get("cross_attention_dim") == 1024:
            family = "sd2"
            variant = "v-prediction" if scheduler.get("prediction_type") == "v_prediction" else "base"
        sample = unet.get("sample_size")
        if isinstance(sample, int) and sample > 0:
            native = sample * 8
        if unet.get("in_channels") == INPAINT_UNET_CHANNELS:
            variant = "inpainting"
    elif family == "sdxl":
        unet = _read_json(folder / "unet" / "config.json", guard)
        sample = unet.get("sample_size")
        if isinstance(sample, int) and sample > 0:
            native = sample * 8
        if unet.get("in_channels") == INPAINT_UNET_CHANNELS:
            variant = "inpainting"
    elif family == "flux":
        transformer = _read_json(folder / "transformer" / "config.json", guard)
        variant = "dev" if transformer.get("guidance_embeds", True) else "schnell"
        if transformer.get("in_channels") == FILL_TRANSFORMER_CHANNELS:
            variant = "fill"
        elif name.startswith("FluxKontext"):
            variant = "kontext"
    elif family == "zimage":
        variant = zimage_variant(folder.name)
    elif family == "flux2":
        # klein: step-distilled unless model_index.json says otherwise; dev: Flux2Pipeline.
        variant = "dev" if name == "Flux2Pipeline" else (
            "klein" if index.get("is_distilled", False) else "klein-base")
    elif family == "qwen":
        variant = QWEN_EDIT_PIPELINES.get(name, "")
    elif family == "sd3":
        transformer = _read_json(folder / "transformer" / "config.json", guard)
        sample, patch = transformer.get("sample_size"), transformer.get("patch_size", 2)
        if isinstance(sample, int) and sample > 0:
            native = sample * 8
        del patch
    if native is not None and native < 256:
        native = None  # a tiny test model: keep the family's sizes
    return Detected(family, variant, native, native)


def safetensors_header(path: Path) -> dict:
    """The header of a .safetensors file: {tensor name: {dtype, shape, data_offsets}} and
    "__metadata__". Reads a few kilobytes, never the weights."""
    with open(path, "rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise NotSafetensors(f"{path.name} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", raw)
        if not 2 <= length <= 100 * 1024 * 1024:
            raise NotSafetensors(f"{path.name} is not a safetensors file (bad header length)")
        try:
            header = json.loads(handle.read(length))
        except ValueError as exc:
            raise NotSafetensors(f"{path.name} is not a safetensors file (unreadable header)") from exc
    if not isinstance(header, dict):
        raise NotSafetensors(f"{path.name} is not a safetensors file (unreadable header)")
    return header


def _strip(key: str) -> str:
    for prefix in ("model.diffusion_model.", "diffusion_model."):
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


# Families Daydream does not serve yet whose checkpoints share tensor names with one it
# does, or that are worth naming:
# (family, a test of the stripped tensor names).
UNSUPPORTED_CHECKPOINTS = ()
# Tensor names of a denoiser (a timestep embedding) and of a ControlNet, which has one too
# but is not a model to serve on its own.
DENOISER_MARKERS = ("time_embed", "time_in.", "timestep_embedder", "t_embedder.", "time_text_embed",
                    "adaLN_modulation", "time_guidance_embed")
CONTROLNET_MARKERS = ("control_model.", "controlnet", "input_hint_block", "zero_convs")
SERVED = "Stable Diffusion 1.x/2.x, SDXL, SD 3, FLUX.1, FLUX.2, Z-Image, Chroma or Qwen-Image"


# The first layer of the denoiser, whose input channels tell a dedicated inpainting model
# (original and diffusers tensor names).
UNET_CONV_IN = ("model.diffusion_model.input_blocks.0.0.weight", "diffusion_model.input_blocks.0.0.weight",
                "conv_in.weight", "unet.conv_in.weight")
FLUX_IMG_IN = ("model.diffusion_model.img_in.weight", "diffusion_model.img_in.weight", "img_in.weight",
               "x_embedder.weight", "transformer.x_embedder.weight")


def _input_channels(keys: dict, names: tuple[str, ...]) -> int | None:
    """The input channels of the first of `names` in a header: a conv's shape is [out, in,
    kh, kw], a linear's [out, in]."""
    for name in names:
        entry = keys.get(name)
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if isinstance(shape, list) and len(shape) in (2, 4) and isinstance(shape[1], int):
            return shape[1]
    return None


def detect_checkpoint_keys(keys: dict) -> Detected:
    """The family of a single-file checkpoint from its tensor names (and shapes), with the
    variant of a dedicated inpainting model from its first layer's input channels.
    Unsupported: a model of another family; UnknownModel: not a model (a VAE, …)."""
    found = _detect_checkpoint_family(keys)
    if found.family == "flux":
        if _input_channels(keys, FLUX_IMG_IN) == FILL_TRANSFORMER_CHANNELS:
            return replace(found, variant="fill")
    elif found.family in ("sd1", "sd2", "sdxl"):
        if _input_channels(keys, UNET_CONV_IN) == INPAINT_UNET_CHANNELS:
            return replace(found, variant="inpainting")
    return found


def _detect_checkpoint_family(keys: dict) -> Detected:
    names = set(keys)
    stripped = {_strip(k) for k in names}
    for family, matches in UNSUPPORTED_CHECKPOINTS:
        if matches(stripped) or matches({k.removeprefix("model.") for k in stripped}):
            raise Unsupported(f"{family} is not supported yet (its tensors are those of a {family} model)",
                              family)
    # Chroma: FLUX.1's blocks, its modulations made by the distilled_guidance_layer
    # (the same name in the original and in diffusers' layout).
    if any(k.startswith("distilled_guidance_layer.") for k in stripped):
        full = any(k.startswith(("vae.", "text_encoders.", "first_stage_model.")) for k in names)
        return Detected("chroma", parts="full" if full else "denoiser")
    # FLUX.2: modulations shared by all blocks (double_stream_modulation_img., the same name
    # in the original and in diffusers' layout). dev embeds its guidance, klein does not.
    # FLUX.2 files hold the transformer alone (its VAE and text encoder are published apart).
    if any(k.removeprefix("model.").startswith("double_stream_modulation_img.") for k in stripped):
        dev = any(k.startswith(("guidance_in.", "time_guidance_embed.guidance_embedder.")) for k in stripped)
        return Detected("flux2", "dev" if dev else "klein", parts="denoiser")
    # Qwen-Image (and -Edit: the same tensors; qwen_by_name tells it by the file's name):
    # a text-input RMS norm and an image input projection (the same names in ComfyUI's
    # files, under model.diffusion_model., as in diffusers' layout). The transformer alone.
    if "txt_norm.weight" in stripped and "img_in.weight" in stripped:
        return Detected("qwen", parts="denoiser")
    # Z-Image: a caption embedder and the noise and context refiners (the same names in
    # the original and in diffusers' layout); Z-Image files hold the transformer alone.
    if (any(k.startswith("cap_embedder.") for k in stripped)
            and any(k.startswith(("noise_refiner.", "context_refiner.")) for k in stripped)):
        return Detected("zimage", "turbo", parts="denoiser")
    if "double_blocks.0.img_attn.norm.key_norm.scale" in stripped:
        variant = "dev" if any(k.startswith("guidance_in.") for k in stripped) else "schnell"
        full = any(k.startswith(("vae.", "text_encoders.", "first_stage_model.")) for k in names)
        return Detected("flux", variant, parts="full" if full else "denoiser")
    if "joint_blocks.0.context_block.adaLN_modulation.1.bias" in stripped:
        full = any(k.startswith(("text_encoders.", "first_stage_model.")) for k in names)
        return Detected("sd3", parts="full" if full else "denoiser")
    if any(k.startswith("conditioner.embedders.1.model.") for k in names):
        return Detected("sdxl")
    if any(k.startswith("cond_stage_model.model.") for k in names):
        return Detected("sd2", "v-prediction")
    if any(k.startswith("model.diffusion_model.input_blocks.") for k in names):
        return Detected("sd1")
    # The denoiser alone in diffusers' layout.
    if any(k.startswith("single_transformer_blocks.") for k in names):
        return Detected("flux", "dev" if any("guidance_embedder" in k for k in names) else "schnell",
                        parts="denoiser")
    if any(k.startswith("joint_blocks.") or k == "pos_embed.proj.weight" for k in names):
        return Detected("sd3", parts="denoiser")
    if (any(marker in k for k in names for marker in DENOISER_MARKERS)
            and not any(marker in k.lower() for k in names for marker in CONTROLNET_MARKERS)):
        raise Unsupported(f"its tensors are those of a model of a family Daydream does not serve "
                          f"(it serves {SERVED})", "unknown family")
    raise UnknownModel("its tensors are not those of a Stable Diffusion 1.x/2.x, SDXL, SD 3, FLUX.1, FLUX.2, Z-Image, Chroma or Qwen-Image "
                       "checkpoint (is it a LoRA, a VAE or an embedding?)")


LORA_MARKERS = (".lora_A.", ".lora_B.", ".lora_down.", ".lora_up.", "lora_unet_", "lora_te", ".alpha",
                "lora_transformer_")


def is_lora_keys(keys) -> bool:
    return any(marker in k for k in keys for marker in LORA_MARKERS if k != "__metadata__")


_ARCHITECTURE_HINTS = (("qwen", "qwen"), ("z-image", "zimage"), ("zimage", "zimage"), ("z_image", "zimage"),
                       ("chroma", "chroma"), ("flux.2", "flux2"), ("flux-2", "flux2"),
                       ("flux2", "flux2"), ("flux_2", "flux2"), ("flux", "flux"), ("stable-diffusion-v3", "sd3"), ("sd3", "sd3"),
                       ("stable-diffusion-xl", "sdxl"), ("sdxl", "sdxl"), ("stable-diffusion-v2", "sd2"),
                       ("sd_v2", "sd2"), ("stable-diffusion-v1", "sd1"), ("sd_v1", "sd1"))


# A Z-Image LoRA's tensors: its transformer's blocks ("layers", "noise_refiner",
# "context_refiner") with their attention ("attention.to_q", or the original fused
# "attention.qkv") and SwiGLU ("feed_forward.w1"), in diffusers/peft names
# ("transformer.layers.0.attention.to_q.lora_A…"), ComfyUI's ("diffusion_model.layers.0…")
# and kohya's ("lora_unet_layers_0_attention_to_q.lora_down…").
ZIMAGE_LORA = re.compile(r"(?:^|[._])(?:layers|noise_refiner|context_refiner)[._]\d+[._]"
                         r"(?:attention[._](?:to_[qkv]|to_out|qkv|out)|feed_forward[._]w[123])")


def detect_lora_keys(header: dict) -> str:
    """The base family of a LoRA: its metadata when it says so (kohya's ss_base_model_version,
    the modelspec architecture), otherwise its tensor names and shapes."""
    meta = header.get("__metadata__") or {}
    for key in ("modelspec.architecture", "ss_base_model_version", "ss_sd_model_name"):
        value = str(meta.get(key, "")).lower()
        for hint, family in _ARCHITECTURE_HINTS:
            if hint in value:
                return family
    keys = [k for k in header if k != "__metadata__"]
    if any(ZIMAGE_LORA.search(k) for k in keys):
        return "zimage"
    if any("distilled_guidance_layer" in k for k in keys):  # (only Chroma has it)
        return "chroma"
    if _is_flux2_lora(header, keys):
        return "flux2"
    if _is_qwen_lora(keys):
        return "qwen"
    if any("single_transformer_blocks" in k or "single_blocks" in k for k in keys):
        return "flux"
    if any(k.startswith(("transformer.", "lora_transformer_")) or "joint_blocks" in k for k in keys):
        return "sd3"
    if any(k.startswith(("text_encoder_2.", "lora_te2_")) for k in keys):
        return "sdxl"
    # A UNet LoRA: the cross-attention's key projection takes the text encoder's width
    # (768 SD 1.x, 1024 SD 2.x, 2048 SDXL); SDXL's first down block has no attention.
    for k in keys:
        if ("attn2.to_k" in k or "attn2_to_k" in k) and ("lora_A" in k or "lora_down" in k):
            shape = header[k].get("shape") or []
            if len(shape) == 2:
                width = shape[1]
                if width == 2048:
                    return "sdxl"
                if width == 1024:
                    return "sd2"
                if width == 768:
                    return "sd1"
    unet = [k for k in keys if k.startswith(("unet.", "lora_unet_"))]
    if unet and not any("down_blocks.0.attentions" in k or "down_blocks_0_attentions" in k
                        or "input_blocks_1_1" in k for k in unet):
        return "sdxl"
    if not any(marker in k for k in keys for marker in SD1_LORA_MARKERS):
        # Neither a UNet nor a text encoder: a LoRA of a transformer Daydream does not
        # serve (Z-Image, Qwen-Image, …), not an SD 1.x one.
        raise Unsupported("a LoRA of a model family Daydream does not serve (its tensors are not those of "
                          f"a {SERVED} LoRA)", "unknown family", lora=True)
    return "sd1"


# FLUX.2 LoRAs: in diffusers' names its fused single-block projection, its gated MLPs
# and shared modulations are its own; in the original (ai-toolkit, ComfyUI) and kohya
# names its blocks are FLUX.1's, told apart by the single blocks' first projection: 9x
# the width for FLUX.2 (q, k, v and a gated MLP of 3x), 7x for FLUX.1 (q, k, v, MLP of 4x).
FLUX2_LORA_MARKERS = ("to_qkv_mlp_proj", ".ff.linear_in", ".ff_context.linear_in", "stream_modulation")
FLUX2_LINEAR1_RATIO = 9


# A Qwen-Image LoRA's tensors: its blocks' own modulation and MLP names (img_mod, txt_mlp,
# …) under transformer_blocks, in diffusers/peft ("transformer.transformer_blocks.0.img_mlp…"),
# ComfyUI ("diffusion_model.transformer_blocks.0.img_mod.1…") and kohya names
# ("lora_unet_transformer_blocks_0_txt_mlp_net_2…"); FLUX.1 has img_mod/img_mlp only in
# double_blocks. One that adapts attention alone is told by its depth: Qwen-Image has
# 60 blocks, FLUX.1 19 and SD 3.5 at most 38.
QWEN_LORA = re.compile(r"transformer_blocks[._]\d+[._](?:img|txt)_(?:mod|mlp)")
QWEN_LORA_DEPTH = re.compile(r"(?:^|[._])transformer_blocks[._](\d+)[._]")
QWEN_MIN_BLOCKS = 40


def _is_qwen_lora(keys: list[str]) -> bool:
    if any(QWEN_LORA.search(k) for k in keys):
        return True
    if any("single_transformer_blocks" in k or "single_blocks" in k or "joint_blocks" in k for k in keys):
        return False
    depths = [int(m.group(1)) for k in keys if (m := QWEN_LORA_DEPTH.search(k))]
    return bool(depths) and max(depths) >= QWEN_MIN_BLOCKS


def _is_flux2_lora(header: dict, keys: list[str]) -> bool:
    if any(marker in k for k in keys for marker in FLUX2_LORA_MARKERS):
        return True
    for k in keys:
        if ("single_blocks.0.linear1" in k or "single_blocks_0_linear1" in k) and ("lora_A" in k or "lora_down" in k):
            up = header.get(k.replace("lora_A", "lora_B").replace("lora_down", "lora_up")) or {}
            down_shape, up_shape = header[k].get("shape") or [], up.get("shape") or []
            if len(down_shape) == 2 and len(up_shape) == 2 and down_shape[1]:
                return up_shape[0] == FLUX2_LINEAR1_RATIO * down_shape[1]
    return False


# Where an SD 1.x LoRA has its tensors: a UNet (diffusers, kohya or original names) or
# the text encoder.
SD1_LORA_MARKERS = ("unet", "lora_te", "text_encoder", "te_text_model", "input_blocks", "output_blocks",
                    "middle_block", "down_blocks", "up_blocks", "mid_block")


def detect_file(path: Path, guard: Guard = None) -> tuple[str, Detected | str]:
    """("model", Detected) for a checkpoint, ("lora", family) for a LoRA. A .ckpt (a
    pickle, not read on the web tier) is taken for an SD 1.x checkpoint; a .gguf is a
    quantized denoiser (detect_gguf). Unsupported: a
    model or LoRA of another family; UnknownModel: neither (a VAE, an embedding)."""
    path = Path(path)
    if guard is not None:
        guard(path)
    if path.suffix.lower() == ".ckpt":
        return "model", Detected("sd1")
    if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the reader for ever
        raise NotSafetensors(f"{path.name} is not a regular file")
    if path.suffix.lower() == gguf_files.SUFFIX:
        return "model", detect_gguf(path)
    header = safetensors_header(path)
    if is_lora_keys(header):
        return "lora", chroma_lora_by_name(detect_lora_keys(header), path.name)
    return "model", qwen_by_name(zimage_by_name(kontext_by_name(detect_checkpoint_keys(header), path.name), path.name),
                                 path.name)


def detect_gguf(path: Path) -> Detected:
    """A GGUF file holds a denoiser alone (its other parts come from <models>/configs/<family>):
    its family from its tensor names, as a .safetensors file's, with its quantization and size."""
    try:
        header = gguf_files.read_header(path)
    except gguf_files.NotGGUF as exc:
        raise NotSafetensors(str(exc)) from exc
    found = qwen_by_name(zimage_by_name(kontext_by_name(detect_checkpoint_keys(header.keys), path.name), path.name),
                         path.name)
    quant = None if header.quant in ("F32", "F64") else header.quant
    return replace(found, parts="denoiser", quant=quant, size_bytes=header.size_bytes)


def zimage_variant(name: str) -> str:
    """Z-Image Turbo and base have the same tensors and configs: the name tells them
    apart ("…base…", or Tongyi-MAI's base repository's own name "Z-Image"); Turbo else."""
    lowered = name.lower()
    if "turbo" not in lowered and ("base" in lowered or re.sub(r"[^a-z]", "", lowered) == "zimage"):
        return "base"
    return "turbo"


def qwen_by_name(found: Detected, name: str) -> Detected:
    """A Qwen-Image-Edit checkpoint has Qwen-Image's tensors: its name says it edits, and
    2509/2511 (or "plus") that it is an Edit Plus (QwenImageEditPlusPipeline)."""
    lowered = Path(name).stem.lower()
    if found.family != "qwen" or "edit" not in lowered:
        return found
    return replace(found, variant="edit-plus" if re.search(r"plus|2509|251\d", lowered) else "edit")


def zimage_by_name(found: Detected, name: str) -> Detected:
    """A Z-Image checkpoint's variant from its file name (zimage_variant)."""
    if found.family == "zimage":
        return replace(found, variant=zimage_variant(Path(name).stem))
    return found


def chroma_lora_by_name(family: str, name: str) -> str:
    """A Chroma LoRA of the attention alone has the tensor names of a FLUX.1 one (Chroma
    has FLUX.1's blocks): without metadata that says so, its name says it is one."""
    return "chroma" if family == "flux" and "chroma" in name.lower() else family


def kontext_by_name(found: Detected, name: str) -> Detected:
    """A FLUX.1 Kontext checkpoint has FLUX.1 dev's tensors: its name says it is one. So
    does a FLUX.2 klein base (undistilled) file, whose tensors are klein's."""
    if found.family == "flux" and found.variant != "fill" and "kontext" in name.lower():
        return replace(found, variant="kontext")
    if found.family == "flux2" and found.variant == "klein" and "base" in name.lower():
        return replace(found, variant="klein-base")
    return found


# --- the built-in demo models --------------------------------------------------------

# Tiny random-weight models of each family, built on the worker's first use
# (worker/demo_model.py): model id -> family. "demo" is offered by default; the others
# when DAYDREAM_DEMO_MODELS names their family (the tests use them all). "demo-kontext"
# is the demo FLUX.1 run as an editing model (FluxKontextPipeline): variant "kontext";
# "demo-qwen-edit" and "demo-qwen-edit-plus" the demo Qwen-Image run as Qwen-Image-Edit
# and Edit Plus (QwenImageEditPipeline, QwenImageEditPlusPipeline: the same folder).
DEMO_MODELS = {"demo": "sd1", "demo-sdxl": "sdxl", "demo-sd3": "sd3", "demo-flux": "flux", "demo-kontext": "flux",
               "demo-zimage": "zimage", "demo-chroma": "chroma", "demo-flux2": "flux2",
               "demo-qwen": "qwen", "demo-qwen-edit": "qwen", "demo-qwen-edit-plus": "qwen"}
DEMO_VARIANTS = {"flux": "schnell", "zimage": "turbo", "flux2": "klein"}  # a family's demo variant
# A demo model whose variant is its own.
DEMO_MODEL_VARIANTS = {"demo-kontext": "kontext", "demo-qwen-edit": "edit", "demo-qwen-edit-plus": "edit-plus"}
# Demo models that are another demo model's weights run another way: the folder they load.
DEMO_SHARED_FOLDERS = {"demo-kontext": "demo-flux", "demo-qwen-edit": "demo-qwen", "demo-qwen-edit-plus": "demo-qwen"}
# And a tiny LoRA for each family: its spec -> family.
DEMO_LORAS = {f"demo-lora-{family}": family for family in DEMO_MODELS.values()}
# Tiny guide models (issue 25) for the demo models, built by the worker
# (worker/demo_guides.py): id -> (adapter, family, architecture). Offered with the demo
# models of their family while DAYDREAM_DEMO_MODELS asks for demo models.
DEMO_GUIDES = {"demo-controlnet-sd1": ("controlnet", "sd1", "controlnet"),
               "demo-controlnet-sdxl": ("controlnet", "sdxl", "controlnet"),
               "demo-controlnet-flux": ("controlnet", "flux", "union"),
               "demo-ipadapter-sd1": ("ipadapter", "sd1", "ip-adapter"),
               "demo-controlnet-sdxl-union": ("controlnet", "sdxl", "union")}
# The demo Unions' numbers of control modes (the catalog's control_modes): the SDXL one has
# ProMax's eight, the FLUX one InstantX's seven.
DEMO_GUIDE_MODES = {"demo-controlnet-sdxl-union": 8, "demo-controlnet-flux": 7}


def demo_family(spec: str) -> str | None:
    """The family of a built-in demo model, LoRA or guide spec, else None."""
    guide = DEMO_GUIDES.get(spec)
    return DEMO_MODELS.get(spec) or DEMO_LORAS.get(spec) or (guide[1] if guide else None)


def demo_variant(model_id: str) -> str:
    """The variant of a built-in demo model ("" for none)."""
    return DEMO_MODEL_VARIANTS.get(model_id) or DEMO_VARIANTS.get(DEMO_MODELS.get(model_id, ""), "")


def card_of(row) -> Card:
    """The card of a catalog row (models.AiModel, or anything with its attributes)."""
    return card(row.family, variant=row.variant, native_width=row.native_width,
                native_height=row.native_height, demo=row.kind == "demo")
