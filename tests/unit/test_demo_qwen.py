"""The demo Qwen-Image's tokenizer and processor made in code (worker/demo_qwen.py): every
prompt tokenizes without unknown tokens (unicode too, byte by byte), the special tokens the
pipelines' prompt templates use are single tokens, and the processor turns the Edit
pipeline's one <|image_pad|> into the small picture's merged patches, which the tiny
Qwen2.5-VL encodes."""
from __future__ import annotations

import pytest
from PIL import Image

from worker import demo_qwen


@pytest.fixture(scope="module")
def tokenizer():
    return demo_qwen.qwen_tokenizer()


def test_any_prompt_tokenizes_byte_by_byte_and_decodes_back(tokenizer):
    text = "a café at dusk, 東京 🌆"
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text.encode("utf-8")) and tokenizer.decode(ids) == text


def test_the_prompt_templates_special_tokens_are_single_tokens(tokenizer):
    for token in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>"):
        assert tokenizer(token)["input_ids"] == [tokenizer.convert_tokens_to_ids(token)]
    assert tokenizer.pad_token == "<|endoftext|>"


def test_the_processor_expands_the_picture_to_its_merged_patches_and_the_encoder_reads_them(tokenizer):
    import torch

    processor = demo_qwen.qwen_processor(tokenizer)
    text = "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>make it red<|im_end|>"
    inputs = processor(text=[text], images=[Image.new("RGB", (1024, 768), "blue")], return_tensors="pt")
    pads = (inputs["input_ids"] == tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum().item()
    assert 1 <= pads <= demo_qwen.VISION_MAX_PIXELS // (28 * 28)  # shrunk for the tiny vision tower
    encoder = demo_qwen.qwen_text_encoder(tokenizer)
    with torch.no_grad():
        hidden = encoder(**inputs, output_hidden_states=True).hidden_states[-1]
    assert hidden.shape == (1, inputs["input_ids"].shape[1], demo_qwen.TEXT_WIDTH)
