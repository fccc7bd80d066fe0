"""A1111's Extras and PNG info (/sdapi/v1/extra-single-image, extra-batch-images,
upscalers, latent-upscale-modes, png-info) and the native POST /api/v1/png-info, spoken
to by the real `webuiapi` client against the real web server and worker (with the demo
models and the demo ESRGAN ×2 upscaler). Each picture is an ordinary
charged upscale task of the caller's; bad input is a 4xx naming the field, nothing charged."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
import requests
import webuiapi
from PIL import Image as PILImage
from PIL import ImageChops
from PIL.PngImagePlugin import PngInfo

from tests.helpers import unique
from tests.integration.helpers import ApiUser

DEMO_UPSCALER = "Demo ESRGAN ×2"
A1111_INFOTEXT = ("a lighthouse at dusk, <lora:film grain:0.6>\nNegative prompt: blurry\n"
                  "Steps: 7, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 4242, "
                  "Size: 64x96, Model: some-model, Version: v1.10.1")


@pytest.fixture(scope="module")
def extras_stack(stack_factory):
    # The demo models' stack (the demo ESRGAN ×2 is offered with them), shared with
    # test_families.py, test_hires.py, test_inpaint.py and test_upscale_tasks.py.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.server = shared.web(1)
    return app


class ExtrasCaller:
    """A user with an API token, and webuiapi set up as docs/TOOLS.md says."""

    def __init__(self, app):
        self.user = ApiUser(app.test_client(), unique("extras"))
        self.token = self.user.headers["Authorization"][7:]
        self.url = app.server.url
        self.api = webuiapi.WebUIApi(baseurl=f"{self.url}/sdapi/v1", username=self.user.username,
                                     password=self.token)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, auth=(self.user.username, self.token), timeout=120, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, auth=(self.user.username, self.token), timeout=30, **kw)

    def tasks(self) -> list[dict]:
        return self.user.get("/api/v1/tasks?session=current").get_json()["items"]

    def full(self, image_id: str) -> PILImage.Image:
        response = self.user.get(f"/api/v1/images/{image_id}/full")
        assert response.status_code == 200
        return PILImage.open(io.BytesIO(response.data)).convert("RGB")


@pytest.fixture
def extras_caller(extras_stack):
    return ExtrasCaller(extras_stack)


def ramp_picture(width: int, height: int, shift: int = 0) -> PILImage.Image:
    picture = PILImage.new("RGB", (width, height))
    picture.putdata([((x * 9 + shift) % 256, (y * 7) % 256, ((x + y) * 5) % 256)
                     for y in range(height) for x in range(width)])
    return picture


def b64_png(picture: PILImage.Image, texts: dict | None = None) -> str:
    info = PngInfo()
    for key, value in (texts or {}).items():
        info.add_text(key, value)
    out = io.BytesIO()
    picture.save(out, format="PNG", pnginfo=info)
    return base64.b64encode(out.getvalue()).decode("ascii")


def upscale_tasks(caller: ExtrasCaller) -> list[dict]:
    return [task for task in caller.tasks() if task.get("upscale")]


def test_extra_single_image_with_lanczos_is_a_charged_upscale_task(extras_caller):
    before = extras_caller.user.me()["tokens"]
    source = ramp_picture(40, 24)
    result = extras_caller.api.extra_single_image(source, upscaler_1="Lanczos", upscaling_resize=2)
    [picture] = result.images
    assert picture.size == (80, 48)
    assert "Postprocess upscale by: 2" in result.info and "Postprocess upscaler: Lanczos" in result.info
    # Lanczos, as a plain resize of the picture sent
    expected = source.resize((80, 48), PILImage.Resampling.LANCZOS)
    assert max(ImageChops.difference(picture.convert("RGB"), expected).getextrema(), key=lambda e: e[1])[1] <= 8
    [task] = upscale_tasks(extras_caller)
    assert task["state"] == "done" and task["upscale"]["upscaler"] == "lanczos" and task["upscale"]["scale"] == 2
    assert task["width"] == 80 and task["height"] == 48 and task["cost"] >= 1
    assert extras_caller.user.me()["tokens"] == before - task["cost"]


def test_the_demo_model_in_a_batch_with_a_second_upscaler_blended(extras_caller):
    names = [u["name"] for u in extras_caller.api.get_upscalers()]
    assert names[:3] == ["None", "Lanczos", "Nearest"] and DEMO_UPSCALER in names
    assert [m["name"] for m in extras_caller.api.get_latent_upscale_modes()] == [
        "Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)", "Latent (nearest)",
        "Latent (nearest-exact)"]
    single = extras_caller.api.extra_single_image(ramp_picture(32, 32), upscaler_1=DEMO_UPSCALER, upscaling_resize=2)
    assert single.image.size == (64, 64) and "Postprocess upscaler: Demo ESRGAN ×2" in single.info
    lanczos = ramp_picture(32, 32).resize((64, 64), PILImage.Resampling.LANCZOS)
    assert ImageChops.difference(single.image.convert("RGB"), lanczos).getbbox() is not None  # the model's own
    before = extras_caller.user.me()["tokens"]
    earlier = {task["id"] for task in upscale_tasks(extras_caller)}
    sources = [ramp_picture(32, 32), ramp_picture(24, 40, shift=90)]
    result = extras_caller.api.extra_batch_images(sources, upscaler_1=DEMO_UPSCALER, upscaler_2="Nearest",
                                                  extras_upscaler_2_visibility=0.25, upscaling_resize=2)
    assert [p.size for p in result.images] == [(64, 64), (48, 80)]
    assert "Postprocess upscaler: Demo ESRGAN ×2" in result.info
    made = [task for task in upscale_tasks(extras_caller) if task["id"] not in earlier]
    assert len(made) == 4 and all(t["state"] == "done" for t in made)
    assert sorted(t["upscale"]["upscaler"] for t in made) == ["demo-esrgan-x2"] * 2 + ["nearest"] * 2
    assert extras_caller.user.me()["tokens"] == before - sum(t["cost"] for t in made)
    # The answer is A1111's blend of the two upscales: 3/4 the model's, 1/4 Nearest's.
    by_size = {}
    for task in made:
        by_size.setdefault((task["width"], task["height"]), {})[task["upscale"]["upscaler"]] = task
    pair = by_size[(48, 80)]
    model = extras_caller.full(pair["demo-esrgan-x2"]["images"][0]["id"])
    nearest = extras_caller.full(pair["nearest"]["images"][0]["id"])
    assert ImageChops.difference(model, nearest).getbbox() is not None  # the model differs from Nearest
    blended = PILImage.blend(model, nearest, 0.25)
    diff = ImageChops.difference(result.images[1].convert("RGB"), blended)
    assert max(high for _low, high in diff.getextrema()) <= 1


def test_png_info_reads_a_daydream_png_and_an_a1111_png(extras_caller):
    made = extras_caller.api.txt2img(prompt="a paper boat", width=64, height=64, steps=2, seed=321,
                                     sampler_name="Euler a")
    info = extras_caller.api.png_info(made.images[0])
    assert info.info.startswith("a paper boat\n") and "Seed: 321" in info.info
    assert info.parameters["Seed"] == "321" and info.parameters["Size-1"] == "64"
    answer = extras_caller.post("/sdapi/v1/png-info", json={"image": b64_png(ramp_picture(64, 96),
                                                                             {"parameters": A1111_INFOTEXT})}).json()
    assert answer["info"] == A1111_INFOTEXT
    assert answer["parameters"]["Prompt"] == "a lighthouse at dusk, <lora:film grain:0.6>"
    assert answer["parameters"]["Steps"] == "7" and answer["parameters"]["Schedule type"] == "Karras"
    # The native route: multipart, with the settings as task fields
    data = base64.b64decode(b64_png(ramp_picture(64, 96), {"parameters": A1111_INFOTEXT}))
    native = extras_caller.user.post("/api/v1/png-info", data={"file": (io.BytesIO(data), "a.png")},
                                     content_type="multipart/form-data").get_json()
    assert native["source"] == "a1111" and native["parameters"]["scheduler"] == "dpmpp_2m_karras"
    assert native["parameters"]["steps"] == 7 and native["parameters"]["guidance"] == 6.5
    own = extras_caller.user.post("/api/v1/png-info", json={
        "image": "data:image/png;base64," + webuiapi.raw_b64_img(made.images[0])}).get_json()
    assert own["source"] == "daydream" and own["parameters"]["seed"] == 321
    assert own["parameters"]["prompt"] == "a paper boat" and own["parameters"]["scheduler"] == "euler_a"


def claimed_pixels_png(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose header claims width × height pixels, in a few hundred bytes."""
    def part(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + part(b"IHDR", header) + part(b"IDAT", zlib.compress(b"\x00" * 4096))
            + part(b"IEND", b""))


def test_bad_input_is_a_4xx_naming_the_field_and_charges_nothing(extras_caller):
    before = extras_caller.user.me()["tokens"]
    good = b64_png(ramp_picture(600, 600))
    cases = [
        ({"image": good, "upscaler_1": "Lanczos", "upscaling_resize": 8}, 422, "upscaling_resize"),  # 4800² > 4096²
        ({"image": good, "upscaler_1": "Lanczos", "resize_mode": 1, "upscaling_resize_w": 9000,
          "upscaling_resize_h": 9000}, 422, "upscaling_resize_w"),
        ({"image": good, "upscaler_1": "R-ESRGAN 4x+"}, 422, "upscaler_1"),
        ({"image": good, "upscaler_1": "Lanczos", "gfpgan_visibility": 0.5}, 422, "gfpgan_visibility"),
        ({"image": base64.b64encode(b"not a picture at all").decode(), "upscaler_1": "Lanczos"}, None, "image"),
        ({"image": base64.b64encode(claimed_pixels_png()).decode(), "upscaler_1": "Lanczos"}, None, "image"),
    ]
    for body, status, field in cases:
        response = extras_caller.post("/sdapi/v1/extra-single-image", json=body)
        assert 400 <= response.status_code < 500 and response.status_code == (status or response.status_code), \
            (field, response.status_code, response.text[:300])
        assert set(response.json()) == {"error", "detail", "body", "errors"}
        assert response.json()["detail"].startswith(field + ":"), (field, response.json())
    bomb = extras_caller.post("/sdapi/v1/png-info", json={"image": base64.b64encode(claimed_pixels_png()).decode()})
    assert bomb.status_code == 422 and bomb.json()["detail"].startswith("image:")
    assert extras_caller.user.me()["tokens"] == before and upscale_tasks(extras_caller) == []
    # Routes Daydream does not offer: JSON in A1111's shape, never a page
    for method, path, status in (("get", "/sdapi/v1/no-such-route", 404), ("post", "/sdapi/v1/interrogate", 404),
                                 ("get", "/sdapi/v1/extra-single-image", 405), ("get", "/sdapi/v1/png-info", 405)):
        response = getattr(extras_caller, method)(path)
        assert response.status_code == status and response.headers["Content-Type"] == "application/json", path
        assert response.json()["detail"] == ("Not Found" if status == 404 else "Method Not Allowed"), path


def image_rows(app, username: str) -> dict[str, int]:
    """{kind: count} of the user's image rows (their uploads and upscales)."""
    import sqlalchemy as sa

    from extensions import db
    from models import Image, User

    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.username == username))
        return dict(db.session.execute(sa.select(Image.kind, sa.func.count()).where(Image.user_id == user_id)
                                       .group_by(Image.kind)).all())


def reused(response: requests.Response) -> bool:
    """A1111's 422 for an Idempotency-Key sent again with another request."""
    return response.json()["detail"].startswith("This Idempotency-Key was used for a different request")


def test_a_retry_with_the_same_idempotency_key_is_answered_again_and_charged_once(extras_stack, extras_caller):
    caller = extras_caller
    single = {"image": b64_png(ramp_picture(32, 24)), "upscaler_1": "Lanczos", "upscaling_resize": 2}
    before = caller.user.me()["tokens"]
    first = caller.post("/sdapi/v1/extra-single-image", json=single, headers={"Idempotency-Key": "extras-1"})
    assert first.status_code == 200, first.text[:300]
    [task] = upscale_tasks(caller)
    charged = caller.user.me()["tokens"]
    assert charged == before - task["cost"]
    rows = image_rows(extras_stack, caller.user.username)
    # The retry: the same answer, no second task or charge, the picture not stored again.
    again = caller.post("/sdapi/v1/extra-single-image", json=single, headers={"Idempotency-Key": "extras-1"})
    assert again.status_code == 200, again.text[:300]
    assert again.json() == first.json()
    assert [t["id"] for t in upscale_tasks(caller)] == [task["id"]]
    assert caller.user.me()["tokens"] == charged and image_rows(extras_stack, caller.user.username) == rows
    # The same key with another request (another picture; txt2img): 422 naming the key, nothing charged.
    other = {**single, "image": b64_png(ramp_picture(32, 24, shift=50))}
    refused = caller.post("/sdapi/v1/extra-single-image", json=other, headers={"Idempotency-Key": "extras-1"})
    assert refused.status_code == 422 and reused(refused), refused.text
    txt2img = caller.post("/sdapi/v1/txt2img", json={"prompt": "a boat", "width": 64, "height": 64, "steps": 2},
                          headers={"Idempotency-Key": "extras-1"})
    assert txt2img.status_code == 422 and reused(txt2img), txt2img.text
    assert caller.user.me()["tokens"] == charged and image_rows(extras_stack, caller.user.username) == rows

    # A batch with a second upscaler blended: four tasks, each made and charged once.
    batch = {"imageList": [{"data": b64_png(ramp_picture(24, 24)), "name": "a"},
                           {"data": b64_png(ramp_picture(16, 32, shift=30)), "name": "b"}],
             "upscaler_1": DEMO_UPSCALER, "upscaler_2": "Nearest", "extras_upscaler_2_visibility": 0.5,
             "upscaling_resize": 2}
    made = caller.post("/sdapi/v1/extra-batch-images", json=batch, headers={"Idempotency-Key": "extras-2"})
    assert made.status_code == 200, made.text[:300]
    tasks_then, tokens_then = upscale_tasks(caller), caller.user.me()["tokens"]
    assert len(tasks_then) == 5 and tokens_then < charged
    rows = image_rows(extras_stack, caller.user.username)
    again = caller.post("/sdapi/v1/extra-batch-images", json=batch, headers={"Idempotency-Key": "extras-2"})
    assert again.status_code == 200 and again.json() == made.json()
    assert upscale_tasks(caller) == tasks_then and caller.user.me()["tokens"] == tokens_then
    assert image_rows(extras_stack, caller.user.username) == rows
    # The same pictures in another order are another request.
    swapped = {**batch, "imageList": batch["imageList"][::-1]}
    refused = caller.post("/sdapi/v1/extra-batch-images", json=swapped, headers={"Idempotency-Key": "extras-2"})
    assert refused.status_code == 422 and reused(refused), refused.text
    assert caller.user.me()["tokens"] == tokens_then and image_rows(extras_stack, caller.user.username) == rows
