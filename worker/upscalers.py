"""Running upscalers: `upscale(picture, upscaler, size)` makes a picture of exactly that size.

A built-in resampler (Lanczos, Nearest) is one resize. A model (spandrel; see
services/generation/upscalers.py) runs at its own scale in overlapping tiles: the tiles of
a row are spread evenly over the picture (each at most `tile` pixels of input a side,
neighbours sharing at least `overlap`), and in each shared strip the two tiles are blended
with complementary linear ramps, so no seam shows and the weights always sum to one. Rows
are written into a preallocated uint8 picture as soon as no later tile touches them: what
is held besides the input and the output is one band of tiles in float32, so a 4096×4096
result needs bounded memory on a CPU and one tile's activations on a GPU. When the wanted
scale is above the model's, the model runs again (the input of the last pass is first
brought to the size that pass needs, so nothing much larger than the result is made); the
result is then resized (Lanczos) to the exact size. One model is kept loaded per process.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image as PILImage

from services.generation.model_files import ModelsFolder
from services.generation.upscaler_files import BUILTINS, DEMO_ID, load_descriptor
from worker.demo_upscaler import build_demo_upscaler, demo_upscaler_path

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
MIN_TILE = 32
MAX_PASSES = 4

_lock = threading.Lock()
_cached: dict = {}  # {"key": (path, mtime, device), "model": descriptor}


# --- tiles ---------------------------------------------------------------------------------

def _settings(tile: int | None, overlap: int | None) -> tuple[int, int]:
    if tile is None or overlap is None:
        try:
            from flask import current_app

            config = current_app.config
        except RuntimeError:  # no app: the defaults
            config = {}
        tile = tile if tile is not None else config.get("UPSCALE_TILE", DEFAULT_TILE)
        overlap = overlap if overlap is not None else config.get("UPSCALE_OVERLAP", DEFAULT_OVERLAP)
    tile = max(MIN_TILE, int(tile))
    overlap = max(0, min(int(overlap), tile // 4))
    return tile, overlap


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) of the tiles along one side of `length` pixels: as few as cover it with
    tiles of at most `tile` sharing at least `overlap`, all the same size, spread evenly."""
    if length <= tile:
        return [(0, length)]
    count = math.ceil((length - overlap) / (tile - overlap))
    size = min(tile, math.ceil((length + (count - 1) * overlap) / count))
    starts = [round(k * (length - size) / (count - 1)) for k in range(count)]
    return [(s, s + size) for s in starts]


def ramps(extents: list[tuple[int, int]]) -> list[np.ndarray]:
    """Each tile's weight along one side (output pixels): 1, ramping linearly over the strip
    it shares with a neighbour; the two ramps of a strip sum to 1. (The refining pass of an
    upscale, worker/kinds/upscale.py, blends its tiles with these too.)"""
    weights = []
    for i, (start, end) in enumerate(extents):
        w = np.ones(end - start, dtype=np.float32)
        if i > 0:
            shared = extents[i - 1][1] - start
            if shared > 0:
                w[:shared] = (np.arange(shared, dtype=np.float32) + 0.5) / shared
        if i + 1 < len(extents):
            shared = end - extents[i + 1][0]
            if shared > 0:
                w[end - start - shared:] = np.minimum(
                    w[end - start - shared:], 1 - (np.arange(shared, dtype=np.float32) + 0.5) / shared)
        weights.append(w)
    return weights


def tile_count(size_in: tuple[int, int], scale: float, tile: int | None = None, overlap: int | None = None,
               model_scale: int | None = None) -> int:
    """How many model calls (tiles) upscaling a picture of `size_in` (w, h) by `scale` (the
    wanted factor) takes with a model of `model_scale` (default: `scale` itself, i.e. one
    pass; a ×2 model asked for ×4 runs twice), at these tile settings (default: the
    settings). The progress total of upscale() (a retry out of GPU memory adds to it)."""
    tile, overlap = _settings(tile, overlap)
    width, height = size_in
    return sum(len(spans(w, tile, overlap)) * len(spans(h, tile, overlap))
               for w, h in _pass_inputs((width, height), (round(width * scale), round(height * scale)),
                                        int(model_scale or max(1, math.ceil(scale)))))


def _pass_inputs(size_in: tuple[int, int], size_out: tuple[int, int], model_scale: int) -> list[tuple[int, int]]:
    """The input size of each model pass from `size_in` towards `size_out`: passes until the
    result is at least `size_out` (one at least; a 1× model runs once). When there are
    several, the last one's input is brought down to what it needs (ceil(size_out /
    model_scale)), so nothing much larger than the result is made."""
    w, h = size_in
    want_w, want_h = size_out
    if model_scale <= 1:
        return [(w, h)]
    passes = 1
    while passes < MAX_PASSES and (w * model_scale ** passes < want_w or h * model_scale ** passes < want_h):
        passes += 1
    sizes = []
    for k in range(passes):
        if k == passes - 1 and k > 0:
            need_w, need_h = math.ceil(want_w / model_scale), math.ceil(want_h / model_scale)
            if w > need_w and h > need_h:
                w, h = need_w, need_h
        sizes.append((w, h))
        w, h = w * model_scale, h * model_scale
    return sizes


# --- models --------------------------------------------------------------------------------

def _device(device) -> str:
    if device is not None:
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_path(spec: str, models_path: Path | None = None, follow_links: bool | None = None) -> Path:
    """The file of an upscaler spec: the demo (built on first use), an absolute path, or a path
    under the models folder (which it may not leave unless links out are followed)."""
    if models_path is None or follow_links is None:
        try:
            from flask import current_app

            config = current_app.config
        except RuntimeError:
            config = {}
        if models_path is None:
            models_path = config.get("MODELS_PATH")
        if follow_links is None:
            follow_links = config.get("MODELS_FOLLOW_LINKS", False)
    if spec == DEMO_ID:
        if models_path is None:
            raise ValueError("the demo upscaler needs the models folder")
        return build_demo_upscaler(demo_upscaler_path(Path(models_path)))
    path = Path(spec).expanduser()
    if path.is_absolute():
        return path
    if models_path is None:
        raise ValueError(f"{spec} is relative and no models folder is known")
    return ModelsFolder(Path(models_path), bool(follow_links)).resolve(spec)


def load_model(path: Path, device: str):
    """The spandrel model of `path` on `device`, kept loaded (one at a time) for the next call."""
    import torch

    path = Path(path)
    key = (str(path), path.stat().st_mtime_ns, device)
    with _lock:
        if _cached.get("key") == key:
            return _cached["model"]
        _cached.clear()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        model = load_descriptor(path, device=device)
        if device.startswith("cuda"):
            if model.supports_half:
                model = model.half()
            elif model.supports_bfloat16:
                model = model.bfloat16()
        _cached.update(key=key, model=model)
        return model


def unload() -> None:
    with _lock:
        _cached.clear()


def _to_tensor(array: np.ndarray, model, device: str):
    import torch

    tensor = torch.from_numpy(array.copy()).to(device=device)
    tensor = tensor.permute(2, 0, 1).unsqueeze(0).to(dtype=model.dtype) / 255.0
    if model.input_channels == 1:
        tensor = (tensor * torch.tensor([0.299, 0.587, 0.114], device=device, dtype=model.dtype)
                  .view(1, 3, 1, 1)).sum(1, keepdim=True)
    return tensor


def _run_pass(picture: PILImage.Image, model, device: str, tile: int, overlap: int,
              tick: Callable[[], None]) -> PILImage.Image:
    """One model pass over `picture` in tiles (see the module docstring)."""
    import torch

    source = np.asarray(picture.convert("RGB"))
    height, width = source.shape[:2]
    s = int(model.scale)
    xs, ys = spans(width, tile, overlap), spans(height, tile, overlap)
    wx = ramps([(a * s, b * s) for a, b in xs])
    wy = ramps([(a * s, b * s) for a, b in ys])
    out = np.empty((height * s, width * s, 3), dtype=np.uint8)
    band_top, carry = 0, None  # output rows from band_top on: partly summed, not yet written
    for r, (y0, y1) in enumerate(ys):
        band = np.zeros(((y1 - y0) * s, width * s, 3), dtype=np.float32)
        if carry is not None:
            band[:carry.shape[0]] += carry
        for c, (x0, x1) in enumerate(xs):
            with torch.inference_mode():
                result = model(_to_tensor(source[y0:y1, x0:x1], model, device))
            result = result[0].float().permute(1, 2, 0).cpu().numpy()
            if result.shape[2] == 1:
                result = np.repeat(result, 3, axis=2)
            weight = (wy[r][:, None] * wx[c][None, :])[:, :, None]
            band[:, x0 * s:x1 * s] += result * (weight * 255.0)
            del result
            tick()
        last = r + 1 == len(ys)
        done = (y1 if last else ys[r + 1][0]) * s  # rows no later tile touches
        out[band_top:done] = np.clip(np.rint(band[:done - y0 * s]), 0, 255).astype(np.uint8)
        carry = None if last else band[done - y0 * s:].copy()
        band_top = done
        del band
    return PILImage.fromarray(out, "RGB")


def upscale(picture: PILImage.Image, upscaler: dict, size: tuple[int, int], *, tile: int | None = None,
            overlap: int | None = None, progress: Callable[[int, int], None] | None = None,
            device=None) -> PILImage.Image:
    """`picture` upscaled to exactly `size` (w, h), RGB, by `upscaler` (as
    services.generation.upscalers.find() gives it: a built-in, or a model with its "spec",
    or a "path" to the file). progress(done, total) after each tile."""
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, not {width}x{height}")
    picture = picture.convert("RGB")
    if upscaler.get("builtin") or upscaler.get("id") in BUILTINS and not upscaler.get("spec"):
        method = PILImage.Resampling.NEAREST if upscaler.get("id") == "nearest" else PILImage.Resampling.LANCZOS
        result = picture.resize((width, height), method)
        if progress:
            progress(1, 1)
        return result
    tile, overlap = _settings(tile, overlap)
    device = _device(device)
    path = Path(upscaler["path"]) if upscaler.get("path") else resolve_path(upscaler["spec"])
    model = load_model(path, device)
    if _tiles_inside(model):  # a model that needs the whole picture tiles it itself
        tile, overlap = max(MIN_TILE, width, height, *picture.size), 0
    s = int(model.scale)
    passes = _pass_inputs(picture.size, (width, height), s)
    done, total = 0, 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress(done, max(total, done))

    while True:
        # The tiles still to do at this tile size (after a retry, on top of those done).
        total = done + sum(len(spans(w, tile, overlap)) * len(spans(h, tile, overlap)) for w, h in passes)
        try:
            current = picture
            for w, h in passes:
                if current.size != (w, h):
                    current = current.resize((w, h), PILImage.Resampling.LANCZOS)
                current = _run_pass(current, model, device, tile, overlap, tick)
            break
        except Exception as exc:  # out of GPU memory: again in tiles half the size
            if not _out_of_memory(exc) or tile // 2 < MIN_TILE:
                raise
            _free_gpu()
            tile, overlap = _settings(tile // 2, overlap)
    if current.size != (width, height):
        current = current.resize((width, height), PILImage.Resampling.LANCZOS)
    return current


def _tiles_inside(model) -> bool:
    from spandrel import ModelTiling

    return getattr(model, "tiling", None) == ModelTiling.INTERNAL


def _out_of_memory(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError)


def _free_gpu() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
