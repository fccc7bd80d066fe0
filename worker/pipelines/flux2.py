"""FLUX.2's image-to-image. diffusers has no FLUX.2 image-to-image pipeline (its
AutoPipelineForImage2Image maps FLUX.2 to the text-to-image pipelines, whose `image` is a
reference to edit, not a start picture to denoise from), but klein's inpaint pipeline
denoises a start picture from `strength` of the way under a mask: with the whole
picture masked, that is image-to-image. As klein inpaints, the start picture is also
given to the transformer as a reference (its own tokens), so it is followed more
closely than by FLUX.1's image-to-image at the same strength.

FLUX.2 dev (Flux2Pipeline, a Mistral text encoder) has neither: klein's pipelines take a
Qwen3 encoder only."""
from __future__ import annotations

from diffusers import Flux2KleinInpaintPipeline, Flux2KleinPipeline, Flux2Pipeline
from PIL import Image


def whole_masks(image) -> list[Image.Image] | Image.Image:
    """A white mask (repaint everything) of the size of each start picture."""
    if isinstance(image, list):
        return [Image.new("L", picture.size, 255) for picture in image]
    return Image.new("L", image.size, 255)


class Flux2KleinImg2ImgPipeline(Flux2KleinInpaintPipeline):
    """Flux2KleinInpaintPipeline with the whole picture masked unless a mask is given."""

    def __call__(self, *args, mask_image=None, **kwargs):
        if mask_image is None and kwargs.get("image") is not None:
            mask_image = whole_masks(kwargs["image"])
        return super().__call__(*args, mask_image=mask_image, **kwargs)


def check_klein(pipe, what: str) -> None:
    """FLUX.2 dev's components do not fit klein's pipelines: say so plainly."""
    if isinstance(pipe, Flux2Pipeline):
        raise ValueError(f"FLUX.2 dev has no {what} pipeline (diffusers has FLUX.2 klein's only)")


def takes_references(pipe) -> bool:
    """Does `pipe` edit with a list of reference pictures (FLUX.2 klein or dev)?"""
    return isinstance(pipe, (Flux2KleinPipeline, Flux2Pipeline))


def edit_arguments(arguments: dict, pictures: list[Image.Image], width: int, height: int) -> dict:
    """A FLUX.2 edit's call: the result at width × height, each picture its own reference
    (FLUX.2 gives each its own tokens and positions). Every row of the call takes the same
    pictures (an edit's batch key holds their ids)."""
    arguments.pop("negative_prompt", None)  # (FLUX.2 takes none)
    return {**arguments, "image": list(pictures), "width": width, "height": height}
