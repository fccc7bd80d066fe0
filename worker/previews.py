"""Cheap live previews of a generation in progress, for every model family.

Between denoising steps the worker holds the current latents. Decoding them with the
VAE would cost about as much as a step, so the preview uses the well-known linear
approximation instead ("latent2rgb", as in AUTOMATIC1111's and ComfyUI's previews):
each latent pixel's channels are projected to RGB with a fixed (channels x 3) matrix
plus a bias. The result is a small, blurry but recognisable picture at 1/8 of the
image size, which is scaled a little and sent to the browser as a JPEG data URL.

The factors, per family (rows: latent channels; columns: R, G, B):

* sd1, sd2: 4 channels, the SD 1.x factors Daydream has always used (SD 2.x has the
  same VAE and scaling factor 0.18215). Their first three rows are ComfyUI's
  latent_formats.SD15; the fourth differs from ComfyUI's (-0.2120, -0.2616, -0.7177)
  and is kept as it was, so SD 1.x previews look as they did.
* sdxl: 4 channels, ComfyUI's latent_formats.SDXL factors and bias.
* sd3: 16 channels, ComfyUI's latent_formats.SD3 factors and bias.
* flux: 16 channels, ComfyUI's latent_formats.Flux factors and bias.
* flux2: 32 channels, ComfyUI's latent_formats.Flux2 factors and bias (one row per VAE
  channel; FLUX.2's 128 transformer channels are those 32 in 2x2 patches).
* chroma: FLUX.1's factors and bias (Chroma decodes with the FLUX.1 VAE); its callback
  latents are packed as FLUX.1's are.
* qwen: 16 channels, ComfyUI's latent_formats.Wan21 factors and bias (Qwen-Image's VAE is
  Wan 2.1's; ComfyUI previews it so). The callback holds the normalised latents
  ((z - latents_mean) / latents_std, as ComfyUI's process_in), packed 2x2 as FLUX's.
* zimage: FLUX.1's factors and bias (Z-Image uses the FLUX.1 VAE; ComfyUI previews it with
  latent_formats.Flux). ZImagePipeline hands the callback unpacked (B, 16, h/8, w/8) latents.

Which latent space: ComfyUI's factors apply to the latents its samplers work on, i.e.
after LatentFormat.process_in: VAE latents * scale_factor for SD 1.x/SDXL, and
(VAE latents - shift_factor) * scale_factor for SD 3 (1.5305, 0.0609) and FLUX
(0.3611, 0.1159). The latents diffusers hands the step callback are in that same space:
the SD/SDXL pipelines decode with `latents / vae.config.scaling_factor`, SD 3 and FLUX
with `latents / vae.config.scaling_factor + vae.config.shift_factor`, so what the
callback holds is the scaled (and shifted) latent, exactly what the factors expect. No
scaling or shift is applied here; doing so would wash the preview out.

FLUX pipelines hand the callback PACKED latents, (B, (h/16)*(w/16), 64): 2x2 patches of
16 channels (FluxPipeline._pack_latents). They are unpacked first to (B, 16, h/8, w/8)
as FluxPipeline._unpack_latents does, which needs the image's height and width. SD 3's
callback latents are (B, 16, h/8, w/8) already. FLUX.2 packs the same way, 2x2 patches of
its VAE's 32 channels: (B, (h/16)*(w/16), 128), channel c*4 + dy*2 + dx
(Flux2KleinPipeline._patchify_latents, then _pack_latents), unpacked alike. Its
callback latents are batch-normalised by the VAE's running statistics (the pipeline
undoes that before decoding), as ComfyUI's FLUX.2 latents are, so no scaling either.

Only the latent grid is touched (a (3, C) x (C, h*w) product), so a preview costs about
a millisecond on the CPU, far below the 5% of a step budget that
bench/bench_previews.py checks for every family.
"""

from __future__ import annotations

import base64
import io
import logging
import time

import torch
from PIL import Image

log = logging.getLogger(__name__)

# Rows: latent channels 0..3; columns: R, G, B. Applied to the latents the
# pipeline holds (not divided by the VAE scaling factor), giving values in
# about -1..1.
SD1_LATENT_RGB_FACTORS: tuple[tuple[float, float, float], ...] = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.0329, -0.4134),
)
# SD 1.x needs no offset.
SD1_LATENT_RGB_BIAS: tuple[float, float, float] = (0.0, 0.0, 0.0)

# ComfyUI comfy/latent_formats.py, class SDXL.
SDXL_LATENT_RGB_FACTORS: tuple[tuple[float, float, float], ...] = (
    (0.3651, 0.4232, 0.4341),
    (-0.2533, -0.0042, 0.1068),
    (0.1076, 0.1111, -0.0362),
    (-0.3165, -0.2492, -0.2188),
)
SDXL_LATENT_RGB_BIAS: tuple[float, float, float] = (0.1084, -0.0175, -0.0011)

# ComfyUI comfy/latent_formats.py, class SD3 (SD 3 / 3.5 VAE, 16 channels).
SD3_LATENT_RGB_FACTORS: tuple[tuple[float, float, float], ...] = (
    (-0.0922, -0.0175, 0.0749),
    (0.0311, 0.0633, 0.0954),
    (0.1994, 0.0927, 0.0458),
    (0.0856, 0.0339, 0.0902),
    (0.0587, 0.0272, -0.0496),
    (-0.0006, 0.1104, 0.0309),
    (0.0978, 0.0306, 0.0427),
    (-0.0042, 0.1038, 0.1358),
    (-0.0194, 0.0020, 0.0669),
    (-0.0488, 0.0130, -0.0268),
    (0.0922, 0.0988, 0.0951),
    (-0.0278, 0.0524, -0.0542),
    (0.0332, 0.0456, 0.0895),
    (-0.0069, -0.0030, -0.0810),
    (-0.0596, -0.0465, -0.0293),
    (-0.1448, -0.1463, -0.1189),
)
SD3_LATENT_RGB_BIAS: tuple[float, float, float] = (0.2394, 0.2135, 0.1925)

# ComfyUI comfy/latent_formats.py, class Flux (FLUX.1 VAE, 16 channels).
FLUX_LATENT_RGB_FACTORS: tuple[tuple[float, float, float], ...] = (
    (-0.0346, 0.0244, 0.0681),
    (0.0034, 0.0210, 0.0687),
    (0.0275, -0.0668, -0.0433),
    (-0.0174, 0.0160, 0.0617),
    (0.0859, 0.0721, 0.0329),
    (0.0004, 0.0383, 0.0115),
    (0.0405, 0.0861, 0.0915),
    (-0.0236, -0.0185, -0.0259),
    (-0.0245, 0.0250, 0.1180),
    (0.1008, 0.0755, -0.0421),
    (-0.0515, 0.0201, 0.0011),
    (0.0428, -0.0012, -0.0036),
    (0.0817, 0.0765, 0.0749),
    (-0.1264, -0.0522, -0.1103),
    (-0.0280, -0.0881, -0.0499),
    (-0.1262, -0.0982, -0.0778),
)
FLUX_LATENT_RGB_BIAS: tuple[float, float, float] = (-0.0329, -0.0718, -0.0851)

# ComfyUI comfy/latent_formats.py, class Flux2 (FLUX.2 VAE, 32 channels).
FLUX2_LATENT_RGB_FACTORS: tuple[tuple[float, float, float], ...] = (
    (0.0058, 0.0113, 0.0073), (0.0495, 0.0443, 0.0836), (-0.0099, 0.0096, 0.0644), (0.2144, 0.3009, 0.3652),
    (0.0166, -0.0039, -0.0054), (0.0157, 0.0103, -0.0160), (-0.0398, 0.0902, -0.0235),
    (-0.0052, 0.0095, 0.0109), (-0.3527, -0.2712, -0.1666), (-0.0301, -0.0356, -0.0180),
    (-0.0107, 0.0078, 0.0013), (0.0746, 0.0090, -0.0941), (0.0156, 0.0169, 0.0070),
    (-0.0034, -0.0040, -0.0114), (0.0032, 0.0181, 0.0080), (-0.0939, -0.0008, 0.0186),
    (0.0018, 0.0043, 0.0104), (0.0284, 0.0056, -0.0127), (-0.0024, -0.0022, -0.0030),
    (0.1207, -0.0026, 0.0065), (0.0128, 0.0101, 0.0142), (0.0137, -0.0072, -0.0007),
    (0.0095, 0.0092, -0.0059), (0.0000, -0.0077, -0.0049), (-0.0465, -0.0204, -0.0312),
    (0.0095, 0.0012, -0.0066), (0.0290, -0.0034, 0.0025), (0.0220, 0.0169, -0.0048),
    (-0.0332, -0.0457, -0.0468), (-0.0085, 0.0389, 0.0609), (-0.0076, 0.0003, -0.0043),
    (-0.0111, -0.0460, -0.0614),
)
FLUX2_LATENT_RGB_BIAS: tuple[float, float, float] = (-0.0329, -0.0718, -0.0851)

# family -> (label, factors, bias)
# ComfyUI's latent_formats.Wan21 (the Wan 2.1 VAE, which Qwen-Image decodes with).
WAN21_LATENT_RGB_FACTORS: tuple[tuple[float, float, float], ...] = (
    (-0.1299, -0.1692, 0.2932), (0.0671, 0.0406, 0.0442), (0.3568, 0.2548, 0.1747), (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328), (0.0296, -0.0956, -0.0665), (-0.3477, -0.4059, -0.2925), (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364), (-0.1293, 0.0740, 0.1636), (0.0680, 0.3019, 0.1128), (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699), (0.0060, -0.0633, 0.0005), (0.3477, 0.2275, 0.2950), (0.1984, 0.0913, 0.1861),
)
WAN21_LATENT_RGB_BIAS: tuple[float, float, float] = (-0.1835, -0.0868, -0.3360)

LATENT_RGB: dict[str, tuple[str, tuple[tuple[float, float, float], ...], tuple[float, float, float]]] = {
    "sd1": ("SD 1.x", SD1_LATENT_RGB_FACTORS, SD1_LATENT_RGB_BIAS),
    "sd2": ("SD 2.x", SD1_LATENT_RGB_FACTORS, SD1_LATENT_RGB_BIAS),
    "sdxl": ("SDXL", SDXL_LATENT_RGB_FACTORS, SDXL_LATENT_RGB_BIAS),
    "sd3": ("SD 3", SD3_LATENT_RGB_FACTORS, SD3_LATENT_RGB_BIAS),
    "flux": ("FLUX", FLUX_LATENT_RGB_FACTORS, FLUX_LATENT_RGB_BIAS),
    "flux2": ("FLUX.2", FLUX2_LATENT_RGB_FACTORS, FLUX2_LATENT_RGB_BIAS),
    "chroma": ("Chroma", FLUX_LATENT_RGB_FACTORS, FLUX_LATENT_RGB_BIAS),  # FLUX.1's VAE
    "qwen": ("Qwen-Image", WAN21_LATENT_RGB_FACTORS, WAN21_LATENT_RGB_BIAS),  # Wan 2.1's VAE
    # Z-Image decodes with FLUX.1's VAE (scaling 0.3611, shift 0.1159, as ComfyUI's Flux
    # latent format): FLUX.1's factors; its callback latents are not packed (B, 16, h, w).
    "zimage": ("Z-Image", FLUX_LATENT_RGB_FACTORS, FLUX_LATENT_RGB_BIAS),
}
PREVIEW_FAMILIES = tuple(LATENT_RGB)
# A model whose VAE has another number of latent channels than its family's usual one
# (a FLUX-architecture model with a 4-channel VAE, say) gets the factors of a family
# with that many channels: an approximate preview rather than none.
BY_CHANNELS: dict[int, str] = {4: "sd1", 16: "flux", 32: "flux2"}

# FLUX: latents are packed in 2x2 patches; the VAE shrinks images 8x. The families whose
# callback latents are packed so:
PACKED_FAMILIES = {"flux", "chroma", "qwen", "flux2"}
FLUX_PATCH = 2
VAE_SCALE_FACTOR = 8

# How much a small latent may be enlarged (cheap bilinear filter); never past max_side.
MAX_UPSCALE = 2.0

# (family, device) -> (factors, bias) as float32 tensors, made once.
_tensors: dict[tuple[str, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _factor_tensors(family: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (family, str(device))
    made = _tensors.get(key)
    if made is None:
        _, factors, bias = LATENT_RGB[family]
        made = _tensors[key] = (torch.tensor(factors, dtype=torch.float32, device=device),
                                torch.tensor(bias, dtype=torch.float32, device=device))
    return made


def unpack_flux_latents(latents: torch.Tensor, height: int, width: int,
                        vae_scale_factor: int = VAE_SCALE_FACTOR) -> torch.Tensor:
    """FLUX's packed latents (B, (h/16)*(w/16), 64) for an image of `height` x `width`
    pixels -> (B, 16, h/8, w/8), as FluxPipeline._unpack_latents does (a view and a
    permute: nothing is computed)."""
    if latents.dim() != 3:
        raise ValueError(f"expected packed FLUX latents of shape (B, patches, 64), got {tuple(latents.shape)}")
    batch, patches, packed_channels = latents.shape
    step = vae_scale_factor * FLUX_PATCH
    rows, cols = int(height) // step, int(width) // step
    if packed_channels % (FLUX_PATCH * FLUX_PATCH) or rows * cols != patches:
        raise ValueError(
            f"packed FLUX latents of shape {tuple(latents.shape)} do not fit a {width}x{height} image "
            f"(expected (B, {rows * cols}, 64): one 2x2 patch of 16 channels per {step}x{step} pixels)")
    channels = packed_channels // (FLUX_PATCH * FLUX_PATCH)
    latents = latents.view(batch, rows, cols, channels, FLUX_PATCH, FLUX_PATCH)
    latents = latents.permute(0, 3, 1, 4, 2, 5)
    return latents.reshape(batch, channels, rows * FLUX_PATCH, cols * FLUX_PATCH)


def latent_channels(pipe) -> int | None:
    """The latent channels of a pipeline's VAE (its config), None when it does not say."""
    config = getattr(getattr(pipe, "vae", None), "config", None)
    value = getattr(config, "latent_channels", None) if config is not None else None
    if value is None and isinstance(config, dict):
        value = config.get("latent_channels")
    if value is None and config is not None:  # Wan-style VAEs (Qwen-Image) call it z_dim
        value = getattr(config, "z_dim", None)
    return int(value) if isinstance(value, int) and value > 0 else None


def _factors_for(family: str, channels: int | None) -> str:
    """The LATENT_RGB entry for a family's latents of `channels` channels."""
    expected = len(LATENT_RGB[family][1])
    if channels is None or channels == expected:
        return family
    if channels in BY_CHANNELS:
        return BY_CHANNELS[channels]
    raise ValueError(f"no preview for {channels} latent channels (known: {', '.join(map(str, sorted(BY_CHANNELS)))})")


def _is_packed_flux(latents: torch.Tensor, channels: int) -> bool:
    # (B, patches, 64); a single unpacked sample (16, h, w) has 16 in front.
    return latents.dim() == 3 and latents.shape[-1] == channels * FLUX_PATCH * FLUX_PATCH \
        and latents.shape[0] != channels


def latents_to_image(latents: torch.Tensor, index: int = 0, family: str = "sd1", *,
                     height: int | None = None, width: int | None = None,
                     channels: int | None = None) -> Image.Image:
    """Approximate RGB picture of one sample of `latents`, at latent size (1/8 of the image).

    `latents` is what the pipeline's step callback holds for a model of `family` (sd1,
    sd2, sdxl: (B, 4, h, w); sd3: (B, 16, h, w); flux: packed (B, (H/16)*(W/16), 64),
    which needs the image's `height` and `width` in pixels, or already unpacked
    (B, 16, h, w)), or one unpacked sample (C, h, w); `index` picks the sample of a
    batch. `channels`: the latent channels of the model's VAE (latent_channels(pipe)),
    when they may differ from the family's usual number; the factors of a family with
    that many channels are used then. Any device and floating dtype: the projection runs
    where the latents are, in float32, and only the small uint8 result (3*h*w bytes) is
    copied to the CPU. Raises ValueError for an unknown family or latents of the wrong
    shape.
    """
    if family not in LATENT_RGB:
        raise ValueError(f"no preview for model family {family!r}; known: {', '.join(PREVIEW_FAMILIES)}")
    packed_family = family
    family = _factors_for(family, channels)
    label, factors_list, _ = LATENT_RGB[family]
    expected = len(factors_list)
    # The callback's FLUX latents are packed; when the VAE told the channels, a batch of
    # any size is recognised (else a batch of `expected` samples looks like one sample).
    known_packed = channels is not None and latents.dim() == 3 and latents.shape[-1] == channels * FLUX_PATCH ** 2
    if packed_family in PACKED_FAMILIES and (known_packed or _is_packed_flux(latents, expected)):
        if height is None or width is None:
            raise ValueError(f"packed FLUX latents {tuple(latents.shape)} need the image's height and width to unpack")
        latents = unpack_flux_latents(latents, height, width)
    if latents.dim() == 4:
        sample = latents[index]
    elif latents.dim() == 3:
        if index not in (0, -1):
            raise IndexError(f"index {index} is out of range for a single sample of latents")
        sample = latents
    else:
        raise ValueError(f"expected {label} latents of shape (B, {expected}, h, w) or ({expected}, h, w), "
                         f"got {tuple(latents.shape)}")
    channels = sample.shape[0]
    if channels != expected:
        raise ValueError(f"expected {expected} latent channels ({label}), got {channels} "
                         f"(latents of shape {tuple(latents.shape)}): wrong model family for these latents?")

    with torch.no_grad():
        sample = sample.detach().to(dtype=torch.float32)
        factors, bias = _factor_tensors(family, sample.device)
        rgb = torch.einsum("chw,cr->hwr", sample, factors) + bias  # (h, w, 3), about -1..1
        # Random or diverged weights can give NaN/inf; keep the preview defined.
        rgb = torch.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=-1.0)
        pixels = ((rgb + 1.0) * 127.5).clamp_(0.0, 255.0).round_().to(torch.uint8)
        array = pixels.cpu().numpy()
    return Image.fromarray(array)  # (h, w, 3) uint8 -> RGB


def preview_data_url(latents: torch.Tensor, index: int = 0, family: str = "sd1", *,
                     height: int | None = None, width: int | None = None,
                     max_side: int = 128, quality: int = 60, channels: int | None = None) -> str:
    """A "data:image/jpeg;base64,..." preview of sample `index` of `latents`
    (see latents_to_image for `family`, `height` and `width`).

    The latent-size picture (64x64 for a 512x512 image) is scaled so that its
    longest side is at most `max_side`: larger latents are shrunk to fit, small
    ones enlarged up to 2x (bilinear), never beyond `max_side`.
    """
    if max_side < 1:
        raise ValueError("max_side must be at least 1")
    picture = latents_to_image(latents, index, family, height=height, width=width, channels=channels)
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


_told: set[tuple] = set()  # the preview problems logged already (once each per process)


def safe_preview(latents: torch.Tensor, index: int = 0, family: str = "sd1", *,
                 height: int | None = None, width: int | None = None,
                 channels: int | None = None, **options) -> str | None:
    """preview_data_url, or None when no preview can be made of these latents (an
    unknown family, latents of a shape the factors do not fit): a preview is a nicety,
    never a reason for a task to fail. Each kind of problem is logged once."""
    try:
        return preview_data_url(latents, index, family, height=height, width=width,
                                channels=channels, **options)
    except Exception as exc:  # noqa: BLE001 - whatever it is, the task goes on without previews
        shape = tuple(getattr(latents, "shape", ()))
        key = (family, channels, shape[1:], exc.__class__.__name__)
        if key not in _told:
            _told.add(key)
            log.warning("no live preview for a %s model (VAE latent channels: %s, latents %s): %s; "
                        "rendering goes on without previews", family, channels or "unknown", shape, exc)
        return None


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

