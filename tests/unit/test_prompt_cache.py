"""The prompt-embedding cache (worker/pipelines/prompt_cache.py) on the tiny demo
pipelines, loaded on the CPU through the worker's own PipelineCache: a counting forward
hook on each text encoder shows whether a call ran the encoders. The same prompt on the
same model skips them and gives the same pixels as with the cache off; another prompt,
negative prompt or text-encoder LoRA weight runs them; the least recently used entry
goes at the bound; a call given embeddings goes straight through; nothing a pipeline
does to what it was handed reaches the cache."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, StableDiffusionPipeline
from peft import LoraConfig, inject_adapter_in_model
from peft.utils import get_peft_model_state_dict
from transformers import CLIPTextModel

from worker.guides import control
from worker.pipelines import prompt_cache
from worker.pipelines.cache import PipelineCache, img2img_from
from worker.pipelines.load import demo_folder_name
from worker.pipelines.loras import apply_loras

SIZE = 64


@pytest.fixture(autouse=True)
def fresh_prompt_cache():
    """Each test starts with an empty cache of the default size and zero counts."""
    prompt_cache.configure(prompt_cache.DEFAULT_ENTRIES)
    prompt_cache.cache.clear()
    prompt_cache.cache.hits = prompt_cache.cache.misses = prompt_cache.cache.bypassed = 0
    yield
    prompt_cache.configure(prompt_cache.DEFAULT_ENTRIES)
    prompt_cache.cache.clear()


@pytest.fixture(scope="module")
def prompt_models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("prompt-cache-models")


def loaded(models: Path, spec: str):
    """The worker's pipeline cache holding `spec` (the cache installed on it)."""
    pipelines = PipelineCache(models, device="cpu")
    pipelines.get(spec)
    return pipelines


@pytest.fixture(scope="module")
def sd_pipelines(prompt_models):
    return loaded(prompt_models, "demo")


class EncoderCalls:
    """Forward calls of every text encoder of a pipeline, while in a with block."""

    def __init__(self, pipe):
        self.encoders = [getattr(pipe, name) for name in prompt_cache.TEXT_ENCODERS
                         if getattr(pipe, name, None) is not None]
        self.count = 0

    def __enter__(self):
        self.hooks = [e.register_forward_hook(self.seen) for e in self.encoders]
        return self

    def seen(self, *args):
        self.count += 1

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()


def prompt_pixels(pipe, **values) -> np.ndarray:
    call = dict(prompt="a lighthouse at dusk", num_inference_steps=2, height=SIZE, width=SIZE,
                output_type="np", generator=torch.Generator().manual_seed(7))
    call.update(values)
    return pipe(**call).images


def sd_encoded(pipe, prompt="a lighthouse", negative_prompt=None):
    """SD 1.x's encode_prompt as its __call__ calls it (positional, then keywords)."""
    return pipe.encode_prompt(prompt, torch.device("cpu"), 1, True, negative_prompt, prompt_embeds=None,
                              negative_prompt_embeds=None, lora_scale=None, clip_skip=None)


def runs_encoders(pipe, call) -> int:
    with EncoderCalls(pipe) as calls:
        call()
    return calls.count


# --- a hit skips the encoders and changes nothing -----------------------------------------

@pytest.mark.parametrize("spec", ["demo", "demo-flux", "demo-sdxl"])
def test_prompt_cache_the_same_prompt_skips_the_text_encoders_and_gives_the_same_pixels(prompt_models, spec):
    pipelines = loaded(prompt_models, spec)
    pipe = pipelines.pipe
    with EncoderCalls(pipe) as first:
        cold = prompt_pixels(pipe)
    with EncoderCalls(pipe) as second:
        warm = prompt_pixels(pipe)
    assert first.count > 0 and second.count == 0  # the second call took the cached embeddings
    assert prompt_cache.cache.hits >= 1
    prompt_cache.configure(0)  # the cache off: the encoders run again, to the same pixels
    with EncoderCalls(pipe) as off:
        uncached = prompt_pixels(pipe)
    assert off.count == first.count
    assert np.array_equal(cold, warm) and np.array_equal(warm, uncached)
    prompt_cache.configure(prompt_cache.DEFAULT_ENTRIES)
    with EncoderCalls(pipe) as other:
        prompt_pixels(pipe, prompt="a harbour at noon")
    assert other.count == first.count  # another prompt: the encoders run
    pipelines.unload()
    assert len(prompt_cache.cache) == 0  # an unloaded model's entries go with it


def test_prompt_cache_another_prompt_or_negative_prompt_misses(sd_pipelines):
    pipe = sd_pipelines.pipe
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a red boat")) > 0
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a red boat")) == 0
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a blue boat")) > 0
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a red boat", "fog")) > 0
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a red boat", "rain")) > 0
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a red boat", "fog")) == 0
    # Keywords or positions, the same call: a hit.
    assert runs_encoders(pipe, lambda: pipe.encode_prompt(
        prompt="a red boat", device=torch.device("cpu"), num_images_per_prompt=1,
        do_classifier_free_guidance=True, negative_prompt="fog")) == 0
    # Any other argument is part of the key too: lora_scale, images per prompt.
    assert runs_encoders(pipe, lambda: pipe.encode_prompt("a red boat", torch.device("cpu"), 1, True, "fog",
                                                          lora_scale=0.5)) > 0
    assert runs_encoders(pipe, lambda: pipe.encode_prompt("a red boat", torch.device("cpu"), 2, True, "fog")) > 0
    assert (prompt_cache.cache.hits, prompt_cache.cache.misses) == (3, 6)


def test_prompt_cache_the_least_recently_used_entry_goes_at_the_bound(sd_pipelines):
    pipe = sd_pipelines.pipe
    prompt_cache.configure(2)
    for prompt in ("one", "two"):
        sd_encoded(pipe, prompt)
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "one")) == 0  # "one" is now the most recent
    sd_encoded(pipe, "three")  # a third entry: "two", the least recently used, goes
    assert len(prompt_cache.cache) == 2
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "one")) == 0
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "three")) == 0
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "two")) > 0


def test_prompt_cache_zero_entries_leaves_the_pipeline_as_diffusers_made_it(prompt_models):
    pipelines = PipelineCache(prompt_models, device="cpu", prompt_entries=0)  # DAYDREAM_PROMPT_CACHE=0
    pipe = pipelines.get("demo")
    assert "encode_prompt" not in vars(pipe) and prompt_cache.model_of(pipe) is None
    assert runs_encoders(pipe, lambda: sd_encoded(pipe)) > 0
    assert runs_encoders(pipe, lambda: sd_encoded(pipe)) > 0
    assert len(prompt_cache.cache) == 0
    pipelines.unload()


def test_prompt_cache_bytes_bound_keeps_the_newest():
    small = prompt_cache.PromptCache(entries=10, max_bytes=3 * 4 * 100)  # three 100-float entries
    for n in range(5):
        small.put(("m", n), torch.zeros(100))
    assert [key[1] for key in small._store] == [2, 3, 4]
    small.put(("m", 9), torch.zeros(1000))  # larger than the bound alone: it stays, by itself
    assert [key[1] for key in small._store] == [9]
    off = prompt_cache.PromptCache(entries=0)
    off.put(("m", 1), torch.zeros(1))
    assert len(off) == 0


def test_prompt_cache_given_embeddings_go_straight_through(sd_pipelines):
    pipe = sd_pipelines.pipe
    embeds, negative = sd_encoded(pipe, "a quiet street")
    before = (prompt_cache.cache.hits, prompt_cache.cache.misses, prompt_cache.cache.bypassed)
    with EncoderCalls(pipe) as calls:
        out = prompt_pixels(pipe, prompt=None, prompt_embeds=embeds, negative_prompt_embeds=negative)
    assert calls.count == 0 and out.shape == (1, SIZE, SIZE, 3)
    assert prompt_cache.cache.bypassed == before[2] + 1
    assert (prompt_cache.cache.hits, prompt_cache.cache.misses) == before[:2]
    assert len(prompt_cache.cache) == 1  # only the encode above


def test_prompt_cache_what_a_pipeline_does_to_its_embeddings_never_reaches_the_cache(sd_pipelines):
    pipe = sd_pipelines.pipe
    embeds, _ = sd_encoded(pipe, "a tall tree")
    kept = embeds.clone()
    embeds.mul_(0)  # a pipeline that edits them in place
    again, _ = sd_encoded(pipe, "a tall tree")
    assert prompt_cache.cache.hits == 1
    assert torch.equal(again, kept)


def test_prompt_cache_img2img_and_controlnet_pipelines_made_from_the_loaded_one_share_it(sd_pipelines):
    pipe = sd_pipelines.pipe
    img2img = img2img_from(pipe)
    assert prompt_cache.model_of(img2img) == prompt_cache.model_of(pipe) is not None
    picture = np.full((1, SIZE, SIZE, 3), 0.5, np.float32)
    call = dict(prompt="a bridge", image=picture, strength=0.5, num_inference_steps=2, output_type="np",
                generator=torch.Generator().manual_seed(3))
    with EncoderCalls(pipe) as first:
        img2img(**call)
    with EncoderCalls(pipe) as second:
        img2img(**{**call, "generator": torch.Generator().manual_seed(3)})
    assert first.count > 0 and second.count == 0
    # A ControlNet pipeline made from it (worker/guides/control.py) is the same model too.
    runner, _ = control.controlled(pipe, pipe, [ControlNetModel.from_unet(pipe.unet)], ("prompt-cache-net",))
    assert prompt_cache.model_of(runner) == prompt_cache.model_of(pipe)
    assert runs_encoders(pipe, lambda: sd_encoded(runner, "a bridge")) > 0  # (its own class: its own entries)
    assert runs_encoders(pipe, lambda: sd_encoded(runner, "a bridge")) == 0


# --- LoRAs on the text encoder ---------------------------------------------------------------

def text_encoder_lora(models: Path, folder: Path) -> Path:
    """A LoRA of the SD 1.x demo model's text encoder (q and v projections, seeded), in
    diffusers' LoRA format."""
    encoder = CLIPTextModel.from_pretrained(models / demo_folder_name("demo"), subfolder="text_encoder")
    torch.manual_seed(5)
    inject_adapter_in_model(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False,
                                       target_modules=["q_proj", "v_proj"]), encoder)
    layers = {k: v.detach().clone().contiguous() for k, v in get_peft_model_state_dict(encoder).items()}
    StableDiffusionPipeline.save_lora_weights(folder, text_encoder_lora_layers=layers,
                                              weight_name="te.safetensors", safe_serialization=True)
    return folder / "te.safetensors"


def test_prompt_cache_the_text_encoder_loras_and_their_weights_are_part_of_the_key(prompt_models, tmp_path):
    pipelines = loaded(prompt_models, "demo")
    pipe = pipelines.pipe
    lora = text_encoder_lora(prompt_models, tmp_path)
    plain, _ = sd_encoded(pipe, "a castle")
    assert len(prompt_cache.cache) == 1

    apply_loras(pipe, [{"id": "te", "name": "te", "weight": 1.0}], {"te": lora})
    assert len(prompt_cache.cache) == 0  # a LoRA loaded: the model's entries go
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a castle")) > 0
    full, _ = sd_encoded(pipe, "a castle")
    assert not torch.allclose(full, plain)
    apply_loras(pipe, [{"id": "te", "name": "te", "weight": 0.5}], {})
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a castle")) > 0  # another weight: a miss
    half, _ = sd_encoded(pipe, "a castle")
    assert not torch.allclose(half, full)
    apply_loras(pipe, [{"id": "te", "name": "te", "weight": 1.0}], {})
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a castle")) == 0  # back to 1.0: its entry
    assert torch.equal(sd_encoded(pipe, "a castle")[0], full)
    apply_loras(pipe, [], {})  # no LoRA: the encoders as they were, a new entry of their own
    assert runs_encoders(pipe, lambda: sd_encoded(pipe, "a castle")) > 0
    assert torch.allclose(sd_encoded(pipe, "a castle")[0], plain)
    pipelines.unload()
