"""The built-in demo model and pipeline loading (worker/demo_model.py,
worker/pipelines/), with real diffusers code on the CPU. The model is built
once for the module: it takes a few seconds."""

import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from worker.demo_model import DEMO_VERSION, MARKER, build_demo_model
from services.generation.schedulers import UNET_SCHEDULERS
from worker.pipelines.cache import PipelineCache, img2img_from
from worker.pipelines.errors import ModelLoadError
from worker.pipelines.load import load_pipeline
from worker.schedulers import apply_scheduler


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("models")
    build_demo_model(path / "daydream-demo")
    return path


@pytest.fixture(scope="module")
def pipe(models_dir):
    return load_pipeline("demo", models_dir, device="cpu")


@pytest.fixture(autouse=True)
def default_scheduler(pipe):
    apply_scheduler(pipe, "euler")  # tests that swap it do not leak into others


def generate(pipe, seed, prompt="a lighthouse at dusk", steps=2, **kwargs):
    return pipe(
        prompt,
        num_inference_steps=steps,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(seed),
        **kwargs,
    ).images[0]


def snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*")}


def test_build_makes_a_diffusers_folder(models_dir):
    folder = models_dir / "daydream-demo"
    assert json.loads((folder / MARKER).read_text())["version"] == DEMO_VERSION
    for name in ["model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                 "tokenizer/vocab.json", "tokenizer/merges.txt", "scheduler/scheduler_config.json"]:
        assert (folder / name).is_file(), name
    scheduler = json.loads((folder / "scheduler/scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "EulerDiscreteScheduler"
    assert (scheduler["beta_start"], scheduler["beta_end"], scheduler["beta_schedule"]) == (0.00085, 0.012, "scaled_linear")
    assert scheduler["num_train_timesteps"] == 1000
    # nothing left behind beside it
    assert sorted(p.name for p in models_dir.iterdir()) == ["daydream-demo"]


def test_building_twice_is_a_no_op(models_dir):
    folder = models_dir / "daydream-demo"
    before = snapshot(folder)
    assert build_demo_model(folder) == folder
    assert snapshot(folder) == before
    assert sorted(p.name for p in models_dir.iterdir()) == ["daydream-demo"]


def test_outdated_folder_is_rebuilt_with_the_same_weights(tmp_path, models_dir):
    folder = tmp_path / "daydream-demo"
    folder.mkdir()
    (folder / MARKER).write_text(json.dumps({"version": DEMO_VERSION - 1}))
    (folder / "stale.txt").write_text("from an older release")

    build_demo_model(folder)

    assert not (folder / "stale.txt").exists()
    assert json.loads((folder / MARKER).read_text())["version"] == DEMO_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daydream-demo"]
    # torch.manual_seed(0): weights are the same on every build
    for weights in ["unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"]:
        assert (folder / weights).read_bytes() == (models_dir / "daydream-demo" / weights).read_bytes()


def test_racing_builds_leave_one_complete_model(tmp_path):
    folder = tmp_path / "daydream-demo"
    errors = []

    def build():
        try:
            build_demo_model(folder)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert json.loads((folder / MARKER).read_text())["version"] == DEMO_VERSION
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daydream-demo"]


def test_building_does_not_reset_the_callers_random_state(tmp_path):
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    build_demo_model(tmp_path / "daydream-demo")
    assert torch.equal(torch.rand(3), expected)


def test_text_to_image_at_64(pipe):
    assert pipe.safety_checker is None
    assert pipe.device.type == "cpu" and pipe.dtype == torch.float32
    assert pipe.vae_scale_factor == 8  # latents are 1/8 of the image, as in real models
    image = generate(pipe, seed=1)
    assert isinstance(image, Image.Image)
    assert image.size == (64, 64) and image.mode == "RGB"
    assert np.asarray(image).std() > 0  # not a blank (NaN-decoded) image


def test_unicode_prompt_and_negative_prompt(pipe):
    image = generate(pipe, seed=1, prompt="夜の猫 🐱, café", negative_prompt="ぼやけた")
    assert image.size == (64, 64)


def test_same_seed_same_pixels_different_seed_different(pipe):
    first = np.asarray(generate(pipe, seed=7))
    again = np.asarray(generate(pipe, seed=7))
    other = np.asarray(generate(pipe, seed=8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("name", UNET_SCHEDULERS)
def test_every_scheduler_runs(pipe, name):
    scheduler = apply_scheduler(pipe, name)
    assert pipe.scheduler is scheduler
    out = pipe(
        "a lighthouse", num_inference_steps=2, height=64, width=64,
        generator=torch.Generator("cpu").manual_seed(3), output_type="np",
    ).images
    assert out.shape == (1, 64, 64, 3)
    assert np.isfinite(out).all()


def test_schedulers_are_made_once_and_keep_the_model_schedule(pipe):
    ddim = apply_scheduler(pipe, "ddim")
    apply_scheduler(pipe, "dpmpp_2m")
    assert apply_scheduler(pipe, "ddim") is ddim  # cached: switching back is free
    assert ddim.config.beta_schedule == "scaled_linear" and ddim.config.beta_end == 0.012
    assert ddim.config.clip_sample is False and ddim.config.set_alpha_to_one is False
    with pytest.raises(ValueError, match="Unknown scheduler"):
        apply_scheduler(pipe, "no-such-sampler")


def test_pipeline_cache_loads_once(models_dir):
    cache = PipelineCache(models_dir, device="cpu")
    first = cache.get("demo")
    assert cache.get("demo") is first
    assert cache.loads == 1 and cache.loaded_spec == "demo"
    # a model given as a folder under the models path is another spec: the old one is let go
    second = cache.get("daydream-demo")
    assert second is not first
    assert cache.loads == 2 and cache.loaded_spec == "daydream-demo"
    # an absolute folder works too
    assert cache.get(str(models_dir / "daydream-demo")) is not second


def test_unknown_hub_id_is_a_model_load_error(models_dir):
    spec = "daydream-tests/no-such-model"
    with pytest.raises(ModelLoadError) as info:
        load_pipeline(spec, models_dir, device="cpu")
    assert repr(spec) in str(info.value)
    assert "DAYDREAM_MODEL" in str(info.value)


def test_garbage_checkpoint_is_a_model_load_error(tmp_path):
    (tmp_path / "broken.safetensors").write_bytes(b"\x00not a checkpoint" * 100)
    for spec in ["broken.safetensors", str(tmp_path / "broken.safetensors")]:
        with pytest.raises(ModelLoadError) as info:
            load_pipeline(spec, tmp_path, device="cpu")
        assert repr(spec) in str(info.value)


def test_missing_file_and_non_model_folder_are_model_load_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    for spec, hint in [("empty", "model_index.json"), ("nope/model.ckpt", "no such file")]:
        with pytest.raises(ModelLoadError, match=hint) as info:
            load_pipeline(spec, tmp_path, device="cpu")
        assert repr(spec) in str(info.value)


def test_img2img_shares_components_and_runs(pipe, models_dir):
    cache = PipelineCache(models_dir, device="cpu")
    img2img = cache.img2img_from(pipe)
    assert img2img is img2img_from(pipe)  # made once
    assert img2img.unet is pipe.unet and img2img.vae is pipe.vae and img2img.text_encoder is pipe.text_encoder

    init = generate(pipe, seed=5)
    out = img2img(
        "a lighthouse at dawn", image=init, strength=0.5, num_inference_steps=4,
        generator=torch.Generator("cpu").manual_seed(5),
    ).images[0]
    assert out.size == (64, 64)

    # it follows the text-to-image pipeline's scheduler
    apply_scheduler(pipe, "ddim")
    assert img2img_from(pipe).scheduler is pipe.scheduler
