"""GGUF denoiser files read without torch (services/generation/gguf_files.py and
families.detect_file): the family from the tensor names, the quantization from the
weight matrices' types, the size (FLUX.1, Z-Image, Qwen-Image, Chroma and FLUX.2 klein
files in the names the files people share use); a damaged file says why."""
from collections import Counter

import numpy as np
import pytest

from services.generation import families, gguf_files
from tests.helpers import write_gguf


def flux_tensors(guidance: bool = False) -> dict:
    """A FLUX.1 transformer's names in diffusers' layout (shapes of a tiny one)."""
    rng = np.random.default_rng(0)
    names = {"x_embedder.weight": (32, 64), "x_embedder.bias": (32,),
             "transformer_blocks.0.attn.to_q.weight": (32, 32),
             "single_transformer_blocks.0.proj_out.weight": (32, 64),
             "single_transformer_blocks.0.norm.linear.weight": (96, 32),
             "time_text_embed.timestep_embedder.linear_1.weight": (32, 256),
             "proj_out.weight": (64, 30)}  # (30: not a multiple of the block: F16)
    if guidance:
        names["time_text_embed.guidance_embedder.linear_1.weight"] = (32, 256)
    return {k: rng.standard_normal(shape).astype(np.float32) for k, shape in names.items()}


def test_a_q8_flux_file_is_a_flux_denoiser_with_its_quant_and_size(tmp_path):
    path = tmp_path / "flux-schnell-Q8_0.gguf"
    types = write_gguf(path, flux_tensors())
    assert types["Q8_0"] == 5 and types["F16"] == 1
    header = gguf_files.read_header(path)
    assert header.quant == "Q8_0" and header.architecture == "flux"
    assert header.keys["x_embedder.weight"]["shape"] == [32, 64]  # (numpy order, as safetensors)
    role, found = families.detect_file(path)
    assert role == "model"
    assert (found.family, found.variant, found.parts) == ("flux", "schnell", "denoiser")
    assert found.quant == "Q8_0" and found.size_bytes == path.stat().st_size


def test_the_most_common_weight_type_names_the_file(tmp_path):
    path = tmp_path / "flux-dev.gguf"
    write_gguf(path, flux_tensors(guidance=True), quant="Q4_0")  # (one F16 matrix among them)
    found = families.detect_file(path)[1]
    assert found.variant == "dev" and found.quant == "Q4_0"
    assert gguf_files.quant_of(Counter({"Q4_K": 5, "Q6_K": 2, "F16": 5})) == "Q4_K"


def test_original_bfl_names_are_told_too(tmp_path):
    path = tmp_path / "flux1-dev-Q8_0.gguf"
    rng = np.random.default_rng(1)
    write_gguf(path, {"double_blocks.0.img_attn.norm.key_norm.scale": rng.standard_normal(32),
                      "double_blocks.0.img_attn.qkv.weight": rng.standard_normal((96, 32)),
                      "guidance_in.in_layer.weight": rng.standard_normal((32, 256))})
    assert families.detect_file(path)[1].family == "flux"


# The tensor names of the GGUF files people share of each family (city96's, QuantStack's,
# unsloth's: the original checkpoints' names, ComfyUI's prefix dropped), shapes of a tiny one.
ORIGINAL_NAMES = {
    "zimage": {"x_embedder.weight": (32, 64), "cap_embedder.1.weight": (32, 32),
               "noise_refiner.0.attention.qkv.weight": (96, 32), "context_refiner.0.attention.qkv.weight": (96, 32),
               "layers.0.attention.qkv.weight": (96, 32), "layers.0.attention.k_norm.weight": (16,),
               "layers.0.feed_forward.w1.weight": (64, 32), "final_layer.linear.weight": (64, 32)},
    "qwen": {"img_in.weight": (32, 64), "txt_norm.weight": (32,), "txt_in.weight": (32, 32),
             "transformer_blocks.0.attn.to_q.weight": (32, 32), "transformer_blocks.0.img_mod.1.weight": (192, 32),
             "transformer_blocks.0.txt_mlp.net.2.weight": (32, 128), "norm_out.linear.weight": (64, 32)},
    "chroma": {"img_in.weight": (32, 64), "distilled_guidance_layer.in_proj.weight": (32, 64),
               "distilled_guidance_layer.layers.0.in_layer.weight": (32, 32),
               "double_blocks.0.img_attn.qkv.weight": (96, 32), "double_blocks.0.img_attn.norm.key_norm.scale": (16,),
               "single_blocks.0.linear1.weight": (224, 32), "final_layer.linear.weight": (64, 32)},
    "flux2": {"img_in.weight": (32, 128), "double_stream_modulation_img.lin.weight": (192, 32),
              "single_stream_modulation.lin.weight": (96, 32), "double_blocks.0.img_attn.qkv.weight": (96, 32),
              "double_blocks.0.img_attn.norm.key_norm.scale": (16,), "single_blocks.0.linear1.weight": (288, 32),
              "time_in.in_layer.weight": (32, 256), "final_layer.adaLN_modulation.1.weight": (64, 32)},
}


@pytest.mark.parametrize("name, family, variant", [
    ("z_image_turbo-Q8_0.gguf", "zimage", "turbo"),
    ("qwen-image-Q8_0.gguf", "qwen", ""),
    ("Qwen-Image-Edit-2509-Q8_0.gguf", "qwen", "edit-plus"),  # (the same tensors: its name says it edits)
    ("chroma-unlocked-v50-Q8_0.gguf", "chroma", ""),
    ("flux-2-klein-4b-Q8_0.gguf", "flux2", "klein"),
])
def test_each_familys_original_names_tell_its_family(tmp_path, name, family, variant):
    rng = np.random.default_rng(2)
    path = tmp_path / name
    write_gguf(path, {k: rng.standard_normal(shape) for k, shape in ORIGINAL_NAMES[family].items()})
    role, found = families.detect_file(path)
    assert role == "model"
    assert (found.family, found.variant, found.parts, found.quant) == (family, variant, "denoiser", "Q8_0")
    assert found.size_bytes == path.stat().st_size


@pytest.mark.parametrize("content, why", [
    (b"", "does not start with GGUF"),
    (b"PK\x03\x04 a zip", "does not start with GGUF"),
    (b"GGUF\x03\x00\x00\x00" + b"\xff" * 12, "not a readable GGUF file"),
])
def test_a_damaged_file_says_why(tmp_path, content, why):
    path = tmp_path / "broken.gguf"
    path.write_bytes(content)
    with pytest.raises(families.NotSafetensors, match=why):
        families.detect_file(path)


def test_a_file_cut_short_says_why(tmp_path):
    whole = tmp_path / "whole.gguf"
    write_gguf(whole, flux_tensors())
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole.read_bytes()[:200])
    with pytest.raises(families.NotSafetensors, match="cut.gguf"):
        families.detect_file(cut)
