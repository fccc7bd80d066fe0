"""Inpaint (and outpaint): the family's inpaint pipeline made from the loaded one's
components (worker/pipelines/cache.inpaint_from: SD 1.x/2.x, SDXL and SD 3 through
their inpaint pipelines, FLUX.1 through FluxInpaintPipeline, a FLUX.1 Fill transformer
through FluxFillPipeline, a 9-channel SD inpainting UNet through the SD inpaint
pipeline), repainting the task's mask of its init picture.

Per task, once (inputs): the init picture fitted to the size inside the outpaint
(init_fit), pasted at (left, top) in a canvas of the task's width × height with the
new area pre-filled from the edges; the mask fitted the same way (inverted first when
asked), united with the new area, and feathered by mask_blur (worker/masks.py). "Only
masked" (inpaint_area "masked") crops the feathered mask's box plus inpaint_padding,
grown to the task's aspect, and renders that crop at the model's native size.

Per row (build_call): the masked content ("fill", "latent_noise" seeded by the row's
seed, "latent_nothing"), and the noise multiplier (A1111's initial_noise_multiplier:
the noise added to the start latents is multiplied, per row). After the call
(finish_picture): the crop is pasted back, and the result composited over the input
through the feathered mask, so every pixel farther than mask_blur from the mask is the
input's. Tasks share a call at the same strength, inpaint area and masked content; each
row has its own picture and mask."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image as PILImage

from services.generation.families import FAMILIES
from services.library import storage
from worker import masks
from worker.init_image import fit_picture
from worker.kinds.base import TaskKind
from worker.pipelines.cache import inpaint_from
from worker.pipelines.info import family_of

DEFAULTS = {"mask_blur": 4, "inpaint_area": "whole", "inpaint_padding": 32, "masked_content": "original",
            "mask_invert": False, "noise_multiplier": 1.0}
DEFAULT_STRENGTH = 0.75


def settings_of(task) -> dict:
    """The task's inpaint settings, the defaults filled in, outpaint as four ints."""
    given = getattr(task, "inpaint", None) or {}
    settings = {key: given.get(key, default) if given.get(key) is not None else default
                for key, default in DEFAULTS.items()}
    settings["outpaint"] = masks.outpaint_sides(given.get("outpaint"))
    return settings


@dataclass
class Prepared:
    """What a task's rows start from: the canvas (the input, width × height), the mask
    to repaint (binary), its feathered form, and the crop box ("only masked"; None:
    the whole picture)."""

    canvas: PILImage.Image
    mask: PILImage.Image
    feathered: np.ndarray
    box: tuple[int, int, int, int] | None


def prepare(picture: PILImage.Image, mask: PILImage.Image | None, task) -> Prepared:
    """The canvas, mask, feathering and crop of `task` from its init picture and its
    stored mask (at the picture's size, 255 = repaint, not yet inverted)."""
    settings = settings_of(task)
    sides = settings["outpaint"]
    width, height = int(task.width), int(task.height)
    inner = (width - sides["left"] - sides["right"], height - sides["top"] - sides["bottom"])
    fitted = fit_picture(picture, inner[0], inner[1], task.init_fit)
    if mask is not None:
        if settings["mask_invert"]:
            mask = masks.invert(mask)
        mask = masks.fit_mask(mask, inner[0], inner[1], task.init_fit)
    canvas = masks.outpaint_canvas(fitted, sides)
    whole_mask = masks.outpaint_mask(mask, inner, sides)
    feathered = masks.feather(whole_mask, int(settings["mask_blur"]))
    box = None
    if settings["inpaint_area"] == "masked":
        box = masks.crop_box(feathered, int(settings["inpaint_padding"]), width, height) or (0, 0, width, height)
    return Prepared(canvas, whole_mask, feathered, box)


class MultipliedNoise:
    """The pipeline `runner`, called with the noise its prepare_latents adds to the start
    latents multiplied per row (A1111's initial_noise_multiplier): the scheduler's
    add_noise (SD, SDXL) or scale_noise (SD 3, FLUX) is wrapped for that one call; at
    strength 1 the SD pipelines start from the noise alone, and those start latents are
    multiplied instead. The denoising loop's own calls (re-noising the kept area) are
    left alone."""

    NOISE_ARGUMENT = {"add_noise": 1, "scale_noise": 2}  # the noise's position in each

    def __init__(self, runner, multipliers: list[float]):
        self.runner, self.multipliers = runner, multipliers

    def scaled(self, noise: torch.Tensor) -> torch.Tensor:
        factors = torch.tensor(self.multipliers, dtype=noise.dtype, device=noise.device)
        if noise.shape[0] != len(factors):  # (several images a row: each row's repeated)
            factors = factors.repeat_interleave(max(1, noise.shape[0] // len(factors)))
        return noise * factors.reshape(-1, *([1] * (noise.dim() - 1)))

    def __call__(self, **arguments):
        runner, scheduler = self.runner, self.runner.scheduler
        prepare = runner.prepare_latents
        used = []

        def wrap(name, original):
            position = self.NOISE_ARGUMENT[name]

            def noised(*args, **kwargs):
                used.append(name)
                if "noise" in kwargs:
                    kwargs["noise"] = self.scaled(kwargs["noise"])
                elif len(args) > position:
                    args = (*args[:position], self.scaled(args[position]), *args[position + 1:])
                return original(*args, **kwargs)

            return noised

        def prepare_latents(*args, **kwargs):
            names = [name for name in self.NOISE_ARGUMENT if hasattr(scheduler, name)]
            for name in names:
                setattr(scheduler, name, wrap(name, getattr(scheduler, name)))
            try:
                outputs = prepare(*args, **kwargs)
            finally:
                for name in names:
                    scheduler.__dict__.pop(name, None)
            if not used:  # SD at strength 1: the start latents are the noise alone
                if isinstance(outputs, tuple):
                    outputs = (self.scaled(outputs[0]), *outputs[1:])
                else:
                    outputs = self.scaled(outputs)
            return outputs

        runner.prepare_latents = prepare_latents
        try:
            return runner(**arguments)
        finally:
            runner.__dict__.pop("prepare_latents", None)


class Inpaint(TaskKind):
    name = "inpaint"

    def applies(self, task) -> bool:
        if getattr(task, "init_image_id", None) is None:
            return False
        if getattr(task, "mask_image_id", None):
            return True
        inpaint = getattr(task, "inpaint", None) or {}
        return any(masks.outpaint_sides(inpaint.get("outpaint")).values())

    def batch_key(self, task) -> tuple:
        settings = settings_of(task)
        return (float(task.strength if task.strength is not None else DEFAULT_STRENGTH),
                settings["inpaint_area"], settings["masked_content"])

    def inputs(self, task):
        init = storage.get_image(task.user, task.init_image_id)
        with PILImage.open(storage.path_of(init)) as source:
            picture = source.convert("RGB")
        mask = None
        if task.mask_image_id:
            stored = storage.get_image(task.user, task.mask_image_id, held_ok=True)
            with PILImage.open(storage.path_of(stored)) as source:
                mask = masks.binary(source)
        return prepare(picture, mask, task)

    def build_call(self, pipe, head, rows, inputs):
        runner = inpaint_from(pipe)  # follows the scheduler just set on pipe
        settings = settings_of(head)
        width, height = int(head.width), int(head.height)
        if settings["inpaint_area"] == "masked":
            step = FAMILIES.get(family_of(pipe), FAMILIES["sd1"]).size_step
            width, height = masks.render_size(masks.native_size(pipe), head.width, head.height, step)
        pictures, painted = [], []
        for row in rows:
            prepared = inputs[row.task.id]
            start = masks.with_content(prepared.canvas, prepared.mask, settings["masked_content"], seed=row.seed)
            mask = prepared.mask
            if prepared.box is not None:
                start = start.crop(prepared.box).resize((width, height), PILImage.LANCZOS)
                mask = mask.crop(prepared.box).resize((width, height), PILImage.NEAREST)
            pictures.append(start)
            painted.append(mask)
        strength = float(head.strength if head.strength is not None else DEFAULT_STRENGTH)
        arguments = {**self.prompt_arguments(head, rows), "image": pictures, "mask_image": painted,
                     "strength": strength, "width": width, "height": height}
        multipliers = [float(settings_of(row.task)["noise_multiplier"]) for row in rows]
        if any(value != 1.0 for value in multipliers):
            return MultipliedNoise(runner, multipliers), arguments
        return runner, arguments

    def finish_picture(self, row, picture, inputs):
        prepared = inputs[row.task.id]
        generated = picture
        if prepared.box is not None:
            generated = masks.paste_back(prepared.canvas, picture, prepared.box)
        return masks.composite(prepared.canvas, generated, prepared.feathered)

    def infotext_fields(self, task) -> dict:
        settings = settings_of(task)
        fields = {"init_image": task.init_image_id, "strength": task.strength, "init_fit": task.init_fit,
                  "mask": task.mask_image_id}
        fields.update({key: settings[key] for key in ("mask_blur", "inpaint_area", "inpaint_padding",
                                                      "masked_content", "mask_invert", "outpaint")})
        if float(settings["noise_multiplier"]) != 1.0:
            fields["noise_multiplier"] = float(settings["noise_multiplier"])
        return fields
