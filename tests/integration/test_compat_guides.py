"""ControlNet units, reference images and edits by instruction from other tools, spoken to by
the real clients against the real web server and worker with the demo models and guides:
`webuiapi`'s controlnet_units on txt2img and img2img (sd-webui-controlnet's
alwayson_scripts.controlnet), its controlnet_model_list / module_list / detect, and the
`openai` client's images.edit with two pictures and with one on an editing model (FLUX.1
Kontext's demo) and images.create_variation. Each makes one task of the caller's whose
units, references or edit are what the client asked for, and answers a picture of the
task's size; bad input is a 4xx naming the client's field, and charges nothing."""
from __future__ import annotations

import base64
import io

import openai
import pytest
import requests
import webuiapi
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from tests.helpers import unique
from tests.integration.helpers import ApiUser

CONTROLNET_SD1 = "demo-controlnet-sd1"
IPADAPTER_SD1 = "demo-ipadapter-sd1"


@pytest.fixture(scope="module")
def guides_stack(stack_factory):
    # The demo models' stack (with their guides and demo-kontext), shared with
    # test_families.py, test_hires.py, test_inpaint.py, test_upscale_tasks.py and others.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.server = shared.web(1)
    return app


class GuideCaller:
    """A user with an API token, and both clients set up as docs/TOOLS.md says."""

    def __init__(self, app, prefix: str):
        self.user = ApiUser(app.test_client(), unique(prefix))
        self.token = self.user.headers["Authorization"][7:]
        self.url = app.server.url
        self.webui = webuiapi.WebUIApi(baseurl=f"{self.url}/sdapi/v1", username=self.user.username,
                                       password=self.token, sampler="Euler a", steps=2)
        self.openai = openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.token, max_retries=0, timeout=120)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, auth=(self.user.username, self.token), timeout=120, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, auth=(self.user.username, self.token), timeout=30, **kw)

    def tasks(self) -> list[dict]:
        """The caller's tasks, newest first."""
        return self.user.get("/api/v1/tasks?session=current").get_json()["items"]

    def title(self, guide_id: str) -> str:
        """A guide's title in /controlnet/model_list, as A1111 clients name it: "name [hash]"."""
        items = self.user.get("/api/v1/models").get_json()["items"]
        names = {item["id"]: item["name"] for item in items if item.get("kind") in ("controlnet", "ipadapter")}
        [title] = [t for t in self.webui.controlnet_model_list() if t.startswith(names[guide_id] + " [")]
        return title


@pytest.fixture(scope="module")
def caller(guides_stack):
    """One caller for the module (each test looks at the task it made: the newest)."""
    return GuideCaller(guides_stack, "guides")


def drawing(size: int = 64, shift: int = 0) -> PILImage.Image:
    """Dark lines on white: something canny and scribble find edges in."""
    picture = PILImage.new("RGB", (size, size), "white")
    for x in range(size):
        picture.putpixel((x, (x * 3 + shift) % size), (0, 0, 0))
        picture.putpixel(((x + shift) % size, size // 2), (20, 20, 20))
    return picture


def png_of(picture: PILImage.Image, texts: PngInfo | None = None) -> bytes:
    out = io.BytesIO()
    picture.save(out, format="PNG", pnginfo=texts)
    return out.getvalue()


def decoded(b64: str) -> PILImage.Image:
    return PILImage.open(io.BytesIO(base64.b64decode(b64)))


def test_webuiapi_sees_the_guides_modules_and_version(caller):
    assert caller.webui.controlnet_version() == 2
    titles = caller.webui.controlnet_model_list()
    assert any(t.startswith("Demo ControlNet SD 1.x") and t.endswith("]") for t in titles)
    assert any(t.startswith("Demo IP-Adapter SD 1.x") for t in titles)
    modules = caller.webui.controlnet_module_list()
    assert modules[:2] == ["none", "canny"]
    assert {"scribble_hed", "lineart_standard", "tile_resample", "inpaint_only", "ip-adapter_clip_sd15"} <= set(
        modules)
    detail = caller.get("/controlnet/module_list").json()["module_detail"]
    assert [s["name"] for s in detail["canny"]["sliders"]] == ["Preprocessor Resolution", "Low threshold",
                                                               "High threshold"]
    assert caller.get("/controlnet/settings").json() == {"control_net_unit_count": 3}
    # Without a token: a 401 in A1111's JSON shape; a path that is not there: its JSON 404.
    bare = requests.get(caller.url + "/controlnet/model_list", timeout=10)
    assert bare.status_code == 401 and bare.headers["Content-Type"] == "application/json"
    missing = caller.get("/controlnet/control_types_of_nothing")
    assert missing.status_code == 404 and missing.json()["detail"] == "Not Found"


def test_webuiapi_txt2img_with_a_control_unit_and_a_reference(caller):
    before = caller.user.me()["tokens"]
    canny = webuiapi.ControlNetUnit(image=drawing(), module="canny", model=caller.title(CONTROLNET_SD1),
                                    weight=0.8, guidance_start=0.0, guidance_end=0.5, threshold_a=50,
                                    threshold_b=150, resize_mode="Crop and Resize")
    style = webuiapi.ControlNetUnit(image=drawing(shift=9), module="ip-adapter_clip_sd15",
                                    model=caller.title(IPADAPTER_SD1), weight=0.6)
    # (a fresh alwayson_scripts each call: webuiapi writes the units into its default
    # dict, which would carry them into every later call of this process)
    result = caller.webui.txt2img(prompt="a lighthouse", width=64, height=64, steps=2, seed=7,
                                  controlnet_units=[canny, style], alwayson_scripts={})
    assert [picture.size for picture in result.images] == [(64, 64)]
    task = caller.tasks()[0]
    assert task["state"] == "done" and task["prompt"] == "a lighthouse"
    [unit] = task["control"]
    assert {k: unit[k] for k in ("preprocessor", "model", "weight", "start", "end", "threshold_a", "threshold_b",
                                 "resize_mode", "control_mode")} == {
        "preprocessor": "canny", "model": CONTROLNET_SD1, "weight": 0.8, "start": 0.0, "end": 0.5,
        "threshold_a": 50, "threshold_b": 150, "resize_mode": "crop", "control_mode": "balanced"}
    [reference] = task["references"]
    assert reference["model"] == IPADAPTER_SD1 and reference["weight"] == 0.6
    assert caller.user.me()["tokens"] == before - task["cost"]
    extras = result.info["extra_generation_params"]
    assert extras["ControlNet 0"].startswith("Module: canny, Model: Demo ControlNet SD 1.x")
    assert result.parameters["alwayson_scripts"]["ControlNet"]["args"][0]["image"] is None  # not echoed
    # PNG info reads the units back (without their pictures), from the infotext alone too.
    infotext = result.info["infotexts"][0]
    assert 'ControlNet 0: "Module: canny, Model: Demo ControlNet SD 1.x (tiny, random), Weight: 0.8' in infotext
    saved = PngInfo()
    saved.add_text("parameters", infotext)
    read = caller.user.post("/api/v1/png-info", json={"image": base64.b64encode(png_of(drawing(), saved)).decode()})
    assert read.get_json()["source"] == "a1111"
    [back] = read.get_json()["parameters"]["control"]
    assert {k: back[k] for k in ("preprocessor", "model", "weight", "end", "threshold_a")} == {
        "preprocessor": "canny", "model": CONTROLNET_SD1, "weight": 0.8, "end": 0.5, "threshold_a": 50}
    assert read.get_json()["parameters"]["references"] == [{"model": IPADAPTER_SD1, "weight": 0.6}]


def test_webuiapi_img2img_unit_without_a_picture_takes_the_init_image(caller):
    source = drawing(shift=20)
    tile = webuiapi.ControlNetUnit(module="tile_resample", model=caller.title(CONTROLNET_SD1), threshold_a=2)
    result = caller.webui.img2img(images=[source], prompt="the same", width=64, height=64, steps=2,
                                  denoising_strength=0.5, controlnet_units=[tile], alwayson_scripts={})
    assert result.image.size == (64, 64)
    task = caller.tasks()[0]
    [unit] = task["control"]
    assert task["state"] == "done" and unit["preprocessor"] == "tile" and unit["threshold_a"] == 2
    assert unit["image"] == task["init_image"]  # one stored picture, used twice


def test_webuiapi_detect_answers_the_map_the_native_detect_makes(caller):
    source = drawing(shift=5)
    answer = caller.webui.controlnet_detect([source], module="canny", processor_res=64, threshold_a=60,
                                            threshold_b=120)
    [detected] = answer.images
    native = caller.user.post("/api/v1/control/detect", json={
        "image": "data:image/png;base64," + base64.b64encode(png_of(source)).decode(), "preprocessor": "canny",
        "processor_res": 64, "threshold_a": 60, "threshold_b": 120}).get_json()
    expected = decoded(native["image"].split(",", 1)[1])
    assert detected.size == expected.size == (64, 64)
    assert detected.convert("RGB").tobytes() == expected.convert("RGB").tobytes()
    assert len(set(detected.convert("L").tobytes())) == 2  # edges: black and white only
    refused = caller.post("/controlnet/detect", json={"controlnet_module": "depth_zoe",
                                                      "controlnet_input_images": ["x"]})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("controlnet_module: 'depth_zoe'")


def test_bad_units_and_other_scripts_are_a_422_naming_them_and_charge_nothing(caller):
    tokens, made = caller.user.me()["tokens"], len(caller.tasks())
    picture = base64.b64encode(png_of(drawing())).decode()
    for scripts, field in (
            ({"ControlNet": {"args": [{"image": picture, "module": "canny", "model": "control_v11p_sd15_canny"}]}},
             "alwayson_scripts.ControlNet.args[0].model"),
            ({"controlnet": {"args": [{"enabled": False}, {"image": picture, "module": "depth_zoe",
                                                           "model": CONTROLNET_SD1}]}},
             "alwayson_scripts.controlnet.args[1].module"),
            ({"ControlNet": {"args": [{"image": picture, "module": "canny", "model": CONTROLNET_SD1, "weight": 5}]}},
             "alwayson_scripts.ControlNet.args[0].weight"),
            ({"ADetailer": {"args": [True, {"ad_model": "face_yolov8n.pt"}]}}, "alwayson_scripts")):
        response = caller.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2,
                                                          "alwayson_scripts": scripts})
        assert response.status_code == 422 and response.json()["detail"].startswith(field + ":"), response.text
        if field == "alwayson_scripts":  # an unknown script: named
            assert "the ADetailer script is not available" in response.json()["detail"], response.text
    # A ControlNet of another family: the native validation's refusal, named in A1111's terms.
    wrong = caller.post("/sdapi/v1/txt2img", json={
        "prompt": "x", "width": 64, "height": 64, "steps": 2,
        "alwayson_scripts": {"ControlNet": {"args": [{"image": picture, "module": "canny",
                                                      "model": "demo-controlnet-sdxl"}]}}})
    assert wrong.status_code == 422 and wrong.json()["detail"].startswith("alwayson_scripts.controlnet.args:")
    assert caller.user.me()["tokens"] == tokens and len(caller.tasks()) == made


def test_openai_variation_is_image_to_image_at_strength_0_6(caller):
    result = caller.openai.images.create_variation(model="demo", image=("v.png", png_of(drawing(96)), "image/png"),
                                                   size="64x64", response_format="b64_json")
    assert [decoded(item.b64_json).size for item in result.data] == [(64, 64)]
    task = caller.tasks()[0]
    assert task["state"] == "done" and task["strength"] == 0.6 and task["prompt"] == "a picture"
    assert task["init_image"] and task["samples"] == 1 and task["edit"] is None


def test_openai_edit_with_two_pictures_and_with_one_on_an_editing_model(caller):
    pictures = [("a.png", png_of(drawing()), "image/png"), ("b.png", png_of(drawing(shift=30)), "image/png")]
    two = caller.openai.images.edit(model="demo-kontext", image=pictures, prompt="make it winter", size="64x64",
                                    response_format="b64_json")
    assert [decoded(item.b64_json).size for item in two.data] == [(64, 64)]
    task = caller.tasks()[0]
    assert task["state"] == "done" and task["model"] == "demo-kontext" and task["prompt"] == "make it winter"
    assert len(task["edit"]["images"]) == 2 and task["init_image"] is None
    one = caller.openai.images.edit(model="demo-kontext", image=pictures[0], prompt="make it night", size="64x64",
                                    response_format="b64_json")
    assert decoded(one.data[0].b64_json).size == (64, 64)
    latest = caller.tasks()[0]
    assert latest["prompt"] == "make it night" and len(latest["edit"]["images"]) == 1
    # Two pictures on a model that does not edit: a 400 naming the models that do; nothing charged.
    tokens, made = caller.user.me()["tokens"], len(caller.tasks())
    with pytest.raises(openai.BadRequestError) as raised:
        caller.openai.images.edit(model="demo", image=pictures, prompt="make it winter", size="64x64")
    error = raised.value.response.json()["error"]
    assert error["param"] == "image" and "demo-kontext" in error["message"]
    assert caller.user.me()["tokens"] == tokens and len(caller.tasks()) == made
