"""sd-webui-controlnet's units and routes, OpenAI's multi-picture edits and variations, and
the "ControlNet N" lines of PNG info, in Daydream's terms (services/generation/compat/,
services/library/pnginfo.py), without Redis, a database or a worker: the catalog and the
preprocessors this install has are small tables of the test's own."""
from __future__ import annotations

import base64
import io
from types import SimpleNamespace

import pytest
import webuiapi
from flask import Flask
from PIL import Image as PILImage

from services.core.errors import ValidationError
from services.generation import preprocess
from services.generation.compat import a1111, a1111_controlnet as cn, common, openai
from services.generation.families import card
from services.library import pnginfo

CARDS = {"demo": card("sd1"), "demo-kontext": card("flux", variant="kontext")}
GUIDES = [SimpleNamespace(id="cn-canny", name="control_v11p_sd15_canny", family="sd1", adapter="controlnet",
                          spec="controlnet/control_v11p_sd15_canny.safetensors"),
          SimpleNamespace(id="ip-sd1", name="ip-adapter_sd15", family="sd1", adapter="ipadapter",
                          spec="ipadapter/ip-adapter_sd15.safetensors")]
LINEART = {"id": "lineart_realistic", "label": "Line art", "builtin": False, "needs_mask": False,
           "thresholds": {"a": None, "b": None}, "union_type": 0}


def builtins() -> dict:
    return {key: {"id": key, **spec} for key, spec in preprocess.BUILTINS.items()}


@pytest.fixture
def here(monkeypatch):
    """A bare app whose catalog has the demo SD 1.x model, Kontext, a canny ControlNet and
    an IP-Adapter; the built-in preprocessors only."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024, MAX_CONTROL=3)
    monkeypatch.setattr(cn.guides, "preprocessors", builtins)
    monkeypatch.setattr(cn.catalog, "enabled_guides",
                        lambda adapter=None: [g for g in GUIDES if adapter in (None, g.adapter)])
    monkeypatch.setattr(common.catalog, "cards", lambda: CARDS)
    monkeypatch.setattr(common.catalog, "default_model", lambda: "demo")
    monkeypatch.setattr(common.catalog, "lora_table", lambda: {})
    monkeypatch.setattr(openai.access, "usable_models",
                        lambda user: [SimpleNamespace(id=key, name=key) for key in CARDS])
    monkeypatch.setattr(common, "resolve_model", lambda user, name, field: name or "demo")
    with app.app_context():
        yield app


def png_b64(colour=(10, 200, 30)) -> str:
    out = io.BytesIO()
    PILImage.new("RGB", (16, 16), colour).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def units(*made: webuiapi.ControlNetUnit) -> dict:
    return {"ControlNet": {"args": [unit.to_dict() for unit in made]}}


def test_module_names_map_to_the_preprocessors_this_install_has():
    available = builtins()
    assert cn.preprocessor_of("canny", available) == "canny"
    assert cn.preprocessor_of("none", available) == "none"
    for name in ("scribble_pidinet", "scribble_hed", "scribble_xdog", "scribble", "fake_scribble"):
        assert cn.preprocessor_of(name, available) == "scribble", name
    for name in ("lineart_standard", "lineart_realistic", "lineart_anime", "invert (from white bg & black line)"):
        assert cn.preprocessor_of(name, available) == "lineart", name
    for name in ("tile_resample", "tile_colorfix", "tile_colorfix+sharp", "blur_gaussian"):
        assert cn.preprocessor_of(name, available) == "tile", name
    for name in ("inpaint_only", "inpaint_global_harmonious", "inpaint_only+lama", "inpaint"):
        assert cn.preprocessor_of(name, available) == "inpaint", name
    for name in ("depth_midas", "depth", "openpose_full", "softedge_hed", "reference_only"):
        assert cn.preprocessor_of(name, available) is None, name  # no annotator installed
    # An annotator's weights installed: its module goes to it, not to the built-in.
    with_annotator = {**available, "lineart_realistic": LINEART}
    assert cn.preprocessor_of("lineart_realistic", with_annotator) == "lineart_realistic"
    assert cn.preprocessor_of("lineart_standard", with_annotator) == "lineart"  # (model-free: the built-in)
    assert cn.preprocessor_of("lineart", with_annotator) == "lineart"  # Daydream's own id


def test_webuiapi_units_become_the_native_control_and_references(here):
    canny = webuiapi.ControlNetUnit(image=PILImage.new("RGB", (16, 16), "white"), module="canny",
                                    model="control_v11p_sd15_canny [d14c016b]", weight=0.8, guidance_start=0.1,
                                    guidance_end=0.9, control_mode=2, threshold_a=50, threshold_b=150,
                                    resize_mode="Just Resize", pixel_perfect=True, processor_res=256)
    colourfix = webuiapi.ControlNetUnit(image=PILImage.new("RGB", (16, 16), "red"), module="tile_colorfix",
                                        model="cn-canny")  # (thresholds 64: tile_colorfix's Variation)
    off = webuiapi.ControlNetUnit(module="canny", model="nothing like it", enabled=False)
    style = webuiapi.ControlNetUnit(image=PILImage.new("RGB", (16, 16), "blue"), module="ip-adapter_clip_sd15",
                                    model="ip-adapter_sd15 [0123abcd]", weight=0.6)
    found = cn.script_units(None, "ControlNet", units(canny, colourfix, off, style)["ControlNet"], img2img=False)
    first, second = found["control"]
    assert first["image"].startswith("data:image/png;base64,")
    assert {k: v for k, v in first.items() if k != "image"} == {
        "preprocessor": "canny", "model": "cn-canny", "weight": 0.8, "start": 0.1, "end": 0.9,
        "control_mode": "control", "resize_mode": "resize", "processor_res": 256, "threshold_a": 50.0,
        "threshold_b": 150.0, "pixel_perfect": True}
    assert second["preprocessor"] == "tile" and second["resize_mode"] == "fill"  # webuiapi's default
    assert "threshold_a" not in second and second["control_mode"] == "balanced"
    [reference] = found["references"]
    assert reference["model"] == "ip-sd1" and reference["weight"] == 0.6
    assert reference["image"].startswith("data:image/png;base64,")


def test_the_script_rides_on_a1111_params_and_other_scripts_are_still_refused(here):
    body = {"prompt": "a boat", "alwayson_scripts": units(webuiapi.ControlNetUnit(
        image=PILImage.new("RGB", (8, 8)), module="canny", model="control_v11p_sd15_canny"))}
    params = a1111.a1111_params(None, body, img2img=False)
    assert [unit["model"] for unit in params["control"]] == ["cn-canny"]
    with pytest.raises(ValidationError) as raised:
        a1111.a1111_params(None, {**body, "alwayson_scripts": {**body["alwayson_scripts"],
                                                                "ADetailer": {"args": [True]}}}, img2img=False)
    assert raised.value.field == "alwayson_scripts" and "ADetailer" in raised.value.message
    # An empty ControlNet list (what webuiapi sends when it saw the extension) is nothing.
    assert "control" not in a1111.a1111_params(None, {"prompt": "x", "alwayson_scripts": {"ControlNet": {
        "args": []}}}, img2img=False)


def test_an_img2img_unit_without_a_picture_takes_the_init_image(here):
    args = {"args": [{"module": "canny", "model": "cn-canny"}]}  # (enabled left out: on)
    found = cn.script_units(None, "controlnet", args, img2img=True)
    assert found["control"][0]["image"] == cn.INIT_IMAGE
    cn.use_init_image(found, "init123")
    assert found["control"][0]["image"] == "init123"
    with pytest.raises(ValidationError) as raised:
        cn.script_units(None, "controlnet", args, img2img=False)
    assert raised.value.field == "alwayson_scripts.controlnet.args[0].image"


@pytest.mark.parametrize("unit, field, words", [
    ({"module": "canny", "model": "control_v11p_sd15_depth [aaaaaaaa]"}, "model", "not an available ControlNet"),
    ({"module": "canny", "model": "None", "image": "x"}, "model", "no model is not an available ControlNet"),
    ({"module": "depth_zoe", "model": "cn-canny"}, "module", "'depth_zoe' is not available here"),
    ({"module": "canny", "model": "cn-canny", "weight": 3}, "weight", "from 0 to 2"),
    ({"module": "canny", "model": "cn-canny", "guidance_start": 0.8, "guidance_end": 0.2}, "guidance_start",
     "after guidance_end"),
    ({"module": "canny", "model": "cn-canny", "control_mode": "Loud"}, "control_mode", '"Balanced"'),
    ({"module": "canny", "model": "cn-canny", "resize_mode": 9}, "resize_mode", '"Crop and Resize"'),
    ({"module": "canny", "model": "cn-canny", "image": "not base64!"}, "image", "base64"),
    ({"module": "ip-adapter_clip_sd15", "model": "cn-canny", "image": "x"}, "model", "takes an IP-Adapter"),
])
def test_a_bad_unit_is_a_422_naming_its_field_as_sent(here, unit, field, words):
    with pytest.raises(ValidationError) as raised:
        cn.script_units(None, "ControlNet", {"args": [{"enabled": False}, {"image": png_b64(), **unit}]},
                        img2img=True)
    assert raised.value.field == f"alwayson_scripts.ControlNet.args[1].{field}" and words in raised.value.message
    # (the client's own field: the A1111 view does not rename it)
    assert common.rename_fields(raised.value, a1111.A1111_NAMES).field == raised.value.field


def test_thresholds_out_of_a_modules_range_are_its_defaults_as_sd_webui_controlnet_does(here):
    args = {"args": [{"image": png_b64(), "module": "canny", "model": "cn-canny", "threshold_a": -1,
                      "threshold_b": 400, "processor_res": -1},
                     {"image": png_b64(), "module": "tile_resample", "model": "cn-canny", "threshold_a": 4}]}
    canny, tile = cn.script_units(None, "ControlNet", args, img2img=False)["control"]
    assert "threshold_a" not in canny and "threshold_b" not in canny and "processor_res" not in canny
    assert tile["threshold_a"] == 4.0  # tile_resample's Down Sampling Rate is tile's rate


def test_model_and_module_lists_are_what_can_run_here(here):
    assert cn.model_list(None) == ["control_v11p_sd15_canny [" + common.short_hash("cn-canny") + "]",
                                   "ip-adapter_sd15 [" + common.short_hash("ip-sd1") + "]"]
    names = cn.module_list(None)
    assert names[:2] == ["none", "canny"] and "inpaint_only" in names and "tile_resample" in names
    assert "depth_midas" not in names and "ip-adapter_clip_sd15" in names and "ip-adapter_clip_sdxl" not in names
    detail = cn.module_detail(None, names)
    assert detail["canny"]["sliders"] == [
        {"name": "Preprocessor Resolution", "value": 512, "min": 64, "max": 2048},
        {"name": "Low threshold", "value": 100, "min": 1, "max": 255, "step": 1},
        {"name": "High threshold", "value": 200, "min": 1, "max": 255, "step": 1}]
    assert detail["none"] == {"model_free": False, "sliders": []}
    assert len(detail["tile_colorfix"]["sliders"]) == 1 and len(detail["tile_resample"]["sliders"]) == 2
    for name in ("cn-canny", "CONTROL_V11P_SD15_CANNY", "control_v11p_sd15_canny [ffffffff]",
                 "control_v11p_sd15_canny.safetensors"):
        assert cn.find_guide(None, name).id == "cn-canny", name
    assert cn.find_guide(None, "ip-adapter_sd15", "controlnet") is None


def test_the_echo_carries_no_pictures_and_the_info_names_the_units(here):
    scripts = {"ControlNet": {"args": [{"image": "AAAA", "mask": "BBBB", "module": "canny"}]}, "Other": [1]}
    assert cn.without_pictures(scripts) == {"ControlNet": {"args": [{"image": None, "mask": None,
                                                                       "module": "canny"}]}, "Other": [1]}
    task = SimpleNamespace(control=[{"preprocessor": "canny", "model": "cn-canny",
                                     "model_name": "control_v11p_sd15_canny", "weight": 1.0, "start": 0.0,
                                     "end": 1.0, "control_mode": "balanced", "resize_mode": "crop",
                                     "processor_res": 512, "threshold_a": 100, "threshold_b": 200,
                                     "pixel_perfect": False}],
                           reference_images=[{"model": "ip-sd1", "model_name": "ip-adapter_sd15", "weight": 0.6}])
    assert cn.extras(task) == {
        "ControlNet 0": "Module: canny, Model: control_v11p_sd15_canny, Weight: 1.0, Resize Mode: Crop and Resize, "
                        "Processor Res: 512, Threshold A: 100, Threshold B: 200, Guidance Start: 0.0, "
                        "Guidance End: 1.0, Pixel Perfect: False, Control Mode: Balanced",
        "IP-Adapter 0": "Model: ip-adapter_sd15, Weight: 0.6"}


def test_detect_reads_its_fields_and_refuses_what_cannot_run(here):
    job = cn.detect_request({"controlnet_module": "canny", "controlnet_images": [png_b64()],
                             "controlnet_threshold_a": 64, "controlnet_threshold_b": 64,
                             "controlnet_processor_res": 256})
    assert (job["preprocessor"], job["resolution"], job["threshold_a"], job["threshold_b"]) == ("canny", 256, 64, 64)
    assert cn.detect_request({"controlnet_module": "scribble_hed", "controlnet_input_images": ["x"]})[
        "preprocessor"] == "scribble"
    for body, field in (({"controlnet_module": "depth_midas", "controlnet_input_images": ["x"]}, "controlnet_module"),
                        ({"controlnet_module": "ip-adapter_clip_sd15", "controlnet_input_images": ["x"]},
                         "controlnet_module"),
                        ({"controlnet_module": "canny"}, "controlnet_images"),
                        ({"controlnet_module": "canny", "controlnet_input_images": ["x"] * 9},
                         "controlnet_input_images"),
                        ({"controlnet_module": "inpaint_only", "controlnet_input_images": ["x"]}, "controlnet_masks")):
        with pytest.raises(ValidationError) as raised:
            cn.detect_request(body)
        assert raised.value.field == field, body


def test_png_info_reads_controlnet_lines_back_into_units_where_they_can_run(here):
    text = ('a boat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64, Model: demo, '
            'ControlNet 0: "Module: canny, Model: control_v11p_sd15_canny [d14c016b], Weight: 0.75, '
            'Resize Mode: Just Resize, Processor Res: 256, Threshold A: 80, Threshold B: 160, Guidance Start: 0.1, '
            'Guidance End: 0.8, Pixel Perfect: True, Control Mode: My prompt is more important", '
            'ControlNet 1: "Module: depth_zoe, Model: control_v11f1p_sd15_depth [cfd03158], Weight: 1", '
            'ControlNet 2: "Module: ip-adapter_clip_sd15, Model: ip-adapter_sd15 [6a3f7a5e], Weight: 0.5", '
            'IP-Adapter 0: "Model: ip-adapter_sd15, Weight: 0.4", Version: v1.10.1')
    params = pnginfo.from_infotext(text)
    assert params["control"] == [{"preprocessor": "canny", "model": "cn-canny", "weight": 0.75, "start": 0.1,
                                  "end": 0.8, "control_mode": "prompt", "resize_mode": "resize",
                                  "processor_res": 256, "threshold_a": 80.0, "threshold_b": 160.0,
                                  "pixel_perfect": True}]  # (depth_zoe runs nowhere here: left out)
    assert params["references"] == [{"model": "ip-sd1", "weight": 0.5}, {"model": "ip-sd1", "weight": 0.4}]
    assert "control" not in pnginfo.from_infotext("a boat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1")
    # A model whose name holds a comma is read whole.
    assert pnginfo._unit_fields("Module: canny, Model: Demo ControlNet (tiny, random), Weight: 1") == {
        "module": "canny", "model": "Demo ControlNet (tiny, random)", "weight": "1"}


def test_daydreams_own_record_keeps_the_units_that_still_run(here):
    unit = {"image": "img1", "preprocessor": "canny", "model": "cn-canny", "weight": 1.0}
    gone = {"image": "img2", "preprocessor": "canny", "model": "cn-gone", "weight": 1.0}
    params = pnginfo.from_daydream({"prompt": "x", "control": [unit, gone], "edit": {"images": ["img3"]}})
    assert params["control"] == [unit] and params["edit"] == {"images": ["img3"]}


def test_openai_edits_go_to_an_editing_model_or_say_which_models_edit(here):
    on_sd1 = openai.openai_params(None, {"prompt": "make it winter", "model": "demo"}, edit=True)
    on_kontext = openai.openai_params(None, {"prompt": "make it winter", "model": "demo-kontext"}, edit=True)
    assert openai.edit_kind(None, on_sd1, pictures=1, masked=False) == "picture"
    assert openai.edit_kind(None, on_sd1, pictures=1, masked=True) == "picture"
    assert openai.edit_kind(None, on_kontext, pictures=1, masked=False) == "edit"
    assert openai.edit_kind(None, on_kontext, pictures=3, masked=False) == "edit"
    for params, pictures, masked, field, words in (
            (on_sd1, 2, False, "image", "choose one that does: demo-kontext"),
            (on_kontext, 4, False, "image", "takes at most 3 pictures; no model here edits that many"),
            (on_kontext, 1, True, "mask", "takes no mask"),
            (on_sd1, 2, True, "mask", "a mask goes with one picture")):
        with pytest.raises(ValidationError) as raised:
            openai.edit_kind(None, params, pictures=pictures, masked=masked)
        assert raised.value.field == field and words in raised.value.message
    edit = openai.edit_params({**on_kontext, "strength": 0.5}, [base64.b64decode(png_b64())])
    assert "strength" not in edit and edit["edit"]["images"][0].startswith("data:image/png;base64,")


def test_a_variation_is_image_to_image_at_the_documented_strength(here):
    params = openai.variation_params(None, {"model": "demo", "n": "2"})
    assert (params["prompt"], params["strength"], params["samples"]) == (
        openai.VARIATION_PROMPT, openai.VARIATION_STRENGTH, 2) and openai.VARIATION_STRENGTH == 0.6
    asked = openai.variation_params(None, {"model": "demo", "prompt": "a red boat", "strength": "0.3"})
    assert (asked["prompt"], asked["strength"]) == ("a red boat", 0.3)
    with pytest.raises(ValidationError) as raised:
        openai.variation_params(None, {"model": "demo-kontext"})
    assert raised.value.field == "model" and "edits by instruction" in raised.value.message
