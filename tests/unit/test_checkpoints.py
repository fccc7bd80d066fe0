"""tests/checkpoints.py: single-file checkpoints in the original layouts, made from
the tiny demo models, load back with diffusers' own single-file loader (offline,
with the demo folder as `config=`) to exactly the same weights, and our header
sniffing names their family."""

import shutil

import pytest
import torch

from services.generation.families import detect_checkpoint_keys, safetensors_header
from tests.checkpoints import (
    flux_transformer_state_dict,
    save_flux_transformer,
    save_sd1_checkpoint,
    save_sd3_transformer,
    save_sdxl_checkpoint,
)
from worker.demo_model import build_demo_model


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-models")
    built = {}

    def get(family: str):
        if family not in built:
            built[family] = build_demo_model(root / family, family)
        return built[family]

    return get


def assert_same_weights(original, loaded, what: str):
    expected = original.state_dict()
    got = loaded.state_dict()
    assert set(got) == set(expected), f"{what}: tensor names differ: {sorted(set(got) ^ set(expected))}"
    for name, tensor in expected.items():
        other = got[name]
        assert other.device.type != "meta", f"{what}: {name} was not loaded"
        assert other.dtype == tensor.dtype and other.shape == tensor.shape, f"{what}: {name}"
        assert torch.equal(other, tensor), f"{what}: {name} differs"


def header_keys(path):
    return {k: v for k, v in safetensors_header(path).items() if k != "__metadata__"}


def test_sd1_full_checkpoint_round_trip(demo_dir, tmp_path):
    from diffusers import StableDiffusionPipeline

    folder = demo_dir("sd1")
    pipe = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    path = save_sd1_checkpoint(pipe, tmp_path / "sd1.safetensors")

    keys = header_keys(path)
    assert all(k.startswith(("model.diffusion_model.", "first_stage_model.", "cond_stage_model.transformer."))
               for k in keys)
    assert "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight" in keys
    assert keys["first_stage_model.decoder.mid.attn_1.q.weight"]["shape"][-2:] == [1, 1]  # conv, as in LDM
    detected = detect_checkpoint_keys(safetensors_header(path))
    assert (detected.family, detected.parts) == ("sd1", "full")

    loaded = StableDiffusionPipeline.from_single_file(str(path), config=str(folder), local_files_only=True)
    for name in ("unet", "vae", "text_encoder"):
        assert_same_weights(getattr(pipe, name), getattr(loaded, name), name)
    assert type(loaded.scheduler) is type(pipe.scheduler)
    assert dict(loaded.scheduler.config) == dict(pipe.scheduler.config)


def test_sdxl_full_checkpoint_round_trip(demo_dir, tmp_path):
    from diffusers import StableDiffusionXLPipeline

    # (The demo's second text encoder is wider than the first, as OpenCLIP-G is than CLIP-L:
    # diffusers' loader tells them apart by width.)
    folder = demo_dir("sdxl")
    pipe = StableDiffusionXLPipeline.from_pretrained(folder, local_files_only=True)
    path = save_sdxl_checkpoint(pipe, tmp_path / "sdxl.safetensors")

    keys = header_keys(path)
    prefix = "conditioner.embedders.1.model."
    assert prefix + "transformer.resblocks.0.attn.in_proj_weight" in keys  # fused q, k, v
    assert prefix + "positional_embedding" in keys and prefix + "text_projection" in keys
    width = pipe.text_encoder_2.config.hidden_size
    assert keys[prefix + "text_projection"]["shape"] == [width, pipe.text_encoder_2.config.projection_dim]
    assert "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight" in keys
    assert "model.diffusion_model.label_emb.0.0.weight" in keys
    detected = detect_checkpoint_keys(safetensors_header(path))
    assert (detected.family, detected.parts) == ("sdxl", "full")

    loaded = StableDiffusionXLPipeline.from_single_file(str(path), config=str(folder), local_files_only=True)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        assert_same_weights(getattr(pipe, name), getattr(loaded, name), name)
    assert dict(loaded.scheduler.config) == dict(pipe.scheduler.config)


def test_sd3_transformer_round_trip(demo_dir, tmp_path):
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline

    folder = demo_dir("sd3")
    transformer = SD3Transformer2DModel.from_pretrained(folder, subfolder="transformer", local_files_only=True)
    path = save_sd3_transformer(transformer, tmp_path / "sd3.safetensors")

    keys = header_keys(path)
    assert all(k.startswith("model.diffusion_model.") for k in keys)
    last = len(transformer.transformer_blocks) - 1
    assert f"model.diffusion_model.joint_blocks.{last}.context_block.attn.proj.weight" not in keys  # pre-only
    detected = detect_checkpoint_keys(safetensors_header(path))
    assert (detected.family, detected.parts) == ("sd3", "denoiser")

    loaded = SD3Transformer2DModel.from_single_file(str(path), config=str(folder), subfolder="transformer",
                                                    local_files_only=True)
    assert_same_weights(transformer, loaded, "transformer")
    pipe = StableDiffusion3Pipeline.from_pretrained(folder, transformer=loaded, local_files_only=True)
    assert pipe.transformer is loaded


class _TorchFluxSplit:
    """`torch` for diffusers' FLUX converter, which splits the single blocks'
    linear1 at FLUX.1's own width (inner_dim = 3072 is written into
    convert_flux_transformer_checkpoint_to_diffusers), so no narrower model
    loads through it. This splits at the file's width instead (linear1 is q, k,
    v and the 4x MLP: 7 x inner_dim); all else is torch."""

    FLUX1 = (3072, 3072, 3072, 12288)

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def split(tensor, split_size, dim=0):
        if isinstance(split_size, (list, tuple)) and tuple(split_size) == _TorchFluxSplit.FLUX1:
            total = tensor.shape[dim]
            inner = total // 7
            split_size = (inner, inner, inner, total - 3 * inner)
        return torch.split(tensor, split_size, dim=dim)


@pytest.fixture
def flux_any_width(monkeypatch):
    from diffusers.loaders import single_file_utils

    monkeypatch.setattr(single_file_utils, "torch", _TorchFluxSplit())


@pytest.mark.parametrize("guidance", [False, True], ids=["schnell", "dev"])
def test_flux_transformer_round_trip(demo_dir, tmp_path, flux_any_width, guidance):
    from diffusers import FluxPipeline, FluxTransformer2DModel

    folder = demo_dir("flux")
    transformer = FluxTransformer2DModel.from_pretrained(folder, subfolder="transformer", local_files_only=True)
    config_folder = folder
    if transformer.config.guidance_embeds != guidance:
        # the other variant: the same model with (or without) FLUX.1 [dev]'s guidance embedder
        config = dict(transformer.config)
        config["guidance_embeds"] = guidance
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            transformer = FluxTransformer2DModel.from_config(config)
        config_folder = tmp_path / "flux-config"
        transformer.save_pretrained(config_folder / "transformer")
    path = save_flux_transformer(transformer, tmp_path / "flux.safetensors")

    keys = header_keys(path)
    assert "double_blocks.0.img_attn.qkv.weight" in keys and "single_blocks.0.linear1.weight" in keys
    assert ("guidance_in.in_layer.weight" in keys) == guidance
    assert not any(k.startswith(("model.", "transformer_blocks.")) for k in keys)
    # final_layer's adaLN is (shift, scale) in BFL's layout, (scale, shift) in diffusers'
    original = flux_transformer_state_dict(transformer)["final_layer.adaLN_modulation.1.bias"]
    half = original.shape[0] // 2
    assert torch.equal(original[:half], transformer.norm_out.linear.bias.detach()[half:])
    detected = detect_checkpoint_keys(safetensors_header(path))
    assert (detected.family, detected.variant, detected.parts) == ("flux", "dev" if guidance else "schnell",
                                                                  "denoiser")

    loaded = FluxTransformer2DModel.from_single_file(str(path), config=str(config_folder), subfolder="transformer",
                                                     local_files_only=True)
    assert_same_weights(transformer, loaded, "transformer")
    if config_folder == folder:
        pipe = FluxPipeline.from_pretrained(folder, transformer=loaded, local_files_only=True)
        assert pipe.transformer is loaded


# --- the service's loader (worker/pipelines/load.py) on these files ----------------------

def _render(pipe, family):
    import numpy as np

    size = 64
    out = pipe("a lighthouse", num_inference_steps=2, width=size, height=size, output_type="np",
               generator=torch.Generator("cpu").manual_seed(5), guidance_scale=0.0 if family == "flux" else 5.0)
    return np.asarray(out.images[0])


@pytest.mark.parametrize("family", ["sd1", "sdxl", "sd3", "flux"])
def test_the_worker_loads_a_single_file_of_each_family_offline_with_its_local_config(
        demo_dir, tmp_path, flux_any_width, family):
    import numpy as np

    from diffusers import DiffusionPipeline, FluxTransformer2DModel, SD3Transformer2DModel

    from worker.pipelines.info import family_of
    from worker.pipelines.load import load_pipeline

    folder = demo_dir(family)
    models = tmp_path / "models"
    shutil.copytree(folder, models / "configs" / family)  # where the README says configs go
    original = DiffusionPipeline.from_pretrained(folder, local_files_only=True)
    target = models / "checkpoints" / f"{family}.safetensors"
    if family == "sd1":
        save_sd1_checkpoint(original, target)
    elif family == "sdxl":
        save_sdxl_checkpoint(original, target)
    elif family == "sd3":
        save_sd3_transformer(SD3Transformer2DModel.from_pretrained(folder, subfolder="transformer"), target)
    else:
        save_flux_transformer(FluxTransformer2DModel.from_pretrained(folder, subfolder="transformer"), target)

    pipe = load_pipeline(f"checkpoints/{family}.safetensors", models, device="cpu")
    assert family_of(pipe) == family
    # The same weights: the same picture, up to float noise (the file's weights pass
    # through diffusers' conversion, which may reorder sums).
    assert np.allclose(_render(pipe, family), _render(original.to("cpu"), family), atol=1e-5)


def test_a_denoiser_only_file_without_a_config_folder_says_where_one_goes(demo_dir, tmp_path):
    from diffusers import SD3Transformer2DModel

    from worker.pipelines.errors import ModelLoadError
    from worker.pipelines.load import load_pipeline

    models = tmp_path / "models"
    transformer = SD3Transformer2DModel.from_pretrained(demo_dir("sd3"), subfolder="transformer")
    save_sd3_transformer(transformer, models / "sd35.safetensors")
    with pytest.raises(ModelLoadError) as caught:
        load_pipeline("sd35.safetensors", models, device="cpu")
    message = str(caught.value)
    assert "holds only the Stable Diffusion 3 / 3.5 transformer" in message
    assert str(models / "configs" / "sd3") in message


def test_a_lora_given_as_the_model_is_refused_with_where_it_belongs(tmp_path):
    from worker.demo_model import build_demo_lora
    from worker.pipelines.errors import ModelLoadError
    from worker.pipelines.load import load_pipeline

    models = tmp_path / "models"
    build_demo_lora(models / "style.safetensors", "sd1", tmp_path / "base")
    with pytest.raises(ModelLoadError, match="is a LoRA .*loras"):
        load_pipeline("style.safetensors", models, device="cpu")
