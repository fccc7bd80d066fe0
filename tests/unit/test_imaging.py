"""PNG metadata and thumbnails (services/imaging.py): Pillow only, no model."""

import io

import pytest
from PIL import Image

from services.library.imaging import encode_png, encode_thumbnail, format_parameters, read_metadata


def metadata(**changes):
    data = {
        "prompt": "a café at night, 夜の猫 🐱",
        "negative_prompt": "blurry, low quality",
        "steps": 30,
        "guidance": 7.5,
        "seed": 123,
        "width": 512,
        "height": 512,
        "scheduler": "euler",
        "model": "demo",
        "task_id": "t_abc123",
        "index": 0,
    }
    data.update(changes)
    return data


def gradient(width=64, height=48, mode="RGB"):
    image = Image.new("RGB", (width, height))
    image.putdata([(x * 4 % 256, y * 5 % 256, (x + y) % 256) for y in range(height) for x in range(width)])
    return image.convert(mode)


def test_png_round_trip_keeps_metadata_and_pixels(tmp_path):
    image = gradient()
    data = encode_png(image, metadata())
    assert data.startswith(b"\x89PNG\r\n\x1a\n")

    assert read_metadata(data) == metadata()
    path = tmp_path / "image.png"
    path.write_bytes(data)
    assert read_metadata(path) == metadata()
    assert read_metadata(str(path)) == metadata()

    with Image.open(io.BytesIO(data)) as decoded:
        assert decoded.size == image.size
        assert decoded.convert("RGB").tobytes() == image.tobytes()


def test_png_carries_a1111_parameters_chunk():
    with Image.open(io.BytesIO(encode_png(gradient(), metadata()))) as decoded:
        parameters = decoded.text["parameters"]
    assert parameters == (
        "a café at night, 夜の猫 🐱\n"
        "Negative prompt: blurry, low quality\n"
        "Steps: 30, Sampler: Euler, CFG scale: 7.5, Seed: 123, Size: 512x512, Model: demo"
    )


def test_parameters_layout_variants():
    # no negative prompt -> no such line; A1111's sampler names; whole numbers plain
    text = format_parameters(metadata(negative_prompt="", scheduler="euler_a", guidance=7.0, width=768))
    assert text.splitlines() == [
        "a café at night, 夜の猫 🐱",
        "Steps: 30, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 768x512, Model: demo",
    ]
    # an init image adds the denoising strength
    text = format_parameters(metadata(init_image=42, strength=0.75, scheduler="dpmpp_2m"))
    assert text.splitlines()[-1] == (
        "Steps: 30, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 123, Size: 512x512, Model: demo, "
        "Denoising strength: 0.75"
    )
    # strength without an init image is not a denoising strength
    assert "Denoising" not in format_parameters(metadata(strength=0.75))
    # values with commas or colons are quoted, as A1111 does, so parsers split correctly
    assert 'Model: "C:\\\\models\\\\a,b.safetensors"' in format_parameters(metadata(model="C:\\models\\a,b.safetensors"))


def test_read_metadata_without_chunk_is_empty():
    plain = io.BytesIO()
    gradient().save(plain, format="PNG")
    assert read_metadata(plain.getvalue()) == {}
    webp = io.BytesIO()
    gradient().save(webp, format="WEBP")
    assert read_metadata(webp.getvalue()) == {}


@pytest.mark.parametrize(
    "size, expected",
    [((512, 512), (256, 256)), ((1000, 500), (256, 128)), ((300, 900), (85, 256)), ((64, 48), (64, 48))],
)
def test_thumbnail_is_webp_with_longest_side_256(size, expected):
    image = gradient(*size)
    data = encode_thumbnail(image)
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == expected
    assert image.size == size  # the caller's image is left alone


@pytest.mark.parametrize("mode", ["RGBA", "P", "L", "CMYK"])
def test_thumbnail_accepts_any_mode(mode):
    with Image.open(io.BytesIO(encode_thumbnail(gradient(400, 200, mode), max_side=100))) as thumb:
        assert thumb.format == "WEBP"
        assert thumb.size == (100, 50)
