"""The picture operations of inpainting (worker/masks.py) and how the inpaint kind puts
them together (worker/kinds/inpaint.prepare), on small made-up pictures; and the noise
multiplier on the tiny demo pipeline."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from worker import masks
from worker.init_image import fit_picture
from worker.kinds.inpaint import Inpaint, MultipliedNoise, prepare


def noisy_picture(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def chebyshev_from(box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """Each pixel's distance (the larger of x and y) from the box (0 inside)."""
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    dx = np.maximum(np.maximum(box[0] - xs, xs - (box[2] - 1)), 0)
    dy = np.maximum(np.maximum(box[1] - ys, ys - (box[3] - 1)), 0)
    return np.maximum(dx, dy)


def inpaint_task(**values):
    settings = {key: values.pop(key) for key in list(values) if key in (
        "mask_blur", "inpaint_area", "inpaint_padding", "masked_content", "mask_invert", "outpaint",
        "noise_multiplier")}
    fields = dict(id="t", width=64, height=64, init_fit="cover", strength=0.75, init_image_id="i",
                  mask_image_id="m", inpaint=settings, seed=5, prompt="a cat", negative_prompt="", steps=2,
                  guidance=5.0)
    fields.update(values)
    return SimpleNamespace(**fields)


@pytest.mark.parametrize("radius", [0, 1, 4, 9])
def test_feathering_reaches_exactly_the_radius(radius):
    box = (20, 24, 36, 40)
    feathered = masks.feather(box_mask((64, 64), box), radius)
    distance = chebyshev_from(box, (64, 64))
    assert feathered.dtype == np.float32 and feathered.shape == (64, 64)
    assert np.all(feathered[distance > radius] == 0)  # beyond the radius: nothing
    assert np.all(feathered[distance <= radius] > 0)  # up to it: some
    inner = chebyshev_from((box[0] + radius, box[1] + radius, box[2] - radius, box[3] - radius), (64, 64)) == 0
    assert np.all(feathered[inner] == 1)  # a radius inside the edge: the whole mask
    if radius:
        assert 0 < feathered[32, box[0]] < 1  # the edge itself is soft


def test_a_mask_that_runs_to_the_border_stays_whole_there():
    feathered = masks.feather(box_mask((64, 64), (40, 0, 64, 64)), 6)
    assert np.all(feathered[:, 47:] == 1)  # no fading towards the picture's own edge


def test_composite_keeps_every_pixel_the_feathering_does_not_reach():
    original, generated = noisy_picture(64, 48, 1), noisy_picture(64, 48, 2)
    feathered = masks.feather(box_mask((64, 48), (10, 10, 30, 30)), 4)
    out = np.asarray(masks.composite(original, generated, feathered), dtype=np.int16)
    before, after = np.asarray(original, dtype=np.int16), np.asarray(generated, dtype=np.int16)
    assert np.array_equal(out[feathered == 0], before[feathered == 0])
    assert np.array_equal(out[feathered == 1], after[feathered == 1])
    edge = (feathered > 0) & (feathered < 1)
    low, high = np.minimum(before, after)[edge], np.maximum(before, after)[edge]
    assert np.all((out[edge] >= low - 1) & (out[edge] <= high + 1))  # a blend of the two
    # A generated picture of another size is scaled to the original's first.
    assert masks.composite(original, generated.resize((32, 24)), feathered).size == (64, 48)


def test_invert_swaps_repaint_and_keep_and_binary_reads_at_128():
    mask = Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8), "L")
    assert np.asarray(masks.binary(mask)).ravel().tolist() == [0, 0, 255, 255]
    assert np.asarray(masks.invert(mask)).ravel().tolist() == [255, 255, 0, 0]
    assert masks.binary(Image.new("RGB", (2, 1), "white")).mode == "L"


@pytest.mark.parametrize("fit", ["cover", "contain"])
def test_the_mask_is_fitted_like_the_picture(fit):
    # A picture 96 × 64 whose right third is white, with a mask of that third: fitted to
    # 64 × 64, the mask covers the white of the fitted picture.
    picture = Image.new("RGB", (96, 64), "black")
    picture.paste((255, 255, 255), (64, 0, 96, 64))
    mask = box_mask((96, 64), (64, 0, 96, 64))
    fitted_picture = np.asarray(fit_picture(picture, 64, 64, fit).convert("L"))
    fitted_mask = np.asarray(masks.fit_mask(mask, 64, 64, fit))
    assert set(np.unique(fitted_mask)) <= {0, 255}
    white, masked = fitted_picture > 200, fitted_mask == 255
    assert (white != masked).mean() < 0.03  # the same place, give or take the resampled edge
    if fit == "contain":
        assert not fitted_mask[:10].any() and not fitted_mask[-10:].any()  # the padding is kept


def test_outpaint_canvas_places_the_picture_and_carries_its_edges_out():
    picture = noisy_picture(32, 24, 3)
    sides = {"left": 8, "right": 16, "top": 0, "bottom": 4}
    canvas = masks.outpaint_canvas(picture, sides)
    assert canvas.size == (32 + 8 + 16, 24 + 4)
    pixels, source = np.asarray(canvas), np.asarray(picture)
    assert np.array_equal(pixels[0:24, 8:40], source)
    assert np.array_equal(pixels[0:24, 40:], np.repeat(source[:, -1:], 16, axis=1))  # the right edge carried out
    assert np.array_equal(pixels[0:24, :8], np.repeat(source[:, :1], 8, axis=1))
    assert np.array_equal(pixels[24:, 8:40], np.repeat(source[-1:], 4, axis=0))
    mask = np.asarray(masks.outpaint_mask(box_mask((32, 24), (0, 0, 4, 4)), (32, 24), sides))
    assert mask.shape == (28, 56)
    assert mask[0:24, 8:40].sum() == 255 * 16 and mask[0, 8] == 255  # the picture's own mask, in place
    assert (mask[:, :8] == 255).all() and (mask[:, 40:] == 255).all() and (mask[24:] == 255).all()
    assert masks.outpaint_canvas(picture, {}).size == (32, 24)


def test_masked_content_changes_only_the_masked_area():
    picture, mask = noisy_picture(48, 32, 4), box_mask((48, 32), (8, 8, 24, 24))
    keep = np.asarray(mask) == 0
    source = np.asarray(picture)
    for content in ("original", "fill", "latent_noise", "latent_nothing"):
        start = np.asarray(masks.with_content(picture, mask, content, seed=7))
        assert np.array_equal(start[keep], source[keep]), content
    assert np.array_equal(np.asarray(masks.with_content(picture, mask, "original")), source)
    assert (np.asarray(masks.with_content(picture, mask, "latent_nothing"))[~keep] == 128).all()
    seven = np.asarray(masks.with_content(picture, mask, "latent_noise", seed=7))
    assert np.array_equal(seven, np.asarray(masks.with_content(picture, mask, "latent_noise", seed=7)))
    assert not np.array_equal(seven, np.asarray(masks.with_content(picture, mask, "latent_noise", seed=8)))
    # "fill" paints the hole with its surroundings: a flat picture's own colour.
    flat = Image.new("RGB", (48, 32), (200, 40, 90))
    filled = np.asarray(masks.with_content(flat, mask, "fill"), dtype=np.int16)
    assert np.abs(filled - np.array([200, 40, 90])).max() <= 6  # (premultiplied blurs round)


def test_the_crop_box_is_the_mask_plus_padding_grown_to_the_aspect():
    feathered = masks.feather(box_mask((128, 96), (40, 30, 60, 40)), 0)
    assert masks.crop_box(feathered, 4, 128, 96) == (36, 25, 64, 46)  # 28 × 18 grown to 4:3: 28 × 21
    assert masks.crop_box(feathered, 0, 20, 40) == (40, 15, 60, 55)  # 1:2: the height grows
    # Near the border the box moves inside the picture rather than leaving it.
    corner = masks.feather(box_mask((128, 96), (0, 0, 10, 10)), 0)
    assert masks.crop_box(corner, 8, 128, 64) == (0, 0, 36, 18)
    assert masks.crop_box(np.zeros((8, 8), dtype=np.float32), 4, 8, 8) is None
    # The feathered mask's box: the soft edge is inside the crop.
    soft = masks.feather(box_mask((128, 96), (40, 30, 60, 40)), 4)
    x0, y0, x1, y1 = masks.crop_box(soft, 0, 128, 96)
    assert (x0, x1) == (36, 64) and y1 - y0 == 21 and y0 <= 26 and y1 >= 44


def test_the_crop_is_pasted_back_where_it_was_cut():
    canvas, patch = Image.new("RGB", (64, 48), "black"), Image.new("RGB", (80, 80), (0, 255, 0))
    out = np.asarray(masks.paste_back(canvas, patch, (10, 20, 30, 40)))
    green = (out[..., 1] == 255).nonzero()
    assert (green[1].min(), green[0].min(), green[1].max() + 1, green[0].max() + 1) == (10, 20, 30, 40)
    assert np.asarray(canvas).sum() == 0  # the canvas itself is left as it was


@pytest.mark.parametrize("native, width, height, step, size", [
    ((512, 512), 512, 512, 8, (512, 512)),
    ((512, 512), 1024, 512, 8, (728, 360)),  # the native area at 2:1
    ((1024, 1024), 1216, 832, 16, (1232, 848)),
    ((1024, 1024), 64, 192, 16, (592, 1776)),
    ((64, 64), 128, 64, 8, (88, 48)),
])
def test_the_render_size_is_the_native_area_at_the_aspect_in_steps(native, width, height, step, size):
    got = masks.render_size(native, width, height, step)
    assert got == size and got[0] % step == 0 and got[1] % step == 0
    assert abs(got[0] * got[1] / (native[0] * native[1]) - 1) < 0.1


def test_the_native_size_is_the_default_sample_size_times_the_vae_factor():
    unet = SimpleNamespace(config=SimpleNamespace(sample_size=64))
    assert masks.native_size(SimpleNamespace(unet=unet, vae_scale_factor=8)) == (512, 512)
    assert masks.native_size(SimpleNamespace(default_sample_size=128, vae_scale_factor=8)) == (1024, 1024)
    tall = SimpleNamespace(unet=SimpleNamespace(config=SimpleNamespace(sample_size=[96, 64])), vae_scale_factor=8)
    assert masks.native_size(tall) == (512, 768)


def test_prepare_inverts_outpaints_and_feathers_the_task():
    picture, mask = noisy_picture(64, 64, 5), box_mask((64, 64), (16, 16, 48, 48))
    plain = prepare(picture, mask, inpaint_task(mask_blur=2))
    assert np.array_equal(np.asarray(plain.canvas), np.asarray(fit_picture(picture, 64, 64, "cover")))
    assert np.asarray(plain.mask)[32, 32] == 255 and np.asarray(plain.mask)[2, 2] == 0 and plain.box is None
    inverted = prepare(picture, mask, inpaint_task(mask_blur=2, mask_invert=True))
    assert np.array_equal(np.asarray(inverted.mask), 255 - np.asarray(plain.mask))
    # Outpaint 64 to the right: the result size is the task's; the picture fitted inside.
    wide = prepare(picture, None, inpaint_task(width=128, mask_image_id=None, mask_blur=0, outpaint={"right": 64}))
    assert wide.canvas.size == (128, 64)
    assert np.array_equal(np.asarray(wide.canvas)[:, :64], np.asarray(picture))
    assert not np.asarray(wide.mask)[:, :64].any() and np.asarray(wide.mask)[:, 64:].all()
    # "Only masked": the feathered box plus the padding, at the task's aspect.
    only = prepare(picture, mask, inpaint_task(mask_blur=4, inpaint_area="masked", inpaint_padding=4))
    assert only.box == (8, 8, 56, 56)


def test_the_inpaint_kind_takes_masked_or_outpainted_tasks_and_keys_its_batches():
    kind = Inpaint()
    assert kind.applies(inpaint_task())
    assert kind.applies(inpaint_task(mask_image_id=None, outpaint={"left": 16}))
    assert not kind.applies(inpaint_task(mask_image_id=None, outpaint={"left": 0}))
    assert not kind.applies(inpaint_task(init_image_id=None))
    assert kind.batch_key(inpaint_task()) == (0.75, "whole", "original")
    assert kind.batch_key(inpaint_task(inpaint_area="masked", masked_content="fill", strength=0.5)) == (
        0.5, "masked", "fill")
    fields = kind.infotext_fields(inpaint_task(mask_blur=8, outpaint={"right": 64}, noise_multiplier=1.5))
    assert fields["mask"] == "m" and fields["mask_blur"] == 8 and fields["noise_multiplier"] == 1.5
    assert fields["outpaint"] == {"left": 0, "right": 64, "top": 0, "bottom": 0}
    assert "noise_multiplier" not in kind.infotext_fields(inpaint_task())


@pytest.fixture(scope="module")
def inpaint_demo_pipe(tmp_path_factory):
    from worker.demo_model import build_demo_model
    from worker.pipelines.cache import inpaint_from
    from worker.pipelines.load import load_pipeline

    models = tmp_path_factory.mktemp("models")
    build_demo_model(models / "daydream-demo")
    plain = load_pipeline("demo", models, device="cpu")
    return SimpleNamespace(plain=plain, inpaint=inpaint_from(plain))


@pytest.mark.parametrize("strength", [0.75, 1.0])
def test_the_noise_multiplier_scales_the_start_noise_of_each_row(inpaint_demo_pipe, strength):
    pipe = inpaint_demo_pipe.inpaint
    picture, mask = noisy_picture(64, 64, 6), box_mask((64, 64), (16, 16, 48, 48))

    def render(runner, seeds):
        return [np.asarray(image, dtype=np.int16) for image in runner(
            prompt=["a cat"] * len(seeds), image=[picture] * len(seeds), mask_image=[mask] * len(seeds),
            strength=strength, num_inference_steps=2, guidance_scale=5.0, width=64, height=64,
            generator=[torch.Generator().manual_seed(seed) for seed in seeds]).images]

    [plain] = render(pipe, [1])
    [same] = render(MultipliedNoise(pipe, [1.0]), [1])
    assert np.array_equal(plain, same)  # at 1 the wrapper changes nothing
    louder, quiet = render(MultipliedNoise(pipe, [1.5, 0.5]), [1, 1])
    assert np.abs(louder - plain).mean() > 1 and np.abs(quiet - plain).mean() > 1
    assert np.abs(louder - quiet).mean() > 1  # each row its own multiplier
    assert "prepare_latents" not in vars(pipe) and "add_noise" not in vars(pipe.scheduler)  # nothing left behind


def test_only_masked_calls_at_the_native_size_and_pastes_the_render_over_the_crop(inpaint_demo_pipe):
    # The demo model's native size is 64 × 64: a 128 × 64 task renders its crop at the
    # native area at 2:1 (88 × 48, multiples of 8).
    from worker.render import Row

    kind, pipe = Inpaint(), inpaint_demo_pipe.plain
    assert masks.native_size(pipe) == (64, 64)
    task = inpaint_task(width=128, height=64, mask_blur=0, inpaint_area="masked", inpaint_padding=0)
    prepared = prepare(noisy_picture(128, 64, 7), box_mask((128, 64), (70, 20, 90, 30)), task)
    assert prepared.box == (70, 20, 90, 30)  # 20 × 10: already 2:1
    rows = [Row(task, 0)]
    runner, arguments = kind.build_call(pipe, task, rows, {"t": prepared})
    assert type(runner).__name__ == "StableDiffusionInpaintPipeline"
    assert (arguments["width"], arguments["height"]) == (88, 48)
    assert [image.size for image in arguments["image"]] == [(88, 48)] == [m.size for m in arguments["mask_image"]]
    assert arguments["strength"] == 0.75 and len(arguments["prompt"]) == 1
    rendered = Image.new("RGB", (88, 48), (0, 255, 0))
    out = np.asarray(kind.finish_picture(rows[0], rendered, {"t": prepared}))
    green = np.all(out == (0, 255, 0), axis=-1)
    ys, xs = np.nonzero(green)
    assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (70, 20, 90, 30) and green.sum() == 200
    source = np.asarray(prepared.canvas)
    assert np.array_equal(out[~green], source[~green])
