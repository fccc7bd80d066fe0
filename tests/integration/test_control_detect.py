"""POST /api/v1/control/detect and GET /api/v1/control/preprocessors: the map a
preprocessor makes of a picture (an image id of yours or a data URL), the same one each
time; bad input is a 422 naming the field; previews are rate-limited per user. An app
without a worker is enough: nothing is queued."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image as PILImage
from PIL import ImageDraw

from tests.helpers import unique
from tests.integration.helpers import ApiUser, post_upload


def square_png(size=(96, 64)) -> bytes:
    picture = PILImage.new("RGB", size, "black")
    ImageDraw.Draw(picture).rectangle((24, 16, 72, 48), fill="white")
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


def as_data_url(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def pixel_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG whose header claims far more pixels than its few bytes hold."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def map_of(answer: dict) -> PILImage.Image:
    assert answer["image"].startswith("data:image/png;base64,")
    picture = PILImage.open(io.BytesIO(base64.b64decode(answer["image"].split(",", 1)[1])))
    assert picture.size == (answer["width"], answer["height"])
    return picture


@pytest.fixture(scope="module")
def detect_painter(idle_app):
    return ApiUser(idle_app.test_client(), unique("detect_painter"))


def test_the_preprocessors_of_an_install_without_annotator_weights_are_the_builtins(detect_painter):
    response = detect_painter.get("/api/v1/control/preprocessors")
    assert response.status_code == 200
    listed = {item["id"]: item for item in response.get_json()["preprocessors"]}
    assert set(listed) == {"none", "canny", "scribble", "lineart", "tile", "inpaint"}
    assert listed["canny"]["thresholds"]["b"]["default"] == 200 and listed["inpaint"]["needs_mask"]


def test_detect_answers_the_same_canny_map_for_an_image_id_and_a_data_url(detect_painter):
    upload = post_upload(detect_painter, square_png(), "square.png")
    assert upload.status_code == 201, upload.get_json()
    by_id = detect_painter.post("/api/v1/control/detect", json={
        "image": upload.get_json()["id"], "preprocessor": "canny", "processor_res": 64})
    assert by_id.status_code == 200, by_id.get_json()
    answer = by_id.get_json()
    assert (answer["width"], answer["height"], answer["threshold_a"], answer["threshold_b"]) == (96, 64, 100, 200)
    edges = np.asarray(map_of(answer).convert("L")) > 0
    assert edges[16:49, 22:27].any() and not edges[22:42, 30:66].any()  # the square's outline, not its inside
    by_url = detect_painter.post("/api/v1/control/detect", json={
        "image": as_data_url(square_png()), "preprocessor": "canny", "processor_res": 64})
    assert by_url.status_code == 200 and by_url.get_json()["image"] == answer["image"]
    lower = detect_painter.post("/api/v1/control/detect", json={
        "image": as_data_url(square_png()), "preprocessor": "tile", "processor_res": 128, "threshold_a": 2})
    assert lower.status_code == 200 and (lower.get_json()["width"], lower.get_json()["height"]) == (192, 128)


def test_detect_inpaint_blacks_out_the_mask(detect_painter):
    mask = PILImage.new("L", (96, 64), 0)
    ImageDraw.Draw(mask).rectangle((0, 0, 47, 63), fill=255)
    out = io.BytesIO()
    mask.save(out, "PNG")
    picture = PILImage.new("RGB", (96, 64), (200, 100, 50))
    source = io.BytesIO()
    picture.save(source, "PNG")
    response = detect_painter.post("/api/v1/control/detect", json={
        "image": as_data_url(source.getvalue()), "mask": as_data_url(out.getvalue()),
        "preprocessor": "inpaint", "processor_res": 64})
    assert response.status_code == 200, response.get_json()
    made = np.asarray(map_of(response.get_json()).convert("RGB"))
    assert (made[:, :48] == 0).all() and (made[:, 48:] == (200, 100, 50)).all()


def test_bad_input_is_a_422_naming_the_field(detect_painter, make_idle_user):
    others = post_upload(make_idle_user("other"), square_png()).get_json()["id"]
    good = as_data_url(square_png())
    cases = [
        ({"preprocessor": "canny"}, "image"),
        ({"image": "", "preprocessor": "canny"}, "image"),
        ({"image": 7, "preprocessor": "canny"}, "image"),
        ({"image": "not-an-id", "preprocessor": "canny"}, "image"),
        ({"image": others, "preprocessor": "canny"}, "image"),  # another user's image
        ({"image": "data:image/png;base64,%%%", "preprocessor": "canny"}, "image"),
        ({"image": as_data_url(b"plain text, not a picture"), "preprocessor": "canny"}, "image"),
        ({"image": as_data_url(square_png()[:80]), "preprocessor": "canny"}, "image"),  # truncated
        ({"image": as_data_url(pixel_bomb()), "preprocessor": "canny"}, "image"),
        ({"image": good, "preprocessor": "depth_zoe"}, "preprocessor"),
        ({"image": good}, "preprocessor"),
        ({"image": good, "preprocessor": "canny", "threshold_a": 0}, "threshold_a"),
        ({"image": good, "preprocessor": "canny", "threshold_b": "high"}, "threshold_b"),
        ({"image": good, "preprocessor": "tile", "threshold_a": 9}, "threshold_a"),
        ({"image": good, "preprocessor": "canny", "processor_res": 16}, "processor_res"),
        ({"image": good, "preprocessor": "canny", "processor_res": "512"}, "processor_res"),
        ({"image": good, "preprocessor": "inpaint"}, "mask"),
        ({"image": good, "preprocessor": "inpaint", "mask": "nope"}, "mask"),
        ({"image": good, "preprocessor": "inpaint", "mask": as_data_url(pixel_bomb())}, "mask"),
    ]
    for body, field in cases:
        response = detect_painter.post("/api/v1/control/detect", json=body)
        error = response.get_json()["error"]
        assert (response.status_code, error.get("field")) == (422, field), (body, response.get_json())
    assert detect_painter.post("/api/v1/control/detect", json=[1]).status_code in (400, 422)


def test_previews_are_rate_limited_per_user(idle_app, make_idle_user):
    eager, other = make_idle_user("eager"), make_idle_user("calm")
    body = {"image": as_data_url(square_png((32, 32))), "preprocessor": "none", "processor_res": 64}
    limit = idle_app.config.get("DETECT_LIMIT")
    idle_app.config["DETECT_LIMIT"] = "2 per minute"
    try:
        assert [eager.post("/api/v1/control/detect", json=body).status_code for _ in range(2)] == [200, 200]
        refused = eager.post("/api/v1/control/detect", json=body)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert other.post("/api/v1/control/detect", json=body).status_code == 200
    finally:
        idle_app.config["DETECT_LIMIT"] = limit
