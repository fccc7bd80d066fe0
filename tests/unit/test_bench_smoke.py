"""The preview benchmark's measuring code, end to end on the tiny demo model,
so bench/bench_previews.py cannot rot between the (slow) real runs."""

import base64
import io
import math

import pytest
from diffusers import StableDiffusionPipeline
from PIL import Image

from bench.bench_previews import Measurement, main, measure, report
from worker.demo_model import build_demo_model

PREFIX = "data:image/jpeg;base64,"


def test_measure_on_the_demo_model(tmp_path):
    folder = build_demo_model(tmp_path / "daydream-demo")
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)

    m = measure(pipe, size=64, steps=2, repeats=1)

    assert isinstance(m, Measurement)
    assert (m.size, m.steps, m.repeats) == (64, 2, 1)
    assert m.order == ["A", "B"]
    assert len(m.plain_step_s) == len(m.preview_step_s) == len(m.preview_cost_s) == 1
    for value in (m.step_s, m.step_with_previews_s, m.preview_per_step_s):
        assert math.isfinite(value) and 0 < value < 60
    # The preview is timed inside the run with previews, so it is part of it.
    assert m.preview_per_step_s < m.step_with_previews_s
    assert m.previews == 2  # one preview every step
    assert math.isfinite(m.overhead) and m.overhead > 0
    assert m.passed(target_percent=float("inf"))
    assert not m.passed(target_percent=0.0)

    # The last preview is a real JPEG of the 64x64 image's 8x8 latents, enlarged 2x.
    assert m.last_preview.startswith(PREFIX)
    picture = Image.open(io.BytesIO(base64.b64decode(m.last_preview[len(PREFIX):])))
    assert picture.format == "JPEG" and picture.size == (16, 16)

    text = report(m, extra={"parameters": "tiny"})
    assert "overhead" in text and ("PASS" in text or "FAIL" in text)
    assert "64x64" in text and "parameters" in text


def test_preview_measurement_uses_medians():
    m = Measurement(size=64, steps=2, repeats=3, device="cpu", dtype="float32",
                    plain_step_s=[1.0, 3.0, 2.0], preview_step_s=[1.1, 2.0, 2.2],
                    preview_cost_s=[0.01, 0.04, 0.02])
    assert m.step_s == 2.0 and m.step_with_previews_s == 2.0
    assert m.overhead == 0.02 / 2.0
    assert m.passed() and not m.passed(target_percent=1.0)


def test_preview_bench_cli_rejects_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--steps", "0"])  # rejected before any model is built
    assert exc.value.code == 2
    assert "--steps" in capsys.readouterr().err
