"""Edit: a picture edited by instruction (the prompt) with an editing model, FLUX.1 Kontext
through FluxKontextPipeline (the loaded pipeline when the model is a Kontext one, else
made from its components with from_pipe), or Qwen-Image-Edit (the loaded QwenImageEdit or
EditPlus pipeline: worker/pipelines/qwen.py). The editing models of other families join
here with their own pipeline. FLUX.2 (klein and dev) takes its reference pictures itself,
each as its own tokens (worker/pipelines/flux2.py: edit_arguments), not stitched.

Per task, once (inputs): the edit's pictures (Task.edit["images"], the user's images), the
first the one to edit, read as an EditPictures. The pipelines that take one reference
picture (Kontext, Qwen-Image-Edit) get them stitched side by side, each scaled to the
first one's height, as ComfyUI's Kontext workflows do, the result scaled to about the
task's pixel count (its aspect kept, sides multiples of the model's size step): Kontext
(_auto_resize off) encodes it at that size, Qwen-Image-Edit resizes it to about a
megapixel itself. Those that take each picture as its own reference (FLUX.2, Qwen-Image-Edit
Plus) get the pictures themselves (FLUX.2 each at the task's pixel count), and nothing is
stitched for them. The cost counts each reference at the size its pipeline encodes it
(the card's edit_reference_pixels: services/generation/params.guide_cost). The result is
the task's width × height.

Tasks share a call when they edit the same pictures (the key holds their ids: one call's
reference pictures must have one size); each row has its own prompt and seed."""
from __future__ import annotations

import math
from functools import cached_property

from PIL import Image as PILImage

from worker.guides.maps import picture_of
from worker.kinds.base import TaskKind
from worker.pipelines.cache import derived
from worker.pipelines import flux2, qwen
from worker.pipelines.info import family_of

SIZE_STEP = 16  # Kontext's reference picture: sides multiples of the VAE's 8 × the 2×2 patches

def pictures_of(task) -> list[str]:
    """The ids of the edit's pictures, the one to edit first."""
    edit = getattr(task, "edit", None) or {}
    first = [edit["image"]] if edit.get("image") else []
    return first + [image for image in edit.get("images") or () if image not in first]


def stitched(pictures: list[PILImage.Image]) -> PILImage.Image:
    """The pictures side by side, each scaled to the first one's height."""
    if len(pictures) == 1:
        return pictures[0]
    height = pictures[0].height
    scaled = [p if p.height == height else p.resize((max(1, round(p.width * height / p.height)), height),
                                                     PILImage.Resampling.LANCZOS) for p in pictures]
    canvas = PILImage.new("RGB", (sum(p.width for p in scaled), height))
    left = 0
    for picture in scaled:
        canvas.paste(picture, (left, 0))
        left += picture.width
    return canvas


def reference_size(size: tuple[int, int], pixels: int, step: int) -> tuple[int, int]:
    """A size of about `pixels` pixels with the aspect of `size`, sides multiples of `step`."""
    aspect = size[0] / size[1]
    width = max(step, int(round(math.sqrt(pixels * aspect) / step)) * step)
    height = max(step, int(round(math.sqrt(pixels / aspect) / step)) * step)
    return width, height


def scaled(picture: PILImage.Image, pixels: int) -> PILImage.Image:
    """`picture` at about `pixels` pixels, its aspect kept, sides multiples of SIZE_STEP."""
    size = reference_size(picture.size, pixels, SIZE_STEP)
    return picture if picture.size == size else picture.resize(size, PILImage.Resampling.LANCZOS)


class EditPictures:
    """A task's edit pictures, read once (inputs()): the pictures themselves, and what each
    kind of editing pipeline is given, made the first time it is asked for."""

    def __init__(self, pictures: list[PILImage.Image], pixels: int):
        self.pictures, self.pixels = pictures, pixels

    @cached_property
    def reference(self) -> PILImage.Image:
        """The pictures stitched into one reference of about the task's pixel count
        (Kontext, Qwen-Image-Edit)."""
        joined = stitched(self.pictures)
        size = reference_size(joined.size, self.pixels, SIZE_STEP)
        return joined if joined.size == size else joined.resize(size, PILImage.Resampling.LANCZOS)

    @cached_property
    def each_scaled(self) -> list[PILImage.Image]:
        """Each picture at about the task's pixel count (FLUX.2, which scales one above a
        megapixel down to it: each reference's tokens then cost what the result's do, up
        to a megapixel's)."""
        return [scaled(picture, self.pixels) for picture in self.pictures]


class Edit(TaskKind):
    name = "edit"

    def applies(self, task) -> bool:
        return bool(getattr(task, "edit", None))

    def batch_key(self, task) -> tuple:
        images = pictures_of(task)
        return (len(images), tuple(images))

    def inputs(self, task) -> EditPictures:
        return EditPictures([picture_of(task, image) for image in pictures_of(task)],
                            int(task.width) * int(task.height))

    def build_call(self, pipe, head, rows, inputs):
        runner = editing_pipeline(pipe)
        made = inputs[head.id]  # (every row's pictures are the head's: the batch key)
        if qwen.is_qwen_edit(runner):  # Edit Plus takes the pictures themselves, Edit one reference
            plus = qwen.is_edit_plus(runner)
            arguments = {**self.prompt_arguments(head, rows), "width": int(head.width), "height": int(head.height)}
            return runner, qwen.edit_arguments(runner, arguments, made.pictures if plus else [],
                                               None if plus else made.reference)
        if flux2.takes_references(runner):  # (the pictures themselves, each its own reference)
            return runner, flux2.edit_arguments(self.prompt_arguments(head, rows), made.each_scaled,
                                                int(head.width), int(head.height))
        arguments = {**self.prompt_arguments(head, rows), "image": [inputs[row.task.id].reference for row in rows],
                     "width": int(head.width), "height": int(head.height),
                     # the result at the task's size, the reference at the size EditPictures chose
                     "max_area": int(head.width) * int(head.height), "_auto_resize": False}
        arguments.pop("negative_prompt", None)  # (Kontext takes none without true CFG)
        return runner, arguments

    def infotext_fields(self, task) -> dict:
        return {"edit_images": pictures_of(task)}


def editing_pipeline(pipe):
    """The pipeline that edits with `pipe`'s components: FluxKontextPipeline for FLUX."""
    from diffusers import FluxKontextPipeline

    if isinstance(pipe, FluxKontextPipeline) or qwen.is_qwen_edit(pipe) or flux2.takes_references(pipe):
        return pipe
    if family_of(pipe) != "flux":
        raise ValueError(f"{type(pipe).__name__} does not edit pictures by instruction")
    return derived(pipe, FluxKontextPipeline)
