"""Tiny random-weight demo pipelines of the newer families (SDXL, SD3, FLUX.1
schnell), the tokenizers made in code that every demo model uses (the SD 1.x one
too), and the tiny LoRAs of every demo family. worker/demo_model.py builds and
saves them (atomic, versioned folders); this module only makes the objects.

Each has the architecture of its real family (text encoders, denoiser, a VAE whose
latents are 1/8 of the image with the family's latent channels and scaling, the
family's scheduler settings) at a size of a few megabytes, so a 128x128 image
takes a fraction of a second on a CPU. The images are coloured noise.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

# T5 v1.1's tokenizer is 512 tokens long; SD3 asks for 256 by default and FLUX for
# 256 (schnell) or 512 (dev), all of which fit.
T5_MAX_LENGTH = 512


# --- parts ---------------------------------------------------------------------------

def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table (the byte-level
    alphabet). Written out here so it does not depend on where a given
    transformers version keeps its copy."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _write_tokenizer_files(folder: Path) -> int:
    """Write a byte-level CLIP vocabulary with no merges: every text is split
    into single bytes, so any prompt (unicode included) tokenizes without
    unknown tokens. Returns the vocabulary size."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # CLIP's merges file starts with a version line; the loader skips it.
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return len(vocab)


def drop_load_kwargs(tokenizer):
    """transformers 5 records the load arguments (local_files_only, is_local) in
    init_kwargs and would save them as settings: drop them."""
    for key in ("local_files_only", "is_local"):
        tokenizer.init_kwargs.pop(key, None)
    return tokenizer


def clip_tokenizer(tok_dir: Path):
    """The byte-level CLIP tokenizer (77 tokens), its files written into `tok_dir`
    (where the pipeline saves that tokenizer). Returns (tokenizer, vocab size)."""
    from transformers import CLIPTokenizer

    # Written where the pipeline keeps its tokenizer: transformers 5 saves only
    # tokenizer.json, and these two files keep the folder loadable by the
    # slow tokenizer of transformers 4 as well.
    vocab_size = _write_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    return drop_load_kwargs(tokenizer), vocab_size



def clip_config(tokenizer, vocab_size: int, **extra):
    from transformers import CLIPTextConfig

    settings = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=32,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    settings.update(extra)
    return CLIPTextConfig(**settings)


def t5_tokenizer():
    """A T5-style tokenizer made in code: a Unigram model over single characters
    (printable ASCII and Latin-1, each also as a word start "▁x"), with T5's special
    tokens <pad>=0, </s>=1, <unk>=2; other characters become <unk>."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    chars = [c for c in string.printable if not c.isspace()]
    chars += [chr(i) for i in range(0xA1, 0x100) if chr(i).isprintable() and chr(i) not in chars]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + c, -1.0) for c in chars] + [(c, -1.5) for c in chars]
    tok = Tokenizer(models.Unigram(vocab, unk_id=2, byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", 1)],
    )
    tokenizer = T5TokenizerFast(tokenizer_object=tok, extra_ids=0, model_max_length=T5_MAX_LENGTH,
                                eos_token="</s>", unk_token="<unk>", pad_token="<pad>")
    return drop_load_kwargs(tokenizer)


def _t5_encoder(tokenizer, d_model: int):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=len(tokenizer),
        d_model=d_model,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=32,
        feed_forward_proj="gated-gelu",  # T5 v1.1, as SD3 and FLUX use
        is_encoder_decoder=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    ))


def _vae(latent_channels: int, **extra):
    """Four blocks -> latents are 1/8 of the image, as in the real models."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=128,
        **extra,
    )


# --- pipelines -----------------------------------------------------------------------

def make_sdxl(folder: Path):
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer, vocab_size = clip_tokenizer(folder / "tokenizer")
    tokenizer_2, _ = clip_tokenizer(folder / "tokenizer_2")
    text_encoder = CLIPTextModel(clip_config(tokenizer, vocab_size))
    # Wider than the first, as OpenCLIP-G is than CLIP-L: diffusers' single-file loader
    # tells SDXL's two encoders apart by their widths.
    text_encoder_2 = CLIPTextModelWithProjection(clip_config(tokenizer_2, vocab_size, hidden_size=48))
    # As diffusers' tiny SDXL test UNet: the first down block has no attention, as in
    # SDXL; the added conditioning is 6 size/crop numbers x 8 + the pooled text (32).
    unet = UNet2DConditionModel(
        sample_size=16,  # latents; the pipeline's default image is 128 px
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        transformer_layers_per_block=(1, 2),
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=32 + 48,  # the two encoders' hidden states side by side
        norm_num_groups=32,
    )
    vae = _vae(4, scaling_factor=0.13025, force_upcast=False)
    # SDXL base's scheduler_config.json.
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
        interpolation_type="linear",
        prediction_type="epsilon",
        use_karras_sigmas=False,
    )
    scheduler.register_to_config(clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True,
                                 sample_max_value=1.0)
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
        tokenizer_2=tokenizer_2, unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True,
    )


def make_sd3(folder: Path):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    tokenizer, vocab_size = clip_tokenizer(folder / "tokenizer")
    tokenizer_2, _ = clip_tokenizer(folder / "tokenizer_2")
    text_encoder = CLIPTextModelWithProjection(clip_config(tokenizer, vocab_size))  # CLIP-L style
    text_encoder_2 = CLIPTextModelWithProjection(  # CLIP-G style: a little wider
        clip_config(tokenizer_2, vocab_size, hidden_size=48, intermediate_size=96, projection_dim=48))
    tokenizer_3 = t5_tokenizer()
    # The CLIP hidden states (32 + 48) are padded to T5's width and put before its tokens.
    text_encoder_3 = _t5_encoder(tokenizer_3, d_model=80)
    transformer = SD3Transformer2DModel(
        sample_size=16,
        patch_size=2,
        in_channels=16,
        out_channels=16,
        num_layers=2,
        attention_head_dim=8,
        num_attention_heads=4,
        joint_attention_dim=80,
        caption_projection_dim=32,
        pooled_projection_dim=32 + 48,
        pos_embed_max_size=96,
        qk_norm="rms_norm",  # as SD 3.5
    )
    vae = _vae(16, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False,
               use_post_quant_conv=False, force_upcast=False)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    return StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler, vae=vae,
        text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2,
        text_encoder_3=text_encoder_3, tokenizer_3=tokenizer_3,
    )


def make_flux(folder: Path):
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer, vocab_size = clip_tokenizer(folder / "tokenizer")
    text_encoder = CLIPTextModel(clip_config(tokenizer, vocab_size))
    tokenizer_2 = t5_tokenizer()
    text_encoder_2 = _t5_encoder(tokenizer_2, d_model=32)
    # FLUX.1 schnell: no guidance embedding. 16 latent channels packed 2x2 -> 64 in.
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5's width
        pooled_projection_dim=32,  # CLIP's pooled output
        guidance_embeds=False,
        axes_dims_rope=(4, 4, 8),  # sums to attention_head_dim
    )
    vae = _vae(16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
               use_post_quant_conv=False, force_upcast=False)
    # FLUX.1 schnell's scheduler_config.json.
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
        base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096,
    )
    return FluxPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
    )


MAKERS = {"sdxl": make_sdxl, "sd3": make_sd3, "flux": make_flux}


# --- LoRAs ---------------------------------------------------------------------------

# What each demo LoRA adapts. SD 1.x/SDXL: the UNet's attention (self and cross); SD3
# and FLUX: the transformer's joint attention (image and text sides), and for FLUX
# the single-stream blocks too (their attention, MLP-in and output projections).
_ATTENTION = ["to_q", "to_k", "to_v", "to_out.0"]
_JOINT = _ATTENTION + ["add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
LORA_TARGETS = {
    "sd1": _ATTENTION,
    "sdxl": _ATTENTION,
    "sd3": _JOINT,
    "flux": _JOINT + ["proj_mlp", "proj_out"],
    "chroma": _JOINT + ["proj_mlp", "proj_out"],  # Chroma: FLUX.1's blocks
    "zimage": _ATTENTION + ["w1", "w2", "w3"],  # Z-Image: its blocks' attention and SwiGLU
    "flux2": _JOINT + ["to_qkv_mlp_proj"],  # FLUX.2: joint attention, the single blocks' fused projection
    "qwen": _JOINT + ["img_mlp.net.2", "txt_mlp.net.2"],  # Qwen-Image: joint attention and the MLPs' out
}
LORA_RANK = 4
# peft's init_lora_weights=False leaves both A and B as nn.Linear's random init; B is
# scaled by this so that at weight 1 the LoRA changes the pixels by about half as much
# as another seed does (mean |difference| about 0.07-0.1 of full scale), never to NaN.
LORA_B_SCALE = {"sd1": 3.0, "sdxl": 6.0, "sd3": 6.0, "flux": 3.0, "zimage": 3.0, "chroma": 3.0, "flux2": 30.0, "qwen": 3.0}


def _lora_parts(family: str):
    """(pipeline class, denoiser class, subfolder, save_lora_weights keyword)."""
    import diffusers

    if family in ("sd1", "sdxl"):
        pipeline = diffusers.StableDiffusionPipeline if family == "sd1" else diffusers.StableDiffusionXLPipeline
        return pipeline, diffusers.UNet2DConditionModel, "unet", "unet_lora_layers"
    if family == "sd3":
        return (diffusers.StableDiffusion3Pipeline, diffusers.SD3Transformer2DModel, "transformer",
                "transformer_lora_layers")
    if family == "flux":
        return diffusers.FluxPipeline, diffusers.FluxTransformer2DModel, "transformer", "transformer_lora_layers"
    if family == "chroma":
        return (diffusers.ChromaPipeline, diffusers.ChromaTransformer2DModel, "transformer",
                "transformer_lora_layers")
    if family == "flux2":
        return (diffusers.Flux2KleinPipeline, diffusers.Flux2Transformer2DModel, "transformer",
                "transformer_lora_layers")
    if family == "qwen":
        return (diffusers.QwenImagePipeline, diffusers.QwenImageTransformer2DModel, "transformer",
                "transformer_lora_layers")
    if family == "zimage":
        return (diffusers.ZImagePipeline, diffusers.ZImageTransformer2DModel, "transformer",
                "transformer_lora_layers")
    raise ValueError(f"unknown demo family {family!r}")


def write_lora(directory: Path, weight_name: str, family: str, model_folder: Path) -> Path:
    """Make the demo LoRA of `family` on the denoiser in `model_folder` and save it as
    `directory`/`weight_name` (diffusers' LoRA format, no metadata but the format)."""
    import torch
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    pipeline_class, model_class, subfolder, keyword = _lora_parts(family)
    denoiser = model_class.from_pretrained(model_folder, subfolder=subfolder, local_files_only=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        denoiser.add_adapter(LoraConfig(r=LORA_RANK, lora_alpha=LORA_RANK, init_lora_weights=False,
                                        target_modules=LORA_TARGETS[family]))
    layers = get_peft_model_state_dict(denoiser)
    scale = LORA_B_SCALE[family]
    layers = {k: (v * scale if ".lora_B." in k else v).detach().clone().contiguous() for k, v in layers.items()}
    pipeline_class.save_lora_weights(directory, **{keyword: layers}, weight_name=weight_name,
                                     safe_serialization=True)
    return Path(directory) / weight_name
