"""ControlNet preprocessors (issue 25): a picture in, a control map out.

The built-ins need no weights and run anywhere (numpy, Pillow, OpenCV; no torch here, the
web tier imports this module):
- none: the picture is the map.
- canny: Canny edges, white on black (threshold_a low, threshold_b high; 100/200).
- scribble: a drawing as white strokes on black, thresholded and thickened.
- lineart: a drawing as clean white lines on black, as the lineart ControlNets take them.
- tile: the picture, blurred by down-sampling (threshold_a: the rate, 1 = as it is).
- inpaint: the picture with the area to repaint blacked out (needs a mask); its alpha
  marks that area, which inpaint_condition() turns into the -1 the inpaint ControlNet reads.
The annotators (depth, pose, soft edges, line art models, …) run controlnet_aux models
whose weights are under <models>/annotators/ (services/generation/annotators.py).

A map is made at the processor resolution along the picture's short side (the aspect
kept) and returned at that size; whoever uses it resizes it to the task. The same
picture and settings give the same bytes: the worker runs this code at render time and
POST /api/v1/control/detect runs it for the preview, so the preview is what is used.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image as PILImage

from services.core.errors import ValidationError
from services.generation import annotators

BUILTIN = {"none", "canny", "scribble", "lineart", "tile", "inpaint"}
RESOLUTION = (64, 2048)  # processor_res: the map's short side
DEFAULT_RESOLUTION = 512
MAX_MAP_PIXELS = 16 * 1024 * 1024  # a very long picture at a high resolution would pass it
MASK_THRESHOLD = 128  # a mask value at or above this is "repaint" (masks.THRESHOLD)


def _threshold(label: str, low: float, high: float, default: float, step: float) -> dict:
    return {"label": label, "min": low, "max": high, "default": default, "step": step}


# The built-ins in the order the studio lists them. union_type: the mode index of a FLUX
# ControlNet Union (canny 0, tile 1, depth 2, blur 3, pose 4, gray 5, lq 6); drawings of
# lines are closest to its canny mode; "none" and "inpaint" have none. sdxl_union_type:
# the control mode of an SDXL ControlNet Union (xinsir's: SDXL_UNION_MODES); "none" has
# none (such a unit takes the lines' mode, as a FLUX Union takes canny).
BUILTINS = {
    "none": {"label": "None (the image is the map)", "thresholds": {"a": None, "b": None},
             "needs_mask": False, "union_type": None, "sdxl_union_type": None},
    "canny": {"label": "Canny edges", "needs_mask": False, "union_type": 0, "sdxl_union_type": 3, "thresholds": {
        "a": _threshold("Low threshold", 1, 255, 100, 1), "b": _threshold("High threshold", 1, 255, 200, 1)}},
    "scribble": {"label": "Scribble (from a drawing)", "thresholds": {"a": None, "b": None},
                 "needs_mask": False, "union_type": 0, "sdxl_union_type": 2},
    "lineart": {"label": "Line art (from a drawing)", "thresholds": {"a": None, "b": None},
                "needs_mask": False, "union_type": 0, "sdxl_union_type": 3},
    "tile": {"label": "Tile / blur", "needs_mask": False, "union_type": 1, "sdxl_union_type": 6, "thresholds": {
        "a": _threshold("Down-sampling rate", 1, 8, 1, 0.1), "b": None}},
    "inpaint": {"label": "Inpaint (the mask)", "thresholds": {"a": None, "b": None},
                "needs_mask": True, "union_type": None, "sdxl_union_type": 7},
}
assert set(BUILTINS) == BUILTIN
# An SDXL ControlNet Union's control modes (xinsir's controlnet-union-sdxl-1.0 has the
# first six, its ProMax all eight); a unit's is its preprocessor's sdxl_union_type.
SDXL_UNION_MODES = ("openpose", "depth", "hed/pidi/scribble/ted", "canny/lineart/anime_lineart/mlsd", "normal",
                    "segment", "tile", "repaint")
SDXL_UNION_LINES = 3  # the mode of a unit whose preprocessor has none ("none": a map drawn or made elsewhere)


def available(models_path) -> list[dict]:
    """What this install can run: the built-ins, then the annotators whose weight files are
    under <models_path>/annotators/ and whose package imports. Each: {id, label, builtin,
    thresholds: {a, b} (each {label, min, max, default, step} or None), needs_mask,
    union_type, sdxl_union_type}."""
    items = [{"id": key, "label": spec["label"], "builtin": True, "thresholds": spec["thresholds"],
              "needs_mask": spec["needs_mask"], "union_type": spec["union_type"],
              "sdxl_union_type": spec["sdxl_union_type"]}
             for key, spec in BUILTINS.items()]
    for annotator in annotators.installed(models_path):
        items.append({"id": annotator.id, "label": annotator.label, "builtin": False,
                      "thresholds": annotator.thresholds, "needs_mask": False,
                      "union_type": annotator.union_type, "sdxl_union_type": annotator.sdxl_union_type})
    return items


def find(preprocessor: str, models_path) -> dict | None:
    """available()'s entry for `preprocessor`, or None when this install cannot run it."""
    if preprocessor in BUILTINS:
        return next(item for item in available(None) if item["id"] == preprocessor)
    return next((item for item in available(models_path) if item["id"] == preprocessor), None)


def _spec_thresholds(preprocessor: str) -> dict:
    if preprocessor in BUILTINS:
        return BUILTINS[preprocessor]["thresholds"]
    annotator = annotators.ANNOTATORS.get(preprocessor)
    return annotator.thresholds if annotator else {"a": None, "b": None}


def _number(value, field: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValidationError(field, "must be a number or null")
    return value


def options(preprocessor, *, threshold_a=None, threshold_b=None, resolution=DEFAULT_RESOLUTION,
            models_path=None) -> dict:
    """The settings of a run, checked and resolved: {preprocessor, threshold_a, threshold_b,
    processor_res}, a threshold the preprocessor takes defaulted when None (one it does not
    take is None). A 422 naming "preprocessor", "threshold_a", "threshold_b" or
    "processor_res" when one is wrong; with models_path, an annotator must be installed
    (without it only the built-ins are known). Task validation renames the field to its unit."""
    if not isinstance(preprocessor, str) or not preprocessor:
        raise ValidationError("preprocessor", f"must be one of: {', '.join(BUILTINS)}")
    known = BUILTIN if models_path is None or preprocessor in BUILTIN \
        else {item["id"] for item in available(models_path)}
    if preprocessor not in known:
        raise ValidationError("preprocessor", f"{preprocessor[:60]!r} is not a preprocessor on this install; "
                                              f"choose one of: {', '.join(sorted(known))}")
    if isinstance(resolution, float) and resolution.is_integer():
        resolution = int(resolution)
    if isinstance(resolution, bool) or not isinstance(resolution, int) \
            or not RESOLUTION[0] <= resolution <= RESOLUTION[1]:
        raise ValidationError("processor_res", f"must be a whole number from {RESOLUTION[0]} to {RESOLUTION[1]}")
    resolved = {"preprocessor": preprocessor, "processor_res": resolution}
    for name, value in (("a", threshold_a), ("b", threshold_b)):
        field, spec = f"threshold_{name}", _spec_thresholds(preprocessor)[name]
        if spec is None:
            if value is not None:
                _number(value, field)  # a number is ignored, as A1111 ignores it; nothing else is
            resolved[field] = None
            continue
        value = spec["default"] if value is None else _number(value, field)
        if not spec["min"] <= value <= spec["max"]:
            raise ValidationError(field, f"({spec['label']}) must be from {spec['min']} to {spec['max']}")
        resolved[field] = int(value) if isinstance(spec["step"], int) and float(value).is_integer() else value
    return resolved


def map_size(size: tuple[int, int], resolution: int) -> tuple[int, int]:
    """The map's size for a picture of `size`: its short side `resolution`, the aspect kept."""
    width, height = size
    scale = resolution / min(width, height)
    return max(1, int(width * scale + 0.5)), max(1, int(height * scale + 0.5))


def _fitted(picture: PILImage.Image, size: tuple[int, int]) -> PILImage.Image:
    picture = picture if picture.mode == "RGB" else picture.convert("RGB")
    if picture.size == size:
        return picture.copy()
    return picture.resize(size, PILImage.Resampling.LANCZOS)


def _gray(picture: PILImage.Image) -> np.ndarray:
    return np.asarray(picture.convert("L"), dtype=np.uint8)


def _rgb(array: np.ndarray) -> PILImage.Image:
    """A uint8 map (H×W, or H×W×3) as an RGB picture."""
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return PILImage.fromarray(np.ascontiguousarray(array, dtype=np.uint8), "RGB")


def _strokes(gray: np.ndarray) -> np.ndarray:
    """A drawing's strokes bright on dark: a drawing on a light ground (most of it light)
    is inverted; one on a dark ground (the studio's canvas) is taken as it is."""
    return 255 - gray if gray.mean() > 127 else gray


def canny(picture: PILImage.Image, low: float, high: float) -> np.ndarray:
    # On the RGB picture, as A1111 does (OpenCV takes the strongest channel's gradient).
    return cv2.Canny(np.asarray(picture, dtype=np.uint8), float(low), float(high))


def scribble(picture: PILImage.Image, resolution: int) -> np.ndarray:
    strokes = _strokes(_gray(picture))
    binary = np.where(strokes >= 128, 255, 0).astype(np.uint8)
    # Thickened about 1 px for every 256 px of resolution: a thin pen line at 512 px is
    # too faint for a scribble ControlNet, which was trained on broad strokes.
    reach = max(1, resolution // 256)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1, 2 * reach + 1))
    return cv2.dilate(binary, kernel)


def lineart(picture: PILImage.Image) -> np.ndarray:
    lines = _strokes(_gray(picture)).astype(np.float32)
    # Paper grain and faint smudges (under 1/8 of full strength) go; the rest is stretched
    # to full range, keeping the anti-aliased edges of the lines.
    cleaned = np.clip((lines - 32.0) * (255.0 / 223.0), 0, 255)
    return (cleaned + 0.5).astype(np.uint8)


def tile(picture: PILImage.Image, rate: float) -> PILImage.Image:
    if rate <= 1:
        return picture
    small = (max(1, int(picture.width / rate + 0.5)), max(1, int(picture.height / rate + 0.5)))
    return picture.resize(small, PILImage.Resampling.BOX).resize(picture.size, PILImage.Resampling.BICUBIC)


def _mask_at(mask: PILImage.Image, size: tuple[int, int]) -> np.ndarray:
    """True where the mask (white = repaint) selects, at `size`."""
    gray = mask.convert("L")
    if gray.size != size:
        gray = gray.resize(size, PILImage.Resampling.BILINEAR)
    return np.asarray(gray) >= MASK_THRESHOLD


def inpaint(picture: PILImage.Image, mask: PILImage.Image) -> PILImage.Image:
    """RGBA: the picture with the area to repaint black, and alpha 0 there."""
    selected = _mask_at(mask, picture.size)
    rgb = np.array(picture, dtype=np.uint8)
    rgb[selected] = 0
    alpha = np.where(selected, 0, 255).astype(np.uint8)
    return PILImage.fromarray(np.dstack([rgb, alpha]), "RGBA")


def inpaint_condition(control_map: PILImage.Image) -> np.ndarray:
    """An inpaint map as the inpaint ControlNet reads it: H×W×3 float32 in 0..1, with -1
    where the area to repaint is (alpha 0 in the map run() made)."""
    rgba = control_map.convert("RGBA")
    values = np.asarray(rgba.convert("RGB"), dtype=np.float32) / 255.0
    values[np.asarray(rgba.getchannel("A")) < MASK_THRESHOLD] = -1.0
    return values


def run(picture: PILImage.Image, preprocessor: str, *, resolution: int = DEFAULT_RESOLUTION,
        threshold_a=None, threshold_b=None, mask: PILImage.Image | None = None, models_path=None,
        child_timeout: float | None = None, device: str | None = None) -> PILImage.Image:
    """The control map of `picture`: RGB (RGBA for inpaint: see inpaint()), its short side
    `resolution`. A 422 naming the field for a bad setting or a missing mask (inpaint).
    Annotators run here (the worker; `device`, default the CPU), or with child_timeout in a
    child process that must finish within that many seconds (the web tier: torch stays out
    of it); annotators.AnnotatorError when one cannot run."""
    settings = options(preprocessor, threshold_a=threshold_a, threshold_b=threshold_b,
                       resolution=resolution, models_path=models_path)
    size = map_size(picture.size, settings["processor_res"])
    if size[0] * size[1] > MAX_MAP_PIXELS:
        raise ValidationError("processor_res", f"would make a {size[0]}×{size[1]} map of this picture; "
                                               f"at most {MAX_MAP_PIXELS:,} pixels: choose a lower one")
    if preprocessor == "inpaint" and mask is None:
        raise ValidationError("mask", "the inpaint preprocessor needs a mask (white: the area to repaint)")
    if preprocessor not in BUILTINS:
        return annotators.run(picture, preprocessor, size=size, resolution=settings["processor_res"],
                              threshold_a=settings["threshold_a"], threshold_b=settings["threshold_b"],
                              models_path=Path(models_path), child_timeout=child_timeout, device=device)
    fitted = _fitted(picture, size)
    if preprocessor == "canny":
        return _rgb(canny(fitted, settings["threshold_a"], settings["threshold_b"]))
    if preprocessor == "scribble":
        return _rgb(scribble(fitted, settings["processor_res"]))
    if preprocessor == "lineart":
        return _rgb(lineart(fitted))
    if preprocessor == "tile":
        return tile(fitted, settings["threshold_a"])
    if preprocessor == "inpaint":
        return inpaint(fitted, mask)
    return fitted  # none
