"""Reading the models folder: the link rule (services/generation/model_files.py), the
families Daydream does not serve told from real diffusers architectures' tensor names,
and the worker's loader refusing a link out and telling users a model's name, not its
path."""
from __future__ import annotations

import json

import pytest
import torch

from services.generation import families
from services.generation.model_files import ModelsFolder, OutsideFolder


def architecture_keys(class_name: str) -> dict:
    """The tensor names of a diffusers transformer at its default size, as a safetensors
    header would list them (built on the meta device: no memory, no weights)."""
    import diffusers

    with torch.device("meta"):
        model = getattr(diffusers, class_name)()
    return {name: {"dtype": "BF16", "shape": list(t.shape)} for name, t in model.state_dict().items()}


def test_a_checkpoint_of_a_family_not_served_is_unsupported():
    keys = architecture_keys("CogView4Transformer2DModel")
    with pytest.raises(families.Unsupported) as caught:
        families.detect_checkpoint_keys(keys)
    assert caught.value.name == "unknown family" and "does not serve" in str(caught.value)
    # The same tensors under the original checkpoints' prefix.
    with pytest.raises(families.Unsupported):
        families.detect_checkpoint_keys({f"model.diffusion_model.{k}": v for k, v in keys.items()})


def test_a_qwen_image_transformer_is_served_in_both_namings():
    keys = architecture_keys("QwenImageTransformer2DModel")
    for named in (keys, {f"model.diffusion_model.{k}": v for k, v in keys.items()}):
        assert families.detect_checkpoint_keys(named) == families.Detected("qwen", parts="denoiser")


def test_flux1_is_still_flux_and_parts_are_still_not_models():
    assert families.detect_checkpoint_keys(architecture_keys("FluxTransformer2DModel")).family == "flux"
    vae = {"decoder.conv_in.weight": {}, "encoder.conv_in.weight": {}, "quant_conv.weight": {}}
    with pytest.raises(families.UnknownModel) as caught:
        families.detect_checkpoint_keys(vae)
    assert not isinstance(caught.value, families.Unsupported)
    controlnet = {"control_model.time_embed.0.weight": {}, "control_model.input_hint_block.0.weight": {}}
    with pytest.raises(families.UnknownModel) as caught:
        families.detect_checkpoint_keys(controlnet)
    assert not isinstance(caught.value, families.Unsupported)


def test_a_lora_of_a_family_not_served_is_not_taken_for_sd1():
    wan_lora = {"diffusion_model.blocks.0.self_attn.q.lora_A.weight": {"shape": [4, 5120]},  # a Wan video LoRA
                "diffusion_model.blocks.0.self_attn.q.lora_B.weight": {"shape": [5120, 4]}}
    with pytest.raises(families.Unsupported) as caught:
        families.detect_lora_keys(wan_lora)
    assert caught.value.lora
    kohya_sd1 = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": {"shape": [4, 320]}}
    assert families.detect_lora_keys(kohya_sd1) == "sd1"


def test_an_unknown_pipeline_class_is_unsupported_and_a_missing_one_an_error(tmp_path):
    folder = tmp_path / "wan"
    folder.mkdir()
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    with pytest.raises(families.Unsupported, match="^WanPipeline is not supported yet"):
        families.detect_folder(folder)
    (folder / "model_index.json").write_text(json.dumps({"unet": ["diffusers", "UNet2DConditionModel"]}))
    with pytest.raises(families.UnknownModel, match="names no pipeline class") as caught:
        families.detect_folder(folder)
    assert not isinstance(caught.value, families.Unsupported)


def test_the_link_rule(tmp_path):
    models, outside = tmp_path / "models", tmp_path / "outside"
    (models / "real").mkdir(parents=True)
    outside.mkdir()
    (models / "inside").symlink_to(models / "real", target_is_directory=True)
    (models / "out").symlink_to(outside, target_is_directory=True)
    rules = ModelsFolder(models)
    assert rules.resolve("inside") == models / "inside"
    for spec in ("out", "out/x.safetensors", "../outside", "real/../../outside"):
        with pytest.raises(OutsideFolder, match="outside the models folder"):
            rules.resolve(spec)
    assert rules.resolve("/abs/spec/of/the/operator") == rules.root.joinpath("/abs/spec/of/the/operator")
    assert ModelsFolder(models, follow_links=True).resolve("out") == models / "out"
    # A model folder whose part links out is found before anything is loaded from it.
    (models / "real" / "unet").symlink_to(outside, target_is_directory=True)
    assert rules.first_link_out(models / "real") == models / "real" / "unet"
    assert ModelsFolder(models, follow_links=True).first_link_out(models / "real") is None


def test_the_loader_refuses_a_model_linked_from_outside_and_names_it_without_paths(tmp_path):
    from worker.pipelines.errors import ModelLoadError, without_paths
    from worker.pipelines.load import load_pipeline

    models, outside = tmp_path / "models", tmp_path / "outside" / "weights"
    outside.mkdir(parents=True)
    (outside / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    models.mkdir()
    (models / "linked").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ModelLoadError) as caught:
        load_pipeline("linked", models, device="cpu")
    assert "outside the models folder" in str(caught.value) and str(outside) in str(caught.value)
    assert caught.value.user.startswith("The model linked could not be loaded")
    assert str(tmp_path) not in caught.value.user and "/" not in caught.value.user.replace("Admin → Models", "")

    assert without_paths("from /srv/models/a/b.safetensors: bad") == "from b.safetensors: bad"
    assert without_paths("Permission denied: '/etc/passwd'.") == "Permission denied: 'passwd'."
    kept = "SD 1.x/2.x, the hub id owner/name, https://example.org/a and 3 / 4"
    assert without_paths(kept) == kept
