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


# --- numbers no float holds ------------------------------------------------------------

@pytest.mark.parametrize("field", ["guidance", "strength", "steps", "width", "seed"])
@pytest.mark.parametrize("number", [10**400, -(10**400), float("inf"), float("nan")])
def test_a_number_too_large_for_a_float_is_a_422_naming_its_field(field, number):
    with pytest.raises(ValidationError) as caught:
        check(prompt="a fox", init_image="abc", **{field: number})
    assert caught.value.field == field


def test_a_lora_weight_too_large_for_a_float_is_a_422():
    with pytest.raises(ValidationError) as caught:
        validate_task_params({"prompt": "x", "loras": [{"id": "ink", "weight": 10**400}]}, limits=LIMITS,
                             cards=CARDS, default_model="demo", loras={"ink": {"name": "Ink", "family": "sd1"}})
    assert caught.value.field == "loras" and "weight" in caught.value.message


# --- image-to-image runs int(steps × strength) steps: at least one ----------------------

@pytest.mark.parametrize("steps, strength, field, words", [
    (8, 0.1, "steps", "at strength 0.1, steps must be at least 10"),
    (1, 0.75, "steps", "at strength 0.75, steps must be at least 2"),
    (3, 0.3, "steps", "at least 4"),
    (8, 0, "strength", "at 8 steps, strength must be at least 0.125"),
    (150, 0.005, "strength", "at 150 steps, strength must be at least 0.007"),  # 200 steps: over the most
])
def test_image_to_image_with_less_than_one_step_is_refused_saying_the_minimum(steps, strength, field, words):
    with pytest.raises(ValidationError) as caught:
        check(prompt="a fox", init_image="abc", steps=steps, strength=strength)
    assert caught.value.field == field
    assert words in caught.value.fields[field]


def test_without_steps_the_strength_is_what_is_too_low():
    # (the model's 30 steps; the OpenAI route has no steps to raise)
    with pytest.raises(ValidationError) as caught:
        check(prompt="a fox", init_image="abc", strength=0.02)
    assert caught.value.field == "strength" and "at 30 steps, strength must be at least 0.034" in caught.value.message


@pytest.mark.parametrize("steps, strength", [(10, 0.1), (2, 0.75), (4, 0.3), (1, 1.0), (150, 0.007), (3, 1 / 3)])
def test_image_to_image_with_one_step_or_more_passes(steps, strength):
    params = check(prompt="a fox", init_image="abc", steps=steps, strength=strength)
    assert int(params["steps"] * params["strength"]) >= 1


def test_the_step_rule_is_the_workers():
    from models import effective_steps
    from services.generation.params import fewest_steps, lowest_strength

    for strength in (0.05, 0.1, 0.15, 0.3, 1 / 3, 0.5, 0.7, 0.75, 0.99, 1.0):
        need = fewest_steps(strength)
        assert int(need * strength) >= 1 and int((need - 1) * strength) < 1
        assert effective_steps(need, "abc", strength) == int(need * strength)
    for steps in range(1, 151):
        low = lowest_strength(steps)
        assert int(steps * low) >= 1 and int(steps * (low - 0.001)) < 1


def test_text_to_image_ignores_the_strength_rule():
    assert check(prompt="a fox", steps=1, strength=0.1)["strength"] is None


# --- request bodies: what json.loads lets through but nothing after it can take ---------

@pytest.mark.parametrize("raw, field", [
    ('{"prompt": "a \\ud800 fox"}', "prompt"),
    (b'{"prompt": "a \xed\xa0\x80 fox"}', "prompt"),  # the surrogate encoded as bytes
    ('{"override_settings": {"sd_model_checkpoint": "\\udfff"}}', "override_settings.sd_model_checkpoint"),
    ('{"loras": [{"id": "ok"}, {"id": "\\ud83d"}]}', "loras[1].id"),
    ('["\\ud800"]', "body[0]"),
    ('{"guidance": ' + "9" * 400 + "}", "guidance"),
    ('{"cfg_scale": -' + "9" * 400 + "}", "cfg_scale"),
    ('{"strength": 1e400}', "strength"),
    ('{"seed": NaN}', "seed"),
    ('{"steps": -Infinity}', "steps"),
])
def test_a_body_value_nothing_can_store_is_a_422_naming_its_field(raw, field):
    from services.core.args import load_json

    with pytest.raises(ValidationError) as caught:
        load_json(raw)
    assert caught.value.field == field


def test_a_field_name_with_a_lone_surrogate_is_named_escaped():
    from services.core.args import load_json

    with pytest.raises(ValidationError) as caught:
        load_json('{"a\\ud800": 1}')
    assert caught.value.field == "a\\ud800"
    caught.value.message.encode("utf-8")  # printable and storable


@pytest.mark.parametrize("depth", [33, 900, 100_000])
def test_deep_nesting_is_bad_json(depth):
    from services.core.args import load_json
    from services.core.errors import ServiceError

    with pytest.raises(ServiceError) as caught:
        load_json("[" * depth + "]" * depth)
    assert caught.value.code == "bad_json" and caught.value.status == 400


def test_ordinary_bodies_pass_unchanged():
    from services.core.args import MAX_JSON_INT, load_json

    body = {"prompt": "café 🦊 — ok", "seed": MAX_JSON_INT, "guidance": 7.5, "nested": [[[{"a": [1]}]]] * 3,
            "flag": True, "none": None, "big": -MAX_JSON_INT}
    import json
    assert load_json(json.dumps(body)) == body
    assert load_json("[" * 32 + "]" * 32) is not None
    with pytest.raises(ValueError):
        load_json("{not json")
