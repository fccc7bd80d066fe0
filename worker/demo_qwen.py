"""The tiny random-weight Qwen-Image demo model (demo-qwen, and demo-qwen-edit and
demo-qwen-edit-plus run from the same folder as Qwen-Image-Edit and Edit Plus): a
Qwen2.5-VL text encoder (with its vision tower, which the editing pipelines feed the
picture to), a byte-level BPE Qwen2 tokenizer and a Qwen2-VL processor made in code,
the Qwen-Image MMDiT and its 3D causal VAE (AutoencoderKLQwenImage: 16 latent channels,
latents 1/8 of the image), at a few megabytes. worker/demo_model.py builds and saves
it; this module only makes the objects.

The tokenizer has the special tokens the pipelines' prompt templates use
(<|im_start|>, <|im_end|>, <|vision_start|>, <|image_pad|>, <|vision_end|>) and no
merges: every other byte is one token, so any prompt tokenizes. The templates' system
text is then longer in tokens than the pipelines' drop index assumes: the first tokens
are dropped as with the real tokenizer and the rest is encoded with the prompt, which
changes nothing for a model of random weights."""
from __future__ import annotations

from pathlib import Path

from worker.demo_families import _bytes_to_unicode, drop_load_kwargs

# Qwen2.5-VL's special tokens, in its order (their ids here follow the 256 byte tokens).
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                  "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                  "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
# The editing pipelines' processor shrinks the picture to at most this many pixels for
# the vision tower (the real one allows 28 * 28 * 1280): a 2 x 2 grid of merged patches.
VISION_MAX_PIXELS = 56 * 56
LATENT_CHANNELS = 16
TEXT_WIDTH = 32


def qwen_tokenizer():
    """A Qwen2 tokenizer made in code: the 256 byte-level tokens and Qwen2.5-VL's
    special tokens, no merges."""
    from transformers import Qwen2Tokenizer

    vocab = {char: i for i, char in enumerate(_bytes_to_unicode().values())}
    for token in SPECIAL_TOKENS:
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(vocab=vocab, merges=[], unk_token=None, eos_token="<|im_end|>",
                               pad_token="<|endoftext|>", model_max_length=32768,
                               extra_special_tokens=[t for t in SPECIAL_TOKENS if t != "<|endoftext|>"])
    return drop_load_kwargs(tokenizer)


def qwen_processor(tokenizer):
    """A Qwen2-VL processor (the editing pipelines encode the picture with the prompt)."""
    from transformers import Qwen2VLImageProcessor, Qwen2VLProcessor, Qwen2VLVideoProcessor

    image_processor = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=VISION_MAX_PIXELS)
    video_processor = Qwen2VLVideoProcessor(min_pixels=28 * 28, max_pixels=VISION_MAX_PIXELS)
    return Qwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor)


def qwen_text_encoder(tokenizer):
    """A two-layer Qwen2.5-VL (text and vision) of width 32."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config={"hidden_size": TEXT_WIDTH, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": len(tokenizer),
                     "max_position_embeddings": 4096, "rope_theta": 1000000.0,
                     "rope_scaling": {"mrope_section": [2, 2, 4], "rope_type": "default", "type": "default"},
                     "bos_token_id": ids("<|endoftext|>"), "eos_token_id": ids("<|im_end|>"),
                     "pad_token_id": ids("<|endoftext|>")},
        vision_config={"depth": 2, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2,
                       "out_hidden_size": TEXT_WIDTH, "fullatt_block_indexes": [1], "window_size": 56},
        hidden_size=TEXT_WIDTH, vocab_size=len(tokenizer),
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    return Qwen2_5_VLForConditionalGeneration(config)


def qwen_vae():
    """The Qwen-Image VAE's architecture (Wan's 3D causal VAE, four levels: latents 1/8 of
    the image, 16 channels), narrow."""
    from diffusers import AutoencoderKLQwenImage

    return AutoencoderKLQwenImage(base_dim=8, z_dim=LATENT_CHANNELS, dim_mult=[1, 2, 4, 4], num_res_blocks=1,
                                  attn_scales=[], temperal_downsample=[False, True, True],
                                  latents_mean=[0.0] * LATENT_CHANNELS, latents_std=[1.0] * LATENT_CHANNELS)


def qwen_scheduler():
    """Qwen-Image's scheduler_config.json."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    return FlowMatchEulerDiscreteScheduler(
        num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
        base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential")


def make_qwen(folder: Path):
    """The demo Qwen-Image pipeline, saved with a processor beside its parts as a
    Qwen-Image-Edit folder has one: QwenImagePipeline loads the folder without it
    (demo-qwen), QwenImageEditPipeline and QwenImageEditPlusPipeline with it
    (demo-qwen-edit and demo-qwen-edit-plus, the same weights)."""
    from diffusers import QwenImagePipeline, QwenImageTransformer2DModel

    tokenizer = qwen_tokenizer()
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=LATENT_CHANNELS * 4, out_channels=LATENT_CHANNELS, num_layers=2,
        attention_head_dim=16, num_attention_heads=2, joint_attention_dim=TEXT_WIDTH, guidance_embeds=False,
        axes_dims_rope=(8, 4, 4))
    pipe = QwenImagePipeline(scheduler=qwen_scheduler(), vae=qwen_vae(), text_encoder=qwen_text_encoder(tokenizer),
                             tokenizer=tokenizer, transformer=transformer)
    # Listed in model_index.json; QwenImagePipeline's save_pretrained does not write a part
    # it does not take, so the processor is written here.
    processor = qwen_processor(tokenizer)
    pipe.register_modules(processor=processor)
    processor.save_pretrained(Path(folder) / "processor")
    return pipe
