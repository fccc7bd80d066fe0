"""Upscale: one of the user's images made bigger (services/generation/upscales.py), a
batch of one task. The call Render makes is an UpscaleRun: the upscaler
(worker/upscalers.upscale: a built-in resize, or a model in overlapping tiles) brings the
source to the task's width × height; with a refining pass (A1111's "SD upscale"), a
low-strength image-to-image pass of the loaded model (worker/pipelines/cache.img2img_from)
then runs over it in overlapping tiles at the model's native size, blended with linear
ramps in the shared strips so that no seam shows.

Progress counts units: the upscaler's tiles (one for a built-in), then each refining tile's
denoising steps; the step callback Render gives is called after each unit (with this
run as its "pipeline": num_timesteps the units, _interrupt its stop), so progress, the ETA
and cancel work as for a generation. The result records "upscale" and "source_image"."""
from __future__ import annotations

import inspect
import logging

import numpy as np
import torch
from PIL import Image as PILImage

from services.generation import upscalers as upscaler_catalog
from services.generation.families import FAMILIES
from services.library import storage
from worker import get_app
from worker import upscalers as upscaler_runs
from worker.kinds.base import TaskKind
from worker.kinds.img2img import takes_size
from worker.masks import native_size
from worker.pipelines.cache import img2img_from
from worker.pipelines.info import family_of
from worker.pipelines.memory import resolve_device
from worker.upscalers import ramps  # (the same blend as the upscaler's tiles)

log = logging.getLogger(__name__)


class Stopped(Exception):
    """The task's stop was asked for between two units."""


class Result:
    def __init__(self, images):
        self.images = images


def refine_steps_per_tile(steps: int, strength: float) -> int:
    """The denoising steps an image-to-image call of `steps` at `strength` runs (diffusers)."""
    return max(1, min(int(steps), int(int(steps) * float(strength))))


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) of tiles of exactly `tile` pixels (tile <= length) covering `length`,
    neighbours sharing at least `overlap`, spread evenly."""
    if length <= tile:
        return [(0, length)]
    count = -(-(length - overlap) // (tile - overlap))
    starts = [round(k * (length - tile) / (count - 1)) for k in range(count)]
    return [(s, s + tile) for s in starts]


def refine_tiles(size: tuple[int, int], native: tuple[int, int], step: int) -> list[tuple[int, int, int, int]]:
    """The boxes (left, top, right, bottom) the refining pass renders: the model's native
    size (at most the picture's, in multiples of `step`), overlapping by an eighth."""
    width, height = size
    boxes = []
    tile_w = max(step, min(native[0], width) // step * step)
    tile_h = max(step, min(native[1], height) // step * step)
    overlap_w = max(step, tile_w // 8 // step * step) if tile_w < width else 0
    overlap_h = max(step, tile_h // 8 // step * step) if tile_h < height else 0
    for top, bottom in tile_spans(height, tile_h, overlap_h):
        for left, right in tile_spans(width, tile_w, overlap_w):
            boxes.append((left, top, right, bottom))
    return boxes


class UpscaleRun:
    """What Render calls for an upscale task (in place of a pipeline)."""

    def __init__(self, pipe, task, source: PILImage.Image, upscaler: dict, refine: dict | None):
        self.pipe, self.task, self.source, self.upscaler, self.refine = pipe, task, source, upscaler, refine
        self.size = (int(task.width), int(task.height))
        self._interrupt = False
        self.done = 0
        self.upscale_units = 1
        if not upscaler.get("builtin") and upscaler.get("scale"):
            try:
                self.upscale_units = max(1, upscaler_runs.tile_count(
                    source.size, max(self.size[0] / source.width, self.size[1] / source.height),
                    model_scale=int(upscaler["scale"])))
            except Exception:  # (a count only: the upscaler's own progress corrects it)
                self.upscale_units = 1
        self.boxes, self.per_tile = [], 0
        if refine:
            step = FAMILIES.get(family_of(pipe), FAMILIES["sd1"]).size_step
            self.boxes = refine_tiles(self.size, native_size(pipe), step)
            self.per_tile = refine_steps_per_tile(refine["steps"], refine["strength"])
        self.num_timesteps = self.upscale_units + len(self.boxes) * self.per_tile

    def tick(self, callback) -> None:
        """A unit is done: progress (and the stop check) through Render's callback."""
        self.done += 1
        self.num_timesteps = max(self.num_timesteps, self.done)
        if callback is not None:
            callback(self, self.done - 1, None, {})
        if self._interrupt:
            raise Stopped

    def __call__(self, *, generator=None, callback_on_step_end=None, callback_on_step_end_tensor_inputs=None,
                 **_ignored):
        callback = callback_on_step_end
        seed = int(self.task.seed)
        if generator:
            first = generator[0] if isinstance(generator, list) else generator
            seed = int(first.initial_seed())
        try:
            upscaled = self.upscale(callback)
            if self.refine:
                upscaled = self.refined(upscaled, seed, callback)
        except Stopped:
            return Result([PILImage.new("RGB", (1, 1))])  # (dropped: Render sees the task stopped)
        return Result([upscaled])

    def upscale(self, callback) -> PILImage.Image:
        counted = [0]

        def progress(done: int, total: int) -> None:
            # The upscaler's own total replaces the planned one (the refining units after it).
            self.upscale_units = max(1, int(total))
            self.num_timesteps = self.upscale_units + len(self.boxes) * self.per_tile
            while counted[0] < done:
                counted[0] += 1
                self.tick(callback)

        device, _dtype = resolve_device(get_app().config["DEVICE"])
        picture = upscaler_runs.upscale(self.source, self.upscaler, self.size, progress=progress, device=device)
        while counted[0] < self.upscale_units:  # (an upscaler that reported fewer)
            counted[0] += 1
            self.tick(callback)
        return picture

    def refined(self, picture: PILImage.Image, seed: int, callback) -> PILImage.Image:
        """The refining pass: image-to-image over each tile, blended back."""
        runner = img2img_from(self.pipe)  # (with the scheduler Render just set)
        task, refine = self.task, self.refine
        width, height = self.size
        total = np.zeros((height, width, 3), dtype=np.float32)
        weight = np.zeros((height, width, 1), dtype=np.float32)
        xs = sorted({(b[0], b[2]) for b in self.boxes})
        ys = sorted({(b[1], b[3]) for b in self.boxes})
        x_weights = dict(zip(xs, ramps(xs)))
        y_weights = dict(zip(ys, ramps(ys)))
        sized = takes_size(runner)
        # (a model that takes no negative prompt: the source's, made with another model, is left out)
        negative = "negative_prompt" in inspect.signature(type(runner).__call__).parameters
        for index, box in enumerate(self.boxes):
            left, top, right, bottom = box
            tile = picture.crop(box)
            steps_seen = [0]

            def on_step(pipeline, step_index, _timestep, callback_kwargs):
                steps_seen[0] += 1
                if steps_seen[0] <= self.per_tile:
                    try:
                        self.tick(callback)
                    except Stopped:
                        pipeline._interrupt = True
                        self._interrupt = True
                return callback_kwargs

            arguments = {"prompt": [task.prompt], "num_inference_steps": int(refine["steps"]),
                         "guidance_scale": float(task.guidance), "num_images_per_prompt": 1,
                         "image": [tile], "strength": float(refine["strength"]),
                         "generator": [torch.Generator("cpu").manual_seed(seed + index)],
                         "callback_on_step_end": on_step, "callback_on_step_end_tensor_inputs": ["latents"]}
            if task.negative_prompt and negative:
                arguments["negative_prompt"] = [task.negative_prompt]
            if sized:
                arguments.update(width=right - left, height=bottom - top)
            result = runner(**arguments)
            if self._interrupt:
                raise Stopped
            while steps_seen[0] < self.per_tile:  # (a pipeline that ran fewer steps than counted)
                steps_seen[0] += 1
                self.tick(callback)
            made = result.images[0].convert("RGB")
            if made.size != tile.size:
                made = made.resize(tile.size, PILImage.Resampling.LANCZOS)
            w = np.outer(y_weights[(top, bottom)], x_weights[(left, right)])[:, :, None]
            total[top:bottom, left:right] += np.asarray(made, dtype=np.float32) * w
            weight[top:bottom, left:right] += w
        blended = total / np.maximum(weight, 1e-6)
        return PILImage.fromarray(np.clip(blended + 0.5, 0, 255).astype(np.uint8), "RGB")


class Upscale(TaskKind):
    name = "upscale"
    # Its units are tiles, not denoising steps of the model at the output's size: their
    # times are not the model's step times (for worker/render.py to leave them out).
    records_step_time = False

    def applies(self, task) -> bool:
        return bool(getattr(task, "upscale", None))

    def batch_key(self, task) -> tuple:
        return (task.id,)  # a batch of one task

    def inputs(self, task):
        source = storage.get_image(task.user, task.upscale["image"])
        with PILImage.open(storage.path_of(source)) as picture:
            return picture.convert("RGB")

    def build_call(self, pipe, head, rows, inputs):
        settings = head.upscale
        found = upscaler_catalog.find(settings["upscaler"])
        if found is None:
            raise RuntimeError(f"The upscaler '{settings['upscaler']}' is no longer available on this server")
        return UpscaleRun(pipe, head, inputs[head.id], found, settings.get("refine")), {}

    def infotext_fields(self, task) -> dict:
        return {"upscale": dict(task.upscale), "source_image": task.upscale.get("image")}

