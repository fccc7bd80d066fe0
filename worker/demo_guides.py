"""The demo guide models (issue 25): tiny random-weight ControlNets and an IP-Adapter for
the demo models, made in code like them, so the guide paths run (and are tested) with
no download.

  demo-controlnet-sd1   ControlNetModel.from_unet of the demo SD 1.x UNet
  demo-controlnet-sdxl  the same for the demo SDXL UNet
  demo-controlnet-sdxl-union
                        a ControlNetUnionModel for the demo SDXL UNet with ProMax's eight
                        control modes (xinsir's layout: task embeddings, a transformer
                        over the conditions)
  demo-controlnet-flux  a FluxControlNetModel matching the demo FLUX.1 transformer, with
                        num_mode set: a ControlNet Union (InstantX's shape: the control
                        image goes through the VAE, no hint block)
  demo-ipadapter-sd1    IP-Adapter weights for the demo SD 1.x UNet in the layout
                        diffusers' load_ip_adapter reads (ip-adapter.safetensors: keys
                        "image_proj.*" and "ip_adapter.N.to_k_ip/to_v_ip.weight"), with a
                        tiny CLIPVisionModelWithProjection in image_encoder/ beside it

Every weight is random (seeded: every build writes the same bytes), the zero
convolutions of a ControlNet too: zero ones would make the control image change nothing.
Each is a folder <models>/daydream-demo-guides/<id>/, versioned and built atomically like
the demo models (demo_model.build_folder), on the worker's first use."""
from __future__ import annotations

import json
from pathlib import Path

from services.generation.families import DEMO_GUIDE_MODES
from worker.demo_model import build_folder

FOLDER = "daydream-demo-guides"  # under the models folder (not a scan result)
MARKER = "daydream-demo-guide.json"
# Bump one when what it builds changes: an older folder is rebuilt on the next use.
VERSIONS = {"demo-controlnet-sd1": 1, "demo-controlnet-sdxl": 1, "demo-controlnet-flux": 1,
            "demo-ipadapter-sd1": 1, "demo-controlnet-sdxl-union": 1}
# The demo model each is made for (its family's demo).
BASES = {"demo-controlnet-sd1": ("demo", "sd1"), "demo-controlnet-sdxl": ("demo-sdxl", "sdxl"),
         "demo-controlnet-flux": ("demo-flux", "flux"), "demo-ipadapter-sd1": ("demo", "sd1"),
         "demo-controlnet-sdxl-union": ("demo-sdxl", "sdxl")}
IP_ADAPTER_FILE = "ip-adapter.safetensors"
IMAGE_ENCODER = "image_encoder"
# FLUX ControlNet Union's modes (InstantX): canny, tile, depth, blur, pose, gray, low quality.
UNION_MODES = DEMO_GUIDE_MODES["demo-controlnet-flux"]  # 7
# xinsir's ProMax: openpose, depth, hed, canny, normal, segment, tile, repaint
SDXL_UNION_MODES = DEMO_GUIDE_MODES["demo-controlnet-sdxl-union"]  # 8
SDXL_UNION_HEADS = 8  # (as xinsir's, which a single file's loader assumes: loading.UNION_HEADS)
HINT_GAIN, RESIDUAL_GAIN = 4.0, 0.5
SEEDS = {"demo-controlnet-sd1": 31, "demo-controlnet-sdxl": 32, "demo-controlnet-flux": 33, "demo-ipadapter-sd1": 34,
         "demo-controlnet-sdxl-union": 35}


def demo_guide_path(models_path: Path, guide_id: str) -> Path:
    return Path(models_path) / FOLDER / guide_id


def _complete(folder: Path, guide_id: str) -> bool:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return data.get("id") == guide_id and data.get("version") == VERSIONS[guide_id]


def build_demo_guide(models_path: Path, guide_id: str, model_folder: Path) -> Path:
    """The folder of the demo guide `guide_id`, built from the demo model in
    `model_folder` (of its family; see BASES) unless an up-to-date one is there."""
    if guide_id not in VERSIONS:
        raise ValueError(f"unknown demo guide {guide_id!r}; one of {', '.join(VERSIONS)}")

    def build(folder: Path) -> None:
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEEDS[guide_id])
            MAKERS[guide_id](folder, Path(model_folder))
        (folder / MARKER).write_text(json.dumps({"id": guide_id, "version": VERSIONS[guide_id]}) + "\n",
                                     encoding="utf-8")

    return build_folder(demo_guide_path(models_path, guide_id), lambda f: _complete(f, guide_id), build)


def randomized(model, gain: float = 1.0):
    """Every Linear and Conv2d of `model` re-drawn with torch's default initialisation
    (scaled by `gain`), the zero-initialised ones included; norms keep theirs."""
    import torch

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                module.reset_parameters()
                module.weight.mul_(gain)
    return model


def _controlnet_from_unet(folder: Path, model_folder: Path) -> None:
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model_folder, subfolder="unet", local_files_only=True)
    controlnet = randomized(ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16, 32, 32)))
    _steady(controlnet).save_pretrained(folder, safe_serialization=True)


def _steady(controlnet):
    """A stronger hint path, so that the control image (not only the ControlNet's own
    noise) shows in the pictures, and gentler zero convolutions, so that it never drowns
    the UNet (a UNet ControlNet's or an SDXL Union's)."""
    import torch

    with torch.no_grad():
        for module in controlnet.controlnet_cond_embedding.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.mul_(HINT_GAIN)
        for module in [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]:
            module.weight.mul_(RESIDUAL_GAIN)
    return controlnet


def _sdxl_union(folder: Path, model_folder: Path) -> None:
    import torch
    from diffusers import ControlNetUnionModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(model_folder, subfolder="unet", local_files_only=True)
    with torch.device("meta"):
        config = {key: value for key, value in ControlNetUnionModel.from_unet(
            unet, load_weights_from_unet=False).config.items() if not key.startswith("_")}
    width = unet.config.block_out_channels[0]  # (the conditions' features join the UNet's first)
    config.update(conditioning_embedding_out_channels=(8, 16, 32, 32), num_control_type=SDXL_UNION_MODES,
                  num_trans_channel=width, num_trans_head=SDXL_UNION_HEADS, num_trans_layer=1,
                  num_proj_channel=width)
    _steady(randomized(ControlNetUnionModel(**config))).save_pretrained(folder, safe_serialization=True)


def _flux_controlnet(folder: Path, model_folder: Path) -> None:
    import torch
    from diffusers import FluxControlNetModel, FluxTransformer2DModel

    config = dict(FluxTransformer2DModel.load_config(model_folder, subfolder="transformer", local_files_only=True))
    settings = {key: config[key] for key in ("patch_size", "in_channels", "attention_head_dim",
                                             "num_attention_heads", "joint_attention_dim",
                                             "pooled_projection_dim", "guidance_embeds", "axes_dims_rope")}
    controlnet = randomized(FluxControlNetModel(**settings, num_layers=1, num_single_layers=1, num_mode=UNION_MODES))
    with torch.no_grad():  # (as for SD: the control image's path stronger, the residuals gentler)
        controlnet.controlnet_x_embedder.weight.mul_(2 * HINT_GAIN)
        for module in [*controlnet.controlnet_blocks, *controlnet.controlnet_single_blocks]:
            module.weight.mul_(RESIDUAL_GAIN)
    controlnet.save_pretrained(folder, safe_serialization=True)


def _ip_adapter(folder: Path, model_folder: Path) -> None:
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    unet_config = UNet2DConditionModel.load_config(model_folder, subfolder="unet", local_files_only=True)
    cross = int(unet_config["cross_attention_dim"])
    blocks = list(unet_config["block_out_channels"])
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
        image_size=32, patch_size=4, num_channels=3))
    encoder.save_pretrained(folder / IMAGE_ENCODER, safe_serialization=True)
    embed = encoder.config.projection_dim
    tokens = 4  # the plain IP-Adapter's image tokens
    state = {"image_proj.proj.weight": torch.randn(cross * tokens, embed) * 0.5,
             "image_proj.proj.bias": torch.randn(cross * tokens) * 0.1,
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    # One to_k_ip/to_v_ip pair per cross-attention processor, numbered as diffusers counts
    # them (1, 3, 5, …: each attention block's self-attention takes the even number).
    key_id = 1
    for name in _attention_processor_names(unet_config):
        if name.endswith("attn1.processor"):
            continue
        hidden = _hidden_size(name, blocks)
        for part in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{key_id}.{part}.weight"] = torch.randn(hidden, cross) / cross ** 0.5
        key_id += 2
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / IP_ADAPTER_FILE))


def _attention_processor_names(unet_config) -> list[str]:
    """The UNet's attention processor names in diffusers' order (built on the meta device)."""
    import torch
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
    return list(unet.attn_processors)


def _hidden_size(name: str, blocks: list[int]) -> int:
    if name.startswith("mid_block"):
        return blocks[-1]
    if name.startswith("up_blocks"):
        return list(reversed(blocks))[int(name[len("up_blocks.")])]
    return blocks[int(name[len("down_blocks.")])]


MAKERS = {"demo-controlnet-sd1": _controlnet_from_unet, "demo-controlnet-sdxl": _controlnet_from_unet,
          "demo-controlnet-flux": _flux_controlnet, "demo-ipadapter-sd1": _ip_adapter,
          "demo-controlnet-sdxl-union": _sdxl_union}
