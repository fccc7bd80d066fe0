"""Hires fix's latent modes on the flow families, rendered in this process
(worker/render.render_batch, the tiny demo models on the CPU): the first pass's latents,
unpacked where they come packed (FLUX.1, Chroma, Qwen-Image), interpolated in the mode's
torch interpolation, are what the second pass starts from, never encoded from pixels;
they are in the space that pass denoises (scaled and shifted as its encoder's); the
result is the final size, the same seed gives the same pixels, it differs from Lanczos's,
the infotext keeps A1111's wording, and the progress counts both passes. FLUX.1 Kontext,
whose image-to-image takes a reference to edit, keeps the upscale in pixel space."""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812 - as torch names it
from PIL import Image

from models import Task
from services.library.imaging import read_metadata
from tests.helpers import a1111_infotext_fields
from tests.unit.helpers import MemoryRender
from worker.kinds.hires import HiresCall, interpolate_latents
from worker.pipelines.cache import img2img_from
from worker.pipelines.load import load_pipeline
from worker.render import render_batch

# (model, latent mode, torch's (mode, antialias) for it, the first pass's scheduler)
FAMILIES = [("demo-flux", "latent", ("bilinear", False)),
            ("demo-sd3", "latent-bicubic-antialiased", ("bicubic", True)),
            ("demo-chroma", "latent-nearest", ("nearest", False)),
            ("demo-zimage", "latent-antialiased", ("bilinear", True)),
            ("demo-qwen", "latent-nearest-exact", ("nearest-exact", False)),
            ("demo-flux2", "latent-bicubic", ("bicubic", False))]


class PassSteps:
    """A task's progress as Render reports it: (step, total, the latents' shape)."""

    def __init__(self):
        self.seen: list[tuple] = []

    def begin_call(self, first, images, row=0, done_before=None):
        pass

    def step(self, done_in_call, per_call, latents=None):
        self.seen.append((done_in_call, per_call, None if latents is None else tuple(latents.shape)))

    def seconds_per_step(self):
        return None

    def image_ready(self, images):
        pass


class HiresRendered(MemoryRender):
    """Render's surroundings in memory: the loaded demo pipeline, what it was told."""

    def __init__(self, pipe):
        super().__init__(pipe)
        self.steps: dict[str, PassSteps] = {}

    def progress(self, task, pipe):
        return self.steps.setdefault(task.id, PassSteps())

    def save(self, row, encoded, verdict):
        png = encoded.png.result()
        with Image.open(io.BytesIO(png)) as picture:
            parameters = picture.text.get("parameters", "")
            pixels = np.asarray(picture.convert("RGB"), dtype=np.int16)
        return SimpleNamespace(metadata=read_metadata(png), parameters=parameters, pixels=pixels)

    def finish(self, task, withheld: int) -> None:
        pass


@pytest.fixture(scope="module")
def demo_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    loaded: dict = {}

    def load(spec: str):
        if spec not in loaded:
            loaded[spec] = load_pipeline(spec, folder, device="cpu")
        return loaded[spec]

    return load


def scheduler_of(pipe) -> str:
    return "flow_euler" if "FlowMatch" in type(pipe.scheduler).__name__ else "euler"


def hires_task(pipe, model: str, hires: dict | None, steps: int = 2, samples: int = 1, seed: int = 5) -> Task:
    return Task(id=f"{model}-{(hires or {}).get('upscaler', 'plain')}-{seed}", user_id=1, prompt="a lighthouse",
                negative_prompt="", width=64, height=64, steps=steps, guidance=3.5, samples=samples, seed=seed,
                scheduler=scheduler_of(pipe), model=model, loras=None, init_image_id=None, strength=None,
                init_fit=None, hires=hires)


def hires_rendered(pipe, task: Task):
    context = HiresRendered(pipe)
    images = render_batch([task], context).images[task.id]
    return images, context.steps[task.id].seen


def doubled(upscaler: str) -> dict:
    """A final size asked for: twice the first pass's width, 1.5 times its height."""
    return {"scale": None, "width": 128, "height": 96, "upscaler": upscaler, "steps": 2, "denoising": 0.5}


@pytest.mark.parametrize("model,mode,interpolation", FAMILIES, ids=[f[0] for f in FAMILIES])
def test_the_second_pass_starts_from_the_first_pass_latents_interpolated(demo_models, monkeypatch,
                                                                          model, mode, interpolation):
    pipe = demo_models(model)
    runner = img2img_from(pipe)
    first: list = []  # what the first pass (output_type="latent") gave
    start: list = []  # what the second pass's prepare_latents got as its `image`
    encoded = [0]
    call, prepare, encode = type(pipe).__call__, runner.prepare_latents, pipe.vae.encode

    def first_pass(self, *args, **kwargs):
        made = call(self, *args, **kwargs)
        if kwargs.get("output_type") == "latent":
            first.append(made.images.clone())
        return made

    def second_pass(image, *args, **kwargs):
        start.append(image.clone())
        return prepare(image, *args, **kwargs)

    def encoding(*args, **kwargs):
        encoded[0] += 1
        return encode(*args, **kwargs)

    monkeypatch.setattr(type(pipe), "__call__", first_pass)
    monkeypatch.setattr(runner, "prepare_latents", second_pass)
    monkeypatch.setattr(pipe.vae, "encode", encoding)
    images, steps = hires_rendered(pipe, hires_task(pipe, model, doubled(mode), samples=2))

    assert [image.pixels.shape for image in images] == [(96, 128, 3)] * 2
    assert len(first) == 1 and len(start) == 1 and encoded[0] == 0  # never decoded and encoded again
    latents = first[0]
    if latents.dim() == 3:  # packed 2×2 patches: the pipeline's own unpacking
        latents = pipe._unpack_latents(latents, 64, 64, pipe.vae_scale_factor)
    latents = latents.reshape(2, -1, 8, 8)  # (Qwen-Image's one frame dropped)
    how, antialias = interpolation
    expected = F.interpolate(latents, size=(12, 16), mode=how, **({} if "nearest" in how else {"antialias": antialias}))
    if model == "demo-flux2":  # klein's start: 2×2-patchified (raw, as its first pass ends)
        expected = runner._patchify_latents(expected)
    assert start[0].shape == expected.shape
    assert torch.allclose(start[0], expected, atol=1e-6)
    # One progress bar: 2 first-pass steps, then int(2 × 0.5) at the final size (its latents
    # are what a preview is made of).
    counted = [(done, total) for done, total, _ in steps if total]
    assert counted[-1] == (3, 3) and [done for done, _ in counted] == [1, 2, 3]
    assert steps[-1][2] != steps[-2][2]  # the second pass's latents: the final size's


@pytest.mark.parametrize("model", ["demo-flux", "demo-sd3"])
def test_a_latent_mode_repeats_per_seed_differs_from_lanczos_and_says_latent(demo_models, model):
    pipe = demo_models(model)
    [latent], _ = hires_rendered(pipe, hires_task(pipe, model, doubled("latent")))
    [again], _ = hires_rendered(pipe, hires_task(pipe, model, doubled("latent")))
    [lanczos], _ = hires_rendered(pipe, hires_task(pipe, model, doubled("lanczos")))
    assert latent.pixels.shape == lanczos.pixels.shape == (96, 128, 3)
    assert np.array_equal(latent.pixels, again.pixels)
    assert np.abs(latent.pixels - lanczos.pixels).mean() > 5
    fields = a1111_infotext_fields(latent.parameters)
    assert fields["Hires upscaler"] == "Latent" and fields["Hires resize"] == "128x96"
    assert latent.metadata["hires"]["upscaler"] == "latent"


@pytest.mark.parametrize("model", ["demo-flux", "demo-sd3", "demo-chroma", "demo-zimage", "demo-qwen"])
def test_the_latents_handed_on_are_in_the_space_the_second_pass_denoises(demo_models, model):
    # At the first pass's size (nearest: the latents unchanged) and one last step of 20
    # (denoising 0.05), the second pass barely moves its start: the result is the plain
    # picture, give or take a few levels, if the latents went on in the space its encoder
    # gives (scaled and shifted: handed on unscaled, FLUX.1's is 17 levels off). Lanczos
    # goes through the (random) VAE's decoder and encoder, which are no inverses.
    pipe = demo_models(model)
    same = {"scale": 1, "width": 64, "height": 64, "steps": 20, "denoising": 0.05}
    [plain], _ = hires_rendered(pipe, hires_task(pipe, model, None))
    [latent], _ = hires_rendered(pipe, hires_task(pipe, model, {**same, "upscaler": "latent-nearest"}))
    [lanczos], _ = hires_rendered(pipe, hires_task(pipe, model, {**same, "upscaler": "lanczos"}))
    assert np.abs(latent.pixels - plain.pixels).mean() < 8
    assert np.abs(lanczos.pixels - plain.pixels).mean() > 12


def test_flux_kontext_keeps_the_upscale_in_pixel_space(demo_models):
    kontext = demo_models("demo-kontext")
    task = hires_task(kontext, "demo-kontext", doubled("latent"))
    assert not HiresCall(kontext, task, [], {}).in_latents()
    flux = demo_models("demo-flux")
    assert HiresCall(flux, hires_task(flux, "demo-flux", doubled("latent")), [], {}).in_latents()


def test_half_precision_latents_interpolate_in_every_mode():
    # bfloat16 latents (a FLUX.1 on the CPU): torch's antialiased kernels take no half
    # precision there, so they are interpolated in float32 and handed on in their dtype.
    latents = torch.randn(1, 16, 8, 8).to(torch.bfloat16)
    for mode in ("latent-antialiased", "latent-bicubic-antialiased", "latent-nearest-exact"):
        made = interpolate_latents(latents, mode, 128, 96, 8)
        assert made.dtype == torch.bfloat16 and made.shape == (1, 16, 12, 16)
