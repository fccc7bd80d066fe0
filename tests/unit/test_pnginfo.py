"""services/library/pnginfo.py: the settings Daydream's, A1111's, ComfyUI's and InvokeAI's
PNGs carry, read back as native task fields, and hostile files refused with a 4xx naming
the field (never decoded, never a 500). No app: the module's own default limits apply."""
from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from services.core.errors import ServiceError, TooLarge, ValidationError
from services.library import imaging, pnginfo


def png_with_texts(texts: dict[str, str], size=(16, 16)) -> bytes:
    info = PngInfo()
    for key, value in texts.items():
        info.add_text(key, value)
    out = io.BytesIO()
    PILImage.new("RGB", size, (10, 20, 30)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def info_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bare_png(width: int, height: int, *extra: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (pnginfo.PNG_SIGNATURE + info_chunk(b"IHDR", header) + b"".join(extra)
            + info_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + info_chunk(b"IEND", b""))


A1111_TEXT = ("a lighthouse at dusk, <lora:film grain:0.6>, oil painting\n"
              "Negative prompt: blurry, text\n"
              "Steps: 24, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 987654321, "
              'Size: 512x768, Model hash: 6ce0161689, Model: "v1-5, pruned", Denoising strength: 0.45, '
              "Version: v1.10.1")


def test_a_daydream_png_gives_its_own_fields_and_infotext():
    meta = {"prompt": "a red boat", "negative_prompt": "fog", "model": "demo-sd", "width": 64, "height": 64,
            "steps": 2, "guidance": 7.0, "seed": 1234, "scheduler": "euler_a", "samples": 1,
            "loras": [{"id": "ink", "name": "Ink", "weight": 0.8}], "strength": 0.6}
    data = imaging.encode_png(PILImage.new("RGB", (8, 8)), meta)
    info = pnginfo.read_png_info(data)
    assert info["source"] == "daydream"
    params = info["parameters"]
    assert params["prompt"] == "a red boat" and params["seed"] == 1234 and params["scheduler"] == "euler_a"
    assert params["loras"] == [{"id": "ink", "name": "Ink", "weight": 0.8}]
    assert "strength" not in params  # text-to-image: no init image
    assert info["text"].startswith("a red boat <lora:Ink:0.8>\nNegative prompt: fog\nSteps: 2, Sampler: Euler a")


def test_an_a1111_png_is_parsed_as_a1111_does():
    info = pnginfo.read_png_info(png_with_texts({"parameters": A1111_TEXT}))
    assert info["source"] == "a1111" and info["text"] == A1111_TEXT
    assert info["parameters"] == {
        "prompt": "a lighthouse at dusk, <lora:film grain:0.6>, oil painting", "negative_prompt": "blurry, text",
        "steps": 24, "scheduler": "dpmpp_2m_karras", "guidance": 6.5, "seed": 987654321,
        "width": 512, "height": 768, "model_name": "v1-5, pruned", "strength": 0.45}
    raw = pnginfo.parse_infotext(A1111_TEXT)
    assert raw["Size-1"] == "512" and raw["Size-2"] == "768" and raw["Model"] == "v1-5, pruned"
    assert raw["Sampler"] == "DPM++ 2M" and raw["Negative prompt"] == "blurry, text"


def test_a1111_hires_fields_become_the_native_hires_settings():
    text = ("a castle\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, "
            "Denoising strength: 0.5, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent (nearest-exact)")
    params = pnginfo.read_png_info(png_with_texts({"parameters": text}))["parameters"]
    assert params["hires"] == {"scale": 2.0, "steps": 10, "denoising": 0.5, "upscaler": "latent-nearest-exact"}
    assert "strength" not in params and params["scheduler"] == "euler_a"


def test_a_comfyui_png_follows_the_samplers_links():
    graph = {
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 42, "steps": 18, "cfg": 5.5, "sampler_name": "dpmpp_2m", "scheduler": "karras", "denoise": 1,
            "model": ["10", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd15/dreamshaper_8.safetensors"}},
        "10": {"class_type": "LoraLoader", "inputs": {"lora_name": "ink.safetensors", "strength_model": 0.7,
                                                      "model": ["4", 0], "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 640, "height": 448, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox in snow", "clip": ["10", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "lowres", "clip": ["10", 1]}},
    }
    info = pnginfo.read_png_info(png_with_texts({"prompt": json.dumps(graph), "workflow": "{}"}))
    assert info["source"] == "comfyui"
    assert info["parameters"] == {"prompt": "a fox in snow <lora:ink:0.7>", "negative_prompt": "lowres",
                                  "steps": 18, "guidance": 5.5, "seed": 42, "scheduler": "dpmpp_2m_karras",
                                  "width": 640, "height": 448, "model_name": "dreamshaper_8"}
    assert "Steps: 18, Sampler: DPM++ 2M Karras, CFG scale: 5.5, Seed: 42, Size: 640x448" in info["text"]


def test_an_invokeai_png():
    meta = {"generation_mode": "txt2img", "positive_prompt": "a koi pond", "negative_prompt": "noise",
            "width": 768, "height": 512, "seed": 77, "steps": 30, "cfg_scale": 4.0, "scheduler": "euler_k",
            "model": {"name": "Juggernaut XL", "base": "sdxl"}, "strength": 0.75,
            "loras": [{"model": {"name": "detail"}, "weight": 0.5}]}
    info = pnginfo.read_png_info(png_with_texts({"invokeai_metadata": json.dumps(meta)}))
    assert info["source"] == "invokeai"
    assert info["parameters"] == {"prompt": "a koi pond <lora:detail:0.5>", "negative_prompt": "noise",
                                  "steps": 30, "guidance": 4.0, "seed": 77, "width": 768, "height": 512,
                                  "scheduler": "euler_karras", "model_name": "Juggernaut XL"}
    assert info["text"].startswith("a koi pond <lora:detail:0.5>\nNegative prompt: noise\nSteps: 30")


def test_a_png_without_settings_and_compressed_text_chunks():
    assert pnginfo.read_png_info(png_with_texts({})) == {"source": None, "text": "", "parameters": {}}
    ztxt = info_chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"a cat\nSteps: 3, Sampler: Euler, Seed: 9"))
    assert pnginfo.read_png_info(bare_png(8, 8, ztxt))["parameters"] == {
        "prompt": "a cat", "steps": 3, "scheduler": "euler", "seed": 9}


@pytest.mark.parametrize("data, refusal", [
    (b"", ValidationError),
    (b"GIF89a not a png at all", ServiceError),
    (pnginfo.PNG_SIGNATURE + b"\x00\x00", ServiceError),  # truncated header
    (bare_png(20000, 20000), ValidationError),  # a pixel bomb, by its header
    (bare_png(8, 8, info_chunk(b"zTXt", b"parameters\0\0" + zlib.compress(b"a" * 64 * 1024 * 1024))), ValidationError),
    (bare_png(8, 8, info_chunk(b"iTXt", b"parameters\0\1\0\0\0" + zlib.compress(b"b" * 8 * 1024 * 1024))), ValidationError),
    (bare_png(8, 8, info_chunk(b"tEXt", b"parameters\0" + b"c" * (2 * 1024 * 1024))), ValidationError),
    (b"\x89PNG\r\n\x1a\n" + b"\xff" * 40 * 1024 * 1024, TooLarge),
])
def test_hostile_files_are_4xx_naming_the_field(data, refusal):
    with pytest.raises(refusal) as caught:
        pnginfo.read_png_info(data, field="image")
    assert 400 <= caught.value.status < 500
    assert caught.value.field == "image" or "image" in caught.value.message


def test_hostile_metadata_inside_a_good_png_is_read_as_none_or_skipped():
    nested = "[" * 100_000 + "]" * 100_000
    assert pnginfo.read_png_info(png_with_texts({"prompt": nested}))["source"] is None
    weird = {"3": {"class_type": "KSampler", "inputs": {"steps": "many", "cfg": [1], "seed": float("nan"),
                                                       "positive": ["3", 0], "negative": {"x": 1}}}}
    info = pnginfo.read_png_info(png_with_texts({"prompt": json.dumps(weird)}))
    assert info["source"] == "comfyui" and info["parameters"] == {"prompt": ""}  # a self-loop ends
    bad = pnginfo.read_png_info(png_with_texts({"parameters": "x\nSteps: 1e999, Seed: abc, Size: 9x, CFG scale: nan"}))
    assert bad["parameters"] == {"prompt": "x"}


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_a1111_jpeg_and_webp_carry_the_infotext_in_their_exif_comment(fmt):
    exif = PILImage.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\0" + A1111_TEXT.encode("utf-16-be")  # as A1111 (piexif) writes it
    out = io.BytesIO()
    PILImage.new("RGB", (32, 32)).save(out, format=fmt, exif=exif.tobytes())
    info = pnginfo.read_png_info(out.getvalue())
    assert info["source"] == "a1111" and info["text"] == A1111_TEXT
    assert info["parameters"]["scheduler"] == "dpmpp_2m_karras" and info["parameters"]["seed"] == 987654321
