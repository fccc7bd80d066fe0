"""worker/batching.py: which tasks share a call and how many images a call holds; and
DAYDREAM_COMPILE's compile_pipeline (its compiled run is measured by bench/, where the
first call's compile time is paid once)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from worker.batching import BatchLimits, Joiner, batch_key, can_join, chunks, memory_batch


def task(**overrides):
    values = dict(id="t", model="demo", width=512, height=512, steps=30, scheduler="euler", guidance=7.5,
                  loras=None, init_image_id=None, strength=None, negative_prompt="", samples=1,
                  prompt="a fox", seed=1)
    values.update(overrides)
    return SimpleNamespace(**values)


def test_prompts_negative_prompts_and_seeds_may_differ_in_a_call():
    assert can_join(task(), task(prompt="a whale", seed=99, samples=3))
    assert can_join(task(negative_prompt="blurry"), task(negative_prompt="dark"))


@pytest.mark.parametrize("change", [
    {"model": "other"}, {"width": 768}, {"height": 640}, {"steps": 20}, {"scheduler": "ddim"},
    {"guidance": 5.0}, {"loras": [{"id": "ink", "weight": 1.0}]},
    {"init_image_id": "img", "strength": 0.6},
    {"negative_prompt": "blurry"},  # one with a negative prompt, one without (SDXL encodes them apart)
])
def test_anything_else_that_changes_the_call_keeps_tasks_apart(change):
    assert not can_join(task(), task(**change))


def test_the_lora_set_and_weights_and_the_strength_are_part_of_the_key():
    ink = [{"id": "ink", "weight": 1.0}]
    assert can_join(task(loras=ink), task(loras=[{"id": "ink", "weight": 1.0, "name": "Ink"}]))
    assert not can_join(task(loras=ink), task(loras=[{"id": "ink", "weight": 0.5}]))
    img = {"init_image_id": "a"}
    assert can_join(task(**img, strength=0.6), task(init_image_id="b", strength=0.6))
    assert not can_join(task(**img, strength=0.6), task(**img, strength=0.7))
    assert batch_key(task(**img, strength=0.6)) != batch_key(task())


def test_images_per_call_one_on_a_cpu_by_memory_on_a_gpu_and_the_setting_wins():
    limits = BatchLimits()
    assert limits.limit("demo", 512, 512, device_type="cpu") == 1
    gib = 1024 ** 3
    on_gpu = limits.limit("demo", 512, 512, device_type="cuda", free_bytes=20 * gib, family="sd1")
    assert on_gpu == memory_batch(20 * gib, "sd1", 512, 512) > 4
    assert memory_batch(20 * gib, "sdxl", 1024, 1024) < on_gpu  # larger images, fewer a call
    assert memory_batch(1 * gib, "flux", 1024, 1024) == 1  # never less than one
    assert memory_batch(10_000 * gib, "sd1", 64, 64) == 16  # nor more than MOST_IMAGES
    assert BatchLimits(configured=6).limit("demo", 512, 512, device_type="cpu") == 6


def test_out_of_memory_teaches_half_the_size_for_that_model_and_size_only():
    limits = BatchLimits(configured=8)
    assert limits.out_of_memory("demo", 512, 512, images=8) == 4
    assert limits.limit("demo", 512, 512, device_type="cuda") == 4
    assert limits.limit("demo", 768, 512, device_type="cuda") == 8
    assert limits.limit("other", 512, 512, device_type="cuda") == 8
    limits.out_of_memory("demo", 512, 512, images=6)  # a smaller call failed too
    assert limits.limit("demo", 512, 512, device_type="cuda") == 3
    limits.out_of_memory("demo", 512, 512, images=8)  # never raises it back
    assert limits.limit("demo", 512, 512, device_type="cuda") == 3


def test_the_joiner_counts_images_up_to_the_heads_limit():
    joins = Joiner(lambda head: 4)
    head = task(samples=2)
    assert joins(head, task(samples=1))
    assert not joins(head, task(samples=2))  # 2 + 1 + 2 > 4
    assert not joins(head, task(samples=1, width=768))
    assert joins(head, task(samples=1))  # (claim_batch stops at the first no; the count holds)


def test_chunks_keep_order():
    assert chunks(list(range(5)), 2) == [[0, 1], [2, 3], [4]]
    assert chunks([1], 0) == [[1]]


def test_compile_pipeline_compiles_the_denoiser_once_channels_last(tmp_path):
    from worker.pipelines.cache import PipelineCache
    from worker.pipelines.compiling import compile_pipeline, is_compiled

    cache = PipelineCache(tmp_path, device="cpu", compile=True)
    pipe = cache.get("demo")
    assert is_compiled(pipe.unet)
    assert pipe.unet._orig_mod.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert compile_pipeline(pipe) is False  # already
    assert torch._dynamo.config.cache_size_limit >= 64
    plain = PipelineCache(tmp_path, device="cpu").get("demo")
    assert not is_compiled(plain.unet)


def test_a_batched_call_gives_each_image_its_own_seeds_pixels(tmp_path):
    """The batched call the worker makes (a generator per image): image i matches a solo
    call with its seed up to floating-point noise."""
    from worker.pipelines.load import load_pipeline

    pipe = load_pipeline("demo", tmp_path, device="cpu")

    def render(prompts, seeds):
        return pipe(prompt=prompts, num_inference_steps=3, width=64, height=64, guidance_scale=7.0,
                    generator=[torch.Generator("cpu").manual_seed(s) for s in seeds], output_type="np").images

    batched = render(["a fox", "a whale", "a fox"], [5, 6, 7])
    for index, (prompt, seed) in enumerate([("a fox", 5), ("a whale", 6), ("a fox", 7)]):
        solo = render([prompt], [seed])[0]
        assert np.abs(batched[index] - solo).max() < 1e-3
    assert np.abs(batched[0] - batched[2]).mean() > 0.01  # another seed, another picture
