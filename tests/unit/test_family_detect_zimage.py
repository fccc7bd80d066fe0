"""Z-Image is told from its files (services/generation/families.py): a diffusers folder of
ZImagePipeline (or its image-to-image and inpaint pipelines), a transformer-only
.safetensors file in the original (ComfyUI) and in diffusers' tensor naming, and its
LoRAs in diffusers, ComfyUI and kohya names. Turbo and base have the same tensors: the
name tells them apart, and their cards differ (Turbo: 8 steps, no guidance, no negative
prompt; base: classifier-free guidance with a negative prompt). And the tiny demo-zimage:
its tokenizer made in code (byte-level BPE, Qwen3's chat template) and its size."""
from __future__ import annotations

import json

import pytest

from services.generation import families
from tests.helpers import safetensors_stub

# A few tensors of Z-Image Turbo's transformer as z_image_turbo_bf16.safetensors names
# them (ComfyUI: fused qkv, x_embedder, final_layer) and as diffusers' does.
ZIMAGE_ORIGINAL = {
    "cap_embedder.0.weight": [2560],
    "cap_embedder.1.weight": [3840, 2560],
    "context_refiner.0.attention.qkv.weight": [11520, 3840],
    "noise_refiner.0.adaLN_modulation.0.weight": [15360, 256],
    "layers.0.attention.qkv.weight": [11520, 3840],
    "layers.0.feed_forward.w1.weight": [10240, 3840],
    "x_embedder.weight": [3840, 64],
    "final_layer.linear.weight": [64, 3840],
    "t_embedder.mlp.0.weight": [1024, 256],
}
ZIMAGE_DIFFUSERS = {
    "cap_embedder.1.weight": [3840, 2560],
    "context_refiner.0.attention.to_q.weight": [3840, 3840],
    "noise_refiner.0.attention.to_k.weight": [3840, 3840],
    "layers.0.attention.to_out.0.weight": [3840, 3840],
    "all_x_embedder.2-1.weight": [3840, 64],
    "all_final_layer.2-1.linear.weight": [64, 3840],
    "t_embedder.mlp.0.weight": [1024, 256],
}


def test_turbo_is_the_default_card_and_base_asks_for_guidance_and_a_negative_prompt():
    turbo = families.card("zimage")
    assert turbo.variant == "turbo" and (turbo.steps, turbo.guidance) == (8, 0.0)
    assert not turbo.uses_guidance and not turbo.uses_negative_prompt
    assert (turbo.latent_channels, turbo.size_step, turbo.scheduler) == (16, 16, "flow_euler")
    assert turbo.inpainting == "standard" and not turbo.edits and turbo.to_dict()["family_label"] == "Z-Image"
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in turbo.preset_sizes())
    base = families.card("zimage", variant="base")
    assert base.uses_guidance and base.uses_negative_prompt and base.guidance > 1 and base.steps > 8
    assert families.card("zimage", variant="turbo", demo=True).start_size() == (256, 256)


@pytest.mark.parametrize("pipeline", ["ZImagePipeline", "ZImageImg2ImgPipeline", "ZImageInpaintPipeline"])
@pytest.mark.parametrize("name, variant", [("Z-Image-Turbo", "turbo"), ("Z-Image", "base"),
                                           ("z-image-base-finetune", "base"), ("my-portraits", "turbo")])
def test_a_diffusers_folder_is_zimage_and_its_name_says_turbo_or_base(tmp_path, pipeline, name, variant):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    assert families.detect_folder(folder) == families.Detected("zimage", variant)


@pytest.mark.parametrize("tensors", [ZIMAGE_ORIGINAL, ZIMAGE_DIFFUSERS], ids=["original", "diffusers"])
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_a_transformer_file_is_a_zimage_denoiser(tmp_path, tensors, prefix):
    path = safetensors_stub(tmp_path / "z_image_turbo_bf16.safetensors",
                            {prefix + k: v for k, v in tensors.items()})
    assert families.detect_file(path) == ("model", families.Detected("zimage", "turbo", parts="denoiser"))
    base = safetensors_stub(tmp_path / "z_image_base_bf16.safetensors", tensors)
    assert families.detect_file(base)[1].variant == "base"


@pytest.mark.parametrize("lora", [
    {"transformer.layers.0.attention.to_q.lora_A.weight": [16, 3840],  # diffusers / peft
     "transformer.layers.0.attention.to_q.lora_B.weight": [3840, 16]},
    {"diffusion_model.layers.5.attention.to_out.0.lora_A.weight": [16, 3840],  # ComfyUI, ai-toolkit
     "diffusion_model.layers.5.feed_forward.w1.lora_B.weight": [10240, 16]},
    {"diffusion_model.noise_refiner.0.attention.qkv.lora_down.weight": [16, 3840],  # the fused original
     "diffusion_model.noise_refiner.0.attention.qkv.alpha": []},
    {"lora_unet_layers_0_attention_to_q.lora_down.weight": [16, 3840],  # kohya / musubi-tuner
     "lora_unet_layers_0_attention_to_q.lora_up.weight": [3840, 16],
     "lora_unet_layers_0_attention_to_q.alpha": []},
], ids=["diffusers", "comfyui", "fused", "kohya"])
def test_its_loras_are_told_in_the_names_the_community_uses(tmp_path, lora):
    path = safetensors_stub(tmp_path / "style.safetensors", lora)
    assert families.detect_file(path) == ("lora", "zimage")


def test_a_lora_whose_metadata_names_zimage_is_zimage_and_others_are_not_taken_for_it():
    header = {"__metadata__": {"modelspec.architecture": "Z-Image-Turbo/lora"},
              "some.weight.lora_A.weight": {"shape": [4, 4]}}
    assert families.detect_lora_keys(header) == "zimage"
    # FLUX.1's and SD 3's transformer LoRAs (diffusers names) stay theirs.
    flux = {"transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": {"shape": [4, 3072]}}
    sd3 = {"transformer.transformer_blocks.0.attn.to_q.lora_A.weight": {"shape": [4, 1536]}}
    assert (families.detect_lora_keys(flux), families.detect_lora_keys(sd3)) == ("flux", "sd3")


def test_the_demo_model_and_its_lora_are_zimage_turbo():
    assert families.DEMO_MODELS["demo-zimage"] == "zimage"
    assert families.demo_variant("demo-zimage") == "turbo"
    assert families.DEMO_LORAS["demo-lora-zimage"] == "zimage"


# --- the demo model (worker/demo_zimage.py) -----------------------------------------------

def test_the_demo_tokenizer_is_byte_level_bpe_with_qwen3s_chat_template():
    from worker.demo_zimage import qwen_tokenizer

    tokenizer = qwen_tokenizer()
    # As ZImagePipeline._encode_prompt asks for it.
    text = tokenizer.apply_chat_template([{"role": "user", "content": "夜の猫 🐱, café"}], tokenize=False,
                                         add_generation_prompt=True, enable_thinking=True)
    assert text == "<|im_start|>user\n夜の猫 🐱, café<|im_end|>\n<|im_start|>assistant\n"
    ids = tokenizer(text, padding="max_length", max_length=64, truncation=True).input_ids
    assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>") and len(ids) == 64
    assert ids[-1] == tokenizer.pad_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert tokenizer.decode(ids, skip_special_tokens=True) == "user\n夜の猫 🐱, café\nassistant\n"
    assert len(tokenizer(" the")["input_ids"]) == 1  # merged: a BPE, not only bytes


def test_the_demo_model_is_small_and_renders_a_long_unicode_prompt(tmp_path):
    import numpy as np
    import torch

    from worker.demo_model import build_demo_model
    from worker.pipelines.load import load_pipeline

    folder = build_demo_model(tmp_path / "daydream-demo-zimage", "zimage")
    assert families.detect_folder(folder) == families.Detected("zimage", "turbo")
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 5_000_000
    pipe = load_pipeline("demo-zimage", tmp_path, device="cpu")
    prompt = "夜の猫 🐱, café, " + "a lighthouse at dusk " * 40  # past the 512 tokens: truncated
    image = pipe(prompt, num_inference_steps=2, height=64, width=96, guidance_scale=0.0,
                 generator=torch.Generator("cpu").manual_seed(1), output_type="np").images[0]
    assert image.shape == (64, 96, 3) and np.isfinite(image).all() and image.std() > 0.01
