"""Upscaling (worker/upscalers.py): tiles cover the picture with blended overlaps, a tiled
upscale equals the untiled one away from the tile borders, no seam shows across them,
the built-in resamplers are one resize, and the progress total is tile_count's.

Tolerance: one level of 255. The tiles are the same convolutions on the same pixels; what
differs away from the borders is float summation order, which can round a value to the
neighbouring level."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image as PILImage

from services.generation import upscaler_files
from worker import upscalers
from worker.demo_upscaler import build_demo_upscaler

SIDE = 160  # input pixels a side; the demo model doubles them
TILE, OVERLAP = 64, 16


@pytest.fixture(scope="module")
def demo_esrgan(tmp_path_factory) -> dict:
    path = build_demo_upscaler(tmp_path_factory.mktemp("upscalers") / "esrgan-x2.safetensors")
    return {"id": "demo-esrgan-x2", "name": "Demo ESRGAN ×2", "scale": 2, "architecture": "ESRGAN",
            "builtin": False, "path": str(path)}


@pytest.fixture(scope="module")
def textured() -> PILImage.Image:
    """Gradients, a wave and some grain: neighbouring pixels differ everywhere a little."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    grain = np.random.default_rng(7).normal(0, 6, (SIDE, SIDE, 3))
    pixels = np.stack([40 + xx, 40 + yy, 128 + 40 * np.sin(xx / 11.0 + yy / 13.0)], -1) + grain
    return PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def untiled(demo_esrgan, textured) -> np.ndarray:
    return np.asarray(upscalers.upscale(textured, demo_esrgan, (2 * SIDE, 2 * SIDE), tile=4096)).astype(float)


def shared_strips(spans: list[tuple[int, int]], scale: int) -> list[tuple[int, int]]:
    """[start, end) in output pixels of each strip two neighbouring tiles share."""
    return [(spans[i][0] * scale, spans[i - 1][1] * scale) for i in range(1, len(spans))]


def column_steps(picture: np.ndarray) -> np.ndarray:
    """steps[x]: the mean difference between columns x and x + 1 (over rows and channels)."""
    return np.abs(np.diff(picture, axis=1)).mean(axis=(0, 2))


def seam_and_elsewhere(picture: np.ndarray, strips: list[tuple[int, int]]) -> tuple[float, float]:
    """The largest column step across (and within) the shared strips, and the largest one
    elsewhere, away from the picture's own edges. Odd x only: the ×2 model makes pixel
    pairs, so x and x + 1 straddle two input pixels exactly when x is odd."""
    steps = column_steps(picture)
    near = {x for start, end in strips for x in range(start - 1, end)}
    edge = 24
    across = [steps[x] for x in sorted(near) if x % 2 == 1]
    elsewhere = [steps[x] for x in range(edge, len(steps) - edge) if x % 2 == 1 and x not in near]
    return max(across), max(elsewhere)


def test_tiles_cover_the_picture_share_the_overlap_and_their_weights_sum_to_one():
    for length, tile, overlap in [(160, 64, 16), (1024, 512, 32), (513, 512, 32), (100, 512, 32),
                                  (2048, 512, 32), (777, 96, 24), (4096, 512, 128)]:
        spans = upscalers.spans(length, tile, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == length
        assert all(end - start <= tile for start, end in spans)
        for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
            assert a0 < b0 and a1 - b0 >= overlap  # neighbours share at least the overlap
        for first, third in zip(spans, spans[2:]):
            assert first[1] <= third[0]  # never three tiles on one pixel
        weights = np.zeros(length)
        for (start, end), ramp in zip(spans, upscalers.ramps(spans)):
            weights[start:end] += ramp
        assert np.allclose(weights, 1.0)
    # As few tiles as cover it, each made as small as that allows: 1024 px is three of 363, not
    # four of 512 (the overlap is computed twice, not whole tiles).
    assert upscalers.spans(1024, 512, 32) == [(0, 363), (330, 693), (661, 1024)]


def test_a_tiled_upscale_equals_the_untiled_one_away_from_the_tile_borders(demo_esrgan, textured, untiled):
    tiled = np.asarray(upscalers.upscale(textured, demo_esrgan, (2 * SIDE, 2 * SIDE), tile=TILE,
                                         overlap=OVERLAP)).astype(float)
    strips = shared_strips(upscalers.spans(SIDE, TILE, OVERLAP), 2)
    assert len(strips) == 2
    # Away from the shared strips by the overlap (in output pixels), on both axes.
    margin = 2 * OVERLAP
    far = np.ones(2 * SIDE, dtype=bool)
    for start, end in strips:
        far[max(0, start - margin):end + margin] = False
    away = tiled[far][:, far]
    assert away.size > 0.1 * tiled.size
    assert np.abs(away - untiled[far][:, far]).max() <= 1
    # Near the borders too the blend keeps close to the untiled result (no hard edges).
    assert np.abs(tiled - untiled).max() <= 4


def test_across_a_tile_border_neighbouring_pixels_differ_no_more_than_elsewhere(demo_esrgan, textured, untiled):
    spans = upscalers.spans(SIDE, TILE, OVERLAP)
    strips = shared_strips(spans, 2)
    for picture in (np.asarray(upscalers.upscale(textured, demo_esrgan, (2 * SIDE, 2 * SIDE), tile=TILE,
                                                 overlap=OVERLAP)).astype(float),):
        across, elsewhere = seam_and_elsewhere(picture, strips)
        assert across <= elsewhere, (across, elsewhere)
        # Rows as well as columns (the picture turned a quarter).
        across_rows, elsewhere_rows = seam_and_elsewhere(np.transpose(picture, (1, 0, 2)), strips)
        assert across_rows <= elsewhere_rows, (across_rows, elsewhere_rows)

    # The measure sees a seam: tiles cut without overlap, or a step of 4 levels, fail it.
    hard = np.asarray(upscalers.upscale(textured, demo_esrgan, (2 * SIDE, 2 * SIDE), tile=TILE,
                                        overlap=0)).astype(float)
    hard_strips = [(a * 2, a * 2 + 1) for a, _ in upscalers.spans(SIDE, TILE, 0)[1:]]
    across, elsewhere = seam_and_elsewhere(hard, hard_strips)
    assert across > elsewhere
    stepped = untiled.copy()
    stepped[:, strips[0][0]:] += 4
    across, elsewhere = seam_and_elsewhere(stepped, strips)
    assert across > elsewhere


def test_the_built_in_resamplers_resize_once_to_the_exact_size(textured):
    for name, how in (("lanczos", PILImage.Resampling.LANCZOS), ("nearest", PILImage.Resampling.NEAREST)):
        calls = []
        result = upscalers.upscale(textured.convert("RGBA"), {"id": name, "builtin": True}, (333, 250),
                                   progress=lambda done, total: calls.append((done, total)))
        assert result.mode == "RGB" and result.size == (333, 250)
        assert result.tobytes() == textured.resize((333, 250), how).tobytes()
        assert calls == [(1, 1)]


def test_a_scale_above_the_models_runs_it_again_and_lands_on_the_exact_size(demo_esrgan, textured):
    """×4 with a ×2 model: two passes; the progress total is tile_count's and counts every tile."""
    small = textured.crop((0, 0, 50, 40))
    calls = []
    result = upscalers.upscale(small, demo_esrgan, (197, 157), tile=48, overlap=8,
                               progress=lambda done, total: calls.append((done, total)))
    assert result.size == (197, 157) and result.mode == "RGB"
    total = upscalers.tile_count((50, 40), 197 / 50, 48, 8, model_scale=2)
    # Pass one: 50×40 in 2×1 tiles; pass two: 100×80 brought to the 99×79 it needs, in 3×2 tiles.
    assert total == 2 * 1 + 3 * 2
    assert calls == [(n, total) for n in range(1, total + 1)]
    assert upscalers.tile_count((50, 40), 2, 48, 8) == 2  # one pass of a ×2 model
    # The model made it: not what Lanczos makes of it.
    lanczos = np.asarray(small.resize((197, 157), PILImage.Resampling.LANCZOS)).astype(int)
    assert np.abs(np.asarray(result).astype(int) - lanczos).mean() > 1


def test_the_demo_upscaler_is_an_esrgan_x2_and_built_the_same_every_time(tmp_path, demo_esrgan):
    again = build_demo_upscaler(tmp_path / "again.safetensors")
    assert again.read_bytes() == open(demo_esrgan["path"], "rb").read()
    assert upscaler_files.describe(again) == {"scale": 2, "architecture": "ESRGAN"}


def test_a_pth_whose_pickle_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps({"model.0.weight": Payload()}, protocol=2))
    with pytest.raises(upscaler_files.UnsafeFile, match="evil.pth was refused: its pickle asks to run code"):
        upscaler_files.read_state_dict(evil)
    assert not marker.exists()
    assert upscaler_files.describe(evil)["error"].startswith("evil.pth was refused")
    assert not marker.exists()


def test_the_upscale_benchmark_measures_and_reports(demo_esrgan, tmp_path):
    """bench/bench_upscale.py's measuring half on a small picture, so it cannot rot between the
    (slow) real runs; the subprocess around it is one call."""
    from bench.bench_upscale import Measurement, report, run_child

    tiled = run_child(demo_esrgan["path"], 96, 48, 8, tmp_path / "tiled.npy")
    untiled = run_child(demo_esrgan["path"], 96, 1 << 20, 0, tmp_path / "untiled.npy")
    for figures in (tiled, untiled):
        assert figures["size"] == [192, 192] and 0 < figures["seconds"] < 60
        assert figures["rss_peak"] >= figures["rss_before"] > 0
    assert np.abs(np.load(tmp_path / "tiled.npy").astype(int) - np.load(tmp_path / "untiled.npy")).max() <= 2
    m = Measurement(side=96, tile=48, overlap=8, tiled_s=[tiled["seconds"]], untiled_s=[untiled["seconds"]],
                    tiled_growth=[100 << 20], untiled_growth=[400 << 20], tiled_peak=[tiled["rss_peak"]],
                    untiled_peak=[untiled["rss_peak"]], order=["A", "B"], max_difference=1)
    assert m.rss_ratio == 0.25 and m.passed(target_time=float("inf")) and not m.passed(target_rss=0.1)
    text = report(m)
    assert "peak RSS growth ratio tiled / untiled: 0.25  (target ≤ 0.5)  PASS" in text
    assert "time ratio tiled / untiled" in text and "(target ≤ 1.3)" in text


def test_out_of_gpu_memory_tries_again_in_tiles_half_the_size(demo_esrgan, textured, monkeypatch):
    import torch

    real_pass, tiles = upscalers._run_pass, []

    def short_of_memory(picture, model, device, tile, overlap, tick):
        tiles.append(tile)
        if tile > 48:
            tick()  # one tile went through before the memory ran out
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_pass(picture, model, device, tile, overlap, tick)

    monkeypatch.setattr(upscalers, "_run_pass", short_of_memory)
    calls = []
    result = upscalers.upscale(textured, demo_esrgan, (2 * SIDE, 2 * SIDE), tile=128, overlap=16,
                               progress=lambda done, total: calls.append((done, total)))
    assert result.size == (2 * SIDE, 2 * SIDE) and tiles == [128, 64, 32]
    assert [done for done, _ in calls] == list(range(1, len(calls) + 1))
    # Two tiles went through before the retries, then every tile of 32 (overlap at most a quarter).
    total = 2 + upscalers.tile_count((SIDE, SIDE), 2, 32, 8)
    assert calls[-1] == (total, total)
