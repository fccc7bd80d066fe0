"""Hires fix: one task, two passes, one progress bar. The first pass renders at the task's
width × height (the model's native size, say); its result is upscaled to the final size
(Task.hires width × height) and a second, image-to-image pass at the hires denoising
strength adds the detail the small picture could not hold.

The upscale, by the task's hires upscaler:
- a latent mode ("latent", "latent-antialiased", "latent-bicubic", …, A1111's names
  without the brackets) where the family's image-to-image pipeline starts from latents
  (LATENT_IMG2IMG: SD 1.x/2.x, SDXL, SD 3, FLUX.1, Chroma, Z-Image, Qwen-Image, FLUX.2
  klein): the first pass stops at its latents (output_type="latent"), packed ones
  (FLUX.1's, Chroma's, Qwen-Image's tokens of 2×2 patches) are unpacked by the
  pipeline's own _unpack_latents to (B, C, h, w), they are interpolated to the final size
  with torch.nn.functional.interpolate in that mode, and the image-to-image pipeline
  starts from them: diffusers takes an `image` of the latent channel count as latents,
  not encoded, in the space its encoder gives (scaled and shifted, Qwen-Image's by mean
  and deviation; FLUX.2 klein's raw and 2×2-patchified, normalised by the pipeline),
  which is the space a first pass ends in;
- a latent mode on a pipeline whose image-to-image is another (FLUX.1 Kontext's, whose
  `image` is a reference to edit): the picture is decoded and resized with Lanczos in
  pixel space, then encoded by the second pass;
- "lanczos" or "nearest": the decoded picture resized so;
- an upscaler model's id: the decoded picture through worker/upscalers.upscale (tiled),
  to exactly the final size.

Progress: the step callback sees both passes as one run, steps counted on from the first
pass's and the total per image steps + int(hires steps × denoising) (Task.effective_steps).
Denoising 0 runs no second pass: the upscale alone (a latent mode resizes with Lanczos)."""
from __future__ import annotations

from types import SimpleNamespace

import torch
import torch.nn.functional as F  # noqa: N812 - as torch names it
from PIL import Image as PILImage

from services.generation import upscalers as offered
from services.generation.params import HIRES_DEFAULT_UPSCALER, hires_steps
from worker import upscalers
from worker.kinds.base import TaskKind
from worker.kinds.img2img import takes_size
from worker.pipelines.cache import img2img_from
from worker.schedulers import apply_scheduler

# The image-to-image pipelines a latent mode starts from latents (by class name): an
# `image` of the latent channel count is taken as latents, not encoded (FLUX.2 klein's,
# the inpaint pipeline with all masked, takes them 2×2-patchified). Others (FLUX.1
# Kontext's, whose `image` is a reference to edit) get the decoded picture, resized.
LATENT_IMG2IMG = ("StableDiffusionImg2ImgPipeline", "StableDiffusionXLImg2ImgPipeline",
                  "StableDiffusion3Img2ImgPipeline", "FluxImg2ImgPipeline", "ChromaImg2ImgPipeline",
                  "ZImageImg2ImgPipeline", "QwenImageImg2ImgPipeline", "Flux2KleinImg2ImgPipeline")
PATCHIFIED = ("Flux2KleinImg2ImgPipeline",)
# A latent mode as torch.nn.functional.interpolate's (mode, antialias), as A1111 has them.
LATENT_MODES = {"latent": ("bilinear", False), "latent-antialiased": ("bilinear", True),
                "latent-bicubic": ("bicubic", False), "latent-bicubic-antialiased": ("bicubic", True),
                "latent-nearest": ("nearest", False), "latent-nearest-exact": ("nearest-exact", False)}
RESAMPLERS = {"lanczos": PILImage.LANCZOS, "nearest": PILImage.NEAREST}


def settings_of(task) -> dict:
    """The task's hires settings with the defaults filled in (Task.hires as validated)."""
    hires = dict(getattr(task, "hires", None) or {})
    hires["upscaler"] = hires.get("upscaler") or HIRES_DEFAULT_UPSCALER
    hires["steps"] = int(hires.get("steps") or 0)
    hires["denoising"] = float(hires.get("denoising") if hires.get("denoising") is not None else 0.5)
    return hires


def spread(pipe, latents: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """A first pass's latents (output_type="latent") of a width × height picture as
    (B, C, h, w): FLUX.1's, Chroma's and Qwen-Image's come packed, (B, h/2 × w/2, 4C)
    tokens of 2×2 patches, unpacked by the pipeline's own _unpack_latents (Qwen-Image's
    to (B, C, 1, h, w): one frame); the others' are so already."""
    if latents.dim() == 3:
        latents = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    if latents.dim() == 5:
        latents = latents.squeeze(2)
    return latents


def interpolate_latents(latents: torch.Tensor, mode: str, width: int, height: int, factor: int) -> torch.Tensor:
    """Latents (B, C, h, w) interpolated to the latents of a width × height picture, in
    float32 (half-precision kernels lack some modes), returned in their dtype."""
    how, antialias = LATENT_MODES[mode]
    size = (int(height) // factor, int(width) // factor)
    wide = latents.float()
    if how in ("nearest", "nearest-exact"):
        made = F.interpolate(wide, size=size, mode=how)
    else:
        made = F.interpolate(wide, size=size, mode=how, antialias=antialias)
    return made.to(latents.dtype)


def latent_start(runner, latents: torch.Tensor) -> dict:
    """The image-to-image call's arguments that start it from `latents` (B, C, h, w) at
    the final size. FLUX.2 klein's takes them 2×2-patchified, with its whole-picture mask
    given (its wrapper makes one from a picture's size). The others' image processors pass
    an `image` of their latent channel count through untouched, but Chroma's and
    Z-Image's are made without that count: it is set on them (a tensor of that many
    channels is never a picture)."""
    if type(runner).__name__ in PATCHIFIED:
        height, width = (side * runner.vae_scale_factor for side in latents.shape[-2:])
        masks = [PILImage.new("L", (width, height), 255) for _ in range(latents.shape[0])]
        return {"image": runner._patchify_latents(latents), "mask_image": masks}
    processor = runner.image_processor
    if processor.config.get("vae_latent_channels") != latents.shape[1]:
        processor.register_to_config(vae_latent_channels=int(latents.shape[1]))
    return {"image": latents}


class PassView:
    """The pipeline as the step callback sees it during one pass: its steps counted on
    from the passes before (step_index + offset) out of both passes' total. What the
    callback sets (a stop: _interrupt) goes to the pipeline itself."""

    def __init__(self, pipeline, total: int):
        object.__setattr__(self, "_pipeline", pipeline)
        object.__setattr__(self, "num_timesteps", total)

    def __getattr__(self, name):
        return getattr(self._pipeline, name)

    def __setattr__(self, name, value):
        setattr(self._pipeline, name, value)


def counted_on(callback, offset: int, total: int):
    """The step callback of one pass, with the step numbers of the whole run."""
    if callback is None:
        return None

    def on_step_end(pipeline, step_index, timestep, callback_kwargs):
        return callback(PassView(pipeline, total), step_index + offset, timestep, callback_kwargs)

    return on_step_end


def interrupted(pipe) -> bool:
    return bool(getattr(pipe, "_interrupt", False))


class HiresCall:
    """The call of a batch of hires rows: the first pass, the upscale, the second pass."""

    def __init__(self, pipe, head, rows: list, inputs: dict):
        self.pipe, self.head, self.rows, self.inputs = pipe, head, rows, inputs
        self.hires = settings_of(head)

    def in_latents(self) -> bool:
        """Does the upscale act on the latents (a latent mode, a second pass, and an
        image-to-image pipeline that starts from latents)?"""
        if self.hires["upscaler"] not in LATENT_MODES or self.second_steps() <= 0:
            return False
        return type(img2img_from(self.pipe)).__name__ in LATENT_IMG2IMG

    def second_steps(self) -> int:
        return hires_steps(self.head.steps, self.hires)

    def upscaled(self, pictures: list) -> list:
        """The first pass's pictures at the final size, by the upscaler."""
        size = (int(self.hires["width"]), int(self.hires["height"]))
        upscaler = self.hires["upscaler"]
        if upscaler in LATENT_MODES or upscaler in RESAMPLERS:
            how = RESAMPLERS.get(upscaler, PILImage.LANCZOS)
            return [picture.convert("RGB").resize(size, how) for picture in pictures]
        found = self.inputs[self.head.id]
        device = getattr(self.pipe, "_execution_device", None) or self.pipe.device  # (offloaded: where it runs)
        return [upscalers.upscale(picture.convert("RGB"), found, size, device=device) for picture in pictures]

    def __call__(self, **arguments):
        callback = arguments.pop("callback_on_step_end", None)
        tensor_inputs = arguments.pop("callback_on_step_end_tensor_inputs", None)
        first, second = int(self.head.steps), self.second_steps()
        total = first + second
        latent = self.in_latents()
        passing = {"callback_on_step_end": counted_on(callback, 0, total)}
        if tensor_inputs is not None:
            passing["callback_on_step_end_tensor_inputs"] = tensor_inputs
        made = self.pipe(**arguments, **passing, output_type="latent" if latent else "pil")
        width, height = int(self.hires["width"]), int(self.hires["height"])
        if interrupted(self.pipe):  # every task stopped: nothing of this call is kept
            return SimpleNamespace(images=[PILImage.new("RGB", (width, height)) for _ in self.rows])
        if latent:
            factor = int(getattr(self.pipe, "vae_scale_factor", 8) or 8)
            latents = spread(self.pipe, made.images, int(self.head.width), int(self.head.height))
            start = interpolate_latents(latents, self.hires["upscaler"], width, height, factor)
        else:
            start = self.upscaled(list(made.images))
            if second <= 0:
                return SimpleNamespace(images=start)
        seeds = [row.seed for row in self.rows]
        apply_scheduler(self.pipe, self.hires.get("scheduler") or self.head.scheduler, seed=seeds)
        runner = img2img_from(self.pipe)  # follows the scheduler just set on pipe
        again = {**TaskKind.prompt_arguments(self.head, self.rows),
                 "prompt": [settings_of(row.task).get("prompt") or row.task.prompt for row in self.rows],
                 "num_inference_steps": self.hires["steps"] or first,
                 "image": start, "strength": self.hires["denoising"], "generator": arguments.get("generator"),
                 "callback_on_step_end": counted_on(callback, first, total)}
        negatives = [settings_of(row.task).get("negative_prompt") or row.task.negative_prompt for row in self.rows]
        if any(negatives):
            again["negative_prompt"] = negatives
        else:
            again.pop("negative_prompt", None)
        if tensor_inputs is not None:
            again["callback_on_step_end_tensor_inputs"] = tensor_inputs
        if takes_size(runner):
            again.update(width=width, height=height)
        if latent:
            again.update(latent_start(runner, start))
        return runner(**again)


class HiresFix(TaskKind):
    name = "hires"
    # Its second pass's steps are at the larger final size: its calls' times say nothing of
    # a step at the task's width × height (worker/render.py records none).
    records_step_time = False

    def applies(self, task) -> bool:
        return bool(getattr(task, "hires", None)) and getattr(task, "init_image_id", None) is None

    def batch_key(self, task) -> tuple:
        hires = settings_of(task)
        return (int(hires["width"]), int(hires["height"]), hires["upscaler"], hires["steps"],
                hires["denoising"], hires.get("scheduler") or "", bool(hires.get("negative_prompt")))

    def inputs(self, task):
        """An upscaler model's entry (services/generation/upscalers.find: with its file's
        spec); None for a latent mode or a built-in resampler."""
        upscaler = settings_of(task)["upscaler"]
        if upscaler in LATENT_MODES or upscaler in RESAMPLERS:
            return None
        found = offered.find(upscaler)
        if found is None:
            raise ValueError(f"The upscaler '{upscaler}' is no longer available; choose another for the hires fix.")
        return found

    def build_call(self, pipe, head, rows, inputs):
        arguments = {**self.prompt_arguments(head, rows), "width": head.width, "height": head.height}
        return HiresCall(pipe, head, rows, inputs), arguments

    def infotext_fields(self, task) -> dict:
        return {"hires": dict(task.hires)}
