"""Image files: PNGs with the generation parameters embedded, WebP thumbnails.

Pillow only (no torch): the web tier imports this to serve and read images.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, ImageOps
from PIL.PngImagePlugin import PngInfo

from services.generation import fast
from services.generation.schedulers import A1111_SAMPLER_NAMES, SCHEDULERS

METADATA_KEY = "daydream"  # text chunk holding json.dumps(metadata)
PARAMETERS_KEY = "parameters"  # text chunk in AUTOMATIC1111's layout
THUMBNAIL_SIDE = 256


def _a1111_value(value) -> str:
    """Quote a value the way A1111 does, so its parser splits fields correctly."""
    text = str(value)
    if "," in text or ":" in text or "\n" in text or '"' in text:
        return json.dumps(text, ensure_ascii=False)
    return text


def _number(value) -> str:
    # 7.0 -> "7", 7.5 -> "7.5", as A1111 prints them
    return f"{value:g}" if isinstance(value, float) else str(value)


# A1111's names for the inpaint settings (its img2img tab's options, as its infotext writes them)
INPAINT_AREA_NAMES = {"whole": "Whole picture", "masked": "Only masked"}
MASKED_CONTENT_NAMES = {"original": "original", "fill": "fill",
                        "latent_noise": "latent noise", "latent_nothing": "latent nothing"}
INPAINT_KEYS = ("mask_blur", "inpaint_area", "inpaint_padding", "masked_content", "mask_invert",
                "noise_multiplier", "outpaint")
OUTPAINT_SIDES = ("left", "right", "top", "bottom")


def inpaint_settings(metadata: dict) -> dict:
    """The inpaint settings an image's metadata records, {} when it is not an inpaint image.

    Read from metadata["inpaint"] (the task's parameters) when that is a dict, else from
    the same keys set flat in the metadata. An image counts as inpainted when it has a
    mask or an outpaint with any side above 0."""
    nested = metadata.get("inpaint")
    source = nested if isinstance(nested, dict) else metadata
    settings = {key: source[key] for key in INPAINT_KEYS if source.get(key) is not None}
    if "noise_multiplier" not in settings and source.get("initial_noise_multiplier") is not None:
        settings["noise_multiplier"] = source["initial_noise_multiplier"]  # A1111's name for it
    outpaint = settings.get("outpaint")
    if isinstance(outpaint, dict):
        settings["outpaint"] = {side: int(outpaint.get(side) or 0) for side in OUTPAINT_SIDES}
    else:
        settings.pop("outpaint", None)
    outpainting = any(settings.get("outpaint", {}).values())
    if not metadata.get("mask") and not outpainting:
        return {}
    return settings


def _inpaint_fields(settings: dict) -> list[tuple[str, object]]:
    area = settings.get("inpaint_area")
    content = settings.get("masked_content")
    fields = [
        ("Mask blur", settings.get("mask_blur")),
        ("Inpaint area", INPAINT_AREA_NAMES.get(area, area)),
        ("Masked content", MASKED_CONTENT_NAMES.get(content, content)),
    ]
    if area == "masked":
        fields.append(("Masked area padding", settings.get("inpaint_padding")))  # A1111's name
    if settings.get("mask_invert"):
        fields.append(("Mask mode", "Inpaint not masked"))
    noise = settings.get("noise_multiplier")
    if noise is not None and float(noise) != 1:
        fields.append(("Noise multiplier", float(noise)))
    outpaint = settings.get("outpaint") or {}
    if any(outpaint.values()):
        fields.append(("Outpaint", ", ".join(f"{side} {outpaint[side]}" for side in OUTPAINT_SIDES)))
    return fields


# A1111's names of the hires upscalers Daydream has by id (an upscaler model: its name, or its id).
HIRES_UPSCALER_NAMES = {"latent": "Latent", "latent-antialiased": "Latent (antialiased)",
                        "latent-bicubic": "Latent (bicubic)", "latent-bicubic-antialiased": "Latent (bicubic antialiased)",
                        "latent-nearest": "Latent (nearest)", "latent-nearest-exact": "Latent (nearest-exact)",
                        "lanczos": "Lanczos", "nearest": "Nearest"}


def upscaler_name(value) -> str | None:
    """A1111's name of an upscaler id ("latent" → "Latent"); an upscaler model's id as it is."""
    if not isinstance(value, str) or not value:
        return None
    return HIRES_UPSCALER_NAMES.get(value, value)


def _hires_fields(hires: dict, sampler: str | None) -> list[tuple[str, object]]:
    """A hires fix as A1111's txt2img writes it: the second pass's denoising strength, the
    scale (or the final size when one was asked for), its steps when not the first pass's,
    the upscaler, and a sampler or prompts of its own."""
    fields = [("Denoising strength", hires.get("denoising"))]
    if hires.get("scale") is not None:
        fields.append(("Hires upscale", float(hires["scale"])))
    elif hires.get("width") and hires.get("height"):
        fields.append(("Hires resize", f"{hires['width']}x{hires['height']}"))
    if hires.get("steps"):
        fields.append(("Hires steps", hires["steps"]))
    fields.append(("Hires upscaler", hires.get("upscaler_name") or upscaler_name(hires.get("upscaler") or "latent")))
    scheduler = hires.get("scheduler")
    if scheduler:
        name = A1111_SAMPLER_NAMES.get(scheduler) or SCHEDULERS.get(scheduler) or scheduler
        if name != sampler:
            fields.append(("Hires sampler", name))
    if hires.get("prompt"):
        fields.append(("Hires prompt", hires["prompt"]))
    if hires.get("negative_prompt"):
        fields.append(("Hires negative prompt", hires["negative_prompt"]))
    return fields


def _upscale_fields(upscale: dict, metadata: dict) -> list[tuple[str, object]]:
    """An upscale's, as A1111's extras write them: "Postprocess upscale by: 2" (or
    "Postprocess upscale to: WxH" for a size asked for), "Postprocess upscaler: <name>"."""
    fields = []
    if upscale.get("scale") is not None:
        fields.append(("Postprocess upscale by", float(upscale["scale"])))
    elif metadata.get("width") is not None and metadata.get("height") is not None:
        fields.append(("Postprocess upscale to", f"{metadata['width']}x{metadata['height']}"))
    fields.append(("Postprocess upscaler", upscale.get("upscaler_name")
                   or upscaler_name(upscale.get("upscaler") or "lanczos")))
    refine = upscale.get("refine")
    if isinstance(refine, dict) and refine.get("strength") is not None:
        fields.append(("Denoising strength", refine["strength"]))
    return fields


# sd-webui-controlnet's names of a unit's resize and control modes.
RESIZE_MODE_NAMES = {"resize": "Just Resize", "crop": "Crop and Resize", "fill": "Resize and Fill"}
CONTROL_MODE_NAMES = {"balanced": "Balanced", "prompt": "My prompt is more important",
                      "control": "ControlNet is more important"}


def _float(value, default: float) -> str:
    try:
        return str(float(value if value is not None else default))
    except (TypeError, ValueError):
        return str(default)


def guide_fields(metadata: dict) -> list[tuple[str, object]]:
    """ControlNet units as sd-webui-controlnet writes them ("ControlNet 0": "Module: canny,
    Model: …, Weight: 1.0, …"), reference images ("IP-Adapter 0": "Model: …, Weight: 0.6")
    and an edit's pictures ("Edit images": their ids)."""
    fields = []
    for n, unit in enumerate(u for u in metadata.get("control") or () if isinstance(u, dict)):
        parts = [("Module", unit.get("preprocessor") or "none"), ("Model", unit.get("model_name") or unit.get("model")),
                 ("Weight", _float(unit.get("weight"), 1.0)),
                 ("Resize Mode", RESIZE_MODE_NAMES.get(unit.get("resize_mode"), "Crop and Resize")),
                 ("Processor Res", unit.get("processor_res")), ("Threshold A", unit.get("threshold_a")),
                 ("Threshold B", unit.get("threshold_b")), ("Guidance Start", _float(unit.get("start"), 0.0)),
                 ("Guidance End", _float(unit.get("end"), 1.0)), ("Pixel Perfect", bool(unit.get("pixel_perfect"))),
                 ("Control Mode", CONTROL_MODE_NAMES.get(unit.get("control_mode"), "Balanced"))]
        fields.append((f"ControlNet {n}", ", ".join(f"{name}: {value}" for name, value in parts if value is not None)))
    for n, ref in enumerate(r for r in metadata.get("references") or () if isinstance(r, dict)):
        fields.append((f"IP-Adapter {n}", f"Model: {ref.get('model_name') or ref.get('model')}, "
                                          f"Weight: {_float(ref.get('weight'), 1.0)}"))
    edit = metadata.get("edit")
    if isinstance(edit, dict):
        images = [str(image) for image in ([edit.get("image")] if edit.get("image") else []) + list(edit.get("images") or ())]
        if images:
            fields.append(("Edit images", ", ".join(images)))
    return fields


def format_parameters(metadata: dict) -> str:
    """The plain-text "parameters" block other Stable Diffusion tools read:

        a prompt
        Negative prompt: blurry
        Steps: 30, Sampler: Euler, CFG scale: 7.5, Seed: 123, Size: 512x512, Model: demo

    "Denoising strength" is added when an init image was used (metadata has a
    truthy "init_image" and a "strength"). An inpaint image (a "mask", or an outpaint)
    adds A1111's inpaint fields after it: "Mask blur: 4, Inpaint area: Only masked,
    Masked content: original" (+ "Masked area padding" with "Only masked", "Mask mode:
    Inpaint not masked",
    "Noise multiplier" when not 1, "Outpaint: left 0, right 64, top 0, bottom 0"). A hires
    fix ("hires": Size is the first pass's) adds "Denoising strength: 0.5, Hires upscale: 2,
    Hires steps: 10, Hires upscaler: Latent" (+ "Hires resize: WxH" instead of the upscale
    for a final size asked for, "Hires sampler", "Hires prompt", "Hires negative prompt"
    when set); an upscale ("upscale") A1111's extras' "Postprocess upscale by: 2,
    Postprocess upscaler: Lanczos". ControlNet units, reference images and an edit's pictures
    follow (guide_fields: `ControlNet 0: "Module: canny, Model: …, Weight: 1.0, …"`,
    `IP-Adapter 0: "Model: …, Weight: 0.6"`, `Edit images: <ids>`), then a fast task's
    "Fast mode: first-block cache" (services/generation/fast.py). LoRAs are written into the prompt as A1111
    does, `<lora:name:0.8>`, so that pasting the text back applies them.
    """
    prompt = str(metadata.get("prompt") or "")
    tags = [f"<lora:{lora.get('name') or lora.get('id')}:{_number(float(lora.get('weight', 1.0)))}>"
            for lora in metadata.get("loras") or () if isinstance(lora, dict)]
    lines = [" ".join([prompt, *tags]) if tags else prompt]
    negative = metadata.get("negative_prompt")
    if negative:
        lines.append(f"Negative prompt: {negative}")

    scheduler = metadata.get("scheduler")
    sampler = A1111_SAMPLER_NAMES.get(scheduler) or SCHEDULERS.get(scheduler) or scheduler
    fields = [
        ("Steps", metadata.get("steps")),
        ("Sampler", sampler),
        ("CFG scale", metadata.get("guidance")),
        ("Seed", metadata.get("seed")),
        (
            "Size",
            f"{metadata['width']}x{metadata['height']}"
            if metadata.get("width") is not None and metadata.get("height") is not None
            else None,
        ),
        ("Model", metadata.get("model")),
    ]
    inpaint = inpaint_settings(metadata)
    if (metadata.get("init_image") or inpaint) and metadata.get("strength") is not None:
        fields.append(("Denoising strength", metadata["strength"]))
    if inpaint:
        fields.extend(_inpaint_fields(inpaint))
    hires = metadata.get("hires")
    if isinstance(hires, dict) and not metadata.get("init_image"):
        fields.extend(_hires_fields(hires, sampler))
    upscale = metadata.get("upscale")
    if isinstance(upscale, dict):
        fields.extend(_upscale_fields(upscale, metadata))
    fields.extend(guide_fields(metadata))
    if metadata.get("fast"):  # (Reuse brings it back: pnginfo)
        fields.append((fast.INFOTEXT_KEY, fast.infotext_value(metadata.get("family")) or "on"))
    lines.append(
        ", ".join(f"{name}: {_a1111_value(_number(value))}" for name, value in fields if value is not None)
    )
    return "\n".join(lines)


def encode_png(image: Image.Image, metadata: dict) -> bytes:
    """PNG bytes carrying the parameters twice: `daydream` (JSON, read back by
    read_metadata) and `parameters` (format_parameters). Text that is not
    Latin-1 (most non-English prompts) is written as UTF-8 iTXt chunks."""
    info = PngInfo()
    # add_text picks tEXt, or iTXt when the text does not fit Latin-1.
    info.add_text(METADATA_KEY, json.dumps(metadata, ensure_ascii=False))
    info.add_text(PARAMETERS_KEY, format_parameters(metadata))
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def read_metadata(source: bytes | str | Path) -> dict:
    """The `daydream` metadata of a PNG (bytes, or a file path); {} when the
    image has none (another tool's PNG, a JPEG or WebP upload)."""
    stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else source
    with Image.open(stream) as im:
        # .text reads chunks placed after the image data too; .info may not.
        text = getattr(im, "text", None) or im.info
        raw = text.get(METADATA_KEY)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def encode_thumbnail(image: Image.Image, max_side: int = THUMBNAIL_SIDE) -> bytes:
    """WebP bytes, longest side at most `max_side`, aspect ratio kept (never
    enlarged). Uploaded photos are turned upright from their EXIF orientation."""
    thumb = ImageOps.exif_transpose(image)  # returns a copy; the caller's image is left alone
    if thumb.mode not in ("RGB", "RGBA"):
        has_alpha = "A" in thumb.getbands() or "transparency" in thumb.info
        thumb = thumb.convert("RGBA" if has_alpha else "RGB")
    thumb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, format="WEBP", quality=82, method=2)  # method 2: a third faster than 4, files a little larger
    return out.getvalue()
