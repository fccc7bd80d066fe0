"""Guide model files (issue 25) are told apart from their config.json files and safetensors
headers alone (services/generation/guide_files.py): SD 1.x from SDXL ControlNets by the
cross-attention width, FLUX ControlNets and Unions by their key names, IP-Adapters by
their projection and to_k_ip widths and the image encoder beside them; FLUX.1 Kontext
folders by their pipeline class. And the cards say what each family takes."""
from __future__ import annotations

from pathlib import Path

import pytest

from services.generation import families, guide_files
from services.generation.guide_files import Guide, GuideError, UnsupportedGuide
from services.generation.model_files import ModelsFolder
from tests.helpers import (FLUX_CONTROLNET, SD1_CONTROLNET, SD1_IPADAPTER, SD1_IPADAPTER_PLUS, SDXL_IPADAPTER,
                           SDXL_UNION_CONTROLNET, VIT_H_ENCODER, safetensors_stub, write_guide_layout,
                           write_json_file)


def controlnet_file(tmp_path: Path, shapes: dict) -> Guide:
    return guide_files.controlnet_keys(guide_files.read_header(safetensors_stub(tmp_path / "cn.safetensors", shapes)))


def test_sd1_and_sdxl_controlnets_differ_by_their_cross_attention_width(tmp_path):
    assert controlnet_file(tmp_path, SD1_CONTROLNET) == Guide("controlnet", "sd1", "controlnet")
    sdxl = dict(SD1_CONTROLNET)
    sdxl["control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = [320, 2048]
    assert controlnet_file(tmp_path, sdxl) == Guide("controlnet", "sdxl", "controlnet")
    # The same in diffusers' layout, with xinsir's Union parts: an SDXL Union.
    assert controlnet_file(tmp_path, SDXL_UNION_CONTROLNET) == Guide("controlnet", "sdxl", "union", 8)

    for width, family in ((768, "sd1"), (2048, "sdxl")):
        folder = tmp_path / f"folder-{width}"
        write_json_file(folder / "config.json", {"_class_name": "ControlNetModel", "cross_attention_dim": width})
        safetensors_stub(folder / "diffusion_pytorch_model.safetensors", {"conv_in.weight": [320, 4, 3, 3]})
        assert guide_files.controlnet_folder(folder) == Guide("controlnet", family, "controlnet")
    union = tmp_path / "union"
    write_json_file(union / "config.json", {"_class_name": "ControlNetUnionModel", "cross_attention_dim": 2048})
    safetensors_stub(union / "diffusion_pytorch_model.safetensors", {"conv_in.weight": [320, 4, 3, 3]})
    assert guide_files.controlnet_folder(union) == Guide("controlnet", "sdxl", "union", 8)


def test_an_sdxl_unions_control_modes_are_read_from_its_config_or_its_task_embedding(tmp_path):
    """xinsir's first Union has 6 control modes (no tile, no repaint), ProMax 8: a folder
    says so in config.json (num_control_type), a single file in its task_embedding's rows;
    one that says neither is taken to have all 8 (submit then refuses no mode)."""
    for modes in (6, 8):
        folder = tmp_path / f"union-{modes}"
        write_json_file(folder / "config.json", {"_class_name": "ControlNetUnionModel", "cross_attention_dim": 2048,
                                                 "num_control_type": modes})
        safetensors_stub(folder / "diffusion_pytorch_model.safetensors", {"conv_in.weight": [32, 4, 3, 3]})
        assert guide_files.controlnet_folder(folder).control_modes == modes
        one_file = dict(SDXL_UNION_CONTROLNET, task_embedding=[modes, 320])
        assert controlnet_file(tmp_path, one_file) == Guide("controlnet", "sdxl", "union", modes)
        # The original layout's prefix, and a folder whose config does not say: its weights do.
        prefixed = {"control_model." + key: shape for key, shape in one_file.items()}
        assert controlnet_file(tmp_path, prefixed).control_modes == modes
        write_json_file(folder / "config.json", {"_class_name": "ControlNetUnionModel", "cross_attention_dim": 2048})
        safetensors_stub(folder / "diffusion_pytorch_model.safetensors", one_file)
        assert guide_files.controlnet_folder(folder).control_modes == modes
    no_embedding = {key: shape for key, shape in SDXL_UNION_CONTROLNET.items() if key != "task_embedding"}
    assert controlnet_file(tmp_path, no_embedding).control_modes == 8
    # Not a Union: no modes.
    assert controlnet_file(tmp_path, SD1_CONTROLNET).control_modes is None


def test_a_controlnet_union_is_sdxls_whatever_its_width_unless_that_is_sd1s_or_sd2s(tmp_path):
    """diffusers runs ControlNetUnionModel with its SDXL pipelines only: a Union of an
    unknown width (a small one, as the demo's) is SDXL's; one of SD 1.x's width is not."""
    for width, found in ((80, "sdxl"), (768, "Stable Diffusion 1.x"), (1024, "Stable Diffusion 2.x")):
        folder = tmp_path / f"union-{width}"
        write_json_file(folder / "config.json", {"_class_name": "ControlNetUnionModel", "cross_attention_dim": width})
        safetensors_stub(folder / "diffusion_pytorch_model.safetensors", {"conv_in.weight": [32, 4, 3, 3]})
        one_file = dict(SDXL_UNION_CONTROLNET)
        one_file["down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight"] = [640, width]
        if found == "sdxl":
            assert guide_files.controlnet_folder(folder) == Guide("controlnet", "sdxl", "union", 8)
            assert controlnet_file(tmp_path, one_file) == Guide("controlnet", "sdxl", "union", 8)
            continue
        for scan in (lambda: guide_files.controlnet_folder(folder), lambda: controlnet_file(tmp_path, one_file)):
            with pytest.raises(UnsupportedGuide, match=f"a ControlNet Union for {found} models: Unions run with "
                                                       "SDXL models only"):
                scan()
    # A plain ControlNet of an unknown width is still no family's.
    write_json_file(tmp_path / "plain" / "config.json", {"_class_name": "ControlNetModel", "cross_attention_dim": 80})
    with pytest.raises(UnsupportedGuide, match=r"cross-attention width \(80\)"):
        guide_files.controlnet_folder(tmp_path / "plain")


def test_an_sd2_or_sd3_contronet_is_unsupported_and_says_which_families_take_one(tmp_path):
    sd2 = dict(SD1_CONTROLNET)
    sd2["control_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"] = [320, 1024]
    with pytest.raises(UnsupportedGuide, match="for Stable Diffusion 2.x models.*Stable Diffusion 1.x, "
                                               "Stable Diffusion XL, FLUX.1"):
        controlnet_file(tmp_path, sd2)
    write_json_file(tmp_path / "sd3" / "config.json", {"_class_name": "SD3ControlNetModel"})
    with pytest.raises(UnsupportedGuide, match="Stable Diffusion 3"):
        guide_files.controlnet_folder(tmp_path / "sd3")
    write_json_file(tmp_path / "t2i" / "config.json", {"_class_name": "T2IAdapter"})
    with pytest.raises(UnsupportedGuide, match="T2IAdapter is not a ControlNet"):
        guide_files.controlnet_folder(tmp_path / "t2i")


def test_flux_controlnets_and_unions_by_their_keys_and_config(tmp_path):
    assert controlnet_file(tmp_path, FLUX_CONTROLNET) == Guide("controlnet", "flux", "controlnet")
    assert controlnet_file(tmp_path, dict(FLUX_CONTROLNET, **{"controlnet_mode_embedder.weight": [10, 3072]})) \
        == Guide("controlnet", "flux", "union", 10)
    for num_mode, architecture in ((10, "union"), (None, "controlnet")):
        folder = tmp_path / f"flux-{num_mode}"
        write_json_file(folder / "config.json", {"_class_name": "FluxControlNetModel", "num_mode": num_mode})
        safetensors_stub(folder / "diffusion_pytorch_model.safetensors", {"x_embedder.weight": [3072, 64]})
        assert guide_files.controlnet_folder(folder) == Guide("controlnet", "flux", architecture, num_mode)
    with pytest.raises(UnsupportedGuide, match="XLabs"):
        controlnet_file(tmp_path, {"double_blocks.0.img_attn.qkv.weight": [9216, 3072],
                                   "input_hint_block.0.weight": [16, 3, 3, 3],
                                   "controlnet_blocks.0.weight": [3072, 3072]})
    with pytest.raises(UnsupportedGuide, match="not those of a ControlNet"):
        controlnet_file(tmp_path, {"decoder.conv_in.weight": [512, 4, 3, 3]})


def test_a_folder_without_weights_or_a_file_cut_short_is_an_error(tmp_path):
    write_json_file(tmp_path / "empty" / "config.json", {"_class_name": "ControlNetModel", "cross_attention_dim": 768})
    with pytest.raises(GuideError, match="has no weights") as caught:
        guide_files.controlnet_folder(tmp_path / "empty")
    assert caught.value.family == "sd1"
    with pytest.raises(GuideError, match="incomplete"):
        guide_files.read_header(safetensors_stub(tmp_path / "cut.safetensors", SD1_CONTROLNET, cut=1))
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(GuideError, match="not a safetensors file"):
        guide_files.read_header(tmp_path / "junk.safetensors")


def encoder(folder: Path, config: dict = VIT_H_ENCODER) -> Path:
    write_json_file(folder / "config.json", config)
    safetensors_stub(folder / "model.safetensors", {"visual_projection.weight": [1024, 1280]})
    return folder


def test_an_sd1_ip_adapter_needs_an_image_encoder_that_fits(tmp_path):
    root = tmp_path / "ipadapter"
    plain = safetensors_stub(root / "sd15" / "ip-adapter_sd15.safetensors", SD1_IPADAPTER)
    plus = safetensors_stub(root / "sd15" / "ip-adapter-plus_sd15.safetensors", SD1_IPADAPTER_PLUS)
    with pytest.raises(GuideError, match="no image_encoder/ folder beside it") as caught:
        guide_files.ipadapter_file(plain, root)
    assert caught.value.family == "sd1"

    (root / "sd15" / "image_encoder").mkdir()  # there, but empty
    with pytest.raises(GuideError, match="image_encoder/ is not usable: its image_encoder/config.json could not"):
        guide_files.ipadapter_file(plain, root)
    encoder(root / "sd15" / "image_encoder")
    assert guide_files.ipadapter_file(plain, root) == Guide("ipadapter", "sd1", "ip-adapter")
    assert guide_files.ipadapter_file(plus, root) == Guide("ipadapter", "sd1", "ip-adapter-plus")
    assert guide_files.image_encoder_for(plain, root) == root / "sd15" / "image_encoder"

    # An SDXL adapter trained on ViT-bigG (1280-wide embeddings) does not take ViT-H's 1024.
    sdxl = safetensors_stub(root / "sdxl" / "ip-adapter_sdxl.safetensors", SDXL_IPADAPTER)
    with pytest.raises(GuideError, match="gives 1024-wide image embeddings, but the IP-Adapter takes 1280"):
        guide_files.ipadapter_file(sdxl, root)
    encoder(root / "sdxl" / "image_encoder", dict(VIT_H_ENCODER, hidden_size=1664, projection_dim=1280))
    assert guide_files.ipadapter_file(sdxl, root) == Guide("ipadapter", "sdxl", "ip-adapter")
    # An SDXL "vit-h" adapter (1024 wide) finds the SD 1.5 folder's ViT-H encoder.
    vit_h = dict(SDXL_IPADAPTER, **{"image_proj.proj.weight": [8192, 1024]})
    vit_h_file = safetensors_stub(root / "sdxl" / "ip-adapter_sdxl_vit-h.safetensors", vit_h)
    assert guide_files.image_encoder_for(vit_h_file, root) == root / "sd15" / "image_encoder"


def test_other_ip_adapters(tmp_path):
    def keys(shapes):
        return guide_files.ipadapter_keys(guide_files.read_header(safetensors_stub(tmp_path / "ip.safetensors",
                                                                                    shapes)))

    flux = keys({"ip_adapter_proj_model.proj.weight": [12288, 768], "ip_adapter_proj_model.norm.weight": [3072],
                 "double_blocks.0.processor.ip_adapter_double_stream_k_proj.weight": [3072, 4096]})
    assert flux == (Guide("ipadapter", "flux", "ip-adapter"), "projection", 768)
    with pytest.raises(UnsupportedGuide, match="FaceID"):
        keys(dict(SD1_IPADAPTER, **{"ip_adapter.1.to_k_lora.down.weight": [128, 320]}))
    with pytest.raises(UnsupportedGuide, match="not those of an IP-Adapter"):
        keys(SD1_CONTROLNET)
    write_json_file(tmp_path / "redux" / "model_index.json", {"_class_name": "FluxPriorReduxPipeline"})
    assert guide_files.ipadapter_folder(tmp_path / "redux") == Guide("ipadapter", "flux", "redux")


def test_the_scan_of_a_guide_layout_says_what_each_entry_is(tmp_path):
    models = write_guide_layout(tmp_path / "models")
    rules = ModelsFolder(models)
    found = {}
    for entry in rules.walk(lambda rel, path: not guide_files.is_guide_folder(path)):
        if entry.rel.parts and entry.rel.parts[0] in guide_files.FOLDERS:
            what = guide_files.describe(entry.rel, entry.path, entry.is_dir, models, rules.check)
            if what is not None:
                found[str(entry.rel)] = what
    states = {rel: (f.adapter, f.state, f.guide.family if f.guide else f.family,
                    f.guide.architecture if f.guide else None) for rel, f in found.items()}
    assert states == {
        "controlnet/control_v11p_sd15_canny.safetensors": ("controlnet", "available", "sd1", "controlnet"),
        "controlnet/sdxl-canny": ("controlnet", "available", "sdxl", "controlnet"),
        "controlnet/union/controlnet-union-sdxl.safetensors": ("controlnet", "available", "sdxl", "union"),
        "controlnet/flux-union": ("controlnet", "available", "flux", "union"),
        "controlnet/flux-canny.safetensors": ("controlnet", "available", "flux", "controlnet"),
        "controlnet/sd3-canny": ("controlnet", "unsupported", "sd3", None),
        "controlnet/cut-short.safetensors": ("controlnet", "error", None, None),
        "controlnet/old-canny.pth": ("controlnet", "unsupported", None, None),
        "ipadapter/models/ip-adapter_sd15.safetensors": ("ipadapter", "available", "sd1", "ip-adapter"),
        "ipadapter/models/ip-adapter-plus_sd15.safetensors": ("ipadapter", "available", "sd1", "ip-adapter-plus"),
        "ipadapter/sdxl_models/ip-adapter_sdxl.safetensors": ("ipadapter", "error", "sdxl", None),
        "ipadapter/flux-redux": ("ipadapter", "available", "flux", "redux"),
    }
    assert "incomplete" in found["controlnet/cut-short.safetensors"].why
    assert ".safetensors only" in found["controlnet/old-canny.pth"].why
    assert found["controlnet/sdxl-canny"].is_dir and not found["controlnet/flux-canny.safetensors"].is_dir


def test_an_image_encoder_linked_from_outside_is_not_read(tmp_path):
    models = tmp_path / "models"
    adapter = safetensors_stub(models / "ipadapter" / "ip-adapter_sd15.safetensors", SD1_IPADAPTER)
    outside = encoder(tmp_path / "elsewhere" / "image_encoder")
    (models / "ipadapter" / "image_encoder").symlink_to(outside, target_is_directory=True)
    rules = ModelsFolder(models)
    with pytest.raises(GuideError, match="outside the models folder"):
        guide_files.ipadapter_file(adapter, models / "ipadapter", rules.check)
    assert guide_files.ipadapter_file(adapter, models / "ipadapter", ModelsFolder(models, True).check).family == "sd1"


def test_flux_kontext_is_an_editing_model_by_its_pipeline_class_or_its_name(tmp_path):
    folder = tmp_path / "FLUX.1-Kontext-dev"
    write_json_file(folder / "model_index.json", {"_class_name": "FluxKontextPipeline"})
    write_json_file(folder / "transformer" / "config.json", {"guidance_embeds": True, "in_channels": 64})
    found = families.detect_folder(folder)
    assert (found.family, found.variant) == ("flux", "kontext")
    card = found.card()
    assert (card.edits, card.max_references, card.steps, card.guidance) == (True, 3, 28, 2.5)
    assert not card.uses_negative_prompt and not card.controlnet and not card.ip_adapter
    assert card.to_dict()["edits"] is True and card.to_dict()["max_references"] == 3

    dev = families.Detected("flux", "dev", parts="denoiser")
    assert families.kontext_by_name(dev, "flux1-kontext-dev-fp8.safetensors").variant == "kontext"
    assert families.kontext_by_name(dev, "flux1-dev.safetensors").variant == "dev"
    assert families.kontext_by_name(families.Detected("sdxl"), "kontext-ish-sdxl.safetensors").variant == ""

    demo = families.card("flux", variant=families.demo_variant("demo-kontext"), demo=True)
    assert demo.edits and demo.variant == "kontext" and demo.steps == 8
    assert families.demo_variant("demo-flux") == "schnell" and families.DEMO_MODELS["demo-kontext"] == "flux"


def test_cards_say_which_families_take_guides():
    takes = {f: (c.controlnet, c.ip_adapter, c.edits, c.max_references) for f, c in families.FAMILIES.items()}
    assert takes == {"sd1": (True, True, False, 0), "sd2": (False, False, False, 0),
                     "sdxl": (True, True, False, 0), "sd3": (False, False, False, 0),
                     "flux": (True, True, False, 0), "flux2": (False, False, True, 4),
                     "zimage": (False, False, False, 0), "qwen": (False, False, False, 0),
                     "chroma": (False, False, False, 0)}
    assert families.card("flux", variant="schnell").controlnet
    for family, variant in (("sd1", "inpainting"), ("sdxl", "inpainting"), ("flux", "fill")):
        card = families.card(family, variant=variant)
        assert not card.controlnet and not card.ip_adapter, (family, variant)
    assert {"edits", "max_references", "controlnet", "ip_adapter"} <= set(families.card("sd1").to_dict())
    assert {g: families.demo_family(g) for g in families.DEMO_GUIDES} == {
        "demo-controlnet-sd1": "sd1", "demo-controlnet-sdxl": "sdxl", "demo-controlnet-flux": "flux",
        "demo-ipadapter-sd1": "sd1", "demo-controlnet-sdxl-union": "sdxl"}
