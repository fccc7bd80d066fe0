"""Dedicated inpainting models are told from their files (services/generation/families.py):
an SD UNet of 9 input channels is variant "inpainting", a FLUX.1 transformer of 384 input
channels (FLUX.1 Fill) is variant "fill", from a diffusers folder's configs and from a
single .safetensors file's header (the first layer's shape); their cards say
inpainting "dedicated", the plain ones "standard"."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from services.generation import families


def diffusers_folder(root: Path, pipeline: str, **configs: dict) -> Path:
    """A tiny diffusers folder: model_index.json and the named components' config.json."""
    root.mkdir()
    (root / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    for part, config in configs.items():
        (root / part).mkdir()
        (root / part / "config.json").write_text(json.dumps(config))
    return root


def safetensors_file(path: Path, shapes: dict[str, list[int]]) -> Path:
    """A .safetensors file with these tensors' header (the data is zeros, one byte each
    element of a 1-element shape is enough for the header to be read)."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        header[name] = {"dtype": "F16", "shape": shape, "data_offsets": [offset, offset + 2]}
        offset += 2
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\x00" * offset)
    return path


@pytest.mark.parametrize("pipeline, unet, family, variant, inpainting", [
    ("StableDiffusionPipeline", {"in_channels": 4, "cross_attention_dim": 768, "sample_size": 64},
     "sd1", "", "standard"),
    ("StableDiffusionInpaintPipeline", {"in_channels": 9, "cross_attention_dim": 768, "sample_size": 64},
     "sd1", "inpainting", "dedicated"),
    ("StableDiffusionInpaintPipeline", {"in_channels": 9, "cross_attention_dim": 1024, "sample_size": 64},
     "sd2", "inpainting", "dedicated"),
    ("StableDiffusionXLInpaintPipeline", {"in_channels": 9, "sample_size": 128}, "sdxl", "inpainting",
     "dedicated"),
    ("StableDiffusionXLPipeline", {"in_channels": 4, "sample_size": 128}, "sdxl", "", "standard"),
])
def test_a_unet_folder_of_nine_channels_is_an_inpainting_model(tmp_path, pipeline, unet, family, variant,
                                                              inpainting):
    folder = diffusers_folder(tmp_path / "model", pipeline, unet=unet)
    found = families.detect_folder(folder)
    assert (found.family, found.variant) == (family, variant)
    assert found.card().inpainting == inpainting
    assert found.card().to_dict()["inpainting"] == inpainting


@pytest.mark.parametrize("pipeline, transformer, variant, inpainting", [
    ("FluxFillPipeline", {"in_channels": 384, "guidance_embeds": True}, "fill", "dedicated"),
    ("FluxPipeline", {"in_channels": 64, "guidance_embeds": True}, "dev", "standard"),
    ("FluxPipeline", {"in_channels": 64, "guidance_embeds": False}, "schnell", "standard"),
])
def test_a_flux_transformer_of_384_channels_is_a_fill_model(tmp_path, pipeline, transformer, variant,
                                                            inpainting):
    folder = diffusers_folder(tmp_path / "model", pipeline, transformer=transformer)
    found = families.detect_folder(folder)
    assert (found.family, found.variant, found.card().inpainting) == ("flux", variant, inpainting)


SD1_KEYS = {"model.diffusion_model.time_embed.0.weight": [1280, 320],
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": [49408, 768]}
SDXL_KEYS = {"model.diffusion_model.time_embed.0.weight": [1280, 320],
             "conditioner.embedders.1.model.ln_final.weight": [1280]}
FLUX_KEYS = {"double_blocks.0.img_attn.norm.key_norm.scale": [128], "guidance_in.in_layer.weight": [3072, 256]}


@pytest.mark.parametrize("keys, first, channels, family, variant", [
    (SD1_KEYS, "model.diffusion_model.input_blocks.0.0.weight", 9, "sd1", "inpainting"),
    (SD1_KEYS, "model.diffusion_model.input_blocks.0.0.weight", 4, "sd1", ""),
    (SDXL_KEYS, "model.diffusion_model.input_blocks.0.0.weight", 9, "sdxl", "inpainting"),
    (SDXL_KEYS, "model.diffusion_model.input_blocks.0.0.weight", 4, "sdxl", ""),
])
def test_a_single_file_unet_is_told_by_its_first_conv(tmp_path, keys, first, channels, family, variant):
    path = safetensors_file(tmp_path / "model.safetensors",
                            {**keys, first: [320, channels, 3, 3]})
    role, found = families.detect_file(path)
    assert role == "model" and (found.family, found.variant) == (family, variant)
    assert found.card().inpainting == ("dedicated" if variant else "standard")


@pytest.mark.parametrize("first", ["img_in.weight", "model.diffusion_model.img_in.weight"])
@pytest.mark.parametrize("channels, variant", [(384, "fill"), (64, "dev")])
def test_a_single_file_flux_is_told_by_its_input_layer(tmp_path, first, channels, variant):
    keys = {(f"model.diffusion_model.{k}" if first.startswith("model.") else k): v for k, v in FLUX_KEYS.items()}
    path = safetensors_file(tmp_path / "flux.safetensors", {**keys, first: [3072, channels]})
    role, found = families.detect_file(path)
    assert role == "model" and (found.family, found.variant) == ("flux", variant)
    assert found.card().inpainting == ("dedicated" if variant == "fill" else "standard")


def test_a_diffusers_layout_fill_transformer_alone_is_told_too(tmp_path):
    path = safetensors_file(tmp_path / "fill.safetensors", {
        "single_transformer_blocks.0.attn.to_q.weight": [3072, 3072],
        "time_text_embed.guidance_embedder.linear_1.weight": [3072, 256],
        "x_embedder.weight": [3072, 384]})
    role, found = families.detect_file(path)
    assert (found.family, found.variant, found.parts) == ("flux", "fill", "denoiser")
