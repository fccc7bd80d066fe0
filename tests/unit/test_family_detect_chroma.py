"""Chroma is told from its files (services/generation/families.py): a diffusers folder of
ChromaPipeline (or its image-to-image and inpaint pipelines), a transformer-only
.safetensors file in the original (ComfyUI) and in diffusers' tensor naming (its
distilled_guidance_layer: FLUX.1's blocks otherwise), and its LoRAs by their metadata,
their tensors or their name. Its card asks for guidance and a negative prompt."""
from __future__ import annotations

import json

import pytest

from services.generation import families
from tests.helpers import safetensors_stub

# A few tensors of a Chroma transformer, as Chroma1-HD.safetensors names them (original
# layout) and as diffusers' ChromaTransformer2DModel does.
CHROMA_ORIGINAL = {
    "distilled_guidance_layer.in_proj.weight": [5120, 64],
    "distilled_guidance_layer.layers.0.in_layer.weight": [5120, 5120],
    "double_blocks.0.img_attn.norm.key_norm.scale": [128],
    "double_blocks.0.img_attn.qkv.weight": [9216, 3072],
    "single_blocks.0.linear1.weight": [21504, 3072],
    "img_in.weight": [3072, 64],
    "txt_in.weight": [3072, 4096],
}
CHROMA_DIFFUSERS = {
    "distilled_guidance_layer.in_proj.weight": [5120, 64],
    "transformer_blocks.0.attn.to_q.weight": [3072, 3072],
    "single_transformer_blocks.0.proj_mlp.weight": [12288, 3072],
    "x_embedder.weight": [3072, 64],
    "context_embedder.weight": [3072, 4096],
}


def test_the_chroma_card_uses_guidance_and_a_negative_prompt():
    card = families.card("chroma")
    assert card.uses_guidance and card.uses_negative_prompt and card.guidance > 1
    assert (card.latent_channels, card.size_step, card.scheduler) == (16, 16, "flow_euler")
    assert card.inpainting == "standard" and not card.edits
    assert card.to_dict()["family_label"] == "Chroma"


@pytest.mark.parametrize("pipeline", ["ChromaPipeline", "ChromaImg2ImgPipeline", "ChromaInpaintPipeline"])
def test_a_chroma_diffusers_folder_is_chroma(tmp_path, pipeline):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    assert families.detect_folder(tmp_path) == families.Detected("chroma")


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model.", "diffusion_model."])
def test_a_chroma_transformer_file_is_chroma_not_flux(tmp_path, prefix):
    path = safetensors_stub(tmp_path / "Chroma1-HD.safetensors", {prefix + k: v for k, v in CHROMA_ORIGINAL.items()})
    role, found = families.detect_file(path)
    assert role == "model" and (found.family, found.parts) == ("chroma", "denoiser")


def test_a_chroma_transformer_in_diffusers_naming_is_chroma(tmp_path):
    path = safetensors_stub(tmp_path / "transformer.safetensors", CHROMA_DIFFUSERS)
    assert families.detect_file(path) == ("model", families.Detected("chroma", parts="denoiser"))


def test_a_flux1_file_is_still_flux(tmp_path):
    flux = {k: v for k, v in CHROMA_ORIGINAL.items() if not k.startswith("distilled_guidance_layer.")}
    flux["guidance_in.in_layer.weight"] = [3072, 256]
    found = families.detect_checkpoint_keys({k: {"shape": v} for k, v in flux.items()})
    assert (found.family, found.variant) == ("flux", "dev")


@pytest.mark.parametrize("name, header, family", [
    # kohya's sd-scripts: modelspec.architecture "chroma" (its Chroma LoRAs have FLUX.1's names)
    ("style.safetensors", {"__metadata__": {"modelspec.architecture": "chroma/lora"},
                           "lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": [4, 3072]}, "chroma"),
    # a LoRA that adapts the distilled_guidance_layer (ComfyUI names)
    ("style.safetensors", {"diffusion_model.distilled_guidance_layer.layers.0.in_layer.lora_A.weight": [4, 5120],
                           "diffusion_model.single_blocks.0.linear1.lora_A.weight": [4, 3072]}, "chroma"),
    # attention alone in diffusers' names: FLUX.1's, unless its name says Chroma
    ("chroma-style.safetensors", {"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": [4, 3072]},
     "chroma"),
    ("flux-style.safetensors", {"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": [4, 3072]},
     "flux"),
])
def test_chroma_loras_are_told_by_metadata_tensors_or_name(tmp_path, name, header, family):
    meta = header.pop("__metadata__", None)
    path = safetensors_stub(tmp_path / name, header)
    if meta is not None:  # (safetensors_stub writes no metadata: put it in the header)
        raw = json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])
        raw["__metadata__"] = meta
        body = path.read_bytes()[8 + int.from_bytes(path.read_bytes()[:8], "little"):]
        encoded = json.dumps(raw).encode()
        path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + body)
    assert families.detect_file(path) == ("lora", family)


def test_the_demo_chroma_model_and_its_lora_are_listed():
    assert families.DEMO_MODELS["demo-chroma"] == "chroma"
    assert families.DEMO_LORAS["demo-lora-chroma"] == "chroma"
    assert families.demo_variant("demo-chroma") == ""
