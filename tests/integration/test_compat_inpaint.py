"""Masks on the compatibility APIs, spoken to by the real clients against the real web
server (gunicorn) and worker: `webuiapi`'s img2img with `mask_image` (A1111's reading:
white repaints) and with `inpainting_mask_invert=1`, its inpaint options visible in the
answer's info and infotext; the `openai` client's images.edit with a mask whose fully
transparent pixels are the area to edit. The pixels outside the mask and its feathering
are the input's; a mask OpenAI would refuse, and a mask that selects nothing, are a 4xx
naming `mask` that charges nothing and keeps nothing."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
import openai
import pytest
import requests
import webuiapi
from PIL import Image as PILImage

from tests.helpers import unique
from tests.integration.helpers import ApiUser

SIDE = 128
BOX = (40, 40, 88, 88)  # the masked square: left, top, right, bottom
BLUR = 4
MARGIN = 3 * BLUR + 2  # past this distance from the mask, feathering changes nothing


@pytest.fixture(scope="module")
def compat_mask_stack(stack_factory):
    """The A1111 module's stack (the same settings: one shared stack)."""
    shared = stack_factory(web=1, DAYDREAM_PREVIEW_HZ=50)
    app = shared.app
    app.server = shared.web(1)
    return app


class MaskCaller:
    """A Daydream user with an API token, and both clients set up as docs/TOOLS.md says."""

    def __init__(self, app, prefix: str):
        self.user = ApiUser(app.test_client(), unique(prefix))
        self.token = self.user.headers["Authorization"][7:]
        self.url = app.server.url
        self.webui = webuiapi.WebUIApi(baseurl=f"{self.url}/sdapi/v1", username=self.user.username,
                                       password=self.token, sampler="Euler a", steps=2)
        self.openai = openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.token, max_retries=0, timeout=120)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, headers={"Authorization": f"Bearer {self.token}"}, timeout=120, **kw)

    def task(self, task_id: str) -> dict:
        return self.user.get(f"/api/v1/tasks/{task_id}").get_json()

    def count(self, kind: str) -> int:
        return self.user.get(f"/api/v1/images?kind={kind}").get_json()["total"]


@pytest.fixture
def mask_caller(compat_mask_stack):
    return MaskCaller(compat_mask_stack, "masker")


def colour_ramp() -> PILImage.Image:
    """A picture with a different colour at every place, so a moved or blurred pixel shows."""
    ramp = np.arange(SIDE, dtype=np.uint8) * 2
    red, green = np.meshgrid(ramp, ramp)
    return PILImage.fromarray(np.dstack([red, green, 255 - red // 2]).astype(np.uint8), "RGB")


def encoded_png(picture: PILImage.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def centre_mask(mode: str = "L", scale: int = 1) -> PILImage.Image:
    """White (repaint) over BOX, black elsewhere. "RGBA": OpenAI's, transparent over BOX;
    "alpha": A1111's reading of transparency, opaque black over BOX, transparent elsewhere.
    scale: made that many times smaller (the server scales it to the picture)."""
    side, box = SIDE // scale, tuple(edge // scale for edge in BOX)
    if mode == "RGBA":
        mask = PILImage.new("RGBA", (side, side), (0, 0, 0, 255))
        mask.paste((0, 0, 0, 0), box)
        return mask
    if mode == "alpha":
        mask = PILImage.new("RGBA", (side, side), (255, 255, 255, 0))
        mask.paste((0, 0, 0, 255), box)
        return mask
    mask = PILImage.new(mode, (side, side), 0)
    mask.paste(255, box)
    return mask


def regions() -> tuple[np.ndarray, np.ndarray]:
    """(far outside the mask and its feathering, deep inside it) as boolean arrays."""
    ys, xs = np.mgrid[0:SIDE, 0:SIDE]
    left, top, right, bottom = BOX
    outside = (xs < left - MARGIN) | (xs >= right + MARGIN) | (ys < top - MARGIN) | (ys >= bottom + MARGIN)
    inside = (xs >= left + MARGIN) & (xs < right - MARGIN) & (ys >= top + MARGIN) & (ys < bottom - MARGIN)
    return outside, inside


def difference(result: PILImage.Image, source: PILImage.Image) -> np.ndarray:
    """The largest channel difference at each pixel."""
    a = np.asarray(result.convert("RGB"), dtype=np.int16)
    b = np.asarray(source.convert("RGB"), dtype=np.int16)
    return np.abs(a - b).max(axis=2)


def test_webuiapi_img2img_with_a_mask_repaints_only_the_masked_square(mask_caller):
    source = colour_ramp()
    tokens = mask_caller.user.me()["tokens"]
    result = mask_caller.webui.img2img(images=[source], mask_image=centre_mask(), prompt="a red square",
                                       width=SIDE, height=SIDE, steps=2, seed=11, denoising_strength=0.9,
                                       mask_blur=BLUR, inpainting_fill=1, inpaint_full_res=False,
                                       inpaint_full_res_padding=32)
    [picture] = result.images
    assert picture.size == (SIDE, SIDE)
    outside, inside = regions()
    change = difference(picture, source)
    assert change[outside].max() <= 1, "a pixel outside the mask and its feathering changed"
    assert change[inside].mean() > 8, "the masked square was not repainted"
    # The settings in A1111's words: in the info, the infotext and the parameters echo.
    extras = result.info["extra_generation_params"]
    assert extras["Mask blur"] == BLUR and extras["Inpaint area"] == "Whole picture"
    assert extras["Masked content"] == "original" and "Mask mode" not in extras
    infotext = result.info["infotexts"][0]
    assert "Mask blur: 4" in infotext and "Inpaint area: Whole picture" in infotext
    assert "Masked content: original" in infotext and "Denoising strength: 0.9" in infotext
    assert result.parameters["mask"] is None and result.parameters["inpainting_fill"] == 1
    assert result.parameters["inpaint_full_res"] is False
    # An ordinary image-to-image task, paid as one, with its mask stored as the caller's own.
    task = mask_caller.task(result.info["daydream_task_id"])
    assert task["state"] == "done" and task["mask"] and task["init_image"]
    assert task["inpaint"]["inpaint_area"] == "whole" and task["inpaint"]["mask_blur"] == BLUR
    assert mask_caller.user.me()["tokens"] == tokens - task["cost"] and task["cost"] >= 1
    assert mask_caller.count("mask") == 1
    # A retry with the same Idempotency-Key answers with its first task: no second charge,
    # the retry's own picture and mask are not kept.
    body = {"prompt": "a red square", "init_images": [webuiapi.b64_img(source)], "mask": webuiapi.b64_img(
        centre_mask()), "width": SIDE, "height": SIDE, "steps": 2, "seed": 11, "denoising_strength": 0.9}
    first, again = (requests.post(mask_caller.url + "/sdapi/v1/img2img", json=body, timeout=120,
                                  auth=(mask_caller.user.username, mask_caller.token),
                                  headers={"Idempotency-Key": "inpaint-retry"}) for _ in range(2))
    assert first.status_code == again.status_code == 200, (first.text[:300], again.text[:300])
    assert json.loads(first.json()["info"])["daydream_task_id"] == json.loads(again.json()["info"])[
        "daydream_task_id"]
    assert mask_caller.count("mask") == 2 and mask_caller.count("upload") == 2


def test_webuiapi_inverted_mask_keeps_the_square_and_repaints_around_it(mask_caller):
    source = colour_ramp()
    # A mask with transparency is read by its alpha (opaque repaints: black or not), as
    # A1111 reads it; webuiapi's own defaults otherwise: "fill", "Only masked", no padding.
    result = mask_caller.webui.img2img(images=[source], mask_image=centre_mask("alpha"), prompt="a lawn",
                                       width=SIDE, height=SIDE, steps=2, seed=12, denoising_strength=0.9,
                                       mask_blur=BLUR, inpainting_mask_invert=1)
    [picture] = result.images
    outside, inside = regions()
    change = difference(picture, source)
    assert change[inside].max() <= 1, "the square outside the inverted mask changed"
    assert change[outside].mean() > 8, "the area around the square was not repainted"
    extras = result.info["extra_generation_params"]
    assert extras["Mask mode"] == "Inpaint not masked" and extras["Inpaint area"] == "Only masked"
    assert extras["Masked content"] == "fill" and extras["Masked area padding"] == 0
    infotext = result.info["infotexts"][0]
    assert "Mask mode: Inpaint not masked" in infotext and "Masked content: fill" in infotext
    assert "Inpaint area: Only masked" in infotext and "Masked area padding: 0" in infotext
    assert result.parameters["inpainting_mask_invert"] == 1 and result.parameters["inpaint_full_res"] is True
    task = mask_caller.task(result.info["daydream_task_id"])
    assert task["inpaint"]["mask_invert"] is True and task["inpaint"]["masked_content"] == "fill"


def test_openai_images_edit_repaints_the_transparent_pixels_of_the_mask(mask_caller):
    source = colour_ramp()
    result = mask_caller.openai.images.edit(model="demo", image=("in.png", encoded_png(source), "image/png"),
                                            mask=("mask.png", encoded_png(centre_mask("RGBA", scale=2)),
                                                  "image/png"),  # (half the size: scaled to the picture)
                                            prompt="a blue window", size=f"{SIDE}x{SIDE}",
                                            response_format="b64_json")
    picture = PILImage.open(io.BytesIO(base64.b64decode(result.data[0].b64_json)))
    assert picture.size == (SIDE, SIDE)
    outside, inside = regions()
    change = difference(picture, source)
    assert change[outside].max() <= 1 and change[inside].mean() > 8
    [task] = mask_caller.user.get("/api/v1/tasks?session=current").get_json()["items"]
    assert task["mask"] and task["inpaint"]["mask_invert"] is False and task["state"] == "done"


def test_a_mask_that_cannot_be_read_or_selects_nothing_names_mask_and_charges_nothing(mask_caller):
    tokens = mask_caller.user.me()["tokens"]
    picture = base64.b64encode(encoded_png(colour_ramp())).decode()
    # A1111: all black selects nothing; so does all white, inverted; words are not an image.
    black = base64.b64encode(encoded_png(PILImage.new("L", (SIDE, SIDE), 0))).decode()
    white = base64.b64encode(encoded_png(PILImage.new("L", (SIDE, SIDE), 255))).decode()
    for mask, extra in ((black, {}), (white, {"inpainting_mask_invert": 1}),
                        (base64.b64encode(b"plain words").decode(), {})):
        response = requests.post(mask_caller.url + "/sdapi/v1/img2img", timeout=60,
                                 auth=(mask_caller.user.username, mask_caller.token),
                                 json={"prompt": "x", "init_images": [picture], "mask": mask, "steps": 2,
                                       "width": SIDE, "height": SIDE, **extra})
        assert 400 <= response.status_code < 500, response.text[:300]
        assert response.json()["detail"].startswith("mask:"), response.json()
    # OpenAI: a mask without transparency, and one with none fully transparent.
    opaque = PILImage.new("RGBA", (SIDE, SIDE), (0, 0, 0, 255))
    opaque.paste((0, 0, 0, 128), BOX)  # half transparent is not "fully transparent"
    for mask in (encoded_png(centre_mask("RGB")), encoded_png(opaque), b""):
        response = mask_caller.post("/v1/images/edits", data={"prompt": "x", "size": f"{SIDE}x{SIDE}"},
                                    files={"image": ("in.png", encoded_png(colour_ramp()), "image/png"),
                                           "mask": ("mask.png", mask, "image/png")})
        assert response.status_code == 400, response.text[:300]
        assert response.json()["error"]["param"] == "mask", response.json()
    assert mask_caller.user.me()["tokens"] == tokens
    assert mask_caller.user.get("/api/v1/tasks?session=current").get_json()["items"] == []
    assert mask_caller.count("upload") == 0 and mask_caller.count("mask") == 0
