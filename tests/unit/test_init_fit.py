"""How an init image of another shape is fitted (worker/init_image.py), the init_fit
parameter's rule, and the studio's per-model defaults (services/generation/params.py)."""
from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

from services.core.errors import ValidationError
from services.generation import params
from services.generation.families import card
from services.generation.params import validate_task_params
from worker.init_image import fit_picture

LIMITS = {"max_side": 768, "max_pixels": 768 * 768, "max_samples": 4}


def landscape_600x400() -> Image.Image:
    """White, with a red band at the left and right edges (50 px each) and green in the middle."""
    picture = Image.new("RGB", (600, 400), (255, 255, 255))
    draw = ImageDraw.Draw(picture)
    draw.rectangle((0, 0, 49, 399), fill=(255, 0, 0))
    draw.rectangle((550, 0, 599, 399), fill=(255, 0, 0))
    draw.rectangle((250, 150, 349, 249), fill=(0, 160, 0))
    return picture


def near(pixel, colour, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour))


def test_contain_keeps_the_whole_picture_and_pads_top_and_bottom():
    fitted = fit_picture(landscape_600x400(), 256, 256, "contain")
    assert fitted.size == (256, 256) and fitted.mode == "RGB"
    # 600 × 400 in 256 × 256: 256 × 171, 42 or 43 rows of black above and below.
    for y in (0, 20, 40, 255, 235, 215):
        assert fitted.getpixel((128, y)) == (0, 0, 0), y
    # The red edges are still there, at the very left and right of the picture band.
    assert near(fitted.getpixel((3, 128)), (255, 0, 0))
    assert near(fitted.getpixel((252, 128)), (255, 0, 0))
    assert near(fitted.getpixel((128, 128)), (0, 160, 0))


def test_cover_fills_the_frame_and_crops_the_sides():
    fitted = fit_picture(landscape_600x400(), 256, 256, "cover")
    assert fitted.size == (256, 256)
    # Scaled to 384 × 256 and cut to the middle 256 columns: the red edges are gone, no padding.
    for x, y in ((2, 128), (253, 128), (128, 1), (128, 254)):
        assert near(fitted.getpixel((x, y)), (255, 255, 255)), (x, y)
    assert near(fitted.getpixel((128, 128)), (0, 160, 0))


def test_a_task_stored_without_a_fit_is_cropped_as_cover_and_never_stretched():
    picture = landscape_600x400()
    assert fit_picture(picture, 256, 256, None).tobytes() == fit_picture(picture, 256, 256, "cover").tobytes()
    # The same shape: nothing is cut or padded either way.
    same = fit_picture(picture, 312, 208, "contain")
    assert near(same.getpixel((1, 100)), (255, 0, 0)) and near(same.getpixel((156, 1)), (255, 255, 255))


def check_params(**data):
    return validate_task_params({"prompt": "x", **data}, limits=LIMITS,
                                cards={"demo": card("sd1", demo=True)}, default_model="demo")


def test_init_fit_is_a_choice_that_applies_to_image_to_image_only():
    assert check_params(init_image="abc")["init_fit"] == "cover"
    assert check_params(init_image="abc", init_fit="contain")["init_fit"] == "contain"
    assert check_params()["init_fit"] is None
    with pytest.raises(ValidationError) as caught:
        check_params(init_image="abc", init_fit="stretch")
    assert caught.value.field == "init_fit" and "cover, contain" in caught.value.message
    assert params.choice_rules()["init_fit"] == {"choices": ["cover", "contain"], "default": "cover"}
    assert "init_fit" not in params.rules()  # not a number: no slider


def test_the_demo_model_starts_small_and_quick_and_other_models_keep_their_family_defaults():
    demo = params.studio_defaults(card("sd1", demo=True))
    assert (demo["width"], demo["height"], demo["steps"]) == (256, 256, 8)
    other = params.studio_defaults(card("sd1"))
    assert (other["width"], other["height"], other["steps"]) == (512, 512, 30)
    # The API's defaults for an omitted field are the model card's too.
    assert (check_params()["width"], check_params()["steps"]) == (256, 8)
