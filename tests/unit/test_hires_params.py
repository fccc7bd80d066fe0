"""The hires fix of a text-to-image task (API.md, "Hires fix"): its defaults, scale or a
final size, the limits on the final size, the upscalers it may use, refused with an init
image, and what it adds to the cost and to the steps a task's progress counts."""
from __future__ import annotations

import pytest

from models import Task
from services.core.errors import ValidationError
from services.generation.families import card
from services.generation.params import hires_cost, hires_steps, task_cost, validate_task_params

LIMITS = {"max_side": 768, "max_pixels": 768 * 768, "max_samples": 4}
CARDS = {"demo": card("sd1"), "flux": card("flux", variant="schnell")}
UPSCALERS = {"lanczos": "Lanczos", "nearest": "Nearest", "demo-esrgan-x2": "Demo ESRGAN ×2"}
BASE = {"prompt": "a lighthouse", "width": 256, "height": 192, "steps": 10}


def hires_check(**data):
    return validate_task_params({**BASE, **data}, limits=LIMITS, cards=CARDS, default_model="demo",
                                upscalers=UPSCALERS)


def hires_refused(**data) -> str:
    with pytest.raises(ValidationError) as caught:
        hires_check(**data)
    assert caught.value.field == "hires", caught.value.fields
    return caught.value.fields["hires"]


def test_an_empty_hires_gets_the_defaults_and_doubles_the_size():
    params = hires_check(hires={})
    assert params["hires"] == {"scale": 2.0, "width": 512, "height": 384, "upscaler": "latent", "steps": 0,
                               "denoising": 0.5, "prompt": "", "negative_prompt": "", "scheduler": None}
    # The task's own size stays the first pass's.
    assert (params["width"], params["height"]) == (256, 192)


def test_no_hires_is_none():
    assert hires_check()["hires"] is None and hires_check(hires=None)["hires"] is None


def test_each_hires_setting_is_kept():
    params = hires_check(hires={"scale": 1.5, "upscaler": "demo-esrgan-x2", "steps": 20, "denoising": 0.3,
                                "prompt": "sharp", "negative_prompt": "blur", "scheduler": "euler_a"})
    assert params["hires"] == {"scale": 1.5, "width": 384, "height": 288, "upscaler": "demo-esrgan-x2",
                               "steps": 20, "denoising": 0.3, "prompt": "sharp", "negative_prompt": "blur",
                               "scheduler": "euler_a"}


def test_a_final_size_instead_of_a_scale():
    assert hires_check(hires={"width": 512, "height": 512})["hires"]["scale"] is None
    # One side alone keeps the first pass's shape.
    params = hires_check(hires={"width": 512})
    assert (params["hires"]["width"], params["hires"]["height"]) == (512, 384)


def test_a_flux_scale_rounds_to_its_size_step():
    params = validate_task_params({"prompt": "x", "model": "flux", "width": 208, "height": 208, "steps": 4,
                                   "hires": {"scale": 1.25}}, limits=LIMITS, cards=CARDS, default_model="demo")
    assert (params["hires"]["width"], params["hires"]["height"]) == (256, 256)  # 260 → the nearest multiple of 16


@pytest.mark.parametrize("hires, words", [
    ("twice", "must be"),
    ({"scale": 5}, "scale must be between 1 and 4"),
    ({"scale": 0.5}, "scale must be between 1 and 4"),
    ({"scale": "big"}, "scale must be a number"),
    ({"scale": 2, "width": 512}, "not both"),
    ({"width": 500}, "multiple of 8"),
    ({"width": 128, "height": 128}, "at least the first pass"),
    ({"upscaler": "magic"}, "upscaler 'magic' is not available"),
    ({"steps": 151}, "steps must be between 0 and 150"),
    ({"steps": 2.5}, "steps must be a whole number"),
    ({"denoising": 1.5}, "denoising must be between 0 and 1"),
    ({"denoising": 0.05, "steps": 10}, "run none"),
    ({"scheduler": "nope"}, "scheduler must be one of"),
    ({"scheduler": "flow_euler"}, "does not work with"),
    ({"prompt": 3}, "prompt must be text"),
    ({"strength": 0.5}, "is not a hires setting"),
])
def test_bad_hires_is_refused_naming_hires(hires, words):
    assert words in hires_refused(hires=hires)


def test_the_final_size_is_held_to_the_limits():
    assert "at most 768 px a side" in hires_refused(width=512, height=256, hires={"scale": 2})
    assert "pixels; at most" in validate_refusal_at(640, 640, 1.25)
    # Within the limits the first pass may be anything the limits allow.
    assert hires_check(width=384, height=384, hires={"scale": 2})["hires"]["width"] == 768


def validate_refusal_at(width: int, height: int, scale: float) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_task_params({"prompt": "x", "width": width, "height": height, "hires": {"scale": scale}},
                             limits={**LIMITS, "max_side": 1024}, cards=CARDS, default_model="demo")
    return caught.value.fields["hires"]


def test_hires_is_refused_with_an_init_image():
    assert "text to image only" in hires_refused(init_image="pic", strength=0.5, hires={})


def test_a_negative_hires_prompt_is_refused_for_a_model_that_ignores_them():
    with pytest.raises(ValidationError) as caught:
        validate_task_params({"prompt": "x", "model": "flux", "width": 256, "height": 256, "steps": 4,
                              "hires": {"negative_prompt": "blur"}}, limits=LIMITS, cards=CARDS,
                             default_model="demo")
    assert caught.value.field == "hires" and "ignore negative prompts" in caught.value.message


def test_the_built_ins_and_latent_modes_need_no_table():
    for upscaler in ("latent-bicubic-antialiased", "latent-nearest-exact", "lanczos", "nearest"):
        params = validate_task_params({**BASE, "hires": {"upscaler": upscaler}}, limits=LIMITS, cards=CARDS,
                                      default_model="demo")
        assert params["hires"]["upscaler"] == upscaler
    with pytest.raises(ValidationError):
        validate_task_params({**BASE, "hires": {"upscaler": "demo-esrgan-x2"}}, limits=LIMITS, cards=CARDS,
                             default_model="demo")


def test_denoising_zero_is_the_upscale_alone():
    params = hires_check(hires={"denoising": 0})
    assert hires_steps(params["steps"], params["hires"]) == 0 and hires_cost(params) == 0


def test_the_cost_adds_the_second_pass_at_the_final_size():
    params = hires_check(samples=2, hires={"scale": 2, "steps": 20, "denoising": 0.5})
    assert hires_steps(10, params["hires"]) == 10
    assert hires_cost(params) == task_cost(10, 512, 384, 2)
    # Steps 0: the first pass's, times the denoising.
    params = hires_check(hires={"denoising": 0.75})
    assert hires_steps(10, params["hires"]) == 7 and hires_cost(params) == task_cost(7, 512, 384, 1)
    assert hires_cost(hires_check()) == 0


def test_the_progress_total_counts_both_passes():
    hires = hires_check(hires={"steps": 20, "denoising": 0.4})["hires"]
    task = Task(steps=10, samples=1, init_image_id=None, strength=None, hires=hires)
    assert task.effective_steps == 10 + 8
    assert Task(steps=10, samples=1, init_image_id=None, strength=None, hires=None).effective_steps == 10


def test_the_hires_prompts_go_through_the_prompt_rules_naming_hires(monkeypatch):
    from services.generation import tasks
    from services.moderation import rules

    seen = []

    def check_prompt(user, params):
        seen.append(params)
        if "forbidden" in params["prompt"]:
            raise rules.PromptBlocked("'forbidden' is not allowed", field="prompt", rule={})

    monkeypatch.setattr(rules, "check_prompt", check_prompt)
    tasks.check_hires_prompts(None, hires_check(hires={}))
    assert seen == []  # no prompts of its own: nothing more to check
    tasks.check_hires_prompts(None, hires_check(hires={"prompt": "sharp", "negative_prompt": "blur"}))
    assert seen == [{"prompt": "sharp", "negative_prompt": "blur"}]
    with pytest.raises(rules.PromptBlocked) as caught:
        tasks.check_hires_prompts(None, hires_check(hires={"prompt": "a forbidden thing"}))
    assert caught.value.field == "hires" and caught.value.to_dict()["error"]["fields"] == {"hires": caught.value.message}


def test_a_final_side_of_zero_is_refused():
    assert "whole number of pixels" in hires_refused(hires={"width": 0})
    assert "whole number of pixels" in hires_refused(hires={"height": -8})
