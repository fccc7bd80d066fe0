"""Hires fix: one task, two passes, one progress bar. The first pass renders at the task's
width × height (the model's native size, say); its result is upscaled to the final size
(Task.hires width × height) and a second, image-to-image pass at the hires denoising
strength adds the detail the small picture could not hold.

The upscale, by the task's hires upscaler:
- a latent mode ("latent", "latent-antialiased", "latent-bicubic", …, A1111's names
  without the brackets) on a UNet family (SD 1.x/2.x, SDXL): the first pass stops at its
  latents (output_type="latent"), they are interpolated to the final size with
  torch.nn.functional.interpolate in that mode, and the image-to-image pipeline starts from
  them (diffusers takes 4-channel latents as its `image`, unencoded);
- a latent mode on SD 3 or FLUX (16-channel, FLUX's packed, latents): the picture is
  decoded and resized with Lanczos in pixel space, then re-encoded by the second pass
  (the latent modes act in pixel space there);
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
from worker.pipelines.info import family_of
from worker.schedulers import apply_scheduler

UNET_FAMILIES = ("sd1", "sd2", "sdxl")
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


def interpolate_latents(latents: torch.Tensor, mode: str, width: int, height: int, factor: int) -> torch.Tensor:
    """UNet latents (B, 4, h, w) interpolated to the latents of a width × height picture."""
    how, antialias = LATENT_MODES[mode]
    size = (int(height) // factor, int(width) // factor)
    if how in ("nearest", "nearest-exact"):
        return F.interpolate(latents, size=size, mode=how)
    return F.interpolate(latents, size=size, mode=how, antialias=antialias)


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
        self.family = family_of(pipe)

    def in_latents(self) -> bool:
        return self.hires["upscaler"] in LATENT_MODES and self.family in UNET_FAMILIES and self.second_steps() > 0

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
            start = interpolate_latents(made.images, self.hires["upscaler"], width, height, factor)
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
