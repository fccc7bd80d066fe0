"""FLUX.2 is told from its files (services/generation/families.py): a diffusers folder of
Flux2KleinPipeline (klein, step-distilled or base by model_index.json's is_distilled),
its inpaint pipeline, or Flux2Pipeline (dev); a transformer-only .safetensors file in
BFL's (ComfyUI) and in diffusers' tensor naming, never taken for FLUX.1 though it shares
FLUX.1's double-block names; and its LoRAs in diffusers', ai-toolkit's and kohya's names,
whose single blocks are FLUX.1's but for the width of their first projection. And a
transformer file in BFL's names (bare, or with ComfyUI's prefix) loads with
configs/flux2 and paints what the diffusers folder does; LoRAs in ai-toolkit's and kohya's
names load through the pipeline (diffusers converts them) and act."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import torch

from services.generation import families
from tests.helpers import safetensors_stub

# A few tensors of FLUX.2 klein 4B's transformer as BFL's file names them (its double
# blocks share FLUX.1's names; the shared modulations and the 9x-wide single-block
# projection are FLUX.2's), and as diffusers' Flux2Transformer2DModel does.
KLEIN_ORIGINAL = {
    "double_stream_modulation_img.lin.weight": [18432, 3072],
    "double_stream_modulation_txt.lin.weight": [18432, 3072],
    "single_stream_modulation.lin.weight": [9216, 3072],
    "double_blocks.0.img_attn.norm.key_norm.scale": [128],
    "double_blocks.0.img_attn.qkv.weight": [9216, 3072],
    "single_blocks.0.linear1.weight": [27648, 3072],
    "img_in.weight": [3072, 128],
    "txt_in.weight": [3072, 7680],
    "time_in.in_layer.weight": [3072, 256],
}
KLEIN_DIFFUSERS = {
    "double_stream_modulation_img.linear.weight": [18432, 3072],
    "single_stream_modulation.linear.weight": [9216, 3072],
    "transformer_blocks.0.attn.to_q.weight": [3072, 3072],
    "single_transformer_blocks.0.attn.to_qkv_mlp_proj.weight": [27648, 3072],
    "x_embedder.weight": [3072, 128],
    "context_embedder.weight": [3072, 7680],
    "time_guidance_embed.timestep_embedder.linear_1.weight": [3072, 256],
}


def test_the_flux2_card_is_klein_with_32_latent_channels_and_optional_edits():
    card = families.card("flux2")
    assert (card.label, card.variant, card.steps, card.uses_guidance, card.uses_negative_prompt) == (
        "FLUX.2", "klein", 4, False, False)
    assert (card.latent_channels, card.size_step, card.scheduler, card.inpainting) == (32, 16, "flow_euler", "standard")
    assert card.edits and card.edit_optional and card.max_references == 4
    assert card.to_dict()["edit_optional"] is True and families.card("flux").to_dict()["edit_optional"] is False
    base, dev = families.card("flux2", variant="klein-base"), families.card("flux2", variant="dev")
    assert base.uses_guidance and base.steps == 50 and base.inpainting == "standard"
    assert dev.uses_guidance and dev.inpainting is None and dev.edits  # (no inpaint pipeline for dev)
    assert families.card("flux2", demo=True).start_size() == (256, 256)


@pytest.mark.parametrize("index, variant", [
    ({"_class_name": "Flux2KleinPipeline", "is_distilled": True}, "klein"),
    ({"_class_name": "Flux2KleinPipeline", "is_distilled": False}, "klein-base"),
    ({"_class_name": "Flux2KleinPipeline"}, "klein-base"),  # (the pipeline's own default)
    ({"_class_name": "Flux2KleinInpaintPipeline", "is_distilled": True}, "klein"),
    ({"_class_name": "Flux2Pipeline"}, "dev"),
])
def test_a_flux2_diffusers_folder_is_flux2_with_its_variant(tmp_path, index, variant):
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    assert families.detect_folder(tmp_path) == families.Detected("flux2", variant)


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model.", "diffusion_model."])
def test_a_flux2_transformer_file_is_flux2_not_flux(tmp_path, prefix):
    path = safetensors_stub(tmp_path / "flux-2-klein-4b.safetensors", {prefix + k: v for k, v in KLEIN_ORIGINAL.items()})
    assert families.detect_file(path) == ("model", families.Detected("flux2", "klein", parts="denoiser"))


def test_flux2_dev_and_klein_base_files_get_their_variants(tmp_path):
    dev = {**KLEIN_ORIGINAL, "guidance_in.in_layer.weight": [6144, 256]}
    assert families.detect_file(safetensors_stub(tmp_path / "flux2-dev.safetensors", dev))[1].variant == "dev"
    base = safetensors_stub(tmp_path / "flux-2-klein-base-4b.safetensors", KLEIN_ORIGINAL)
    assert families.detect_file(base)[1] == families.Detected("flux2", "klein-base", parts="denoiser")


def test_a_flux2_transformer_in_diffusers_naming_is_flux2(tmp_path):
    path = safetensors_stub(tmp_path / "diffusion_pytorch_model.safetensors", KLEIN_DIFFUSERS)
    assert families.detect_file(path) == ("model", families.Detected("flux2", "klein", parts="denoiser"))


def lora_pair(down: str, up: str, width: int, out: int, rank: int = 4) -> dict:
    return {down: {"shape": [rank, width]}, up: {"shape": [out, rank]}}


@pytest.mark.parametrize("header", [
    # diffusers / peft names (the pipeline's save_lora_weights)
    lora_pair("transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_A.weight",
              "transformer.single_transformer_blocks.0.attn.to_qkv_mlp_proj.lora_B.weight", 3072, 27648),
    lora_pair("transformer.transformer_blocks.0.ff.linear_in.lora_A.weight",
              "transformer.transformer_blocks.0.ff.linear_in.lora_B.weight", 3072, 18432),
    # ai-toolkit / ComfyUI (BFL's names) and kohya: FLUX.1's names, a 9x-wide linear1
    lora_pair("diffusion_model.single_blocks.0.linear1.lora_A.weight",
              "diffusion_model.single_blocks.0.linear1.lora_B.weight", 3072, 27648),
    lora_pair("lora_unet_single_blocks_0_linear1.lora_down.weight",
              "lora_unet_single_blocks_0_linear1.lora_up.weight", 4096, 36864),
    # the metadata says so (kohya's / the modelspec's architecture)
    {"__metadata__": {"modelspec.architecture": "flux-2-klein-4b/lora"},
     **lora_pair("lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight",
                 "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight", 3072, 9216)},
])
def test_flux2_loras_are_flux2(header):
    assert families.detect_lora_keys(header) == "flux2"


def test_a_flux1_lora_with_the_same_names_stays_flux():
    flux1 = lora_pair("diffusion_model.single_blocks.0.linear1.lora_A.weight",
                      "diffusion_model.single_blocks.0.linear1.lora_B.weight", 3072, 21504)
    assert families.detect_lora_keys(flux1) == "flux"
    kohya = lora_pair("lora_unet_single_blocks_0_linear1.lora_down.weight",
                      "lora_unet_single_blocks_0_linear1.lora_up.weight", 3072, 21504)
    assert families.detect_lora_keys(kohya) == "flux"
    assert families.detect_lora_keys({"__metadata__": {"ss_base_model_version": "flux1"}, **kohya}) == "flux"


# diffusers' names of a FLUX.2 transformer -> BFL's (the inverse of diffusers'
# convert_flux2_transformer_checkpoint_to_diffusers), to write a file as BFL publishes one.
FLUX2_BFL_TOP = {
    "x_embedder.weight": "img_in.weight", "context_embedder.weight": "txt_in.weight",
    "time_guidance_embed.timestep_embedder.linear_1.weight": "time_in.in_layer.weight",
    "time_guidance_embed.timestep_embedder.linear_2.weight": "time_in.out_layer.weight",
    "double_stream_modulation_img.linear.weight": "double_stream_modulation_img.lin.weight",
    "double_stream_modulation_txt.linear.weight": "double_stream_modulation_txt.lin.weight",
    "single_stream_modulation.linear.weight": "single_stream_modulation.lin.weight",
    "proj_out.weight": "final_layer.linear.weight"}
FLUX2_BFL_DOUBLE = {
    "attn.norm_q.weight": "img_attn.norm.query_norm.scale", "attn.norm_k.weight": "img_attn.norm.key_norm.scale",
    "attn.to_out.0.weight": "img_attn.proj.weight", "ff.linear_in.weight": "img_mlp.0.weight",
    "ff.linear_out.weight": "img_mlp.2.weight", "attn.norm_added_q.weight": "txt_attn.norm.query_norm.scale",
    "attn.norm_added_k.weight": "txt_attn.norm.key_norm.scale", "attn.to_add_out.weight": "txt_attn.proj.weight",
    "ff_context.linear_in.weight": "txt_mlp.0.weight", "ff_context.linear_out.weight": "txt_mlp.2.weight"}
FLUX2_BFL_SINGLE = {"attn.to_qkv_mlp_proj.weight": "linear1.weight", "attn.to_out.weight": "linear2.weight",
                    "attn.norm_q.weight": "norm.query_norm.scale", "attn.norm_k.weight": "norm.key_norm.scale"}
FLUX2_BFL_QKV = {"img": ("to_q", "to_k", "to_v"), "txt": ("add_q_proj", "add_k_proj", "add_v_proj")}


def flux2_bfl_names(tensors: dict) -> dict:
    out = {}
    for key, value in tensors.items():
        double = re.fullmatch(r"transformer_blocks\.(\d+)\.(.+)", key)
        single = re.fullmatch(r"single_transformer_blocks\.(\d+)\.(.+)", key)
        if key in FLUX2_BFL_TOP:
            out[FLUX2_BFL_TOP[key]] = value
        elif key == "norm_out.linear.weight":  # diffusers keeps (scale, shift), BFL (shift, scale)
            scale, shift = value.chunk(2, dim=0)
            out["final_layer.adaLN_modulation.1.weight"] = torch.cat([shift, scale], dim=0)
        elif double:
            n, rest = double.groups()
            for side, names in FLUX2_BFL_QKV.items():
                if rest == f"attn.{names[0]}.weight":
                    out[f"double_blocks.{n}.{side}_attn.qkv.weight"] = torch.cat(
                        [tensors[f"transformer_blocks.{n}.attn.{name}.weight"] for name in names], dim=0)
            if rest in FLUX2_BFL_DOUBLE:
                out[f"double_blocks.{n}.{FLUX2_BFL_DOUBLE[rest]}"] = value
        elif single:
            out[f"single_blocks.{single.group(1)}.{FLUX2_BFL_SINGLE[single.group(2)]}"] = value
        else:
            raise KeyError(key)
    return {k: v.contiguous() for k, v in out.items()}


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_a_flux2_transformer_file_in_bfl_names_loads_with_configs_flux2(tmp_path, prefix):
    from safetensors.torch import load_file, save_file

    from worker.pipelines import info
    from worker.pipelines.load import load_pipeline

    folder = load_pipeline("demo-flux2", tmp_path, "cpu")
    demo = tmp_path / "daydream-demo-flux2"
    shutil.copytree(demo, tmp_path / "configs" / "flux2")
    tensors = load_file(str(demo / "transformer" / "diffusion_pytorch_model.safetensors"))
    save_file({prefix + k: v for k, v in flux2_bfl_names(tensors).items()}, str(tmp_path / "klein.safetensors"))
    single = load_pipeline("klein.safetensors", tmp_path, "cpu")
    assert info.detected_of(single) == families.Detected("flux2", "klein", parts="denoiser")
    call = dict(prompt="a cat", width=64, height=64, num_inference_steps=2, output_type="np")
    expected = folder(**call, generator=torch.Generator().manual_seed(1)).images
    got = single(**call, generator=torch.Generator().manual_seed(1)).images
    assert abs(expected - got).max() < 1e-4


def test_flux2_loras_in_ai_toolkit_and_kohya_names_are_flux2_and_act(tmp_path):
    from safetensors.torch import save_file

    from worker.pipelines.load import load_pipeline

    pipe = load_pipeline("demo-flux2", tmp_path, "cpu")
    width = pipe.transformer.config.num_attention_heads * pipe.transformer.config.attention_head_dim
    out = pipe.transformer.single_transformer_blocks[0].attn.to_qkv_mlp_proj.out_features  # 9 x width
    random = torch.Generator().manual_seed(0)
    down, up = torch.randn(4, width, generator=random), torch.randn(out, 4, generator=random) * 0.5
    files = {
        "ai-toolkit": {"diffusion_model.single_blocks.0.linear1.lora_A.weight": down,
                       "diffusion_model.single_blocks.0.linear1.lora_B.weight": up},
        "kohya": {"lora_unet_single_blocks_0_linear1.lora_down.weight": down,
                  "lora_unet_single_blocks_0_linear1.lora_up.weight": up,
                  "lora_unet_single_blocks_0_linear1.alpha": torch.tensor(4.0)},
    }
    call = dict(prompt="a cat", width=64, height=64, num_inference_steps=2, output_type="np")
    plain = pipe(**call, generator=torch.Generator().manual_seed(1)).images
    for name, tensors in files.items():
        path = tmp_path / f"{name}.safetensors"
        save_file(tensors, str(path))
        assert families.detect_file(path) == ("lora", "flux2")
        pipe.load_lora_weights(str(path), adapter_name=name.replace("-", "_"))  # (diffusers converts the names)
        pipe.set_adapters([name.replace("-", "_")])
        assert abs(pipe(**call, generator=torch.Generator().manual_seed(1)).images - plain).mean() > 0.01, name
