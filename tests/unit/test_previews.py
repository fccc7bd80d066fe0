"""Live previews from latents (worker/previews.py), with real torch tensors, for every family."""

import base64
import io
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline
from PIL import Image

from worker.previews import (
    LATENT_RGB,
    PREVIEW_FAMILIES,
    SD1_LATENT_RGB_BIAS,
    SD1_LATENT_RGB_FACTORS,
    PreviewThrottle,
    latents_to_image,
    preview_data_url,
    unpack_flux_latents,
)

PREFIX = "data:image/jpeg;base64,"


def decode(url: str) -> Image.Image:
    assert url.startswith(PREFIX)
    picture = Image.open(io.BytesIO(base64.b64decode(url[len(PREFIX):], validate=True)))
    assert picture.format == "JPEG"
    picture.load()
    return picture


def latents_for_colour(rgb, height=8, width=8, batch=1, dtype=torch.float32):
    """Latents whose linear projection is `rgb` (each component in -1..1) at
    every pixel: the minimum-norm solution through the factors' pseudo-inverse."""
    factors = torch.tensor(SD1_LATENT_RGB_FACTORS, dtype=torch.float64)  # (4, 3)
    target = torch.tensor(rgb, dtype=torch.float64) - torch.tensor(SD1_LATENT_RGB_BIAS, dtype=torch.float64)
    vector = target @ torch.linalg.pinv(factors)  # (4,), vector @ factors == target
    assert torch.allclose(vector @ factors, target, atol=1e-6)
    return vector.to(dtype).view(1, 4, 1, 1).expand(batch, 4, height, width).contiguous()


def mean_rgb(picture: Image.Image):
    pixels = np.asarray(picture.convert("RGB"), dtype=np.float64).reshape(-1, 3)
    return pixels.mean(axis=0).tolist()


def test_latents_to_image_is_latent_sized_rgb():
    latents = torch.randn(2, 4, 12, 20, generator=torch.Generator().manual_seed(1))
    picture = latents_to_image(latents, 1)
    assert picture.mode == "RGB"
    assert picture.size == (20, 12)  # PIL sizes are (width, height)


@pytest.mark.parametrize(
    "colour, channel",
    [((0.9, -0.9, -0.9), 0), ((-0.9, 0.9, -0.9), 1), ((-0.9, -0.9, 0.9), 2)],
)
def test_known_colour_direction_gives_dominant_channel(colour, channel):
    picture = latents_to_image(latents_for_colour(colour))
    means = mean_rgb(picture)
    others = [value for i, value in enumerate(means) if i != channel]
    assert means[channel] > 200 and all(value < 55 for value in others), means


def test_pure_red_survives_the_jpeg_data_url():
    picture = decode(preview_data_url(latents_for_colour((1.0, -1.0, -1.0), 16, 16)))
    red, green, blue = mean_rgb(picture)
    assert red > green + 150 and red > blue + 150


def test_values_are_clamped_not_wrapped():
    # Far outside the -1..1 range: must saturate to white/black, not wrap around.
    bright = latents_to_image(latents_for_colour((1.0, 1.0, 1.0)) * 50)
    dark = latents_to_image(latents_for_colour((-1.0, -1.0, -1.0)) * 50)
    assert mean_rgb(bright) == [255.0, 255.0, 255.0]
    assert mean_rgb(dark) == [0.0, 0.0, 0.0]


def test_index_picks_the_sample():
    latents = torch.cat([latents_for_colour((0.9, -0.9, -0.9)), latents_for_colour((-0.9, -0.9, 0.9))])
    red = mean_rgb(latents_to_image(latents, 0))
    blue = mean_rgb(latents_to_image(latents, 1))
    assert red[0] > red[2] and blue[2] > blue[0]
    assert latents_to_image(latents[1]).size == (8, 8)  # a single (4, h, w) sample works too


@pytest.mark.parametrize(
    "latent_hw, max_side, expected",
    [
        ((64, 64), 128, (128, 128)),  # 512x512 image: enlarged 2x, up to max_side
        ((32, 32), 128, (64, 64)),  # 256x256 image: never more than 2x
        ((64, 96), 128, (128, 85)),  # 768x512: longest side fits max_side
        ((128, 128), 128, (128, 128)),  # 1024x1024: exactly max_side, left alone
        ((64, 64), 32, (32, 32)),  # shrunk to fit
        ((96, 64), 100, (67, 100)),  # portrait, shrunk
    ],
)
def test_data_url_decodes_to_the_expected_size(latent_hw, max_side, expected):
    latents = torch.randn(1, 4, *latent_hw, generator=torch.Generator().manual_seed(0))
    picture = decode(preview_data_url(latents, max_side=max_side))
    assert picture.size == expected
    assert max(picture.size) <= max_side
    assert picture.mode == "RGB"


def test_float16_input_works_and_matches_float32():
    latents = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
    half = latents.half()
    picture16 = latents_to_image(half)
    picture32 = latents_to_image(half.float())
    assert picture16.tobytes() == picture32.tobytes()
    assert decode(preview_data_url(half)).size == (32, 32)


def test_non_finite_latents_still_give_a_picture():
    latents = torch.full((1, 4, 8, 8), float("nan"))
    latents[0, :, 0, 0] = float("inf")
    assert decode(preview_data_url(latents)).size == (16, 16)


def test_rejects_latents_that_are_not_sd1():
    with pytest.raises(ValueError):
        latents_to_image(torch.zeros(1, 16, 8, 8))
    with pytest.raises(ValueError):
        latents_to_image(torch.zeros(8, 8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_latents_work():
    latents = latents_for_colour((0.9, -0.9, -0.9), dtype=torch.float16).cuda()
    red, green, blue = mean_rgb(latents_to_image(latents))
    assert red > green and red > blue


def test_throttle_allows_first_call_and_refuses_an_immediate_second():
    throttle = PreviewThrottle(max_per_second=0.001)  # one every 1000 s
    assert throttle.due() is True
    assert throttle.due() is False
    assert throttle.due() is False


def test_throttle_allows_again_after_the_interval():
    throttle = PreviewThrottle(max_per_second=50)  # one every 20 ms
    assert throttle.due()
    time.sleep(0.03)
    assert throttle.due()


def test_throttle_rejects_a_non_positive_rate():
    with pytest.raises(ValueError):
        PreviewThrottle(0)


# --- every family -------------------------------------------------------------

CHANNELS = {"sd1": 4, "sd2": 4, "sdxl": 4, "sd3": 16, "flux": 16, "zimage": 16, "flux2": 32, "qwen": 16,
            "chroma": 16}


def family_latents_for_colour(family, rgb, height=8, width=8):
    """(1, C, h, w) latents whose projection (factors and bias of `family`) is `rgb`."""
    _, factors, bias = LATENT_RGB[family]
    factors = torch.tensor(factors, dtype=torch.float64)
    target = torch.tensor(rgb, dtype=torch.float64) - torch.tensor(bias, dtype=torch.float64)
    vector = target @ torch.linalg.pinv(factors)
    assert torch.allclose(vector @ factors, target, atol=1e-6)
    channels = factors.shape[0]
    return vector.float().view(1, channels, 1, 1).expand(1, channels, height, width).contiguous()


def test_every_family_has_factors_and_bias_of_its_channel_count():
    assert set(PREVIEW_FAMILIES) == set(CHANNELS)
    for family, (_, factors, bias) in LATENT_RGB.items():
        assert len(factors) == CHANNELS[family] and all(len(row) == 3 for row in factors)
        assert len(bias) == 3


@pytest.mark.parametrize("family", sorted(CHANNELS))
def test_every_family_gives_a_latent_sized_picture(family):
    latents = torch.randn(2, CHANNELS[family], 12, 16, generator=torch.Generator().manual_seed(2))
    picture = latents_to_image(latents, 1, family)
    assert picture.mode == "RGB" and picture.size == (16, 12)
    assert decode(preview_data_url(latents, 0, family)).size == (32, 24)
    assert latents_to_image(latents[0], family=family).size == (16, 12)


@pytest.mark.parametrize("family", sorted(CHANNELS))
def test_every_family_keeps_colours(family):
    picture = latents_to_image(family_latents_for_colour(family, (0.9, -0.9, -0.9)), family=family)
    red, green, blue = mean_rgb(picture)
    assert red > 200 and green < 55 and blue < 55


def pack(latents):
    batch, channels, height, width = latents.shape
    return FluxPipeline._pack_latents(latents, batch, channels, height, width)


def test_packed_flux_latents_unpack_to_the_picture_size():
    # A 128x96 image (width x height): 16x12 latents, (12/2)*(16/2) = 48 patches of 64.
    latents = torch.randn(2, 16, 12, 16, generator=torch.Generator().manual_seed(4))
    packed = pack(latents)
    assert packed.shape == (2, 48, 64)
    assert torch.equal(unpack_flux_latents(packed, height=96, width=128), latents)
    assert torch.equal(FluxPipeline._unpack_latents(packed, 96, 128, 8), latents)
    picture = latents_to_image(packed, 1, "flux", height=96, width=128)
    assert picture.size == (16, 12)
    assert picture.tobytes() == latents_to_image(latents, 1, "flux").tobytes()
    assert decode(preview_data_url(packed, 0, "flux", height=96, width=128)).size == (32, 24)


def test_packed_flux_colour_survives_unpacking():
    packed = pack(family_latents_for_colour("flux", (-0.9, -0.9, 0.9), 12, 16))
    red, green, blue = mean_rgb(latents_to_image(packed, family="flux", height=96, width=128))
    assert blue > 200 and red < 55 and green < 55


def test_packed_flux2_latents_unpack_as_the_pipeline_packs_them():
    # FLUX.2 patches its 32 VAE channels 2x2 into 128, then packs the grid into tokens.
    from diffusers import Flux2KleinPipeline

    latents = torch.randn(2, 32, 12, 16, generator=torch.Generator().manual_seed(5))
    packed = Flux2KleinPipeline._pack_latents(Flux2KleinPipeline._patchify_latents(latents))
    assert packed.shape == (2, 48, 128)
    assert torch.equal(unpack_flux_latents(packed, height=96, width=128), latents)
    picture = latents_to_image(packed, 1, "flux2", height=96, width=128, channels=32)
    assert picture.tobytes() == latents_to_image(latents, 1, "flux2").tobytes()
    red, green, blue = mean_rgb(latents_to_image(
        Flux2KleinPipeline._pack_latents(Flux2KleinPipeline._patchify_latents(
            family_latents_for_colour("flux2", (0.9, -0.9, -0.9), 12, 16))),
        family="flux2", height=96, width=128, channels=32))
    assert red > 200 and green < 55 and blue < 55


def test_packed_flux_latents_need_a_matching_size():
    packed = pack(torch.zeros(1, 16, 12, 16))
    with pytest.raises(ValueError, match="height and width"):
        latents_to_image(packed, family="flux")
    with pytest.raises(ValueError, match="do not fit a 128x128 image"):
        latents_to_image(packed, family="flux", height=128, width=128)


@pytest.mark.parametrize("family, shape", [
    ("sd1", (1, 16, 8, 8)), ("sd2", (1, 16, 8, 8)), ("sdxl", (1, 16, 8, 8)),
    ("sd3", (1, 4, 8, 8)), ("flux", (1, 4, 8, 8)),
])
def test_wrong_channel_count_says_what_it_expected(family, shape):
    expected = CHANNELS[family]
    with pytest.raises(ValueError, match=rf"expected {expected} latent channels \(.+\), got {shape[1]}"):
        latents_to_image(torch.zeros(shape), family=family)
    with pytest.raises(ValueError, match="latent channels"):
        preview_data_url(torch.zeros(shape), 0, family)


def test_unknown_family_is_refused():
    with pytest.raises(ValueError, match="no preview for model family 'sd4'"):
        latents_to_image(torch.zeros(1, 4, 8, 8), family="sd4")


# --- a VAE with another number of latent channels than the family's usual one -------------

def test_a_flux_model_whose_vae_has_4_latent_channels_gets_a_preview():
    """A FLUX-architecture model with a 4-channel VAE: the callback's latents are packed
    2x2 patches of 4 channels, (B, patches, 16). Told the VAE's channels, the preview
    unpacks them and projects them with the factors of a 4-channel family."""
    from worker.previews import latent_channels

    vae = SimpleNamespace(config=SimpleNamespace(latent_channels=4))
    assert latent_channels(SimpleNamespace(vae=vae)) == 4
    assert latent_channels(SimpleNamespace()) is None
    latents = family_latents_for_colour("sd1", (0.9, -0.9, -0.9), 12, 16)  # (1, 4, 12, 16)
    packed = pack(latents.repeat(4, 1, 1, 1))  # a batch of 4: shape[0] == channels too
    assert packed.shape == (4, 48, 16)
    picture = latents_to_image(packed, 3, "flux", height=96, width=128, channels=4)
    assert picture.size == (16, 12)
    red, green, blue = mean_rgb(picture)
    assert red > 200 and green < 55 and blue < 55
    assert decode(preview_data_url(packed, 0, "flux", height=96, width=128, channels=4)).size == (32, 24)


def test_a_preview_that_cannot_be_made_is_skipped_and_logged_once(caplog):
    from worker.previews import safe_preview

    packed = pack(torch.zeros(2, 4, 12, 16))  # a 4-channel FLUX, its VAE's channels unknown
    with caplog.at_level("WARNING", logger="worker.previews"):
        for _ in range(3):
            assert safe_preview(packed, 0, "flux", height=96, width=128) is None
            assert safe_preview(torch.zeros(1, 4, 8, 8), 0, "wan") is None  # no factors at all
            assert safe_preview(torch.zeros(1, 7, 8, 8), 0, "sd1", channels=7) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 3, warnings  # each problem once, not once a step
    assert any("16 latent channels" in w for w in warnings)
    assert safe_preview(packed, 0, "flux", height=96, width=128, channels=4).startswith(PREFIX)


def test_the_worker_goes_on_rendering_when_no_preview_can_be_made(monkeypatch):
    """worker/progress.py Progress: a step whose preview fails sends its progress without a
    preview and stops trying for that task; it never raises into the pipeline call."""
    from worker import progress as worker_progress

    sent = []
    monkeypatch.setattr(worker_progress.events, "emit_task", lambda room, payload: sent.append(payload))
    monkeypatch.setattr(worker_progress.queue, "set_progress", lambda *a, **k: None)
    kept = {}
    monkeypatch.setattr(worker_progress.redis_client, "connection", lambda: SimpleNamespace(set=lambda k, v, ex: kept.update({k: v})))
    task = SimpleNamespace(id="t", user=SimpleNamespace(room="r"), effective_steps=4, samples=1,
                           height=96, width=128)
    progress = worker_progress.Progress(task, hz=1000, preview_hz=1000)
    progress.family, progress.latent_channels = "flux", None  # a VAE that does not say
    packed = pack(torch.zeros(1, 4, 12, 16))
    progress.step(1, 4, packed)
    assert "preview" not in sent[-1] and sent[-1]["step"] == 1
    assert progress.previews is None  # not tried again on every step
    told = worker_progress.Progress(task, hz=1000, preview_hz=1000)
    told.family, told.latent_channels = "flux", 4
    told.step(1, 4, packed)
    assert sent[-1]["preview"].startswith(PREFIX)
    assert list(kept.values()) == [sent[-1]["preview"]]  # the latest, for readers that poll
