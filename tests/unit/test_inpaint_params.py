"""The inpaint and outpaint fields of a task (API.md, "Inpainting and outpainting"):
each field's range, settings refused without a mask or outpaint, outpaint's multiples,
limits and result size, and the model card's say (no inpainting; a dedicated
inpainting model needs a mask)."""
from __future__ import annotations

from dataclasses import replace

import pytest

from services.core.errors import ValidationError
from services.generation.families import card
from services.generation.params import validate_task_params

LIMITS = {"max_side": 768, "max_pixels": 768 * 768, "max_samples": 4}
CARDS = {"demo": card("sd1"), "flux": card("flux", variant="schnell"),
         "sd-inpainting": card("sd1", variant="inpainting"), "flux-fill": card("flux", variant="fill"),
         "no-inpaint": replace(card("sd1"), inpainting=None)}
MASKED = {"prompt": "a cup", "init_image": "pic", "mask": "maskid", "width": 256, "height": 256}


def inpaint_check(**data):
    return validate_task_params(data, limits=LIMITS, cards=CARDS, default_model="demo")


def inpaint_refused(**data) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        inpaint_check(**data)
    return caught.value.field, caught.value.fields[caught.value.field]


def test_a_mask_gets_the_default_settings():
    params = inpaint_check(**MASKED)
    assert params["mask"] == "maskid"
    assert params["inpaint"] == {"mask_blur": 4, "inpaint_area": "whole", "inpaint_padding": 32,
                                 "masked_content": "original", "mask_invert": False, "noise_multiplier": 1.0,
                                 "outpaint": {"left": 0, "right": 0, "top": 0, "bottom": 0}}
    assert params["strength"] == 0.75 and (params["width"], params["height"]) == (256, 256)


def test_a_plain_task_has_no_inpaint():
    params = inpaint_check(prompt="a cup")
    assert params["mask"] is None and params["inpaint"] is None


def test_each_setting_is_kept():
    params = inpaint_check(**MASKED, mask_blur=0, inpaint_area="masked", inpaint_padding=256,
                   masked_content="latent_nothing", mask_invert=True, initial_noise_multiplier=1.5)
    assert params["inpaint"] == {"mask_blur": 0, "inpaint_area": "masked", "inpaint_padding": 256,
                                 "masked_content": "latent_nothing", "mask_invert": True,
                                 "noise_multiplier": 1.5,
                                 "outpaint": {"left": 0, "right": 0, "top": 0, "bottom": 0}}


@pytest.mark.parametrize("field, value, words", [
    ("mask_blur", 65, "between 0 and 64"),
    ("mask_blur", -1, "between 0 and 64"),
    ("mask_blur", 2.5, "whole number"),
    ("inpaint_padding", 257, "between 0 and 256"),
    ("inpaint_area", "only masked", "whole, masked"),
    ("masked_content", "noise", "original, fill, latent_noise, latent_nothing"),
    ("mask_invert", "yes", "true or false"),
    ("mask_invert", 1, "true or false"),
    ("initial_noise_multiplier", 1.6, "between 0.5 and 1.5"),
    ("initial_noise_multiplier", 0.4, "between 0.5 and 1.5"),
    ("mask", 5, "image id"),
    ("mask", "  ", "image id"),
])
def test_each_field_out_of_range_is_refused_naming_it(field, value, words):
    found, message = inpaint_refused(**{**MASKED, field: value})
    assert found == field and words in message


@pytest.mark.parametrize("field, value", [
    ("mask_blur", 8), ("inpaint_area", "masked"), ("inpaint_padding", 0), ("masked_content", "fill"),
    ("mask_invert", True), ("initial_noise_multiplier", 0.9),
])
def test_settings_without_a_mask_or_outpaint_are_refused(field, value):
    assert inpaint_refused(prompt="a cup", init_image="pic", **{field: value}) == (
        field, "applies only with a mask or outpaint")


def test_settings_at_their_default_without_a_mask_are_fine():
    params = inpaint_check(prompt="a cup", mask_blur=4, inpaint_area="whole", mask_invert=False, outpaint={"left": 0})
    assert params["inpaint"] is None


@pytest.mark.parametrize("data, field", [
    ({"mask": "maskid"}, "mask"),
    ({"outpaint": {"right": 64}}, "outpaint"),
])
def test_a_mask_or_outpaint_needs_an_init_image(data, field):
    found, message = inpaint_refused(prompt="a cup", **data)
    assert found == field and "init_image" in message


def test_outpaint_gives_the_result_size():
    params = inpaint_check(prompt="a cup", init_image="pic", width=256, height=128,
                   outpaint={"left": 64, "right": 128, "top": 8})
    assert (params["width"], params["height"]) == (256 + 64 + 128, 128 + 8)
    assert params["inpaint"]["outpaint"] == {"left": 64, "right": 128, "top": 8, "bottom": 0}
    assert params["mask"] is None


@pytest.mark.parametrize("outpaint, words", [
    ({"right": 60}, "multiple of 8"),
    ({"right": -8}, "0 or more"),
    ({"right": 8.5}, "whole number"),
    ({"right": True}, "whole number"),
    ({"middle": 8}, "not a side"),
    ([8, 8], "left"),
    ({"right": 768}, "at most 768 px a side"),  # 256 + 768 > 768
])
def test_bad_outpaint_is_refused_naming_it(outpaint, words):
    found, message = inpaint_refused(prompt="a cup", init_image="pic", width=256, height=256, outpaint=outpaint)
    assert found == "outpaint" and words in message


def test_outpaint_multiples_follow_the_model_size_step():
    found, message = inpaint_refused(prompt="a cup", model="flux", init_image="pic", width=256, height=256,
                             outpaint={"left": 8})
    assert found == "outpaint" and "multiple of 16" in message
    assert inpaint_check(prompt="a cup", model="flux", init_image="pic", width=256, height=256,
                 outpaint={"left": 16})["width"] == 272


def test_outpaint_pixel_limit_is_checked_on_the_result():
    limits = {"max_side": 1024, "max_pixels": 512 * 512, "max_samples": 4}
    with pytest.raises(ValidationError) as caught:
        validate_task_params({"prompt": "a cup", "init_image": "pic", "width": 512, "height": 512,
                              "outpaint": {"right": 64}}, limits=limits, cards=CARDS, default_model="demo")
    assert caught.value.field == "outpaint" and "pixels" in caught.value.fields["outpaint"]


def test_a_model_that_cannot_inpaint_refuses_a_mask_naming_mask():
    found, message = inpaint_refused(**MASKED, model="no-inpaint")
    assert found == "mask" and "cannot inpaint" in message
    found, _ = inpaint_refused(prompt="a cup", model="no-inpaint", init_image="pic", outpaint={"right": 64})
    assert found == "outpaint"


@pytest.mark.parametrize("model", ["sd-inpainting", "flux-fill"])
def test_a_dedicated_inpainting_model_needs_a_mask(model):
    found, message = inpaint_refused(prompt="a cup", model=model, init_image="pic")
    assert found == "mask" and f"'{model}' is an inpainting model" in message
    assert inpaint_check(**MASKED, model=model)["mask"] == "maskid"
    assert inpaint_check(prompt="a cup", model=model, init_image="pic", width=256, height=256,
                 outpaint={"right": 64})["width"] == 320


def test_cards_say_which_inpainting():
    assert card("sd1").to_dict()["inpainting"] == "standard"
    assert card("sd1", variant="inpainting").to_dict()["inpainting"] == "dedicated"
    assert card("flux", variant="fill").to_dict()["inpainting"] == "dedicated"
    assert card("flux", variant="fill").to_dict()["defaults"]["guidance"] == 30.0  # Fill's distilled guidance
    assert card("flux", variant="schnell").to_dict()["inpainting"] == "standard"


def test_flux2_dev_refuses_a_start_picture_at_submit_naming_init_image():
    """FLUX.2 dev has no image-to-image pipeline here (diffusers has klein's only): its card
    says so and the task is refused before it is queued, not failed by the worker."""
    cards = {**CARDS, "flux2-dev": card("flux2", variant="dev"), "klein": card("flux2")}
    assert cards["flux2-dev"].image_to_image is False and cards["flux2-dev"].to_dict()["image_to_image"] is False
    assert cards["klein"].image_to_image is True
    with pytest.raises(ValidationError) as caught:
        validate_task_params({"prompt": "a cup", "model": "flux2-dev", "init_image": "pic", "width": 256,
                              "height": 256}, limits=LIMITS, cards=cards, default_model="demo")
    assert "cannot start from a picture" in caught.value.fields["init_image"]
    text_only = validate_task_params({"prompt": "a cup", "model": "flux2-dev", "width": 256, "height": 256},
                                     limits=LIMITS, cards=cards, default_model="demo")
    assert text_only["init_image"] is None
    klein = validate_task_params({"prompt": "a cup", "model": "klein", "init_image": "pic", "width": 256,
                                  "height": 256}, limits=LIMITS, cards=cards, default_model="demo")
    assert klein["init_image"] == "pic"


def test_flux2_dev_refuses_a_hires_second_pass_but_not_an_upscale_alone():
    cards = {**CARDS, "flux2-dev": card("flux2", variant="dev")}
    base = {"prompt": "a cup", "model": "flux2-dev", "width": 256, "height": 256, "steps": 20}
    with pytest.raises(ValidationError) as caught:
        validate_task_params({**base, "hires": {"scale": 2, "denoising": 0.5}}, limits=LIMITS, cards=cards,
                             default_model="demo")
    assert "cannot run a second pass" in caught.value.fields["hires"]
    alone = validate_task_params({**base, "hires": {"scale": 2, "denoising": 0, "upscaler": "lanczos"}},
                                 limits={**LIMITS, "max_side": 1024, "max_pixels": 1024 * 1024}, cards=cards,
                                 default_model="demo")
    assert alone["hires"]["denoising"] == 0
