"""An upscale's parameters, cost and tiles, without a server: the output size from a
scale or a width and height, the refining pass's defaults and bounds, the cost by output
pixels, the progress units, and the refining tiles (covering the picture, blended with
weights that sum to one)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from models import effective_steps, upscale_steps
from services.core.errors import ValidationError
from services.generation import upscales
from services.generation.params import task_cost
from worker.kinds.upscale import ramps, refine_steps_per_tile, refine_tiles, tile_spans

SOURCE = SimpleNamespace(width=64, height=48)
CARD = SimpleNamespace(steps=20)
USER = SimpleNamespace(is_staff=False)


def field_of(call) -> str:
    with pytest.raises(ValidationError) as refused:
        call()
    return refused.value.field


def test_the_output_size_comes_from_a_scale_or_from_width_and_height():
    assert upscales.output_size({"scale": 2}, SOURCE) == (128, 96, 2.0)
    assert upscales.output_size({"scale": 1.5}, SOURCE) == (96, 72, 1.5)
    assert upscales.output_size({}, SOURCE) == (128, 96, 2.0)  # ×2 by default
    assert upscales.output_size({"width": 256, "height": 96}, SOURCE) == (256, 96, 4.0)


@pytest.mark.parametrize("body, field", [
    ({"scale": 1}, "scale"), ({"scale": 8.5}, "scale"), ({"scale": "2"}, "scale"), ({"scale": True}, "scale"),
    ({"scale": float("nan")}, "scale"), ({"scale": 2, "width": 128, "height": 96}, "scale"),
    ({"width": 128}, "height"), ({"width": 128.5, "height": 96}, "width"), ({"width": 0, "height": 96}, "width"),
    ({"width": 64 * 9, "height": 48}, "width"), ({"width": 64, "height": 48}, "width"),
])
def test_a_size_out_of_bounds_is_refused_naming_its_field(body, field):
    assert field_of(lambda: upscales.output_size(body, SOURCE)) == field


def test_the_refining_pass_takes_its_defaults_and_bounds():
    assert upscales.refine_params(None, CARD) is None and upscales.refine_params(False, CARD) is None
    assert upscales.refine_params({}, CARD) == {"strength": 0.3, "steps": 20}
    assert upscales.refine_params(True, CARD) == {"strength": 0.3, "steps": 20}
    assert upscales.refine_params({"strength": 0.6, "steps": 4, "prompt": "sharper"}, CARD) == {
        "strength": 0.6, "steps": 4, "prompt": "sharper"}
    for value, field in [({"strength": 0.01}, "refine.strength"), ({"strength": 0.61}, "refine.strength"),
                         ({"steps": 0}, "refine.steps"), ({"steps": 151}, "refine.steps"),
                         ({"prompt": 5}, "refine.prompt"), ({"denoise": 1}, "refine"), ("yes", "refine")]:
        assert field_of(lambda: upscales.refine_params(value, CARD)) == field, value


def test_the_cost_is_a_token_a_megapixel_of_output_plus_the_refining_pass():
    assert upscales.upscale_cost(USER, {"width": 128, "height": 128, "refine": None}) == 1
    assert upscales.upscale_cost(USER, {"width": 1024, "height": 1024, "refine": None}) == 1
    assert upscales.upscale_cost(USER, {"width": 1025, "height": 1024, "refine": None}) == 2
    assert upscales.upscale_cost(USER, {"width": 4096, "height": 4096, "refine": None}) == 16
    refine = {"strength": 0.3, "steps": 25}  # ceil(7.5) = 8 steps at the output size
    assert upscales.upscale_cost(USER, {"width": 2048, "height": 2048, "refine": refine}) == (
        4 + task_cost(8, 2048, 2048, 1))


def test_an_upscale_counts_its_units_before_the_worker_does():
    assert upscale_steps({"refine": None}) == 1
    assert upscale_steps({"refine": {"steps": 25, "strength": 0.3}}) == 1 + 8
    assert effective_steps(1, None, None, {"refine": None}) == 1
    assert effective_steps(20, None, None) == 20  # (a generation's, as before)
    assert refine_steps_per_tile(4, 0.5) == 2 and refine_steps_per_tile(3, 0.05) == 1


def test_tiles_cover_the_picture_and_their_weights_blend():
    for length, tile, overlap in [(128, 64, 8), (1000, 512, 64), (64, 64, 0), (130, 64, 8)]:
        spans = tile_spans(length, tile, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(end - start == min(tile, length) for start, end in spans)
        assert all(a[1] - b[0] >= overlap for a, b in zip(spans, spans[1:]))
        total = np.zeros(length, dtype=np.float32)
        for (start, end), weight in zip(spans, ramps(spans)):
            total[start:end] += weight
        assert total.min() > 0  # (the blend divides by the sum: every pixel has a tile's weight)
        covered = np.zeros(length, dtype=int)
        for start, end in spans:
            covered[start:end] += 1
        assert np.allclose(total[covered <= 2], 1.0, atol=1e-5)  # two tiles' ramps are complementary


def test_the_refining_tiles_are_the_models_native_size_in_its_size_step():
    boxes = refine_tiles((128, 128), (64, 64), 8)
    assert len(boxes) == 9 and all((r - l, b - t) == (64, 64) for l, t, r, b in boxes)
    small = refine_tiles((100, 60), (512, 512), 8)  # smaller than native: one tile, in steps of 8
    assert small[0] == (0, 0, 96, 56) and all((r - l) % 8 == 0 and (b - t) % 8 == 0 for l, t, r, b in small)
    assert max(r for _, _, r, _ in small) == 100 and max(b for _, _, _, b in small) == 60
