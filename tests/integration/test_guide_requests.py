"""Guides in a task request through the native API (POST /api/v1/tasks and /estimate), on
the real stack (web app, Redis, the worker with the tiny demo models and demo guides): bad
units, references and edits are each a 422 naming the field with nothing charged and no
picture left behind, and the worker goes on; a valid guided task costs its estimate, its
JSON lists the units with their pictures stored as the user's, and a cancel refunds it.
The pixels of guided tasks are the worker's tests'."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image as PILImage

from tests.helpers import image_bytes, unique
from tests.integration.helpers import ApiUser, post_upload


@pytest.fixture(scope="module")
def guide_stack(stack_factory):
    # The settings of tests/integration/test_families.py: the same stack is shared.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50,
                           DAYDREAM_STARTING_TOKENS=10000)
    return shared.app


@pytest.fixture(scope="module")
def guide_user(guide_stack):
    return ApiUser(guide_stack.test_client(), unique("guided"))


def picture_url(size=(64, 64), colour=(30, 160, 90)) -> str:
    return "data:image/png;base64," + base64.b64encode(image_bytes(size, colour)).decode("ascii")


def guide_bomb() -> str:
    """A data URL of a grayscale PNG of 5000 × 5000 zeros (over the upload's pixel limit),
    a few kilobytes long."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    width = height = 5000
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(b"\x00" * (width + 1)) for _ in range(height)) + packer.flush()
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def guide_images(user: ApiUser) -> set[str]:
    """The ids of the user's pictures of every kind a guide stores."""
    return {item["id"] for kind in ("control", "reference", "upload")
            for item in user.get(f"/api/v1/images?kind={kind}&limit=200").get_json()["items"]}


UNIT = {"model": "demo-controlnet-sd1", "preprocessor": "canny"}


def bad_guides() -> dict:
    """name: (request fields, the field named, words in the message)."""
    good = {**UNIT, "image": picture_url()}
    return {
        "missing-model": ({"control": [{**good, "model": "no-such-controlnet"}]}, "control",
                          "unit 1: 'no-such-controlnet' is not an available ControlNet"),
        "wrong-family": ({"control": [{**good, "model": "demo-controlnet-sdxl"}]}, "control",
                         "is a ControlNet for Stable Diffusion XL models"),
        "bomb": ({"control": [good, {**good, "image": guide_bomb()}]}, "control", "unit 2: is 5000×5000 pixels"),
        "too-many-units": ({"control": [good] * 4}, "control", "at most 3 units"),
        "weight": ({"control": [{**good, "weight": 2.5}]}, "control", "unit 1: weight must be from 0 to 2"),
        "start-after-end": ({"control": [{**good, "start": 0.9, "end": 0.1}]}, "control", "must not be after end"),
        "preprocessor": ({"control": [{**good, "preprocessor": "no-such-annotator"}]}, "control",
                         "preprocessor 'no-such-annotator' is not available"),
        # An annotator this server knows but cannot run: its weights are not in models/annotators/.
        "annotator-without-weights": ({"control": [{**good, "preprocessor": "depth_midas"}]}, "control",
                                      "unit 1: preprocessor 'depth_midas' is not available on this server"),
        "reference-bomb": ({"references": [{"image": guide_bomb(), "model": "demo-ipadapter-sd1"}]}, "references",
                           "reference 1: is 5000×5000 pixels"),
        "not-an-editor": ({"edit": {"images": [picture_url()]}}, "edit", "does not edit pictures (the models that "
                                                                         "do: demo-flux2, demo-kontext, "
                                                                         "demo-qwen-edit, "
                                                                         "demo-qwen-edit-plus)"),
        "too-many-edit-images": ({"model": "demo-kontext", "edit": {"images": [picture_url()] * 4}}, "edit",
                                 "at most 3 pictures"),
    }


def test_bad_guides_are_a_422_naming_the_field_and_charge_nothing(guide_user):
    # Another user's picture is not one of this user's (guide pictures are owned as uploads are).
    stranger = ApiUser(guide_user.client, unique("stranger"))
    foreign = post_upload(stranger, image_bytes((64, 64), (10, 10, 10))).get_json()["id"]
    cases = {**bad_guides(), "someone-elses-picture": (
        {"references": [{"image": foreign, "model": "demo-ipadapter-sd1"}]}, "references",
        "reference 1: is not one of your images")}
    before, pictures = guide_user.me()["tokens"], guide_images(guide_user)
    for name, (fields, field, words) in cases.items():
        response = guide_user.submit(**{"steps": 2, **fields})
        assert response.status_code == 422, (name, response.get_json())
        error = response.get_json()["error"]
        assert error["field"] == field and words in error["message"], (name, error)
    assert guide_user.me()["tokens"] == before
    # The bomb came second: the first unit's picture, stored before it, was removed too.
    assert guide_images(guide_user) == pictures

    # The server and the worker carry on: a plain task completes.
    response = guide_user.submit(steps=2)
    assert response.status_code == 202, response.get_json()
    assert guide_user.wait_task(response.get_json()["id"], timeout=120)["state"] == "done"


def test_a_guided_task_costs_its_estimate_lists_its_units_and_is_refunded_when_canceled(guide_user):
    reference = post_upload(guide_user, image_bytes((64, 64), (200, 40, 40))).get_json()["id"]
    request = {"steps": 4, "samples": 2, "control": [{**UNIT, "image": picture_url(), "weight": 0.8, "end": 0.5}],
               "references": [{"image": reference, "model": "demo-ipadapter-sd1", "weight": 0.6}]}
    estimate = guide_user.post("/api/v1/estimate", json={"prompt": "a lighthouse at dusk", "width": 64,
                                                         "height": 64, **request})
    assert estimate.status_code == 200, estimate.get_json()
    plain = guide_user.post("/api/v1/estimate", json={"prompt": "a lighthouse at dusk", "width": 64, "height": 64,
                                                      "steps": 4, "samples": 2}).get_json()["cost"]
    # A unit adds ceil(base / 2), a reference `samples` tokens.
    assert estimate.get_json()["cost"] == plain + -(-plain // 2) + 2

    # A longer task of the user's first, so that the guided one is still queued when canceled.
    ahead = guide_user.submit(steps=40, samples=4, width=128, height=128)
    assert ahead.status_code == 202, ahead.get_json()
    before = guide_user.me()["tokens"]
    response = guide_user.submit(**request, headers={"Idempotency-Key": "guided-once"})
    assert response.status_code == 202, response.get_json()
    task = response.get_json()
    assert task["cost"] == estimate.get_json()["cost"] and guide_user.me()["tokens"] == before - task["cost"]
    [unit] = task["control"]
    assert {k: unit[k] for k in ("preprocessor", "model", "model_name", "weight", "start", "end", "threshold_a",
                                 "threshold_b")} == {"preprocessor": "canny", "model": "demo-controlnet-sd1",
                                                     "model_name": unit["model_name"], "weight": 0.8,
                                                     "start": 0.0, "end": 0.5, "threshold_a": 100,
                                                     "threshold_b": 200}
    assert task["references"] == [{"image": reference, "weight": 0.6, "model": "demo-ipadapter-sd1",
                                   "model_name": task["references"][0]["model_name"]}]
    assert task["edit"] is None
    # The unit's picture is the user's, of kind control, left out of the gallery unless asked for.
    stored = guide_user.get(f"/api/v1/images/{unit['image']}").get_json()
    assert (stored["kind"], stored["width"], stored["height"]) == ("control", 64, 64)
    listed = {item["id"] for item in guide_user.get("/api/v1/images?limit=200").get_json()["items"]}
    assert unit["image"] not in listed and unit["image"] in guide_images(guide_user)
    # The same key with the same request (the picture sent again) is the same task.
    again = guide_user.submit(**request, headers={"Idempotency-Key": "guided-once"})
    assert again.status_code == 202 and again.get_json()["id"] == task["id"]

    canceled = guide_user.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert canceled.status_code == 200, canceled.get_json()
    assert canceled.get_json()["refunded"] and guide_user.me()["tokens"] == before
    guide_user.post(f"/api/v1/tasks/{ahead.get_json()['id']}/cancel")


def test_an_edit_takes_its_pictures_shape_and_costs_twice_the_task(guide_user):
    wide = picture_url((96, 64), (20, 20, 200))
    response = guide_user.submit(model="demo-kontext", prompt="make it winter", width=None, height=None, steps=2,
                                 edit={"images": [wide]})
    assert response.status_code == 202, response.get_json()
    task = response.get_json()
    assert task["width"] % 16 == 0 and task["height"] % 16 == 0 and abs(task["width"] / task["height"] - 1.5) < 0.1
    [source] = task["edit"]["images"]
    assert guide_user.get(f"/api/v1/images/{source}").get_json()["kind"] == "upload"
    base = guide_user.post("/api/v1/estimate", json={"prompt": "x", "model": "demo-flux", "steps": 2,
                                                     "width": task["width"], "height": task["height"]})
    assert task["cost"] == 2 * base.get_json()["cost"], base.get_json()
    assert task["control"] == [] and task["references"] == []
    guide_user.post(f"/api/v1/tasks/{task['id']}/cancel")
