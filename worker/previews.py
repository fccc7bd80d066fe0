"""Cheap live previews of a generation in progress.

Between denoising steps the worker holds the current latents (B, 4, h/8, w/8).
Decoding them with the VAE would cost about as much as a step, so the preview
uses the well-known linear approximation instead: each latent pixel's four
channels are projected to RGB with a fixed 4x3 matrix (the SD 1.x factors
used by AUTOMATIC1111's and ComfyUI's "latent2rgb" previews). The result is a
small, blurry but recognisable picture at 1/8 of the image size, which is
scaled a little and sent to the browser as a JPEG data URL.

Only the latent grid is touched (a (3, 4) x (4, h*w) product), so a preview
costs about a millisecond on the CPU, far below the 5% of a step budget that
bench/bench_previews.py checks.
"""

from __future__ import annotations

import base64
import io
import time

import torch
from PIL import Image

# Rows: latent channels 0..3; columns: R, G, B. Applied to the latents the
# pipeline holds (not divided by the VAE scaling factor), giving values in
# about -1..1.
SD1_LATENT_RGB_FACTORS: tuple[tuple[float, float, float], ...] = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.0329, -0.4134),
)
# SD 1.x needs no offset; kept so other latent formats can add theirs.
SD1_LATENT_RGB_BIAS: tuple[float, float, float] = (0.0, 0.0, 0.0)

# How much a small latent may be enlarged (cheap bilinear filter); never past max_side.
MAX_UPSCALE = 2.0


def latents_to_image(latents: torch.Tensor, index: int = 0) -> Image.Image:
    """Approximate RGB picture of one sample of `latents`, at latent size.

    `latents` is (B, 4, h, w) as in the pipeline's step callback, or one sample
    (4, h, w); `index` picks the sample of a batch. Any device and floating
    dtype: the projection runs where the latents are, in float32, and only the
    small uint8 result (3*h*w bytes) is copied to the CPU.
    """
    if latents.dim() == 4:
        sample = latents[index]
    elif latents.dim() == 3:
        if index not in (0, -1):
            raise IndexError(f"index {index} is out of range for a single sample of latents")
        sample = latents
    else:
        raise ValueError(f"expected latents of shape (B, 4, h, w) or (4, h, w), got {tuple(latents.shape)}")
    channels = sample.shape[0]
    if channels != len(SD1_LATENT_RGB_FACTORS):
        raise ValueError(f"expected {len(SD1_LATENT_RGB_FACTORS)} latent channels (SD 1.x), got {channels}")

    with torch.no_grad():
        sample = sample.detach().to(dtype=torch.float32)
        factors = torch.tensor(SD1_LATENT_RGB_FACTORS, dtype=torch.float32, device=sample.device)
        bias = torch.tensor(SD1_LATENT_RGB_BIAS, dtype=torch.float32, device=sample.device)
        rgb = torch.einsum("chw,cr->hwr", sample, factors) + bias  # (h, w, 3), about -1..1
        # Random or diverged weights can give NaN/inf; keep the preview defined.
        rgb = torch.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=-1.0)
        pixels = ((rgb + 1.0) * 127.5).clamp_(0.0, 255.0).round_().to(torch.uint8)
        array = pixels.cpu().numpy()
    return Image.fromarray(array)  # (h, w, 3) uint8 -> RGB


def preview_data_url(latents: torch.Tensor, index: int = 0, *, max_side: int = 128, quality: int = 60) -> str:
    """A "data:image/jpeg;base64,..." preview of sample `index` of `latents`.

    The latent-size picture (64x64 for a 512x512 image) is scaled so that its
    longest side is at most `max_side`: larger latents are shrunk to fit, small
    ones enlarged up to 2x (bilinear), never beyond `max_side`.
    """
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    picture = latents_to_image(latents, index)
    width, height = picture.size
    longest = max(width, height)
    scale = min(MAX_UPSCALE, max_side / longest)
    if scale != 1.0:
        size = (max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale))))
        if size != picture.size:
            picture = picture.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=int(quality))
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class PreviewThrottle:
    """Lets a preview through at most `max_per_second` times a second.

    `due()` is True on the first call and then only once at least
    1/max_per_second seconds (time.monotonic) have passed since the last True.
    One per generation; not shared between threads.
    """

    def __init__(self, max_per_second: float):
        if not max_per_second > 0:
            raise ValueError("max_per_second must be positive")
        self.interval = 1.0 / float(max_per_second)
        self._last: float | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if self._last is not None and now - self._last < self.interval:
            return False
        self._last = now
        return True

