"""The tiny random-weight Z-Image demo model ("demo-zimage"), made in code.

It has Z-Image Turbo's architecture at a few megabytes: a Qwen3 text encoder (the
pipeline reads its second-to-last hidden layer) behind a byte-level BPE Qwen2Tokenizer
with Qwen3's chat template, a ZImageTransformer2DModel (single-stream DiT with noise and
context refiners), the FLUX.1 VAE's shape (16 latent channels, its scaling and shift)
and Z-Image Turbo's flow-matching scheduler settings. worker/demo_model.py builds and
saves it (MAKERS); its images are coloured noise.
"""

from __future__ import annotations

from pathlib import Path

from worker.demo_families import _bytes_to_unicode, _vae, drop_load_kwargs

# Qwen3's special tokens, in its order (after the byte alphabet here).
QWEN_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>")
# Qwen3's chat template, cut to what ZImagePipeline.encode_prompt asks of it: one user
# message, the assistant's turn opened (add_generation_prompt), the empty thinking block
# when thinking is switched off. Z-Image's prompt is
# "<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n".
QWEN3_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)
# A few merges of frequent English pairs, so it is a BPE and not only bytes ("Ġ" is the
# byte-level space).
QWEN_MERGES = (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("o", "n"))


def qwen_tokenizer(max_length: int = 512):
    """A Qwen2-style byte-level BPE tokenizer made in code with the `tokenizers` library:
    the 256-byte alphabet, a few merges and Qwen3's special tokens, wrapped as
    transformers' Qwen2Tokenizer with Qwen3's chat template (pad <|endoftext|>, end of
    turn <|im_end|>). Any prompt, unicode included, tokenizes without unknown tokens."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers import Qwen2Tokenizer

    alphabet = list(_bytes_to_unicode().values())
    merges = [a + b for a, b in QWEN_MERGES]
    vocab = {token: i for i, token in enumerate(alphabet + [m for m in merges if m not in alphabet])}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(QWEN_MERGES), fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    # Qwen2's split of words, numbers and punctuation, then the byte-level alphabet.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
                                   r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""),
                             behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    tokenizer = Qwen2Tokenizer(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                               unk_token=None, model_max_length=max_length, chat_template=QWEN3_CHAT_TEMPLATE)
    return drop_load_kwargs(tokenizer)


def qwen3_encoder(tokenizer, hidden_size: int = 32, layers: int = 2):
    """A tiny Qwen3 text encoder (Qwen3Model, as Z-Image's) for `tokenizer`."""
    from transformers import Qwen3Config, Qwen3Model

    return Qwen3Model(Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        head_dim=hidden_size // 2,
        max_position_embeddings=tokenizer.model_max_length,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    ))


def make_zimage(folder: Path):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel

    del folder  # the tokenizer is saved with the pipeline (tokenizer.json)
    tokenizer = qwen_tokenizer()
    text_encoder = qwen3_encoder(tokenizer)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,),
        all_f_patch_size=(1,),
        in_channels=16,
        dim=32,
        n_layers=2,
        n_refiner_layers=1,
        n_heads=2,
        n_kv_heads=2,
        qk_norm=True,
        cap_feat_dim=32,  # the text encoder's width
        axes_dims=[8, 4, 4],  # sums to the head width (32 / 2)
        axes_lens=[1024, 512, 512],  # Z-Image's: a 512-token caption, images up to 8192 px
    )
    with torch.no_grad():  # made with torch.empty: give them values (saved with the weights)
        transformer.x_pad_token.copy_(torch.ones_like(transformer.x_pad_token))
        transformer.cap_pad_token.copy_(torch.ones_like(transformer.cap_pad_token))
    vae = _vae(16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
               use_post_quant_conv=False, force_upcast=False)  # the FLUX.1 VAE's latent space
    # Z-Image Turbo's scheduler_config.json.
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=False)
    return ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                          transformer=transformer)
