"""PNG metadata and thumbnails (services/imaging.py): Pillow only, no model."""

import io
import json
import re

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


# A1111's own infotext reader (modules/infotext_utils.py): the pattern and the unquoting
# it applies to the last line, so the test reads the text the way A1111 pastes it back.
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_fields(text: str) -> dict:
    fields = {}
    for key, value in A1111_PARAM.findall(text.splitlines()[-1]):
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            value = json.loads(value)
        fields[key] = value
    return fields


INPAINT = {"mask_blur": 4, "inpaint_area": "masked", "inpaint_padding": 32, "masked_content": "original",
           "mask_invert": False, "outpaint": {"left": 0, "right": 0, "top": 0, "bottom": 0}}


def test_inpaint_parameters_name_the_settings_as_a1111_does():
    text = format_parameters(metadata(init_image="img1", strength=0.75, mask="mask1", inpaint=dict(INPAINT)))
    assert text.splitlines()[-1] == (
        "Steps: 30, Sampler: Euler, CFG scale: 7.5, Seed: 123, Size: 512x512, Model: demo, "
        "Denoising strength: 0.75, Mask blur: 4, Inpaint area: Only masked, Masked content: original, "
        "Masked area padding: 32"  # A1111's own name (its paste-back reads it)
    )
    # whole picture: no padding; the other masked contents in A1111's words; invert is a mask mode
    text = format_parameters(metadata(init_image="img1", strength=0.5, mask="mask1", inpaint={
        **INPAINT, "inpaint_area": "whole", "masked_content": "latent_noise", "mask_invert": True}))
    assert text.splitlines()[-1].endswith(
        "Denoising strength: 0.5, Mask blur: 4, Inpaint area: Whole picture, Masked content: latent noise, "
        "Mask mode: Inpaint not masked")
    assert "padding" not in text
    for content, name in [("fill", "fill"), ("latent_nothing", "latent nothing")]:
        fields = a1111_fields(format_parameters(metadata(
            init_image="i", strength=0.75, mask="m", inpaint={**INPAINT, "masked_content": content})))
        assert fields["Masked content"] == name


def test_inpaint_parameters_from_flat_fields_outpaint_and_noise_multiplier():
    # the worker's infotext fields may set the settings flat in the metadata (inpaint absent or None)
    flat = {**INPAINT, "inpaint_area": "whole", "outpaint": {"right": 64}, "noise_multiplier": 0.9}
    text = format_parameters(metadata(init_image="img1", strength=0.75, mask=None, inpaint=None, **flat))
    fields = a1111_fields(text)
    # A1111's parser splits every field: values with commas are quoted and come back whole
    assert fields["Outpaint"] == "left 0, right 64, top 0, bottom 0"
    assert 'Outpaint: "left 0, right 64, top 0, bottom 0"' in text
    assert fields["Noise multiplier"] == "0.9"
    assert fields["Denoising strength"] == "0.75"
    assert fields["Mask blur"] == "4"
    assert fields["Inpaint area"] == "Whole picture"
    assert fields["Size"] == "512x512" and fields["Model"] == "demo"
    # a noise multiplier of 1 is not written; nor is an outpaint of nothing
    text = format_parameters(metadata(init_image="i", strength=0.75, mask="m", inpaint={**INPAINT, "noise_multiplier": 1}))
    assert "Noise multiplier" not in text and "Outpaint" not in text
    # without a mask or an outpaint there are no inpaint fields, even if settings are present
    text = format_parameters(metadata(init_image="i", strength=0.75, inpaint=dict(INPAINT)))
    assert "Mask blur" not in text and "Denoising strength: 0.75" in text


def test_inpaint_values_with_colons_are_quoted_so_a1111_splits_them():
    odd = {**INPAINT, "masked_content": "odd: one, two", "inpaint_area": "whole"}
    text = format_parameters(metadata(init_image="i", strength=0.75, mask="m", inpaint=odd,
                                      model="C:\\models\\inpaint,v2.safetensors"))
    fields = a1111_fields(text)
    assert fields["Masked content"] == "odd: one, two"
    assert fields["Model"] == "C:\\models\\inpaint,v2.safetensors"
    assert fields["Mask blur"] == "4" and fields["Inpaint area"] == "Whole picture"
    # the embedded PNG chunk carries the same text
    with Image.open(io.BytesIO(encode_png(gradient(), metadata(init_image="i", strength=0.75, mask="m",
                                                               inpaint=dict(INPAINT))))) as decoded:
        assert "Inpaint area: Only masked" in decoded.text["parameters"]


HIRES = {"scale": 2.0, "width": 1024, "height": 1024, "upscaler": "latent", "steps": 10, "denoising": 0.5,
         "prompt": "", "negative_prompt": "", "scheduler": None}


def test_hires_parameters_read_as_a1111_writes_them():
    text = format_parameters(metadata(hires=dict(HIRES)))
    # Size is the first pass's, as A1111 writes it; the hires fields follow the model.
    assert text.splitlines()[-1] == (
        "Steps: 30, Sampler: Euler, CFG scale: 7.5, Seed: 123, Size: 512x512, Model: demo, "
        "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent")
    # Steps 0 (the first pass's) is not written; a final size is "Hires resize"; a model by its id.
    fields = a1111_fields(format_parameters(metadata(hires={
        **HIRES, "scale": None, "width": 1024, "height": 768, "steps": 0, "upscaler": "demo-esrgan-x2",
        "scheduler": "euler_a", "prompt": "sharp, detailed", "negative_prompt": "blur"})))
    assert "Hires steps" not in fields and "Hires upscale" not in fields
    assert fields["Hires resize"] == "1024x768" and fields["Hires upscaler"] == "demo-esrgan-x2"
    assert fields["Hires sampler"] == "Euler a"
    assert fields["Hires prompt"] == "sharp, detailed" and fields["Hires negative prompt"] == "blur"
    assert fields["Denoising strength"] == "0.5" and fields["Size"] == "512x512"
    for mode, name in [("latent-bicubic-antialiased", "Latent (bicubic antialiased)"), ("lanczos", "Lanczos"),
                       ("latent-nearest-exact", "Latent (nearest-exact)")]:
        assert a1111_fields(format_parameters(metadata(hires={**HIRES, "upscaler": mode})))["Hires upscaler"] == name
    # The PNG carries it.
    with Image.open(io.BytesIO(encode_png(gradient(), metadata(hires=dict(HIRES))))) as decoded:
        assert "Hires upscaler: Latent" in decoded.text["parameters"]
        assert json.loads(decoded.text["daydream"])["hires"]["upscaler"] == "latent"


def test_upscale_parameters_read_as_a1111_extras_write_them():
    text = format_parameters(metadata(width=1024, height=1024, steps=1, upscale={
        "image": "src1", "scale": 2, "upscaler": "lanczos", "refine": None}))
    assert text.splitlines()[-1].endswith("Postprocess upscale by: 2, Postprocess upscaler: Lanczos")
    fields = a1111_fields(format_parameters(metadata(width=1000, height=600, upscale={
        "image": "src1", "scale": None, "upscaler": "demo-esrgan-x2", "refine": {"strength": 0.3, "steps": 20}})))
    assert fields["Postprocess upscale to"] == "1000x600" and fields["Postprocess upscaler"] == "demo-esrgan-x2"
    assert fields["Denoising strength"] == "0.3"
    assert "Hires" not in text and "Postprocess" not in format_parameters(metadata())
