"""Real-size diffusion pipelines with random weights, made in code: SD 1.5, SDXL, FLUX.1
dev, Z-Image Turbo and FLUX.2 klein 4B.

The benchmarks need the real architectures (the cost of a step depends on the shapes,
not on the weights) but may download nothing, so the pipelines are built from the
published configs (runwayml/stable-diffusion-v1-5, stabilityai/stable-diffusion-xl-
base-1.0) with random weights (seed 0):

  SD 1.5  UNet 860 M parameters (320/640/1280/1280, cross attention 768), CLIP ViT-L/14
          text encoder (768 wide, 12 layers), the SD VAE (128/256/512/512): 1.07 B.
  SDXL    UNet 2.6 B (320/640/1280, 1/2/10 transformer layers, "text_time"
          conditioning of 2816), CLIP-L (768) and OpenCLIP-bigG (1280, 32 layers, with
          projection) text encoders, the SDXL VAE: 3.5 B.

  FLUX.1  FluxTransformer2DModel 11.9 B (FLUX.1-dev: 19 double + 38 single blocks, 24 heads
          of 128, guidance embedding), the FLUX VAE (16 latent channels).
  Z-Image ZImageTransformer2DModel 6.15 B (Z-Image-Turbo: 30 layers of 3840, 2 + 2 refiner
          layers, captions 2560 wide), the FLUX VAE.
  FLUX.2  Flux2Transformer2DModel 3.9 B (FLUX.2-klein-4B: 5 double + 20 single blocks, 24
          heads of 128, text 3 × 2560 wide, no guidance embedding), AutoencoderKLFlux2.

The three transformer pipelines (TRANSFORMER_ARCHITECTURES) have no text encoder: their
text encoders (T5-XXL, Qwen3-4B) are 4-5 B parameters the step rate does not depend on,
so a call passes random prompt embeddings of the real shapes (prompt_inputs()).

Tokenizers are the demo model's byte-level CLIP tokenizer (worker/demo_families.py,
77 tokens): CLIP's 49k-word vocabulary would need a download and tokenizing is not
what is measured; the text encoders keep CLIP's vocabulary size, so the parameter
counts are the real ones. `tiny=True` gives the same structure at a few megabytes (for
tests and for smoke runs on a CPU).

    make_pipeline(arch, device, dtype, tiny=False)              -> a pipeline in memory
    prompt_inputs(arch, device, dtype, tiny=False)              -> a call's prompt arguments
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

ARCHITECTURES = ("sd15", "sdxl")  # the UNet pipelines, with their text encoders (build_folder)
TRANSFORMER_ARCHITECTURES = ("flux1", "zimage", "flux2-klein")  # denoiser + VAE, embeddings in
ALL_ARCHITECTURES = ARCHITECTURES + TRANSFORMER_ARCHITECTURES
LABELS = {"sd15": "Stable Diffusion 1.5", "sdxl": "SDXL 1.0", "flux1": "FLUX.1 dev", "zimage": "Z-Image Turbo",
          "flux2-klein": "FLUX.2 klein 4B"}
NATIVE_SIZE = {"sd15": 512, "sdxl": 1024, "flux1": 1024, "zimage": 1024, "flux2-klein": 1024}
# The memory planner's (services/generation/planner.py) family and variant of each.
PLANNER_MODEL = {"sd15": ("sd1", ""), "sdxl": ("sdxl", ""), "flux1": ("flux", "dev"), "zimage": ("zimage", ""),
                 "flux2-klein": ("flux2", "klein-4b")}
# The prompt embeddings each transformer reads: (tokens, width) of its text encoder's
# output as the pipeline passes it. FLUX.1: T5-XXL padded to 512 (+ CLIP-L's pooled 768);
# Z-Image: Qwen3-4B's hidden states of the prompt's own tokens (not padded; 128 is a long
# prompt in its chat template); FLUX.2 klein: three Qwen3-4B layers side by side, padded to 512.
TEXT_SHAPES = {"flux1": (512, 4096), "zimage": (128, 2560), "flux2-klein": (512, 3 * 2560)}
TINY_TEXT_SHAPES = {"flux1": (16, 32), "zimage": (16, 32), "flux2-klein": (16, 48)}
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


def transformer_config(arch: str, tiny: bool = False) -> dict:
    """The denoiser config of a transformer family (the published transformer/config.json
    of FLUX.1-dev, Z-Image-Turbo, FLUX.2-klein-4B); `tiny`: the demo models' sizes."""
    if arch == "flux1":
        if tiny:
            return dict(patch_size=1, in_channels=64, num_layers=1, num_single_layers=2, attention_head_dim=16,
                        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
                        guidance_embeds=True, axes_dims_rope=(4, 4, 8))
        return dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                    num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                    guidance_embeds=True, axes_dims_rope=(16, 56, 56))
    if arch == "zimage":
        if tiny:
            return dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=32, n_layers=2,
                        n_refiner_layers=1, n_heads=2, n_kv_heads=2, qk_norm=True, cap_feat_dim=32,
                        axes_dims=[8, 4, 4], axes_lens=[1024, 512, 512])
        return dict(all_patch_size=(2,), all_f_patch_size=(1,), in_channels=16, dim=3840, n_layers=30,
                    n_refiner_layers=2, n_heads=30, n_kv_heads=30, norm_eps=1e-5, qk_norm=True, cap_feat_dim=2560,
                    rope_theta=256.0, t_scale=1000.0, axes_dims=[32, 48, 48], axes_lens=[1024, 512, 512])
    if arch == "flux2-klein":
        if tiny:
            return dict(patch_size=1, in_channels=128, num_layers=1, num_single_layers=2, attention_head_dim=16,
                        num_attention_heads=2, joint_attention_dim=48, timestep_guidance_channels=32,
                        axes_dims_rope=(4, 4, 4, 4), guidance_embeds=False)
        return dict(patch_size=1, in_channels=128, num_layers=5, num_single_layers=20, attention_head_dim=128,
                    num_attention_heads=24, joint_attention_dim=3 * 2560, timestep_guidance_channels=256,
                    mlp_ratio=3.0, axes_dims_rope=(32, 32, 32, 32), rope_theta=2000, guidance_embeds=False)
    raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ALL_ARCHITECTURES)}")


def _transformer(arch: str, tiny: bool):
    from diffusers import Flux2Transformer2DModel, FluxTransformer2DModel, ZImageTransformer2DModel

    cls = {"flux1": FluxTransformer2DModel, "zimage": ZImageTransformer2DModel,
           "flux2-klein": Flux2Transformer2DModel}[arch]
    model = cls(**transformer_config(arch, tiny))
    if arch == "zimage" and not model.x_pad_token.is_meta:
        with torch.no_grad():  # made with torch.empty: give them values
            model.x_pad_token.fill_(1.0)
            model.cap_pad_token.fill_(1.0)
    return model


def _transformer_vae(arch: str, tiny: bool):
    """FLUX.1's VAE (Z-Image uses the same) or FLUX.2's AutoencoderKLFlux2 (its defaults
    are the published config)."""
    from diffusers import AutoencoderKL, AutoencoderKLFlux2

    if arch == "flux2-klein":
        if tiny:
            return AutoencoderKLFlux2(block_out_channels=(8, 16, 16, 16), layers_per_block=1, latent_channels=32,
                                      norm_num_groups=4, sample_size=128, use_quant_conv=False,
                                      use_post_quant_conv=False)
        return AutoencoderKLFlux2()
    config = vae_config("sdxl", tiny)
    config.update(latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
                  use_post_quant_conv=False, force_upcast=False, sample_size=1024 // (8 if tiny else 1))
    return AutoencoderKL(**config)


def _flow_scheduler(arch: str):
    """The flow-matching scheduler_config.json of each."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if arch == "zimage":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
    extra = {"time_shift_type": "exponential"} if arch == "flux2-klein" else {}
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                           base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                           max_image_seq_len=4096, **extra)


def _make_transformer_pipeline(arch: str, device: str, dtype: torch.dtype, tiny: bool):
    """A transformer family's pipeline without text encoders; the weights are made
    directly in `dtype` (FLUX.1 in float32 would be 48 GB)."""
    from diffusers import Flux2KleinPipeline, FluxPipeline, ZImagePipeline

    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        try:
            if dtype.is_floating_point and device != "meta":
                torch.set_default_dtype(dtype)
            with torch.device(device):
                transformer = _transformer(arch, tiny)
                vae = _transformer_vae(arch, tiny)
        finally:
            torch.set_default_dtype(previous)
    scheduler = _flow_scheduler(arch)
    if arch == "flux1":
        pipe = FluxPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None, text_encoder_2=None,
                            tokenizer_2=None, transformer=transformer)
    elif arch == "zimage":
        pipe = ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None,
                              transformer=transformer)
    else:
        pipe = Flux2KleinPipeline(scheduler=scheduler, vae=vae, text_encoder=None, tokenizer=None,
                                  transformer=transformer, is_distilled=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompt_inputs(arch: str, device: str = "cpu", dtype: torch.dtype = torch.float32, tiny: bool = False) -> dict:
    """The prompt arguments of a call: text for the UNet pipelines (their encoders are
    built), random embeddings of the real shapes (TEXT_SHAPES, seed 1) for the others,
    with the guidance each runs at (one denoiser call a step: FLUX.1 dev's guidance is an
    embedding, Z-Image Turbo and FLUX.2 klein are distilled)."""
    if arch in ARCHITECTURES:
        return {"prompt": "a lighthouse on a cliff at sunset, oil painting", "guidance_scale": 7.0}
    tokens, width = (TINY_TEXT_SHAPES if tiny else TEXT_SHAPES)[arch]
    generator = torch.Generator("cpu").manual_seed(1)
    embeds = torch.randn(1, tokens, width, generator=generator).to(device=device, dtype=dtype)
    if arch == "flux1":
        pooled = torch.randn(1, 32 if tiny else 768, generator=generator).to(device=device, dtype=dtype)
        return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled, "guidance_scale": 3.5}
    if arch == "zimage":
        return {"prompt_embeds": [embeds[0]], "guidance_scale": 0.0}
    return {"prompt_embeds": embeds, "guidance_scale": 1.0}


def denoiser(pipe):
    """The pipeline's UNet or transformer."""
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


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
    files are written (the folder the pipeline will be saved in; UNet pipelines only)."""
    from diffusers import AutoencoderKL, StableDiffusionXLPipeline

    from worker.demo_model import assemble_pipeline

    if arch in TRANSFORMER_ARCHITECTURES:
        return _make_transformer_pipeline(arch, device, dtype, tiny)
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; one of {', '.join(ALL_ARCHITECTURES)}")
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
