"""Fast mode (issue 28): diffusers' step caches on the tiny demo transformers, loaded on
the CPU through the worker's PipelineCache (worker/pipelines/fast.py), and the rules
around it (services/generation/fast.py): which families have it and what their card
says, the task's `fast` against the model's setting, the infotext that records it and
brings it back, and the batch key that keeps fast tasks apart.

"Denoiser computations" are counted as forward calls of the first linear layer of every
attention module of the transformer: a block the cache skips (first-block cache) or an
attention it predicts (TaylorSeer) does not reach it."""
from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from services.core.errors import ValidationError
from services.generation import fast
from services.generation.families import FAMILIES, card
from services.generation.params import validate_task_params
from services.library.imaging import format_parameters
from services.library.pnginfo import from_infotext
from worker.batching import can_join
from worker.pipelines import fast as pipeline_fast
from worker.pipelines.cache import PipelineCache, img2img_from

SIZE = 64
STEPS = 6


@pytest.fixture(scope="module")
def fast_models(tmp_path_factory):
    return tmp_path_factory.mktemp("fast-models")


@pytest.fixture(scope="module")
def flux_pipe(fast_models):
    return PipelineCache(fast_models, device="cpu").get("demo-flux")


class AttentionCalls:
    """Forward calls of the first linear layer of each attention module of a transformer."""

    def __init__(self, transformer):
        attention = [m for name, m in transformer.named_modules() if re.search(r"(attn|attention)$", name)]
        self.layers = [next(m for m in a.modules() if isinstance(m, torch.nn.Linear)) for a in attention]
        self.count = 0

    def __enter__(self):
        self.hooks = [layer.register_forward_hook(self.seen) for layer in self.layers]
        return self

    def seen(self, *args):
        self.count += 1

    def __exit__(self, *exc):
        for hook in self.hooks:
            hook.remove()


def fast_render(pipe, family: str | None = None, **extra):
    """(pixels, attention calls) of one call; fast with `family`'s cache when given."""
    arguments = dict(prompt="a lighthouse at dusk", num_inference_steps=STEPS, width=SIZE, height=SIZE,
                     generator=torch.Generator().manual_seed(7), output_type="np", **extra)
    with AttentionCalls(pipe.transformer) as calls:
        if family is None:
            images = pipe(**arguments).images
        else:
            with pipeline_fast.enabled(pipe, family, demo=True) as method:
                assert method is fast.METHODS[family]
                images = pipe(**arguments).images
    return np.asarray(images), calls.count


def hooked(transformer) -> list[str]:
    """The diffusers hooks left on a transformer's modules."""
    return [name for module in transformer.modules()
            for name in getattr(getattr(module, "_diffusers_hook", None), "hooks", {})]


def test_fast_flux_skips_denoiser_work_and_gives_the_same_pixels_for_the_same_seed(flux_pipe):
    plain, plain_calls = fast_render(flux_pipe)
    first, fast_calls = fast_render(flux_pipe, "flux")
    second, again_calls = fast_render(flux_pipe, "flux")
    assert fast_calls < plain_calls, (fast_calls, plain_calls)
    assert again_calls == fast_calls
    assert np.array_equal(first, second)  # same seed, same pixels on two fast runs
    assert not np.array_equal(first, plain)  # the skipped steps change the picture a little
    assert float(np.abs(first - plain).max()) < 0.5


def test_fast_mode_does_not_leak_into_the_next_call(flux_pipe):
    plain, plain_calls = fast_render(flux_pipe)
    fast_render(flux_pipe, "flux")
    after, after_calls = fast_render(flux_pipe)
    assert hooked(flux_pipe.transformer) == []
    assert after_calls == plain_calls
    assert np.array_equal(after, plain)


@pytest.fixture(scope="module")
def zimage_pipe(fast_models):
    return PipelineCache(fast_models, device="cpu").get("demo-zimage")


def test_a_second_pass_in_one_fast_call_starts_the_cache_afresh(zimage_pipe):
    """A hires fix makes two pipeline calls in one runner (another size, the timesteps
    counting down again). Z-Image's transformer is not reset by its pipeline: the second
    pass must start its cache afresh instead of predicting from the first pass's outputs."""
    pipe = zimage_pipe
    first = pipe(prompt="a fox", num_inference_steps=STEPS, width=SIZE, height=SIZE, output_type="pil",
                 generator=torch.Generator().manual_seed(3)).images[0]
    upscaled = first.resize((SIZE + 32, SIZE + 32))
    second = img2img_from(pipe)
    arguments = dict(prompt="a fox", image=upscaled, strength=0.6, num_inference_steps=STEPS, width=SIZE + 32,
                     height=SIZE + 32, output_type="np")
    with pipeline_fast.enabled(pipe, "zimage", demo=True):
        second_only = second(**arguments, generator=torch.Generator().manual_seed(3)).images
    with pipeline_fast.enabled(pipe, "zimage", demo=True):
        pipe(prompt="a fox", num_inference_steps=STEPS, width=SIZE, height=SIZE, output_type="np",
             generator=torch.Generator().manual_seed(3))
        after_first = second(**arguments, generator=torch.Generator().manual_seed(3)).images
    assert np.array_equal(after_first, second_only)


def test_taylorseer_on_zimage_predicts_attention_between_full_steps(zimage_pipe):
    pipe = zimage_pipe
    plain, plain_calls = fast_render(pipe)
    first, fast_calls = fast_render(pipe, "zimage")
    second, _ = fast_render(pipe, "zimage")
    after, after_calls = fast_render(pipe)
    assert fast_calls < plain_calls
    assert np.array_equal(first, second)
    assert hooked(pipe.transformer) == [] and after_calls == plain_calls and np.array_equal(after, plain)


@pytest.mark.parametrize("timesteps,fresh_at", [
    ([1.0, 1.0, 0.75, 0.75, 0.5, 0.5, 1.0, 0.75], [6]),  # FLUX: down, a call each for cond and uncond
    ([0.0, 0.25, 0.5, 0.75, 0.2, 0.4], [4]),  # Z-Image's 1 - t: up
    ([0.9, 0.6, 0.3, None, 0.9], [4]),  # (a call without a timestep changes nothing)
])
def test_a_new_pass_is_told_by_the_timestep_turning_back(timesteps, fresh_at):
    hook = pipeline_fast.ContextHook([])
    fresh = [i for i, t in enumerate(timesteps) if hook.new_pass((1, 16, 8, 8), t)]
    assert fresh == fresh_at
    assert hook.new_pass((1, 16, 12, 12), 0.5)  # another size: a new pass


def test_a_family_without_fast_mode_runs_plain():
    pipe = SimpleNamespace(unet=object())
    with pipeline_fast.enabled(pipe, "sdxl") as method:
        assert method is None


# --- the rules (no torch needed) ----------------------------------------------------------

def test_cards_say_which_families_have_fast_mode_and_what_it_does():
    flux = card("flux").to_dict()["fast"]
    assert flux == {"available": True, "method": "first-block cache", "text": fast.TEXTS[fast.FIRST_BLOCK]}
    assert "skips most of the denoiser" in flux["text"]
    for family in ("flux", "flux2", "zimage", "qwen", "sd3"):
        assert card(family).to_dict()["fast"]["available"], family
    for family in ("sd1", "sd2", "sdxl", "chroma"):
        info = card(family).to_dict()["fast"]
        assert info["available"] is False and info["method"] is None and "not available" in info["text"]
    assert set(fast.METHODS) <= set(FAMILIES)


def test_staff_modes_are_checked_against_the_family():
    assert fast.check_mode("flux", "optional") == "optional"
    assert fast.check_mode("sdxl", "off") == "off"
    with pytest.raises(ValidationError) as refused:
        fast.check_mode("sdxl", "on")
    assert refused.value.field == "fast_mode"
    with pytest.raises(ValidationError):
        fast.check_mode("flux", "sometimes")


LIMITS = {"max_side": 512, "max_pixels": 512 * 512, "max_samples": 4}
CARDS = {"demo-flux": card("flux", variant="schnell", demo=True), "demo": card("sd1", demo=True)}


def checked(mode: str, **data) -> dict:
    return validate_task_params({"prompt": "a cat", "model": "demo-flux", "width": 64, "height": 64, **data},
                                limits=LIMITS, cards=CARDS, default_model="demo",
                                fast_modes={"demo-flux": mode, "demo": "off"})


@pytest.mark.parametrize("mode,asked,runs", [
    ("off", None, False), ("off", False, False),
    ("on", None, True), ("on", True, True), ("on", False, True),
    ("optional", None, False), ("optional", False, False), ("optional", True, True),
])
def test_a_tasks_fast_follows_its_models_setting(mode, asked, runs):
    data = {} if asked is None else {"fast": asked}
    assert checked(mode, **data)["fast"] is runs


@pytest.mark.parametrize("mode,value,message", [
    ("off", True, "no fast mode"),
    ("optional", "yes", "true or false"),
])
def test_a_fast_task_the_model_does_not_allow_is_refused(mode, value, message):
    with pytest.raises(ValidationError) as refused:
        checked(mode, fast=value)
    assert refused.value.field == "fast" and message in refused.value.fields["fast"]


def test_a_unet_model_set_on_by_mistake_still_runs_plain():
    params = validate_task_params({"prompt": "a cat", "model": "demo", "width": 64, "height": 64},
                                  limits=LIMITS, cards=CARDS, default_model="demo", fast_modes={"demo": "on"})
    assert params["fast"] is False


def test_the_infotext_records_fast_mode_and_reuse_reads_it_back():
    record = {"prompt": "a cat", "steps": 4, "seed": 1, "width": 64, "height": 64, "model": "demo-flux",
              "family": "flux", "fast": True}
    text = format_parameters(record)
    assert "Fast mode: first-block cache" in text
    assert from_infotext(text)["fast"] is True
    assert "Fast mode" not in format_parameters({**record, "fast": False})
    assert "Fast mode: TaylorSeer" in format_parameters({**record, "family": "zimage"})


def test_fast_tasks_batch_only_with_fast_tasks():
    base = dict(id="t", model="demo-flux", width=64, height=64, steps=4, scheduler="flow_euler", guidance=0.0,
                loras=None, init_image_id=None, strength=None, negative_prompt="", samples=1, prompt="a", seed=1)
    fast_task, other_fast, plain = (SimpleNamespace(**base, fast=True), SimpleNamespace(**base, fast=True),
                                    SimpleNamespace(**base, fast=False))
    assert can_join(fast_task, other_fast)
    assert not can_join(fast_task, plain) and not can_join(plain, fast_task)
    assert can_join(plain, SimpleNamespace(**base, fast=None))  # (older tasks: not fast)
