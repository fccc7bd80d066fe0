"""DAYDREAM_VRAM: the memory modes of worker/pipelines/memory.py on the CPU (offload itself needs
a GPU: there `low` also moves each part to the GPU only while it runs)."""
import numpy as np
import pytest
import torch

from worker.pipelines.errors import ModelLoadError
from worker.pipelines.info import memory_mode
from worker.pipelines.load import load_pipeline
from worker.pipelines.memory import resolve_device


def render_demo(pipe):
    return np.asarray(pipe("a lighthouse", num_inference_steps=2, width=64, height=64, output_type="np",
                           generator=torch.Generator("cpu").manual_seed(3)).images[0])


def test_low_memory_decodes_in_tiles_and_gives_the_same_picture(tmp_path):
    high = load_pipeline("demo", tmp_path, device="cpu", vram="high")
    low = load_pipeline("demo", tmp_path, device="cpu", vram="low")
    assert (memory_mode(high), memory_mode(low)) == ("high", "low")
    assert low.vae.use_tiling and low.vae.use_slicing and not high.vae.use_tiling
    assert np.allclose(render_demo(low), render_demo(high), atol=1e-5)


def test_auto_on_the_cpu_keeps_everything_in_place(tmp_path):
    assert memory_mode(load_pipeline("demo", tmp_path, device="cpu", vram="auto")) == "high"


def test_an_unknown_memory_mode_says_which_there_are(tmp_path):
    with pytest.raises(ModelLoadError, match="use auto, high or low"):
        load_pipeline("demo", tmp_path, device="cpu", vram="tiny")


def test_the_cpu_runs_float32_for_every_family():
    for family in ("sd1", "sdxl", "sd3", "flux"):
        assert resolve_device("cpu", family) == ("cpu", torch.float32)


def test_running_out_of_gpu_memory_fails_the_task_with_advice():
    from worker.jobs import readable_error

    message = readable_error(torch.OutOfMemoryError("CUDA out of memory"))
    assert "ran out of memory" in message and "smaller size or fewer samples" in message
    assert "DAYDREAM_VRAM=low" in message and "refunded" in message
