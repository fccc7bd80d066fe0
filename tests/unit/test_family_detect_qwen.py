"""Qwen-Image is told from its files (services/generation/families.py): a diffusers folder
of QwenImagePipeline (its image-to-image and inpaint pipelines too) or of Qwen-Image-Edit
(variant "edit") and Edit Plus (variant "edit-plus"); a transformer-only .safetensors file
in diffusers' naming and in ComfyUI's (the same names under model.diffusion_model.), an
editing one by its name; its LoRAs in diffusers/peft, ComfyUI and kohya names. Its card
asks for real guidance and a negative prompt; the editing variants join the Edit mode."""
from __future__ import annotations

import json

import pytest

from services.generation import families
from tests.helpers import safetensors_stub

# A few tensors of Qwen-Image's transformer (QwenImageTransformer2DModel: 60 blocks).
QWEN_TRANSFORMER = {
    "img_in.weight": [3072, 64],
    "txt_norm.weight": [3584],
    "txt_in.weight": [3072, 3584],
    "time_text_embed.timestep_embedder.linear_1.weight": [3072, 256],
    "transformer_blocks.0.img_mod.1.weight": [18432, 3072],
    "transformer_blocks.0.attn.to_q.weight": [3072, 3072],
    "transformer_blocks.59.txt_mlp.net.2.weight": [3072, 12288],
    "norm_out.linear.weight": [6144, 3072],
    "proj_out.weight": [64, 3072],
}


def test_the_qwen_card_uses_true_guidance_a_negative_prompt_and_qwens_sizes():
    card = families.card("qwen")
    assert card.uses_guidance and card.uses_negative_prompt and card.guidance > 1
    assert (card.latent_channels, card.size_step, card.scheduler) == (16, 16, "flow_euler")
    assert (card.native_width, card.native_height) == (1328, 1328) and (1664, 928) in card.preset_sizes()
    assert card.inpainting == "standard" and not card.edits
    assert card.to_dict()["family_label"] == "Qwen-Image"


@pytest.mark.parametrize("variant", ["edit", "edit-plus"])
def test_the_qwen_edit_cards_edit_up_to_three_pictures_and_take_no_mask(variant):
    card = families.card("qwen", variant=variant)
    assert card.edits and card.max_references == 3 and card.inpainting is None
    assert card.variant == variant and (card.native_width, card.native_height) == (1024, 1024)
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in card.preset_sizes())


@pytest.mark.parametrize("pipeline, variant", [
    ("QwenImagePipeline", ""), ("QwenImageImg2ImgPipeline", ""), ("QwenImageInpaintPipeline", ""),
    ("QwenImageEditPipeline", "edit"), ("QwenImageEditPlusPipeline", "edit-plus"),
])
def test_a_qwen_diffusers_folder_is_qwen_with_its_edit_variant(tmp_path, pipeline, variant):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    assert families.detect_folder(tmp_path) == families.Detected("qwen", variant)


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model.", "diffusion_model."])
@pytest.mark.parametrize("name, variant", [
    ("qwen_image_bf16.safetensors", ""), ("qwen_image_edit_fp8.safetensors", "edit"),
    ("Qwen-Image-Edit-2509.safetensors", "edit-plus"), ("qwen_image_edit_2511_bf16.safetensors", "edit-plus"),
])
def test_a_qwen_transformer_file_is_qwen_and_its_name_tells_an_edit_model(tmp_path, prefix, name, variant):
    path = safetensors_stub(tmp_path / name, {prefix + k: v for k, v in QWEN_TRANSFORMER.items()})
    role, found = families.detect_file(path)
    assert role == "model"
    assert (found.family, found.variant, found.parts) == ("qwen", variant, "denoiser")


@pytest.mark.parametrize("keys", [
    # diffusers / peft (what QwenImagePipeline.save_lora_weights writes)
    ["transformer.transformer_blocks.0.img_mlp.net.2.lora_A.weight",
     "transformer.transformer_blocks.0.img_mlp.net.2.lora_B.weight"],
    # ComfyUI
    ["diffusion_model.transformer_blocks.3.txt_mod.1.lora_A.weight",
     "diffusion_model.transformer_blocks.3.txt_mod.1.lora_B.weight"],
    # kohya
    ["lora_unet_transformer_blocks_0_img_mod_1.lora_down.weight",
     "lora_unet_transformer_blocks_0_img_mod_1.lora_up.weight", "lora_unet_transformer_blocks_0_img_mod_1.alpha"],
    # attention alone: told from FLUX.1 and SD 3 by its depth (60 blocks)
    ["transformer.transformer_blocks.59.attn.to_q.lora_A.weight",
     "transformer.transformer_blocks.59.attn.to_q.lora_B.weight"],
])
def test_a_qwen_lora_is_qwen_in_the_formats_its_community_publishes(tmp_path, keys):
    path = safetensors_stub(tmp_path / "style.safetensors", {k: [4] if k.endswith("alpha") else [4, 3072]
                                                             for k in keys})
    assert families.detect_file(path) == ("lora", "qwen")


def test_a_shallow_attention_lora_stays_another_familys_and_metadata_names_qwen():
    shallow = {"transformer.transformer_blocks.3.attn.to_q.lora_A.weight": {"shape": [4, 3072]}}
    assert families.detect_lora_keys(shallow) == "sd3"
    assert families.detect_lora_keys({**shallow, "__metadata__": {"modelspec.architecture": "qwen-image/lora"}}) == "qwen"


def test_the_demo_qwen_models_are_qwen_and_the_edit_ones_edit():
    assert families.DEMO_MODELS["demo-qwen"] == families.DEMO_MODELS["demo-qwen-edit"] == "qwen"
    assert families.demo_variant("demo-qwen") == "" and families.demo_variant("demo-qwen-edit") == "edit"
    assert families.DEMO_MODELS["demo-qwen-edit-plus"] == "qwen"
    assert families.demo_variant("demo-qwen-edit-plus") == "edit-plus"
    assert families.DEMO_LORAS["demo-lora-qwen"] == "qwen"
