"""The worker's ETA (worker/progress.py Progress) on a fake clock: the server's estimate
before a step is measured, then measured time per step × steps left, warm-up left out."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from worker import progress as worker_progress


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(worker_progress.time, "monotonic", fake)
    monkeypatch.setattr(worker_progress.events, "emit_task", lambda room, payload: None)
    monkeypatch.setattr(worker_progress.queue, "set_progress", lambda *a, **k: None)
    return fake


def progress_of(estimate_s, steps=10, samples=2):
    task = SimpleNamespace(id="t", user=SimpleNamespace(room="r"), effective_steps=steps, samples=samples)
    return worker_progress.Progress(task, hz=1000, preview_hz=None, estimate_s=estimate_s)


def test_at_step_zero_the_eta_is_the_server_estimate(clock):
    assert progress_of(58.0).eta() == 58.0
    assert progress_of(None).eta() is None  # "estimating…", never "about 1 s"


def test_measured_steps_take_over_without_the_warm_up(clock):
    progress = progress_of(40.0, steps=10, samples=2)
    progress.begin_call(0, 1)  # one image a call
    clock.now += 5.0  # a slow first step (warm-up)
    progress.step(1, 10)
    assert progress.eta() == pytest.approx(40.0 / 20 * 19)  # one step tells nothing yet
    for n in range(2, 11):
        clock.now += 0.5
        progress.step(n, 10)
    assert progress.seconds_per_step() == pytest.approx(0.5)
    assert progress.eta() == pytest.approx(0.5 * 10)  # the second sample's 10 steps
    clock.now += 1.0  # decoding and saving the first image
    progress.image_ready([])
    progress.begin_call(1, 1)
    clock.now += 0.5
    progress.step(1, 10)
    # 11 s so far, less the first step's 4.5 s of warm-up, over 11 steps (decoding included)
    assert progress.seconds_per_step() == pytest.approx((11.0 - 4.5) / 11)


def test_a_call_of_several_images_counts_each_images_steps(clock):
    progress = progress_of(None, steps=10, samples=4)
    progress.begin_call(0, 4)  # all four samples in one call
    clock.now += 3.0  # warm-up
    progress.step(1, 10)
    assert progress.steps_done == 4 and progress.total() == 40
    for n in range(2, 6):
        clock.now += 0.8  # a step of the call: 0.2 s an image
        progress.step(n, 10)
    assert progress.steps_done == 20
    assert progress.seconds_per_step() == pytest.approx(0.2)
    assert progress.eta() == pytest.approx(0.2 * 20)  # the call's 5 steps left


def test_a_lone_first_step_is_not_extrapolated(clock):
    """Without a server estimate (a model's first task), the first step carries the warm-up
    of a first call (a fresh worker, a model just loaded): 8 steps at 6 s would say 42 s
    for a task that runs in 2.4 s. It says nothing until a second step is measured."""
    progress = progress_of(None, steps=8, samples=1)
    progress.begin_call(0, 1)
    clock.now += 6.0  # the first step, warm-up included
    progress.step(1, 8)
    assert progress.eta() is None  # "estimating…", not 7 × 6 s
    clock.now += 0.3
    progress.step(2, 8)
    assert progress.eta() == pytest.approx(0.3 * 6)


def test_one_step_calls_use_their_quickest_first_step(clock):
    progress = progress_of(None, steps=1, samples=3)  # e.g. a turbo model at 1 step
    progress.begin_call(0, 1)
    clock.now += 4.0  # warm-up
    progress.step(1, 1)
    assert progress.eta() is None
    progress.begin_call(1, 1)
    clock.now += 0.5
    progress.step(1, 1)
    assert progress.eta() == pytest.approx(0.5)  # one image left, at 0.5 s
