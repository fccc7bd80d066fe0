"""The tiny random-weight FLUX.2 klein demo model (Flux2KleinPipeline), made in code.

It has klein's parts: a Qwen3 text encoder whose hidden layers 9, 18 and 27 are read
side by side (so it has 27 layers, each a few hundred weights wide), its byte-level BPE
tokenizer wrapped as a Qwen2 tokenizer with the chat template encode_prompt applies, a
FLUX.2 transformer over 32 latent channels patched 2x2 (128 in), and a FLUX.2 VAE
(AutoencoderKLFlux2: four blocks, so latents are 1/8 of the image, with its batch-norm
statistics). It is step-distilled like klein 4B/9B (is_distilled: no guidance). A few
megabytes; a 64x64 picture takes a fraction of a second on a CPU. Its images are noise.
"""

from __future__ import annotations

from pathlib import Path

from worker.demo_families import _bytes_to_unicode, drop_load_kwargs

# Qwen3's special tokens (those its chat template and the pipeline's padding use).
QWEN_SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
# What Qwen3's chat template writes for one user message with add_generation_prompt and
# enable_thinking=False (the only way Flux2KleinPipeline.encode_prompt applies it).
QWEN3_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)
TEXT_LAYERS = 27  # klein reads hidden states 9, 18 and 27
TEXT_WIDTH = 16  # the transformer's joint attention takes three of these side by side


def qwen_tokenizer():
    """A byte-level BPE tokenizer with no merges (every text is its bytes, so nothing is
    unknown), Qwen's special tokens and Qwen3's chat template, as Qwen2TokenizerFast."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import Qwen2TokenizerFast

    vocab = {char: i for i, char in enumerate(_bytes_to_unicode().values())}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tokenizer = Qwen2TokenizerFast(tokenizer_object=tok, unk_token=None, bos_token=None,
                                   eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=512)
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN_SPECIAL[1:])})
    tokenizer.chat_template = QWEN3_CHAT_TEMPLATE
    return drop_load_kwargs(tokenizer)


def qwen3_encoder(tokenizer):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    return Qwen3ForCausalLM(Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=TEXT_WIDTH, intermediate_size=32,
        num_hidden_layers=TEXT_LAYERS, num_attention_heads=2, num_key_value_heads=1, head_dim=8,
        max_position_embeddings=1024, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    ))


def flux2_vae():
    from diffusers import AutoencoderKLFlux2

    return AutoencoderKLFlux2(
        block_out_channels=(8, 16, 16, 16), layers_per_block=1, latent_channels=32, norm_num_groups=4,
        sample_size=128, use_quant_conv=False, use_post_quant_conv=False,
    )


def flux2_transformer(guidance_embeds: bool = False):
    from diffusers import Flux2Transformer2DModel

    return Flux2Transformer2DModel(
        patch_size=1, in_channels=128,  # 32 latent channels in 2x2 patches
        num_layers=1, num_single_layers=2, attention_head_dim=16, num_attention_heads=2,
        joint_attention_dim=3 * TEXT_WIDTH, timestep_guidance_channels=32,
        axes_dims_rope=(4, 4, 4, 4),  # sums to attention_head_dim
        guidance_embeds=guidance_embeds,
    )


def flux2_scheduler():
    """FLUX.2 klein's scheduler_config.json (dynamic shifting: mu from the sequence)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                           base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                           max_image_seq_len=4096, time_shift_type="exponential")


def make_flux2(folder: Path):
    from diffusers import Flux2KleinPipeline

    del folder  # (the tokenizer is made whole in code: nothing to write first)
    tokenizer = qwen_tokenizer()
    return Flux2KleinPipeline(scheduler=flux2_scheduler(), vae=flux2_vae(), text_encoder=qwen3_encoder(tokenizer),
                              tokenizer=tokenizer, transformer=flux2_transformer(), is_distilled=True)
