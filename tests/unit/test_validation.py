"""Task parameter rules (API.md) and the cost formula."""
from __future__ import annotations

import pytest

from services.core.errors import ValidationError
from services.generation.families import card
from services.generation.params import MAX_SEED, task_cost, validate_task_params

LIMITS = {"max_side": 768, "max_pixels": 768 * 768, "max_samples": 4}
CARDS = {"demo": card("sd1")}  # an SD 1.x model with the family's defaults


def check(**data):
    return validate_task_params(data, limits=LIMITS, cards=CARDS, default_model="demo")


def test_defaults_fill_everything_but_the_prompt():
    params = check(prompt="  a red fox  ")
    assert params["prompt"] == "a red fox"
    assert (params["width"], params["height"], params["steps"], params["guidance"],
            params["samples"], params["scheduler"], params["model"]) == (512, 512, 30, 7.5, 1, "euler", "demo")
    assert 0 <= params["seed"] <= MAX_SEED
    assert params["strength"] is None and params["init_image"] is None


def test_a_random_seed_is_picked_when_none_is_given():
    seeds = {check(prompt="x", seed=None)["seed"] for _ in range(20)}
    assert len(seeds) > 1
    assert check(prompt="x", seed=0)["seed"] == 0
    assert check(prompt="x", seed=MAX_SEED)["seed"] == MAX_SEED


@pytest.mark.parametrize("data, field, words", [
    ({"prompt": "   "}, "prompt", "required"),
    ({"prompt": "x" * 1001}, "prompt", "1000"),
    ({"negative_prompt": "x" * 1001}, "negative_prompt", "1000"),
    ({"width": 100}, "width", "multiple of 8"),
    ({"width": 56}, "width", "between 64 and 768"),
    ({"height": 776}, "height", "between 64 and 768"),
    ({"steps": 151}, "steps", "between 1 and 150"),
    ({"steps": 2.5}, "steps", "whole number"),
    ({"steps": True}, "steps", "whole number"),
    ({"guidance": 31}, "guidance", "between 0 and 30"),
    ({"guidance": "nan"}, "guidance", "between"),
    ({"samples": 5}, "samples", "between 1 and 4"),
    ({"seed": MAX_SEED + 1}, "seed", "between"),
    ({"seed": "abc"}, "seed", "whole number"),
    ({"scheduler": "karras"}, "scheduler", "must be one of euler, euler_a"),
    ({"scheduler": "flow_euler"}, "scheduler", "does not work with Stable Diffusion 1.x models"),
    ({"model": "other"}, "model", "not an available model"),
    ({"init_image": 5}, "init_image", "image id"),
    ({"init_image": "abc", "strength": 1.5}, "strength", "between 0 and 1"),
    ({"stpes": 20}, "stpes", "not a task parameter"),
])
def test_each_bad_field_gets_a_message_naming_it(data, field, words):
    with pytest.raises(ValidationError) as caught:
        check(**{"prompt": "a fox", **data})
    assert caught.value.field == field
    assert words in caught.value.fields[field]
    assert caught.value.message.startswith(field)
    assert caught.value.status == 422


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(ValidationError) as caught:
        check(prompt="", width=9, steps=0)
    assert set(caught.value.fields) == {"prompt", "width", "steps"}


def test_the_pixel_count_is_limited_as_well_as_each_side():
    limits = {**LIMITS, "max_pixels": 512 * 512}
    with pytest.raises(ValidationError) as caught:
        validate_task_params({"prompt": "x", "width": 768, "height": 512}, limits=limits,
                             cards=CARDS, default_model="demo")
    assert "pixels" in caught.value.fields["width"]


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(ValidationError):
        validate_task_params(["prompt"], limits=LIMITS, cards=CARDS, default_model="demo")


@pytest.mark.parametrize("steps, width, height, samples, cost", [
    (50, 512, 512, 1, 1),
    (51, 512, 512, 1, 2),
    (30, 512, 512, 4, 4),
    (1, 64, 64, 1, 1),
    (150, 768, 768, 4, 28),
    (100, 1024, 1024, 2, 16),
])
def test_cost_formula(steps, width, height, samples, cost):
    assert task_cost(steps, width, height, samples) == cost
