"""The tiny demo models of the newer families (SDXL, SD3, FLUX.1 schnell) and the
demo LoRAs (worker/demo_model.py, worker/demo_families.py), with real diffusers
code on the CPU. Each family's model and LoRA are built once for the module."""

import inspect
import json

import numpy as np
import pytest
import torch
from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image, DiffusionPipeline

from services.generation.families import detect_file, detect_folder
from worker.demo_model import DEMO_VERSIONS, MARKER, build_demo_lora, build_demo_model

FAMILIES = ["sdxl", "sd3", "flux"]
PIPELINES = {"sdxl": "StableDiffusionXLPipeline", "sd3": "StableDiffusion3Pipeline", "flux": "FluxPipeline"}
IMG2IMG = {"sdxl": "StableDiffusionXLImg2ImgPipeline", "sd3": "StableDiffusion3Img2ImgPipeline",
           "flux": "FluxImg2ImgPipeline"}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-models")


@pytest.fixture(scope="module", params=FAMILIES)
def demo(request, root):
    """(family, model folder, LoRA file, pipeline loaded from the folder)."""
    family = request.param
    folder = build_demo_model(root / f"demo-{family}", family)
    lora = build_demo_lora(root / f"demo-{family}-lora.safetensors", family, folder)
    pipe = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    return family, folder, lora, pipe


def render(pipe, seed=1, prompt="a lighthouse at dusk", size=128, steps=2, **kwargs):
    return pipe(prompt, num_inference_steps=steps, height=size, width=size,
                generator=torch.Generator("cpu").manual_seed(seed), output_type="np", **kwargs).images[0]


def test_folder_loads_offline_and_is_its_family(demo):
    family, folder, _, pipe = demo
    assert type(pipe).__name__ == PIPELINES[family]
    assert json.loads((folder / MARKER).read_text()) == {
        "name": "daydream-demo", "version": DEMO_VERSIONS[family], "family": family}
    auto = AutoPipelineForText2Image.from_pretrained(folder, local_files_only=True)
    assert type(auto).__name__ == PIPELINES[family]
    detected = detect_folder(folder)
    assert detected.family == family
    assert detected.variant == ("schnell" if family == "flux" else "")
    assert pipe.vae_scale_factor == 8
    # transformers 5 would save the load arguments of a tokenizer as its settings
    for config in folder.glob("tokenizer*/tokenizer_config.json"):
        settings = json.loads(config.read_text())
        assert "local_files_only" not in settings and "is_local" not in settings, config
    # a few megabytes, not a real model
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 10_000_000
    assert sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(".")) == []


def test_text_to_image_at_128(demo):
    _, _, _, pipe = demo
    image = pipe("a lighthouse", num_inference_steps=2, height=128, width=128,
                 generator=torch.Generator("cpu").manual_seed(1)).images[0]
    assert image.size == (128, 128) and image.mode == "RGB"
    pixels = np.asarray(image)
    assert pixels.std() > 0  # not a blank (NaN-decoded) picture


def test_same_seed_same_pixels_other_seed_other_pixels(demo):
    _, _, _, pipe = demo
    first = render(pipe, seed=7)
    assert np.isfinite(first).all()
    assert np.array_equal(first, render(pipe, seed=7))
    assert not np.array_equal(first, render(pipe, seed=8))


def test_img2img_from_the_pipeline(demo):
    family, _, _, pipe = demo
    img2img = AutoPipelineForImage2Image.from_pipe(pipe)
    assert type(img2img).__name__ == IMG2IMG[family]
    init = pipe("a lighthouse", num_inference_steps=2, height=128, width=128,
                generator=torch.Generator("cpu").manual_seed(2)).images[0]
    extra = {}
    if "height" in inspect.signature(img2img.__call__).parameters:
        extra = dict(height=128, width=128)  # FLUX's img2img would resize to 1024 px otherwise
    out = img2img("a lighthouse at dawn", image=init, strength=0.6, num_inference_steps=4,
                  generator=torch.Generator("cpu").manual_seed(2), **extra).images[0]
    assert out.size == (128, 128)


def test_unicode_and_long_prompts_are_truncated_and_padded(demo):
    family, _, _, pipe = demo
    prompt = "夜の猫 🐱, café, crème brûlée, " + "a lighthouse at dusk " * 80  # past 77 and 256 tokens
    lengths = {"sdxl": [None], "sd3": [None, 256], "flux": [None, 256, 512]}[family]
    for length in lengths:
        extra = {} if length is None else {"max_sequence_length": length}
        image = render(pipe, prompt=prompt, **extra)
        assert image.shape == (128, 128, 3) and np.isfinite(image).all()


def test_t5_tokenizer_encodes_non_ascii(demo):
    family, _, _, pipe = demo
    if family == "sdxl":
        pytest.skip("SDXL has no T5 encoder")
    tokenizer = pipe.tokenizer_3 if family == "sd3" else pipe.tokenizer_2
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.model_max_length >= 512
    ids = tokenizer("夜の猫 🐱, café", padding="max_length", max_length=256, truncation=True).input_ids
    assert len(ids) == 256
    assert 1 in ids and ids[-1] == 0  # ends with </s>, then padding
    # ASCII and Latin-1 letters are in the vocabulary, other scripts are <unk>
    assert tokenizer.unk_token_id not in tokenizer("a café, 42!").input_ids
    assert tokenizer.unk_token_id in tokenizer("夜の猫").input_ids
    assert max(ids) < pipe.components["text_encoder_3" if family == "sd3" else "text_encoder_2"].config.vocab_size


def test_lora_is_detected_loads_changes_the_pixels_and_comes_off(demo):
    family, _, lora, pipe = demo
    assert detect_file(lora) == ("lora", family)
    plain = render(pipe)
    pipe.load_lora_weights(lora, adapter_name="x")
    try:
        with_lora = render(pipe)
        assert np.isfinite(with_lora).all()
        assert np.abs(with_lora - plain).mean() > 0.02  # plainly visible: about 5/255 or more
        pipe.disable_lora()
        assert np.array_equal(render(pipe), plain)
        pipe.enable_lora()
        pipe.set_adapters(["x"], adapter_weights=[1.0])
        assert np.array_equal(render(pipe), with_lora)
    finally:
        pipe.unload_lora_weights()
    assert np.array_equal(render(pipe), plain)


def test_builds_are_deterministic(demo, tmp_path):
    family, folder, lora, _ = demo
    again = build_demo_model(tmp_path / "model", family)
    denoiser = "unet/diffusion_pytorch_model.safetensors" if family == "sdxl" else \
        "transformer/diffusion_pytorch_model.safetensors"
    for weights in [denoiser, "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"]:
        assert (again / weights).read_bytes() == (folder / weights).read_bytes(), weights
    lora_again = build_demo_lora(tmp_path / "lora.safetensors", family, again)
    assert lora_again.read_bytes() == lora.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lora.safetensors", "model"]


def test_a_folder_of_another_family_is_rebuilt(tmp_path):
    folder = build_demo_model(tmp_path / "demo", "sd3")
    assert build_demo_model(folder, "flux") == folder
    assert json.loads((folder / MARKER).read_text())["family"] == "flux"
    assert detect_folder(folder).family == "flux"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]
    with pytest.raises(ValueError, match="unknown demo family"):
        build_demo_model(tmp_path / "other", "sd9")


def test_sd1_lora_is_detected(tmp_path):
    lora = build_demo_lora(tmp_path / "sd1-lora.safetensors", "sd1")
    assert detect_file(lora) == ("lora", "sd1")
    assert (tmp_path / "daydream-demo-sd1" / MARKER).is_file()
