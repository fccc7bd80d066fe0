"""The tiny random-weight Chroma demo model ("demo-chroma"), made in code.

Chroma is FLUX.1 schnell's architecture without the CLIP encoder and the modulation
layers: one T5 encoder (whose padding is masked but for one token), a transformer whose
per-block modulations come from a small MLP (the distilled_guidance_layer), and FLUX.1's
16-channel VAE, latents packed 2x2 as FLUX.1's are. It uses real classifier-free guidance
and a negative prompt. worker/demo_model.py builds and saves it; this only makes it.
"""
from __future__ import annotations

from pathlib import Path

from worker.demo_families import _t5_encoder, _vae, t5_tokenizer


def make_chroma(folder: Path):
    from diffusers import ChromaPipeline, ChromaTransformer2DModel, FlowMatchEulerDiscreteScheduler

    del folder  # (nothing is written beside the pipeline: the T5 tokenizer saves itself)
    tokenizer = t5_tokenizer()
    text_encoder = _t5_encoder(tokenizer, d_model=32)
    # 16 latent channels packed 2x2 -> 64 in; the approximator's input is the timestep
    # and guidance projections (16 each) and the modulation index (32).
    transformer = ChromaTransformer2DModel(
        patch_size=1,
        in_channels=64,
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=2,
        joint_attention_dim=32,  # T5's width
        axes_dims_rope=(4, 4, 8),  # sums to attention_head_dim
        approximator_num_channels=64,
        approximator_hidden_dim=32,
        approximator_layers=2,
    )
    vae = _vae(16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
               use_post_quant_conv=False, force_upcast=False)
    # Chroma1-HD's scheduler_config.json (FLUX.1 dev's: dynamic shifting by image size).
    scheduler = FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
        base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096,
    )
    return ChromaPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                          transformer=transformer)
