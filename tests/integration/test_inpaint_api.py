"""Inpainting and outpainting through the native API (POST /api/v1/tasks), on the real
stack (web app, Redis, the worker with the tiny demo models): a mask given as a data URL
or as an image id is stored as the user's image of kind "mask" at the picture's size,
the task JSON carries it with the inpaint settings, outpaint gives the wider result, and
bad masks are a 4xx naming the field with nothing charged. The pixels of inpainting are
the worker's tests'."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image as PILImage

from extensions import db
from models import Image
from tests.helpers import image_bytes, unique
from tests.integration.helpers import ApiUser, post_upload


@pytest.fixture(scope="module")
def inpaint_stack(stack_factory):
    # The settings of tests/integration/test_families.py: the same stack is shared.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50,
                           DAYDREAM_STARTING_TOKENS=10000)
    return shared.app


@pytest.fixture(scope="module")
def inpaint_painter(inpaint_stack):
    return ApiUser(inpaint_stack.test_client(), unique("inpaint_painter"))


def mask_picture(size=(32, 32), box=(8, 8, 24, 24), mode="RGB") -> PILImage.Image:
    """Black with a white box (the area to repaint)."""
    picture = PILImage.new(mode, size, 0 if mode == "L" else (0, 0, 0))
    picture.paste(255 if mode == "L" else (255, 255, 255), box)
    return picture


def as_png(picture: PILImage.Image) -> bytes:
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def data_url(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int, extra: bytes = b"") -> bytes:
    """A grayscale PNG of zeros built chunk by chunk (a huge one compresses to little)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + extra + png_chunk(b"IDAT", data)
            + png_chunk(b"IEND", b""))


def inpaint_upload(user: ApiUser, data: bytes) -> str:
    response = post_upload(user, data)
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def submit_inpaint(user: ApiUser, **params):
    return user.submit(**{"width": 64, "height": 64, "steps": 2, "seed": 5, "strength": 1.0, **params})


def picture_of(user: ApiUser, image_id: str) -> PILImage.Image:
    response = user.get(f"/api/v1/images/{image_id}/full")
    assert response.status_code == 200
    return PILImage.open(io.BytesIO(response.data))


def mask_ids(user: ApiUser, kind: str | None = None) -> set[str]:
    query = f"?kind={kind}&limit=200" if kind else "?limit=200"
    return {item["id"] for item in user.get("/api/v1/images" + query).get_json()["items"]}


DEFAULT_INPAINT = {"mask_blur": 4, "inpaint_area": "whole", "inpaint_padding": 32, "masked_content": "original",
                   "mask_invert": False, "noise_multiplier": 1.0,
                   "outpaint": {"left": 0, "right": 0, "top": 0, "bottom": 0}}


def test_a_data_url_mask_is_stored_as_the_users_mask_at_the_pictures_size(inpaint_painter):
    init = inpaint_upload(inpaint_painter, image_bytes((64, 64), (40, 120, 200)))
    before = inpaint_painter.me()["tokens"]
    response = submit_inpaint(inpaint_painter, init_image=init, mask=data_url(as_png(mask_picture())),
                              mask_blur=2, inpaint_area="masked", inpaint_padding=8, masked_content="fill")
    assert response.status_code == 202, response.get_json()
    task = response.get_json()
    assert task["mask"] and task["init_image"] == init and (task["width"], task["height"]) == (64, 64)
    assert task["inpaint"] == {**DEFAULT_INPAINT, "mask_blur": 2, "inpaint_area": "masked",
                               "inpaint_padding": 8, "masked_content": "fill"}
    # Cost as image-to-image: strength × steps.
    assert inpaint_painter.me()["tokens"] == before - task["cost"]

    mask = inpaint_painter.get(f"/api/v1/images/{task['mask']}").get_json()
    assert (mask["kind"], mask["width"], mask["height"]) == ("mask", 64, 64)
    stored = picture_of(inpaint_painter, task["mask"]).convert("L")
    # The 32 px mask's box (8..24) scaled to 64 px (16..48): white inside, black outside.
    assert stored.getpixel((32, 32)) == 255 and stored.getpixel((4, 4)) == 0
    assert stored.getpixel((60, 32)) == 0

    # Masks stay out of the gallery unless asked for.
    assert task["mask"] not in mask_ids(inpaint_painter)
    assert task["mask"] in mask_ids(inpaint_painter, "mask")

    done = inpaint_painter.wait_task(task["id"], timeout=120)
    assert done["state"] == "done", done
    assert done["mask"] == task["mask"] and done["inpaint"] == task["inpaint"]
    assert inpaint_painter.get(f"/api/v1/tasks/{task['id']}").get_json()["mask"] == task["mask"]


def test_an_uploaded_image_as_the_mask_is_read_by_luminance_and_a_mask_is_reused(inpaint_painter):
    init = inpaint_upload(inpaint_painter, image_bytes((96, 64), (200, 80, 40)))
    painted = inpaint_upload(inpaint_painter, as_png(mask_picture((48, 32), (0, 0, 24, 32))))  # the left half white
    response = submit_inpaint(inpaint_painter, init_image=init, mask=painted, width=96, height=64, mask_invert=True)
    assert response.status_code == 202, response.get_json()
    task = response.get_json()
    assert task["mask"] != painted and task["inpaint"]["mask_invert"] is True
    mask = inpaint_painter.get(f"/api/v1/images/{task['mask']}").get_json()
    assert (mask["kind"], mask["width"], mask["height"]) == ("mask", 96, 64)
    stored = picture_of(inpaint_painter, task["mask"]).convert("L")
    # Stored as painted (white = repaint); the worker applies mask_invert.
    assert stored.getpixel((10, 32)) == 255 and stored.getpixel((90, 32)) == 0

    # A mask of the picture's size is used as it is (Reuse sends the task's mask id back).
    again = submit_inpaint(inpaint_painter, init_image=init, mask=task["mask"], width=96, height=64)
    assert again.status_code == 202, again.get_json()
    assert again.get_json()["mask"] == task["mask"]
    for task_id in (task["id"], again.get_json()["id"]):
        assert inpaint_painter.wait_task(task_id, timeout=120)["state"] == "done"


def test_outpaint_gives_the_wider_result_and_costs_its_size(inpaint_painter):
    init = inpaint_upload(inpaint_painter, image_bytes((64, 64), (10, 160, 90)))
    estimate = inpaint_painter.post("/api/v1/estimate", json={"prompt": "a field", "width": 128, "height": 64,
                                                      "steps": 2, "init_image": init, "strength": 1.0})
    response = submit_inpaint(inpaint_painter, prompt="a field", init_image=init, outpaint={"right": 64})
    assert response.status_code == 202, response.get_json()
    task = response.get_json()
    assert (task["width"], task["height"]) == (128, 64)
    assert task["mask"] is None
    assert task["inpaint"] == {**DEFAULT_INPAINT, "outpaint": {"left": 0, "right": 64, "top": 0, "bottom": 0}}
    assert estimate.status_code == 200 and task["cost"] == estimate.get_json()["cost"]
    done = inpaint_painter.wait_task(task["id"], timeout=120)
    assert done["state"] == "done", done
    assert picture_of(inpaint_painter, done["images"][0]["id"]).size == (128, 64)


def test_image_to_image_and_inpainting_are_charged_for_the_steps_they_run(inpaint_painter):
    """cost = samples × ceil(int(steps × strength) × width × height / (50 × 512²)): at 100
    steps and strength 0.5, 512² costs 1 token (50 steps run), not 2 (all 100)."""
    init = inpaint_upload(inpaint_painter, image_bytes((64, 64), (90, 90, 30)))
    base = {"prompt": "a pond", "width": 512, "height": 512, "steps": 100, "init_image": init}
    costs = {}
    for strength in (0.5, 1.0):
        for mask in (None, data_url(as_png(mask_picture()))):
            body = {**base, "strength": strength, **({"mask": mask} if mask else {})}
            answer = inpaint_painter.post("/api/v1/estimate", json=body)
            assert answer.status_code == 200, answer.get_json()
            costs[(strength, bool(mask))] = answer.get_json()["cost"]
    assert costs == {(0.5, False): 1, (0.5, True): 1, (1.0, False): 2, (1.0, True): 2}


def test_an_inpainting_model_card_says_which_inpainting(inpaint_painter):
    models = {m["id"]: m for m in inpaint_painter.get("/api/v1/models").get_json()["items"] if m["kind"] == "model"}
    # (the editing models only, the demo FLUX.1 Kontext, Qwen-Image-Edit and Edit Plus, edit
    # by instruction and do not inpaint; FLUX.2 also makes pictures from text, and inpaints)
    only_edit = {k: m for k, m in models.items() if m["edits"] and not m["edit_optional"]}
    assert set(only_edit) == {"demo-kontext", "demo-qwen-edit", "demo-qwen-edit-plus"}
    assert {m["inpainting"] for m in only_edit.values()} == {None}
    assert {m["inpainting"] for k, m in models.items() if k not in only_edit} == {"standard"}


def held_upload(app, user: ApiUser, data: bytes) -> str:
    """An upload of the user's that the image check holds for review (staff's only)."""
    image_id = inpaint_upload(user, data)
    with app.app_context():
        db.session.get(Image, image_id).review = "held"
        db.session.commit()
    return image_id


def bad_masks(app, inpaint_painter: ApiUser, other: ApiUser) -> dict:
    """name: (request fields, status, words in the message)."""
    foreign = inpaint_upload(other, as_png(mask_picture((64, 64))))
    held = held_upload(app, inpaint_painter, as_png(mask_picture((64, 64))))
    transparent = PILImage.new("RGBA", (64, 64), (255, 255, 255, 0))
    return {
        "not-an-image": ({"mask": data_url(b"this is not a picture at all")}, 415, "not a PNG, JPEG or WebP"),
        "not-base64": ({"mask": "data:image/png;base64,%%%"}, 422, "base64"),
        "pixel-bomb": ({"mask": data_url(bomb_png(8192, 8192))}, 422, "pixels"),
        "chunk-bomb": ({"mask": data_url(bomb_png(64, 64, png_chunk(
            b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * (8 << 20), 9))))}, 422, "metadata"),
        "empty": ({"mask": data_url(as_png(PILImage.new("L", (64, 64), 0)))}, 422, "selects nothing"),
        "fully-transparent": ({"mask": data_url(as_png(transparent))}, 422, "selects nothing"),
        "inverted-all-white": ({"mask": data_url(as_png(PILImage.new("L", (64, 64), 255))), "mask_invert": True},
                               422, "selects nothing"),
        "another-users-image": ({"mask": foreign}, 422, "is not one of your images"),
        "held-for-review": ({"mask": held}, 422, "is not one of your images"),
        "no-such-image": ({"mask": "NoSuchImageId0000000000"}, 422, "is not one of your images"),
        "without-init-image": ({"mask": data_url(as_png(mask_picture())), "init_image": None}, 422,
                               "needs init_image"),
        "setting-without-mask": ({"mask_blur": 9}, 422, "applies only with a mask or outpaint"),
    }


def test_bad_masks_are_a_4xx_naming_the_field_and_charge_nothing(inpaint_stack, inpaint_painter):
    other = ApiUser(inpaint_stack.test_client(), unique("neighbour"))
    init = inpaint_upload(inpaint_painter, image_bytes((64, 64), (90, 90, 90)))
    cases = bad_masks(inpaint_stack, inpaint_painter, other)
    before, masks_before = inpaint_painter.me()["tokens"], mask_ids(inpaint_painter, "mask")
    for name, (fields, status, words) in cases.items():
        response = submit_inpaint(inpaint_painter, **{"init_image": init, **fields})
        error = response.get_json()["error"]
        assert response.status_code == status, (name, response.get_json())
        field = "mask_blur" if name == "setting-without-mask" else "mask"
        assert error.get("field") == field and words in error["message"], (name, error)
        assert error["message"].startswith(field), (name, error)
    assert inpaint_painter.me()["tokens"] == before
    assert mask_ids(inpaint_painter, "mask") == masks_before  # no mask left behind by a refusal

    # The server and the worker carry on: a plain task completes.
    response = inpaint_painter.submit(width=64, height=64, steps=2)
    assert response.status_code == 202, response.get_json()
    assert inpaint_painter.wait_task(response.get_json()["id"], timeout=120)["state"] == "done"
