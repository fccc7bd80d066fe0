"""A ControlNet unit's map at render time: the unit's picture through its preprocessor
(services/generation/preprocess.run, the code POST /api/v1/control/detect runs, so the
preview is the map used), made at the unit's processor resolution, then fitted to the
task's size by its resize mode, as sd-webui-controlnet does:
  "resize"  Just Resize: stretched to width × height;
  "crop"    Crop and Resize: scaled to cover, the overflow cropped evenly;
  "fill"    Resize and Fill: scaled to fit, the rest black (no control signal there).
Pixel perfect picks the resolution that fitting would need (the map is made at the size
it is used at).

The "inpaint" preprocessor maps the task's own start picture and mask as the inpaint
kind prepared them (worker/kinds/inpaint.Prepared: outpaint included), whatever picture
the unit holds, so that the map lines up with what is repainted."""
from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps

from services.library import storage

RESOLUTION = (64, 2048)  # processor_res (services/generation/preprocess.RESOLUTION)


def picture_of(task, image_id: str) -> PILImage.Image:
    """One of the task's pictures (its user's image), decoded as RGB."""
    stored = storage.get_image(task.user, image_id, held_ok=True)
    with PILImage.open(storage.path_of(stored)) as source:
        return source.convert("RGB")


def fit(picture: PILImage.Image, width: int, height: int, resize_mode: str) -> PILImage.Image:
    """`picture` at exactly width × height, by the resize mode (module doc)."""
    size = (int(width), int(height))
    if picture.size == size:
        return picture
    if resize_mode == "resize":
        return picture.resize(size, PILImage.Resampling.LANCZOS)
    if resize_mode == "fill":
        return ImageOps.pad(picture, size, method=PILImage.Resampling.LANCZOS, color=(0,) * len(picture.getbands()))
    return ImageOps.fit(picture, size, method=PILImage.Resampling.LANCZOS)


def pixel_perfect(size: tuple[int, int], width: int, height: int, resize_mode: str) -> int:
    """The processor resolution (the map's short side) at which fitting the map of a
    picture of `size` to width × height leaves it at scale 1."""
    ratios = (width / size[0], height / size[1])
    scale = min(ratios) if resize_mode == "fill" else max(ratios)
    wanted = round(min(size) * scale)
    return max(RESOLUTION[0], min(RESOLUTION[1], wanted))


def control_map(picture: PILImage.Image, unit: dict, width: int, height: int, models_path: Path,
                device: str | None = None) -> PILImage.Image:
    """The map of `unit` (Task.control's shape) for a width × height task."""
    from services.generation import preprocess  # (opencv: loaded when a unit needs it)

    resolution = int(unit.get("processor_res") or preprocess.DEFAULT_RESOLUTION)
    mode = unit.get("resize_mode") or "crop"
    if unit.get("pixel_perfect"):
        resolution = pixel_perfect(picture.size, width, height, mode)
    made = preprocess.run(picture, unit["preprocessor"], resolution=resolution, threshold_a=unit.get("threshold_a"),
                          threshold_b=unit.get("threshold_b"), models_path=models_path, device=device)
    return fit(made, width, height, mode)


def inpaint_map(canvas: PILImage.Image, mask: PILImage.Image) -> PILImage.Image:
    """The inpaint map (RGBA, alpha 0 where to repaint) of the task's canvas, at its size."""
    from services.generation import preprocess

    resolution = max(RESOLUTION[0], min(RESOLUTION[1], min(canvas.size)))
    made = preprocess.run(canvas, "inpaint", resolution=resolution, mask=mask)
    if made.size != canvas.size:
        made = made.resize(canvas.size, PILImage.Resampling.NEAREST)
    return made


def as_condition(control: PILImage.Image, box=None, size: tuple[int, int] | None = None, *,
                 minus_one: bool = True):
    """A map as the pipeline takes it: cropped to `box` and resized to `size` first (the
    inpaint kind's "only masked" crop); an inpaint map (RGBA) as its H×W×3 float array with
    -1 where to repaint (preprocess.inpaint_condition), as SD's inpaint ControlNet reads it
    (minus_one; else its RGB, the area black: FLUX's pipelines normalise the map)."""
    if box is not None:
        control = control.crop(box)
    if size is not None and control.size != tuple(size):
        how = PILImage.Resampling.NEAREST if control.mode == "RGBA" else PILImage.Resampling.LANCZOS
        control = control.resize(tuple(size), how)
    if control.mode == "RGBA":
        from services.generation import preprocess

        return preprocess.inpaint_condition(control) if minus_one else control.convert("RGB")
    return control

