"""The estimate's pure parts (services/generation/estimates.py): the per-model fit of
seconds per step = a + b × pixels, the wait over workers and the ETA before step one."""
from __future__ import annotations

import pytest

from services.generation.estimates import (ONE_SIZE_OVERHEAD, fit_step_time, predict_step_time,
                                           step_zero_eta, wait_seconds)


def test_a_fit_over_two_sizes_keeps_the_fixed_overhead():
    # 0.05 s of overhead per step plus 0.2 s per megapixel, measured at 512² and 1024².
    true = lambda px: 0.05 + 0.2e-6 * px  # noqa: E731
    fit = fit_step_time([(512 * 512, true(512 * 512)), (1024 * 1024, true(1024 * 1024))])
    assert fit == pytest.approx((0.05, 0.2e-6))
    # A small size never measured: the overhead dominates, unlike a per-megapixel scale.
    small = 256 * 256
    assert predict_step_time(fit, small) == pytest.approx(true(small))
    per_mpx_guess = true(1024 * 1024) / 1.048576 * small / 1e6
    assert predict_step_time(fit, small) > 3 * per_mpx_guess


def test_one_size_splits_its_time_and_scales_less_than_linearly():
    a, b = fit_step_time([(512 * 512, 0.4)])
    assert a == pytest.approx(ONE_SIZE_OVERHEAD * 0.4)
    assert predict_step_time((a, b), 512 * 512) == pytest.approx(0.4)
    assert 0.4 < predict_step_time((a, b), 1024 * 1024) < 4 * 0.4
    assert 0.1 < predict_step_time((a, b), 256 * 256) < 0.4


def test_noisy_fits_never_go_negative():
    assert fit_step_time([]) is None
    assert predict_step_time(None, 100) is None
    # Larger measured faster (noise): a flat estimate, not a negative slope.
    a, b = fit_step_time([(64 * 64, 0.02), (256 * 256, 0.018)])
    assert b == 0 and a == pytest.approx(0.019)
    # A line through below the origin: no overhead, all per pixel.
    a, b = fit_step_time([(100, 0.001), (200, 0.003)])
    assert a == 0 and b > 0
    assert predict_step_time((0.0, 0.0), 10) > 0


def test_the_wait_is_the_work_ahead_dealt_over_the_workers():
    assert wait_seconds([21.0], [], 1) == 21.0  # one running task: its time left
    assert wait_seconds([21.0], [5.0, 4.0], 1) == 30.0  # one worker: the sum
    assert wait_seconds([21.0], [], 2) == 0.0  # a worker is free
    assert wait_seconds([10.0, 20.0], [6.0], 2) == 16.0
    assert wait_seconds([], [], 1) == 0.0
    assert wait_seconds([3.0], [], 0) is None  # no worker: no estimate


def test_before_step_one_the_eta_is_the_run_estimate():
    assert step_zero_eta(None, 20, 0.0) is None  # nothing measured: "estimating…"
    assert step_zero_eta(58.0, 20, 0.0) == 58.0
    # Counting down by at most the first step's share while that step is under way.
    assert step_zero_eta(40.0, 20, 1.0) == 39.0
    assert step_zero_eta(40.0, 20, 30.0) == 38.0


def test_a_slow_outlier_does_not_stay_in_the_average():
    from services.generation.estimates import moving_average

    assert moving_average(None, 0.4) == 0.4
    assert moving_average(0.4, 0.1) == 0.1  # under half: the outlier was the old one
    assert moving_average(0.1, 0.2) == pytest.approx(0.3 * 0.2 + 0.7 * 0.1)


def test_a_hires_fix_runs_its_second_pass_at_the_final_size(monkeypatch):
    from types import SimpleNamespace

    from services.generation import estimates

    per_step = {(64, 64): 0.5, (128, 128): 2.0}  # seconds a step by size (what Redis would hold)
    monkeypatch.setattr(estimates, "seconds_per_step", lambda model, w, h, images=1: per_step.get((w, h)))
    task = SimpleNamespace(model="demo", width=64, height=64, steps=4, samples=2, init_image_id=None,
                           strength=None, hires=None)
    assert estimates.run_seconds(task) == 0.5 * 4 * 2
    # Second pass: 10 steps at denoising 0.5 run 5, at 128² (2 s a step).
    task.hires = {"width": 128, "height": 128, "steps": 10, "denoising": 0.5, "upscaler": "latent"}
    assert estimates.run_seconds(task) == 0.5 * 4 * 2 + 2.0 * 5 * 2
    per_step.pop((128, 128))  # the final size never measured: no estimate rather than a short one
    assert estimates.run_seconds(task) is None
