"""Reading a mask (services/generation/masks.py): the native/A1111 reading (alpha when it
has any transparency, else luminance; white or opaque = repaint), OpenAI's (fully
transparent = edit), binarized at 128, scaled to the picture, and whether it selects
anything. Decoding goes through the upload decoder's limits, errors naming the field."""
from __future__ import annotations

import io

import pytest
from flask import Flask
from PIL import Image as PILImage

from services.core.errors import ServiceError, ValidationError
from services.generation import masks


@pytest.fixture
def mask_app():
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=1024 * 1024, UPLOAD_WAIT=1, UPLOAD_DECODERS=2,
                      MAX_UPLOAD_PIXELS=512 * 512, UPLOAD_DECODE_BYTES=512 * 512 * 4)
    with app.app_context():
        yield app


def encoded(picture: PILImage.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    picture.save(out, fmt)
    return out.getvalue()


def half_and_half(mode: str, left, right, size=(8, 4)) -> PILImage.Image:
    """A picture whose left half is `left` and right half `right`."""
    picture = PILImage.new(mode, size, left)
    picture.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return picture


def columns(mask: PILImage.Image) -> list[int]:
    """The first row's values."""
    return [mask.getpixel((x, 0)) for x in range(mask.width)]


def test_native_reads_luminance_white_is_repaint(mask_app):
    data = encoded(half_and_half("RGB", (0, 0, 0), (255, 255, 255)))
    mask = masks.read_mask(data, reading="native", field="mask")
    assert mask.mode == "L" and mask.size == (8, 4)
    assert columns(mask) == [0] * 4 + [255] * 4


def test_native_reads_alpha_when_any_pixel_is_transparent(mask_app):
    # White everywhere, but the left half is transparent: the alpha decides, opaque = repaint.
    picture = half_and_half("RGBA", (255, 255, 255, 0), (255, 255, 255, 255))
    mask = masks.read_mask(encoded(picture), reading="native", field="mask")
    assert columns(mask) == [0] * 4 + [255] * 4
    # A1111 reads it the same way.
    assert columns(masks.read_mask(encoded(picture), reading="a1111", field="mask")) == [0] * 4 + [255] * 4


def test_an_opaque_alpha_channel_falls_back_to_luminance(mask_app):
    picture = half_and_half("RGBA", (255, 255, 255, 255), (0, 0, 0, 255))
    assert columns(masks.read_mask(encoded(picture), reading="native", field="mask")) == [255] * 4 + [0] * 4


def test_values_are_binarized_at_128(mask_app):
    picture = PILImage.new("L", (4, 1))
    for x, value in enumerate((0, 127, 128, 250)):
        picture.putpixel((x, 0), value)
    assert columns(masks.read_mask(encoded(picture), reading="native", field="mask")) == [0, 0, 255, 255]


def test_openai_reads_fully_transparent_pixels_as_the_area_to_edit(mask_app):
    # Left half fully transparent (edit); right half half-transparent (kept: only alpha 0 edits).
    picture = half_and_half("RGBA", (0, 0, 0, 0), (0, 0, 0, 100))
    assert columns(masks.read_mask(encoded(picture), reading="openai", field="mask")) == [255] * 4 + [0] * 4


def test_openai_refuses_a_mask_without_transparency(mask_app):
    data = encoded(PILImage.new("RGB", (8, 8), (0, 0, 0)))
    with pytest.raises(ValidationError) as error:
        masks.read_mask(data, reading="openai", field="mask")
    assert error.value.field == "mask" and "transparency" in str(error.value)


def test_scaled_to_the_picture_keeps_the_edge_and_no_grey():
    mask = half_and_half("L", 0, 255, size=(8, 4))
    big = masks.scaled(mask, (32, 16))
    assert big.size == (32, 16)
    assert {value for value, count in enumerate(big.histogram()) if count} == {0, 255}
    assert columns(big)[:14] == [0] * 14 and columns(big)[18:] == [255] * 14


@pytest.mark.parametrize("values, invert, expected", [
    ((0, 0), False, False), ((0, 255), False, True), ((255, 255), False, True),
    ((255, 255), True, False), ((0, 255), True, True), ((0, 0), True, True),
])
def test_selects_anything(values, invert, expected):
    mask = half_and_half("L", values[0], values[1])
    assert masks.selects_anything(mask, invert) is expected


@pytest.mark.parametrize("data, status", [
    pytest.param(b"not an image at all", 415, id="not-an-image"),
    pytest.param(b"", 422, id="empty"),
])
def test_what_is_not_a_picture_is_a_4xx_naming_the_field(mask_app, data, status):
    with pytest.raises(ServiceError) as error:
        masks.read_mask(data, reading="native", field="mask")
    assert error.value.status == status and error.value.field == "mask"
    assert str(error.value).startswith("mask")


def test_the_upload_pixel_limit_holds_for_masks(mask_app):
    data = encoded(PILImage.new("L", (1024, 1024), 255))  # over MAX_UPLOAD_PIXELS
    with pytest.raises(ValidationError) as error:
        masks.read_mask(data, reading="native", field="mask")
    assert error.value.field == "mask" and "pixels" in str(error.value)


def test_a_data_url_decodes_and_bad_ones_name_the_field():
    assert masks.decode_data_url("data:image/png;base64,aGVsbG8=") == b"hello"
    for bad in ("data:text/plain;base64,aGVsbG8=", "data:image/png;base64,@@@", "https://example.com/m.png"):
        with pytest.raises(ValidationError) as error:
            masks.decode_data_url(bad)
        assert error.value.field == "mask"
