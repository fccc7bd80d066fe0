"""The picture operations of inpainting and outpainting (worker/kinds/inpaint.py), pure:
PIL images and numpy arrays in, the same out; no pipeline, no database.

A mask is a mode "L" image, 255 = repaint, 0 = keep (binary: read at 128). The steps, in
the order the inpaint kind runs them:

- fit_mask: the stored mask (at the init picture's size) fitted to the task's size the
  way the picture is (worker/init_image.fit_picture): "cover" crops, "contain" pads, and
  the padding is kept (0).
- outpaint_canvas / outpaint_mask: the fitted picture pasted at (left, top) in the
  larger canvas, the new area pre-filled from the picture's edges (its border pixels
  carried outwards); the new area is repainted (255 in the mask).
- with_content: what the masked area starts from (A1111's "masked content"), in pixel
  space: "original" as it is, "fill" the surroundings blurred into it, "latent_noise"
  seeded random colours, "latent_nothing" flat grey. (A1111 sets the last two in latent
  space; here they are pictures the pipeline encodes, so every family does the same.)
- feather: the mask blurred by a Gaussian that reaches exactly `radius` px (a kernel of
  2 × radius + 1 taps, sigma = radius / 2.5: A1111's kernel shape, truncated at 2.5
  sigma), as a float array in [0, 1]. Beyond the radius it is exactly 0.
- crop_box / render_size ("only masked"): the feathered mask's box plus padding, grown
  to the task's aspect, rendered at the model's native size scaled to that aspect.
- composite: input × (1 − feathered) + generated × feathered, so every pixel farther
  than the blur radius from the mask is exactly the input's.
"""
from __future__ import annotations

import math

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFilter, ImageOps

SIDES = ("left", "right", "top", "bottom")
GREY = (128, 128, 128)  # "latent nothing": the colour a latent of zeros decodes to, about


def binary(mask: PILImage.Image) -> PILImage.Image:
    """`mask` as mode "L", 255 where it is at least 128, else 0."""
    return mask.convert("L").point(lambda value: 255 if value >= 128 else 0)


def invert(mask: PILImage.Image) -> PILImage.Image:
    """Repaint what was kept and keep what was repainted."""
    return ImageOps.invert(binary(mask))


def fit_mask(mask: PILImage.Image, width: int, height: int, fit: str | None) -> PILImage.Image:
    """`mask` fitted to width × height as fit_picture fits the picture (the same crop or
    the same padding, centred), binary; the padding of "contain" is kept (0)."""
    gray = mask.convert("L")
    if gray.size == (width, height):
        return binary(gray)
    if fit == "contain":
        fitted = ImageOps.pad(gray, (width, height), method=PILImage.BILINEAR, color=0)
    else:
        fitted = ImageOps.fit(gray, (width, height), method=PILImage.BILINEAR)
    return binary(fitted)


def outpaint_sides(outpaint: dict | None) -> dict[str, int]:
    """{left, right, top, bottom} as ints ≥ 0 (missing: 0)."""
    outpaint = outpaint or {}
    return {side: max(0, int(outpaint.get(side) or 0)) for side in SIDES}


def outpaint_canvas(picture: PILImage.Image, outpaint: dict | None) -> PILImage.Image:
    """`picture` (RGB) at (left, top) of a canvas larger by the outpaint on each side,
    the new area pre-filled from the picture's edges (each border pixel carried
    straight out, the corners from the corner pixels)."""
    sides = outpaint_sides(outpaint)
    if not any(sides.values()):
        return picture.convert("RGB").copy()
    pixels = np.asarray(picture.convert("RGB"))
    padded = np.pad(pixels, ((sides["top"], sides["bottom"]), (sides["left"], sides["right"]), (0, 0)), mode="edge")
    return PILImage.fromarray(padded)


def outpaint_mask(mask: PILImage.Image | None, size: tuple[int, int], outpaint: dict | None) -> PILImage.Image:
    """The canvas's mask: `mask` (the picture's, or nothing repainted when None) at
    (left, top), and the new area repainted. size: the picture's (width, height)."""
    sides = outpaint_sides(outpaint)
    width, height = size
    canvas = PILImage.new("L", (width + sides["left"] + sides["right"], height + sides["top"] + sides["bottom"]), 255)
    inner = binary(mask) if mask is not None else PILImage.new("L", (width, height), 0)
    canvas.paste(inner, (sides["left"], sides["top"]))
    return canvas


def fill(picture: PILImage.Image, mask: PILImage.Image) -> PILImage.Image:
    """A1111's "fill": the masked area painted with the surroundings, blurred in from
    large to small radii (the unmasked pixels are kept as they are)."""
    keep = ImageOps.invert(binary(mask))
    masked = PILImage.new("RGBa", picture.size)
    masked.paste(picture.convert("RGBA").convert("RGBa"), mask=keep)
    out = PILImage.new("RGBA", picture.size)
    for radius, repeats in ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1)):
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    result = picture.convert("RGB").copy()
    result.paste(out.convert("RGB"), mask=binary(mask))
    return result


def noise(picture: PILImage.Image, mask: PILImage.Image, seed: int) -> PILImage.Image:
    """The masked area as random colours drawn from `seed` (the same seed, the same
    noise), the rest as it is."""
    generator = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
    colours = generator.integers(0, 256, size=(picture.height, picture.width, 3), dtype=np.uint8)
    result = picture.convert("RGB").copy()
    result.paste(PILImage.fromarray(colours), mask=binary(mask))
    return result


def nothing(picture: PILImage.Image, mask: PILImage.Image) -> PILImage.Image:
    """The masked area flat grey, the rest as it is."""
    result = picture.convert("RGB").copy()
    result.paste(PILImage.new("RGB", picture.size, GREY), mask=binary(mask))
    return result


def with_content(picture: PILImage.Image, mask: PILImage.Image, content: str | None,
                 seed: int = 0) -> PILImage.Image:
    """What the masked area starts from: masked_content "original" (or None), "fill",
    "latent_noise" (seeded by `seed`) or "latent_nothing"."""
    if content == "fill":
        return fill(picture, mask)
    if content == "latent_noise":
        return noise(picture, mask, seed)
    if content == "latent_nothing":
        return nothing(picture, mask)
    return picture.convert("RGB").copy()


def gaussian_kernel(radius: int) -> np.ndarray:
    """A normalized Gaussian of 2 × radius + 1 taps, sigma = radius / 2.5."""
    radius = int(radius)
    if radius <= 0:
        return np.ones(1, dtype=np.float64)
    sigma = radius / 2.5
    taps = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-(taps ** 2) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def feather(mask: PILImage.Image, radius: int) -> np.ndarray:
    """The mask blurred to a soft edge that reaches `radius` px each way (float32 in
    [0, 1], shape (height, width)). The picture's own border is not an edge: the mask is
    extended past it before blurring, so a mask that runs to the border stays whole there."""
    hard = np.asarray(binary(mask), dtype=np.float64) / 255.0
    radius = int(radius)
    if radius <= 0:
        return hard.astype(np.float32)
    kernel = gaussian_kernel(radius)
    padded = np.pad(hard, radius, mode="edge")
    rows = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="valid"), 1, padded)
    both = np.apply_along_axis(lambda line: np.convolve(line, kernel, mode="valid"), 0, rows)
    # Exact ends: 0 where the kernel met no mask, 1 where it met nothing else.
    both[both < 1e-9] = 0.0
    both[both > 1 - 1e-9] = 1.0
    return both.astype(np.float32)


def composite(original: PILImage.Image, generated: PILImage.Image, feathered: np.ndarray) -> PILImage.Image:
    """original × (1 − feathered) + generated × feathered, rounded; `generated` is
    scaled to the original's size first when it differs. Where feathered is 0 the pixel
    is the original's, exactly."""
    original = original.convert("RGB")
    if generated.size != original.size:
        generated = generated.resize(original.size, PILImage.LANCZOS)
    weight = np.asarray(feathered, dtype=np.float32)[..., None]
    before = np.asarray(original, dtype=np.float32)
    after = np.asarray(generated.convert("RGB"), dtype=np.float32)
    mixed = before + (after - before) * weight
    out = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
    keep = weight[..., 0] == 0
    out[keep] = np.asarray(original)[keep]
    return PILImage.fromarray(out)


def bounding_box(feathered: np.ndarray) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1), x1 and y1 exclusive, of the pixels above 0; None: none are."""
    ys, xs = np.nonzero(np.asarray(feathered) > 0)
    if not len(xs):
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _grow(low: int, high: int, wanted: int, limit: int) -> tuple[int, int]:
    """[low, high) grown to `wanted` long (evenly both ways), moved inside [0, limit) and
    cut to it."""
    extra = max(0, wanted - (high - low))
    low, high = low - extra // 2, high + extra - extra // 2
    if high > limit:
        low, high = low - (high - limit), limit
    if low < 0:
        low, high = 0, min(limit, high - low)
    return low, high


def crop_box(feathered: np.ndarray, padding: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """"Only masked": the box of the feathered mask, `padding` px more on each side,
    grown along one side to the aspect of width × height (as A1111's
    expand_crop_region), within the canvas (feathered's own size). None: nothing masked."""
    box = bounding_box(feathered)
    if box is None:
        return None
    limit_y, limit_x = np.asarray(feathered).shape[:2]
    padding = max(0, int(padding))
    x0, y0 = max(0, box[0] - padding), max(0, box[1] - padding)
    x1, y1 = min(limit_x, box[2] + padding), min(limit_y, box[3] + padding)
    aspect = width / height
    if (x1 - x0) / (y1 - y0) > aspect:
        y0, y1 = _grow(y0, y1, round((x1 - x0) / aspect), limit_y)
    else:
        x0, x1 = _grow(x0, x1, round((y1 - y0) * aspect), limit_x)
    return x0, y0, x1, y1


def render_size(native: tuple[int, int], width: int, height: int, step: int) -> tuple[int, int]:
    """The model's native size (its area) at the aspect of width × height, each side a
    multiple of `step` (at least one step)."""
    area = native[0] * native[1]
    aspect = width / height
    wide = math.sqrt(area * aspect)
    tall = wide / aspect
    return (max(step, round(wide / step) * step), max(step, round(tall / step) * step))


def native_size(pipe) -> tuple[int, int]:
    """A pipeline's default picture size: its denoiser's default sample size (the
    pipeline's default_sample_size when it keeps one, as FLUX's and SD 3's do) times
    the VAE's scale factor, as (width, height)."""
    factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    sample = getattr(pipe, "default_sample_size", None)
    if sample is None:
        denoiser = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
        sample = getattr(getattr(denoiser, "config", None), "sample_size", None) or 64
    if isinstance(sample, (list, tuple)):
        tall, wide = int(sample[0]), int(sample[-1])
    else:
        tall = wide = int(sample)
    return wide * factor, tall * factor


def paste_back(canvas: PILImage.Image, picture: PILImage.Image, box: tuple[int, int, int, int]) -> PILImage.Image:
    """A copy of `canvas` with `picture` scaled to `box` and pasted there."""
    out = canvas.convert("RGB").copy()
    x0, y0, x1, y1 = box
    out.paste(picture.convert("RGB").resize((x1 - x0, y1 - y0), PILImage.LANCZOS), (x0, y0))
    return out
