"""The guides of a task (API.md, "Guides and editing"): ControlNet units, reference
images and edits checked against the model's card, the enabled guide models and the
preprocessors this install has; each refusal a 422 naming control, references or edit
and the unit; the shapes the task stores; an edit's default size; and the cost the guides
add (params.guide_cost)."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from services.core.errors import ValidationError
from services.generation.families import MEGAPIXEL, card
from services.generation.params import guide_cost, reference_pixels, task_cost, validate_task_params

GUIDE_LIMITS = {"max_side": 768, "max_pixels": 768 * 768, "max_samples": 4}
GUIDE_CARDS = {"demo": card("sd1"), "demo-flux": card("flux", variant="schnell"), "demo-sd3": card("sd3"),
               "demo-kontext": card("flux", variant="kontext"), "demo-sdxl": card("sdxl")}
GUIDE_MODELS = {
    "cn-sd1": {"name": "Canny SD1", "family": "sd1", "adapter": "controlnet", "architecture": "controlnet"},
    "cn-sdxl": {"name": "Canny SDXL", "family": "sdxl", "adapter": "controlnet", "architecture": "controlnet"},
    "cn-flux": {"name": "Union FLUX", "family": "flux", "adapter": "controlnet", "architecture": "union"},
    "cn-sdxl-union": {"name": "Union SDXL", "family": "sdxl", "adapter": "controlnet", "architecture": "union"},
    # xinsir's first Union (six control modes: no tile, no repaint) and ProMax (eight).
    "cn-sdxl-union6": {"name": "Union SDXL 1.0", "family": "sdxl", "adapter": "controlnet", "architecture": "union",
                       "control_modes": 6},
    "cn-sdxl-promax": {"name": "Union ProMax", "family": "sdxl", "adapter": "controlnet", "architecture": "union",
                       "control_modes": 8},
    "cn-flux-two": {"name": "Union FLUX 2", "family": "flux", "adapter": "controlnet", "architecture": "union",
                    "control_modes": 2},
    "ip-sd1": {"name": "IP SD1", "family": "sd1", "adapter": "ipadapter", "architecture": "ip-adapter"},
}
THRESHOLD = {"label": "Low", "min": 1, "max": 255, "default": 100, "step": 1}
PREPROCESSORS = {
    "none": {"id": "none", "thresholds": {"a": None, "b": None}, "needs_mask": False},
    "canny": {"id": "canny", "thresholds": {"a": THRESHOLD, "b": {**THRESHOLD, "label": "High", "default": 200}},
              "needs_mask": False},
    "inpaint": {"id": "inpaint", "thresholds": {"a": None, "b": None}, "needs_mask": True, "sdxl_union_type": 7},
    "tile": {"id": "tile", "thresholds": {"a": None, "b": None}, "needs_mask": False, "union_type": 1,
             "sdxl_union_type": 6},
    "depth": {"id": "depth", "thresholds": {"a": None, "b": None}, "needs_mask": False, "union_type": 2,
              "sdxl_union_type": 1},
}
UNIT = {"image": "PictureId123", "model": "cn-sd1"}


def guided(**data) -> dict:
    return validate_task_params({"prompt": "a cat", "width": 256, "height": 256, "steps": 4, **data},
                                limits=GUIDE_LIMITS, cards=GUIDE_CARDS, default_model="demo",
                                guide_models=GUIDE_MODELS, preprocessors=PREPROCESSORS,
                                picture_size=lambda value: (1200, 800))


def guide_refused(**data) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        guided(**data)
    return caught.value.field, caught.value.fields[caught.value.field]


def test_a_unit_takes_the_defaults_and_the_preprocessors_thresholds():
    [unit] = guided(control=[{**UNIT, "preprocessor": "canny"}])["control"]
    assert unit == {"image": "PictureId123", "preprocessor": "canny", "model": "cn-sd1", "model_name": "Canny SD1",
                    "weight": 1.0, "start": 0.0, "end": 1.0, "control_mode": "balanced", "resize_mode": "crop",
                    "processor_res": 512, "threshold_a": 100, "threshold_b": 200, "pixel_perfect": False}
    [plain] = guided(control=[{**UNIT, "threshold_a": 50}])["control"]  # "none" has no thresholds
    assert plain["preprocessor"] == "none" and plain["threshold_a"] is None and plain["threshold_b"] is None


def test_each_setting_is_kept_and_a_task_without_guides_has_none():
    data_url = "data:image/png;base64,iVBORw0KGgo="
    params = guided(control=[{**UNIT, "image": data_url, "preprocessor": "canny", "weight": 0.5, "start": 0.2,
                              "end": 0.2, "control_mode": "prompt", "resize_mode": "fill", "processor_res": 64,
                              "threshold_a": 1, "threshold_b": 255, "pixel_perfect": True}],
                    references=[{"image": "Ref1", "model": "ip-sd1", "weight": 0.6}])
    unit = params["control"][0]
    assert (unit["image"], unit["weight"], unit["start"], unit["end"], unit["control_mode"], unit["resize_mode"],
            unit["processor_res"], unit["threshold_a"], unit["threshold_b"], unit["pixel_perfect"]) == (
        data_url, 0.5, 0.2, 0.2, "prompt", "fill", 64, 1, 255, True)
    assert params["references"] == [{"image": "Ref1", "weight": 0.6, "model": "ip-sd1", "model_name": "IP SD1"}]
    assert params["edit"] is None
    plain = guided(control=[], references=None)
    assert (plain["control"], plain["references"], plain["edit"]) == (None, None, None)


@pytest.mark.parametrize("data, field, words", [
    ({"control": [{**UNIT, "model": "cn-missing"}]}, "control", "unit 1: 'cn-missing' is not an available ControlNet"),
    ({"control": [UNIT, {**UNIT, "model": "ip-sd1"}]}, "control", "unit 2: 'ip-sd1' is not an available ControlNet"),
    ({"control": [{**UNIT, "model": "cn-sdxl"}]}, "control", "Canny SDXL is a ControlNet for Stable Diffusion XL"),
    ({"control": [{"image": "Pic"}]}, "control", "unit 1: model is required"),
    ({"control": [UNIT] * 4}, "control", "at most 3 units"),
    ({"control": [{**UNIT, "weight": 2.5}]}, "control", "unit 1: weight must be from 0 to 2"),
    ({"control": [{**UNIT, "weight": "1"}]}, "control", "weight must be a number"),
    ({"control": [{**UNIT, "start": 0.8, "end": 0.3}]}, "control", "start (0.8) must not be after end (0.3)"),
    ({"control": [{**UNIT, "preprocessor": "openpose"}]}, "control", "preprocessor 'openpose' is not available"),
    ({"control": [{**UNIT, "preprocessor": "inpaint"}]}, "control", "needs the task's mask"),
    ({"control": [{**UNIT, "preprocessor": "canny", "threshold_a": 300}]}, "control", "threshold_a must be from 1"),
    ({"control": [{**UNIT, "processor_res": 32}]}, "control", "processor_res must be"),
    ({"control": [{**UNIT, "control_mode": "loud"}]}, "control", "control_mode must be one of"),
    ({"control": [{**UNIT, "colour": 1}]}, "control", "'colour' is not a setting"),
    ({"control": [{**UNIT, "image": "../../etc/passwd"}]}, "control", "image must be an image id"),
    ({"control": UNIT}, "control", "must be a list"),
    ({"control": [UNIT], "hires": {"scale": 2}}, "control", "hires fix"),
    ({"model": "demo-sd3", "control": [UNIT]}, "control", "takes no ControlNet"),
    ({"model": "demo-flux", "control": [{**UNIT, "model": "cn-flux", "control_mode": "control"}]}, "control",
     "balanced"),
    ({"model": "demo-sdxl", "control": [{**UNIT, "model": "cn-sdxl-union"}, {**UNIT, "model": "cn-sdxl"}]},
     "control", "Union SDXL is a ControlNet Union, which takes all of a task's units in one model: give every "
                "unit model \"cn-sdxl-union\""),
    ({"model": "demo-sdxl", "control": [{**UNIT, "model": "cn-sdxl"}, {**UNIT, "model": "cn-sdxl-union"}]},
     "control", "give every unit model \"cn-sdxl-union\""),
    ({"model": "demo-sdxl", "control": [{**UNIT, "model": "cn-sdxl-union"},
                                        {**UNIT, "model": "cn-sdxl-union", "control_mode": "prompt"}]},
     "control", "the units on Union SDXL (a ControlNet Union, one model for all of them) share one control_mode: "
                "got balanced, prompt"),
    # A unit whose mode the Union lacks: refused at submit, not failed in the worker.
    ({"model": "demo-sdxl", "control": [{**UNIT, "model": "cn-sdxl-union6", "preprocessor": "canny"},
                                        {**UNIT, "model": "cn-sdxl-union6", "preprocessor": "tile"}]},
     "control", "unit 2: the tile preprocessor needs a ControlNet Union with 8 control modes (ProMax); "
                "Union SDXL 1.0 has 6"),
    ({"model": "demo-sdxl", "init_image": "Pic", "mask": "Mask",
      "control": [{**UNIT, "model": "cn-sdxl-union6", "preprocessor": "inpaint"}]},
     "control", "unit 1: the inpaint preprocessor needs a ControlNet Union with 8 control modes (ProMax)"),
    ({"model": "demo-flux", "control": [{**UNIT, "model": "cn-flux-two", "preprocessor": "depth"}]},
     "control", "unit 1: the depth preprocessor needs mode 2 of a FLUX ControlNet Union; Union FLUX 2 has 2 modes"),
    ({"references": [{"image": "R", "model": "ip-sd1"}] * 3}, "references", "at most 2 reference images"),
    ({"references": [{"image": "R", "model": "ip-sd1", "weight": -1}]}, "references",
     "reference 1: weight must be from 0 to 2"),
    ({"references": [{"image": "R", "model": "cn-sd1"}]}, "references", "not an available IP-Adapter"),
    ({"model": "demo-flux", "references": [{"image": "R", "model": "ip-sd1"}]}, "references",
     "IP SD1 is an IP-Adapter for Stable Diffusion 1.x models"),
    ({"edit": {"images": ["Pic"]}}, "edit", "'demo' does not edit pictures (the models that do: demo-kontext)"),
    ({"model": "demo-kontext"}, "edit", "give the picture to edit"),
    ({"model": "demo-kontext", "edit": {"images": ["A", "B", "C", "D"]}}, "edit", "at most 3 pictures"),
    ({"model": "demo-kontext", "edit": {"images": []}}, "edit", "images must list the picture to edit"),
    ({"model": "demo-kontext", "edit": {"images": ["A"], "mask": "M"}}, "edit", "'mask' is not a setting"),
    ({"model": "demo-kontext", "edit": {"images": ["A"]}, "init_image": "B"}, "init_image",
     "does not apply to an edit"),
    ({"model": "demo-kontext", "edit": {"images": ["A"]}, "strength": 0.5}, "strength", "does not apply"),
])
def test_bad_guides_are_refused_naming_the_field_and_the_unit(data, field, words):
    named, message = guide_refused(**data)
    assert named == field and words in message, (named, message)


def test_an_edit_takes_its_first_pictures_shape_at_the_models_pixel_count_unless_a_size_is_given():
    params = guided(model="demo-kontext", edit={"images": ["A", "B"]}, width=None, height=None)
    assert params["edit"] == {"images": ["A", "B"]}
    # 1200 × 800 (3:2) at 1024 × 1024's pixels would be 1248 × 832, over the 768 px side
    # limit (SD 1.x's, grown in proportion for a 1024 px model: 1536): kept in 768 × 768 px.
    width, height = params["width"], params["height"]
    assert width % 16 == 0 and height % 16 == 0 and width * height <= 768 * 768
    assert abs(width / height - 1.5) < 0.05
    sized = guided(model="demo-kontext", edit={"images": ["A"]}, width=512, height=256)
    assert (sized["width"], sized["height"]) == (512, 256)
    assert (sized["steps"], sized["guidance"]) == (4, 2.5)  # the card's guidance (steps as asked)


def test_the_guides_add_their_share_to_the_cost():
    base = task_cost(30, 512, 512, 2)
    assert guide_cost({"samples": 2}, base) == 0
    assert guide_cost({"samples": 2, "control": [{}, {}]}, 5) == 2 * 3  # ceil(5 / 2) each
    assert guide_cost({"samples": 2, "references": [{}]}, base) == 2  # samples each
    assert guide_cost({"samples": 1, "edit": {"images": ["a", "b", "c"]}}, 7) == 7  # the base again, once
    # A model that stitches an edit's pictures into one reference: the base once, however
    # many; one that gives each picture its own tokens (FLUX.2, Qwen-Image-Edit Plus): once each.
    three = {"samples": 1, "steps": 50, "width": 512, "height": 512, "edit": {"images": ["a", "b", "c"]}}
    assert guide_cost(three, 7, card("flux", variant="kontext")) == 7
    assert guide_cost(three, 7, card("qwen", variant="edit")) == 4  # (a megapixel: below)
    for each in (card("flux2"), card("flux2", variant="dev")):
        assert guide_cost(three, 7, each) == 3 * 7
    assert guide_cost(three, 7, card("qwen", variant="edit-plus")) == 3 * 4
    assert guide_cost({**three, "edit": {"images": ["a"]}}, 7, card("flux2")) == 7
    assert guide_cost({"samples": 1, "edit": None}, 7, card("flux2")) == 0  # (FLUX.2 text to image)
    assert guide_cost({"samples": 3, "control": [{}], "references": [{}, {}]}, 4) == 2 + 6


def edit_cost(model_card, width: int, height: int, pictures: int, steps: int = 50, samples: int = 1) -> int:
    """An edit's whole cost as tasks.cost_for counts it (an edit has no start picture or hires)."""
    params = {"samples": samples, "steps": steps, "width": width, "height": height,
              "edit": {"images": [f"p{i}" for i in range(pictures)]}}
    base = task_cost(steps, width, height, samples)
    return base + guide_cost(params, base, model_card)


def test_a_qwen_edit_pays_for_its_reference_at_the_megapixel_its_pipeline_encodes():
    qwen_edit = card("qwen", variant="edit")
    assert reference_pixels(qwen_edit, 512, 512) == reference_pixels(qwen_edit, 1328, 1328) == MEGAPIXEL
    # Small: 512² of result and 1024² of reference a step: 1 + 4 (before: 1 + 1).
    assert edit_cost(qwen_edit, 512, 512, 1) == 1 + 4
    assert edit_cost(qwen_edit, 512, 512, 3) == 1 + 4  # (its pictures stitched into one reference)
    assert edit_cost(qwen_edit, 512, 512, 1, samples=2) == 2 * (1 + 4)
    # A megapixel: as before (4 + 4); larger: the reference still a megapixel, 7 + 4 (before: 7 + 7).
    assert edit_cost(qwen_edit, 1024, 1024, 1) == 4 + 4
    assert edit_cost(qwen_edit, 1328, 1328, 1) == 7 + 4


def test_a_qwen_edit_plus_pays_for_each_picture_at_a_megapixel():
    plus = card("qwen", variant="edit-plus")
    assert edit_cost(plus, 512, 512, 2) == 1 + 2 * 4  # (before: 1 + 2 × 1)
    assert edit_cost(plus, 512, 512, 2, steps=8) == 1 + 2 * 1  # ceil(8 × 1024² / (50 × 512²)) = 1


def test_kontext_and_a_flux2_edit_up_to_a_megapixel_cost_as_before():
    # Kontext is called with _auto_resize off and its reference at the result's size;
    # FLUX.2 keeps a reference up to a megapixel at the size it is given (the result's).
    kontext, flux2 = card("flux", variant="kontext"), card("flux2", variant="dev")
    assert reference_pixels(kontext, 512, 512) is None and reference_pixels(flux2, 1024, 1024) is None
    for width, height, steps in ((512, 512, 28), (1024, 1024, 50), (1344, 768, 50), (1536, 1536, 28)):
        base = task_cost(steps, width, height, 1)
        assert edit_cost(kontext, width, height, 2, steps=steps) == 2 * base  # the base again, once
    for width, height in ((512, 512), (1024, 1024), (1216, 832)):
        base = task_cost(50, width, height, 1)
        assert edit_cost(flux2, width, height, 2) == 3 * base  # the base again for each picture
    # Above a megapixel, Flux2Pipeline scales a reference down to one: it pays for a megapixel.
    assert reference_pixels(flux2, 1536, 1536) == MEGAPIXEL
    assert edit_cost(flux2, 1536, 1536, 2) == 9 + 2 * 4


def test_the_reference_sizes_are_what_the_installed_pipelines_encode():
    # Read from the installed diffusers' sources (importing the pipelines takes seconds).
    pipelines = Path(importlib.util.find_spec("diffusers").submodule_search_locations[0]) / "pipelines"
    source = lambda name: (pipelines / name).read_text()  # noqa: E731
    assert MEGAPIXEL == 1024 * 1024
    assert "calculate_dimensions(1024 * 1024, image_size[0] / image_size[1])" in source(
        "qwenimage/pipeline_qwenimage_edit.py")  # (then image_processor.resize to it for the VAE)
    plus = source("qwenimage/pipeline_qwenimage_edit_plus.py")
    assert "VAE_IMAGE_SIZE = 1024 * 1024" in plus and "calculate_dimensions(VAE_IMAGE_SIZE," in plus
    for name in ("flux2/pipeline_flux2.py", "flux2/pipeline_flux2_klein.py"):
        assert "_resize_to_target_area(img, 1024 * 1024)" in source(name)
    for aspect in (1.0, 1.5, 16 / 9, 0.4):  # calculate_dimensions: a megapixel, sides rounded to 32
        width = round(math.sqrt(MEGAPIXEL * aspect) / 32) * 32
        height = round(math.sqrt(MEGAPIXEL * aspect) / aspect / 32) * 32
        assert abs(width * height / MEGAPIXEL - 1) < 0.02


def test_a_strength_or_denoising_too_small_to_run_a_step_is_refused_at_once():
    # (found by fuzzing the guided request: 1 / 5e-324 overflowed, 1e-300 looped for ever)
    for tiny in (5e-324, 1e-300):
        assert guide_refused(init_image="Pic", strength=tiny)[0] == "strength"
        field, message = guide_refused(hires={"denoising": tiny})
        assert field == "hires" and "raise denoising" in message


def test_sdxl_controlnet_union_units_run_together_on_it_and_the_studio_lists_it():
    """An SDXL ControlNet Union takes a task's units together (each its preprocessor's mode
    in the worker): the units on it are kept as any unit is. The studio's list
    (views/studio.py) offers the guides the worker runs: both Unions now; a Union of a
    family the worker has no Union pipeline for would be left out, as submit refuses it."""
    from services.generation.guides import runs

    units = guided(model="demo-sdxl", control=[
        {**UNIT, "model": "cn-sdxl-union", "preprocessor": "canny", "control_mode": "control"},
        {**UNIT, "model": "cn-sdxl-union", "weight": 0.5, "start": 0.2, "control_mode": "control"}])["control"]
    assert [(u["model"], u["model_name"], u["preprocessor"], u["weight"], u["start"]) for u in units] == [
        ("cn-sdxl-union", "Union SDXL", "canny", 1.0, 0.0), ("cn-sdxl-union", "Union SDXL", "none", 0.5, 0.2)]
    assert all(runs(guide) for guide in GUIDE_MODELS.values())
    # The modes a Union has: any on ProMax (or on one whose count is not known), the first six
    # on xinsir's first Union (the refusals are above); a FLUX Union's own modes likewise.
    for union in ("cn-sdxl-promax", "cn-sdxl-union"):
        assert [u["preprocessor"] for u in guided(model="demo-sdxl", init_image="Pic", mask="Mask", control=[
            {**UNIT, "model": union, "preprocessor": name} for name in ("tile", "inpaint")])["control"]] == [
            "tile", "inpaint"]
    assert guided(model="demo-sdxl", control=[{**UNIT, "model": "cn-sdxl-union6", "preprocessor": "depth"},
                                              {**UNIT, "model": "cn-sdxl-union6"}])["control"][1]["preprocessor"] \
        == "none"
    assert guided(model="demo-flux", control=[{**UNIT, "model": "cn-flux-two", "preprocessor": "tile"}])["control"]
    assert not runs({**GUIDE_MODELS["cn-sdxl-union"], "family": "sd1"})
