"""Real-size Stable Diffusion 1.5 and SDXL pipelines with random weights, made in code.

The benchmarks need the real architectures (the cost of a step depends on the shapes,
not on the weights) but may download nothing, so the pipelines are built from the
published configs (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-xl-
base-1.0) with random weights (seed 0):

  SD 1.5  UNet 860 M parameters (320/640/1280/1280, cross attention 768), CLIP ViT-L/14
          text encoder (768 wide, 12 layers), the SD VAE (128/256/512/512): 1.07 B.
  SDXL    UNet 2.6 B (320/640/1280, 1/2/10 transformer layers, "text_time"
          conditioning of 2816), CLIP-L (768) and OpenCLIP-bigG (1280, 32 layers, with
          projection) text encoders, the SDXL VAE: 3.5 B.

Tokenizers are the demo model's byte-level CLIP tokenizer (worker/demo_families.py,
77 tokens): CLIP's 49k-word vocabulary would need a download and tokenizing is not
what is measured; the text encoders keep CLIP's vocabulary size, so the parameter
counts are the real ones. `tiny=True` gives the same structure at a few megabytes (for
tests and for smoke runs on a CPU).

    make_pipeline("sd15" | "sdxl", device, dtype, tiny=False)   -> a pipeline in memory
    build_folder("sd15" | "sdxl", folder, ...)                  -> a diffusers folder
                                                                   (save_pretrained, kept)

A saved folder loads like any local model (DAYDREAM_MODEL=<its name under the models
folder>). Parameters are made directly on `device` (fast on a GPU) in float32, then
cast; `device="meta"` makes the shapes without memory (parameter counts).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

ARCHITECTURES = ("sd15", "sdxl")
LABELS = {"sd15": "Stable Diffusion 1.5", "sdxl": "SDXL 1.0"}
NATIVE_SIZE = {"sd15": 512, "sdxl": 1024}
# Bump when a config below changes: a saved folder of another version is rebuilt.
VERSION = 1
MARKER = "daydream-bench-model.json"
CLIP_VOCAB = 49408  # CLIP's vocabulary size (the byte-level tokenizer's ids all fit)


# --------------------------------------------------------------------------- configs


def unet_config(arch: str, tiny: bool = False) -> dict:
    """The UNet2DConditionModel config of `arch` (SD 1.5's or SDXL base's unet/config.json)."""
    if arch == "sd15":
        return dict(
            sample_size=8 if tiny else 64,
            in_channels=4,
            out_channels=4,
            center_input_sample=False,
            flip_sin_to_cos=True,
            freq_shift=0,
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            block_out_channels=(32, 64, 64, 64) if tiny else (320, 640, 1280, 1280),
            layers_per_block=1 if tiny else 2,
            downsample_padding=1,
            mid_block_scale_factor=1,
            act_fn="silu",
            norm_num_groups=32,
            norm_eps=1e-5,
            cross_attention_dim=32 if tiny else 768,
            attention_head_dim=8,
        )
    if arch == "sdxl":
        time_dim, pooled = (8, 32) if tiny else (256, 1280)
        return dict(
            sample_size=16 if tiny else 128,
            in_channels=4,
            out_channels=4,
            center_input_sample=False,
            flip_sin_to_cos=True,
            freq_shift=0,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
            block_out_channels=(32, 64, 64) if tiny else (320, 640, 1280),
            layers_per_block=1 if tiny else 2,
            downsample_padding=1,
            mid_block_scale_factor=1,
            act_fn="silu",
            norm_num_groups=32,
            norm_eps=1e-5,
            attention_head_dim=(2, 4, 4) if tiny else (5, 10, 20),
            transformer_layers_per_block=(1, 1, 2) if tiny else (1, 2, 10),
            use_linear_projection=True,
            addition_embed_type="text_time",
            addition_time_embed_dim=time_dim,
            # 6 size/crop numbers, each embedded in time_dim, + the pooled text of encoder 2
            projection_class_embeddings_input_dim=6 * time_dim + pooled,
            cross_attention_dim=(32 + 48) if tiny else (768 + 1280),  # both encoders side by side
        )
    raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHITECTURES)}")


def clip_settings(kind: str, tiny: bool = False) -> dict:
    """CLIPTextConfig settings: "L" (CLIP ViT-L/14, SD 1.5 and SDXL's first encoder) or
    "bigG" (OpenCLIP ViT-bigG/14, SDXL's second, with projection)."""
    if tiny:
        width = 32 if kind == "L" else 48
        return dict(vocab_size=1024, hidden_size=width, intermediate_size=2 * width,
                    num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=77,
                    projection_dim=32, hidden_act="quick_gelu" if kind == "L" else "gelu")
    if kind == "L":
        return dict(vocab_size=CLIP_VOCAB, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                    num_attention_heads=12, max_position_embeddings=77, projection_dim=768,
                    hidden_act="quick_gelu", layer_norm_eps=1e-5)
    if kind == "bigG":
        return dict(vocab_size=CLIP_VOCAB, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                    num_attention_heads=20, max_position_embeddings=77, projection_dim=1280,
                    hidden_act="gelu", layer_norm_eps=1e-5)
    raise ValueError(f"unknown CLIP text encoder {kind!r}")


def vae_config(arch: str, tiny: bool = False) -> dict:
    """SD's AutoencoderKL (4 blocks, latents 1/8 of the image); SDXL's differs in its
    scaling factor and sample size only."""
    config = dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(32, 32, 64, 64) if tiny else (128, 256, 512, 512),
        layers_per_block=1 if tiny else 2,
        act_fn="silu",
        latent_channels=4,
        norm_num_groups=32,
        sample_size=NATIVE_SIZE[arch] // (8 if tiny else 1),
    )
    if arch == "sdxl":
        config.update(scaling_factor=0.13025, force_upcast=True)  # as SDXL base's vae/config.json
    return config


# --------------------------------------------------------------------------- parts


def _tokenizer(folder: Path | None):
    """The byte-level CLIP tokenizer; its files go in `folder` (a temporary one if None)."""
    from worker.demo_families import clip_tokenizer

    if folder is not None:
        return clip_tokenizer(folder)[0]
    with tempfile.TemporaryDirectory(prefix="daydream-bench-tokenizer-") as tok_dir:
        return clip_tokenizer(Path(tok_dir))[0]


def _text_encoder(kind: str, tokenizer, tiny: bool, projection: bool = False):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(**clip_settings(kind, tiny), bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _sdxl_scheduler():
    """SDXL base's scheduler_config.json."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                       beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading",
                                       interpolation_type="linear", prediction_type="epsilon",
                                       use_karras_sigmas=False)
    scheduler.register_to_config(clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True,
                                 sample_max_value=1.0)
    return scheduler


def make_unet(arch: str, tiny: bool = False):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(**unet_config(arch, tiny))


def make_pipeline(arch: str, device: str = "cpu", dtype: torch.dtype = torch.float32, tiny: bool = False,
                  folder: Path | None = None):
    """The pipeline of `arch` with random weights (seed 0, the caller's random state
    kept), on `device` in `dtype`, no safety checker. `folder`: where the tokenizer
    files are written (the folder the pipeline will be saved in)."""
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline

    from worker.demo_model import assemble_pipeline

    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ARCHITECTURES)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        tokenizer = _tokenizer(folder / "tokenizer" if folder else None)
        if arch == "sdxl":
            tokenizer_2 = _tokenizer(folder / "tokenizer_2" if folder else None)
        with torch.device(device):
            unet = make_unet(arch, tiny)
            vae = AutoencoderKL(**vae_config(arch, tiny))
            text_encoder = _text_encoder("L", tokenizer, tiny)
            if arch == "sdxl":
                text_encoder_2 = _text_encoder("bigG", tokenizer_2, tiny, projection=True)
    if arch == "sd15":
        pipe = assemble_pipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)
    else:
        pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                         tokenizer=tokenizer, tokenizer_2=tokenizer_2, unet=unet,
                                         scheduler=_sdxl_scheduler(), force_zeros_for_empty_prompt=True)
    if dtype != torch.float32 and device != "meta":
        # Plain nn.Module.to: diffusers' ModelMixin.to(dtype) warns about modules it keeps
        # in float32, and the SDXL VAE upcasts itself where it must (force_upcast).
        for module in pipe.components.values():
            if isinstance(module, torch.nn.Module):
                torch.nn.Module.to(module, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def parameter_count(module_or_pipe) -> int:
    modules = ([m for m in module_or_pipe.components.values() if isinstance(m, torch.nn.Module)]
               if hasattr(module_or_pipe, "components") else [module_or_pipe])
    return sum(p.numel() for module in modules for p in module.parameters())


# --------------------------------------------------------------------------- folders


def _marker_ok(folder: Path, arch: str, tiny: bool) -> bool:
    try:
        data = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return data == {"arch": arch, "version": VERSION, "tiny": tiny} and (folder / "model_index.json").is_file()


def build_folder(arch: str, folder: Path, device: str = "cpu", tiny: bool = False,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Save the pipeline of `arch` as a diffusers folder at `folder` (weights in `dtype`,
    float16 by default: 1.7 GB for SD 1.5, 7 GB for SDXL), unless an up-to-date one is
    there. Built beside it and renamed into place, so a folder is complete or absent."""
    folder = Path(folder)
    if _marker_ok(folder, arch, tiny):
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-build-", dir=folder.parent))
    try:
        pipe = make_pipeline(arch, device=device, dtype=dtype, tiny=tiny, folder=tmp)
        pipe.save_pretrained(tmp, safe_serialization=True)
        del pipe
        (tmp / MARKER).write_text(json.dumps({"arch": arch, "version": VERSION, "tiny": tiny}) + "\n",
                                  encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
