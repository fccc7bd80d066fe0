"""What a picture says about how it was made: the generation settings that Daydream,
AUTOMATIC1111, ComfyUI and InvokeAI write into their PNGs, read back as Daydream's task
fields (the studio's "PNG info", POST /api/v1/png-info, A1111's /sdapi/v1/png-info).

- Daydream: the `daydream` text chunk (imaging.read_metadata's JSON);
- A1111 (and Forge, SD.Next, Fooocus in its A1111 mode): the `parameters` text chunk,
  its infotext ("prompt\\nNegative prompt: …\\nSteps: 20, Sampler: Euler a, …"), or the
  EXIF UserComment of its JPEGs and WebPs;
- ComfyUI: the `prompt` chunk, its API graph (KSampler, CLIPTextEncode, EmptyLatentImage,
  CheckpointLoaderSimple nodes);
- InvokeAI: the `invokeai_metadata` chunk (3.x and later), or `sd-metadata` (2.x).
The guides come back too (issue 25): sd-webui-controlnet's "ControlNet N" infotext lines
(and Daydream's "IP-Adapter N" and "Edit images") as `control`, `references` and `edit`,
where their module runs here and their model is enabled, without their pictures.

Untrusted bytes: the pixels are never decoded. The PNG's chunks are walked here, within
the upload limits (the bytes, the pixels its header claims, as uploads.py), each text
chunk inflated to at most MAX_TEXT bytes and all of them to MAX_TEXT_TOTAL; anything
else is a 4xx naming the field (ValidationError, UnsupportedImage, TooLarge)."""
from __future__ import annotations

import io
import json
import re
import struct
import zlib

from flask import current_app, has_app_context

from services.core.errors import TooLarge, UnsupportedImage, ValidationError
from services.generation import fast, guides
from services.generation.compat import a1111_controlnet
from services.generation.compat.common import find_model
from services.generation.schedulers import A1111_SAMPLER_NAMES, SCHEDULERS, sampler_of, with_schedule
from services.library.imaging import METADATA_KEY, PARAMETERS_KEY, format_parameters

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT = 1024 * 1024  # one text chunk, inflated (Pillow's MAX_TEXT_CHUNK)
MAX_TEXT_TOTAL = 8 * 1024 * 1024  # all of them
MAX_CHUNKS = 10_000
DEFAULT_MAX_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096
TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
SOURCES = ("daydream", "a1111", "comfyui", "invokeai")


# --- the bytes ---------------------------------------------------------------------------

def _limits() -> tuple[int, int]:
    if has_app_context():
        return int(current_app.config["MAX_CONTENT_LENGTH"]), int(current_app.config["MAX_UPLOAD_PIXELS"])
    return DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS


def _too_big_text(field: str) -> ValidationError:
    return ValidationError(field, "carries metadata (text chunks) too large to read; "
                                  "export it again without the extra metadata")


def _inflate(data: bytes, field: str) -> bytes:
    """A compressed text chunk, inflated to at most MAX_TEXT bytes (a zlib bomb stops there)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_TEXT + 1)
    except zlib.error:
        raise _damaged(field)
    if len(out) > MAX_TEXT or inflater.unconsumed_tail:
        raise _too_big_text(field)
    return out


def _damaged(field: str) -> UnsupportedImage:
    return UnsupportedImage(f"{field}: the image is damaged or truncated; export it again and retry.", field=field)


def _text_of(kind: bytes, body: bytes, field: str) -> tuple[str, str] | None:
    """(keyword, text) of a tEXt, zTXt or iTXt chunk; None for one that cannot be read."""
    keyword, sep, rest = body.partition(b"\0")
    if not sep or not 1 <= len(keyword) <= 79:
        return None
    key = keyword.decode("latin-1")
    if kind == b"tEXt":
        return key, rest.decode("latin-1")
    if kind == b"zTXt":
        if not rest or rest[0] != 0:
            return None
        return key, _inflate(rest[1:], field).decode("latin-1")
    # iTXt: compression flag, method, language\0, translated keyword\0, text
    if len(rest) < 2:
        return None
    compressed, method, tail = rest[0], rest[1], rest[2:]
    parts = tail.split(b"\0", 2)
    if len(parts) < 3:
        return None
    text = parts[2]
    if compressed:
        if method != 0:
            return None
        text = _inflate(text, field)
    return key, text.decode("utf-8", errors="replace")


def png_chunks(data: bytes, field: str = "image") -> dict[str, str]:
    """The text chunks of a PNG ({keyword: text}, the first of each keyword), read without
    decoding a pixel. A PNG whose header claims more pixels than an upload may have, a
    damaged one, or text past the limits is refused, naming `field`."""
    max_bytes, max_pixels = _limits()
    if len(data) > max_bytes:
        raise TooLarge(f"{field}: the file is larger than {max_bytes // (1024 * 1024)} MB; scale it down first.",
                       field=field)
    if not data.startswith(PNG_SIGNATURE):
        raise _damaged(field)
    texts: dict[str, str] = {}
    total, offset, seen = 0, len(PNG_SIGNATURE), 0
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        start, end = offset + 8, offset + 8 + length
        if end + 4 > len(data):
            if not seen:
                raise _damaged(field)
            break  # a truncated tail: keep what was read
        body = data[start:end]
        seen += 1
        if seen == 1:
            if kind != b"IHDR" or length != 13:
                raise _damaged(field)
            width, height = struct.unpack(">II", body[:8])
            if width < 1 or height < 1 or width * height > max_pixels:
                raise ValidationError(field, f"is {width}×{height} pixels; at most {max_pixels:,} pixels "
                                             "are accepted — scale it down first")
        elif kind in TEXT_CHUNKS:
            if length > MAX_TEXT + 1024:
                raise _too_big_text(field)
            found = _text_of(kind, body, field)
            if found is not None:
                total += len(found[1])
                if total > MAX_TEXT_TOTAL:
                    raise _too_big_text(field)
                texts.setdefault(*found)
        elif kind == b"IEND" or seen > MAX_CHUNKS:
            break
        offset = end + 4
    if not seen:
        raise _damaged(field)
    return texts


def _exif_comment(data: bytes, field: str) -> dict[str, str]:
    """A JPEG's or WebP's A1111 parameters: its EXIF UserComment (the header only is read)."""
    from PIL import Image as PILImage  # noqa: PLC0415 (Pillow is only needed for these formats)

    try:
        with PILImage.open(io.BytesIO(data), formats=["JPEG", "WEBP"]) as picture:
            width, height = picture.size
            _max_bytes, max_pixels = _limits()
            if width * height > max_pixels:
                raise ValidationError(field, f"is {width}×{height} pixels; at most {max_pixels:,} pixels "
                                             "are accepted — scale it down first")
            comment = picture.getexif().get_ifd(0x8769).get(0x9286)
    except ValidationError:
        raise
    except Exception:  # not a JPEG or WebP Pillow can read the header of
        raise UnsupportedImage(f"{field}: that file is not a PNG, JPEG or WebP image.", field=field)
    if isinstance(comment, bytes):
        head, body = comment[:8], comment[8:]
        if head.startswith(b"UNICODE"):
            encoding = "utf-16-be" if body[:1] == b"\0" else "utf-16-le"
            comment = body.decode(encoding, errors="replace")
        else:
            comment = (body if head.startswith(b"ASCII") else comment).decode("utf-8", errors="replace")
    if isinstance(comment, str) and comment.strip("\0 "):
        return {PARAMETERS_KEY: comment.strip("\0")[:MAX_TEXT]}
    return {}


def image_texts(data: bytes, field: str = "image") -> dict[str, str]:
    """The picture's text metadata: a PNG's text chunks, a JPEG's or WebP's A1111 comment."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ValidationError(field, "is empty: send a PNG, JPEG or WebP image")
    data = bytes(data)
    if data.startswith(PNG_SIGNATURE):
        return png_chunks(data, field)
    max_bytes, _pixels = _limits()
    if len(data) > max_bytes:
        raise TooLarge(f"{field}: the file is larger than {max_bytes // (1024 * 1024)} MB; scale it down first.",
                       field=field)
    return _exif_comment(data, field)


# --- A1111's infotext ----------------------------------------------------------------------

# A1111's own expressions (modules/infotext_utils.py)
RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")


def parse_infotext(text: str) -> dict:
    """A1111's infotext as its parse_generation_parameters reads it: {"Prompt", "Negative
    prompt", "Steps": "20", "Size-1": "512", "Size-2": "512", …} (values as written)."""
    result: dict = {}
    if not isinstance(text, str) or not text.strip():
        return result
    prompt, negative, done_with_prompt = "", "", False
    *lines, lastline = text.strip().split("\n")
    if len(RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative += ("" if negative == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    result["Prompt"] = prompt
    result["Negative prompt"] = negative
    for key, value in RE_PARAM.findall(lastline):
        key, value = key.strip(), value.strip()
        if len(value) > 1 and value[0] == '"' and value[-1] == '"':
            try:
                value = json.loads(value)
            except ValueError:
                pass
        size = RE_IMAGESIZE.match(value) if isinstance(value, str) else None
        if size is not None:
            result[f"{key}-1"], result[f"{key}-2"] = size.group(1), size.group(2)
        else:
            result[key] = value
    return result


def _norm(text: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(text).strip().lower())


# A1111's sampler names (and Daydream's keys and labels) → a scheduler key.
SAMPLER_KEYS: dict[str, str] = {}
for _key, _label in SCHEDULERS.items():
    SAMPLER_KEYS.setdefault(_norm(_label), _key)
for _key, _label in A1111_SAMPLER_NAMES.items():
    if _key != "flow_euler":
        SAMPLER_KEYS[_norm(_label)] = _key
for _key in SCHEDULERS:
    SAMPLER_KEYS[_norm(_key)] = _key
SAMPLER_KEYS.update({"dpm++ sde": "dpmpp_sde_karras", "plms": "pndm", "euler ancestral": "euler_a"})
SCHEDULE_TYPES = {"karras": "karras", "exponential": "exponential"}
# ComfyUI's and InvokeAI's sampler names, where they differ from Daydream's keys.
COMFY_SAMPLERS = {"euler": "euler", "euler_ancestral": "euler_a", "dpmpp_2m": "dpmpp_2m", "dpmpp_sde": "dpmpp_sde_karras",
                  "ddim": "ddim", "uni_pc": "unipc", "uni_pc_bh2": "unipc", "lcm": "lcm"}
INVOKE_SCHEDULERS = {"euler": "euler", "euler_a": "euler_a", "euler_k": "euler_karras", "dpmpp_2m": "dpmpp_2m",
                     "dpmpp_2m_k": "dpmpp_2m_karras", "dpmpp_sde_k": "dpmpp_sde_karras", "dpmpp_sde": "dpmpp_sde_karras",
                     "ddim": "ddim", "unipc": "unipc", "unipc_k": "unipc_karras", "lcm": "lcm", "pndm": "pndm"}
# A1111's hires upscaler names → the native hires upscalers.
HIRES_UPSCALERS = {"latent": "latent", "latent (antialiased)": "latent-antialiased",
                   "latent (bicubic)": "latent-bicubic", "latent (bicubic antialiased)": "latent-bicubic-antialiased",
                   "latent (nearest)": "latent-nearest", "latent (nearest-exact)": "latent-nearest-exact",
                   "lanczos": "lanczos", "nearest": "nearest", "none": "lanczos"}


def scheduler_for(sampler, schedule=None) -> str | None:
    """A scheduler key for a sampler name (A1111's, Daydream's) and an A1111 schedule
    type; None when there is no such sampler here."""
    if not isinstance(sampler, str) or not sampler.strip():
        return None
    key = SAMPLER_KEYS.get(_norm(sampler))
    if key is None:
        return None
    kind = SCHEDULE_TYPES.get(_norm(schedule)) if isinstance(schedule, str) else None
    if kind:
        return with_schedule(sampler_of(key), kind) or key
    return key


def _int(value) -> int | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if number != number or abs(number) > 2**63 or isinstance(value, bool):
        return None
    return int(number)


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if number != number or number in (float("inf"), float("-inf")) or isinstance(value, bool):
        return None
    return number


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _model(name) -> dict:
    """The model field: an enabled model's id when the name is one's, else its name as written."""
    if not isinstance(name, str) or not name.strip():
        return {}
    name = name.strip()
    if has_app_context():
        try:
            row = find_model(name)
        except Exception:  # no database here (a bare app): the name as written
            row = None
        if row is not None:
            return {"model": row.id}
    return {"model_name": name}


# --- guides: sd-webui-controlnet's "ControlNet N" lines (and Daydream's IP-Adapter and Edit) ---

# A key of sd-webui-controlnet's unit text: capitalised words, then ": " (a model's name may
# hold a comma, "Demo ControlNet (tiny, random)", so the text is not simply split at commas).
UNIT_KEY = re.compile(r"(?:^|,\s*)([A-Z][A-Za-z]*(?: [A-Z][A-Za-z]*)*): ")


def _unit_fields(text) -> dict:
    """"Module: canny, Model: x [hash], Weight: 1.0, …" as {"module": "canny", "model": …}
    (sd-webui-controlnet's parse_unit: display names to field names)."""
    if not isinstance(text, str):
        return {}
    keys = list(UNIT_KEY.finditer(text))
    return {"_".join(key.group(1).lower().split(" ")): text[key.end():after.start() if after else None].strip()
            for key, after in zip(keys, keys[1:] + [None])}


def _lookup(find, *args):
    """A lookup in the catalog, None without one (a bare app, no database)."""
    try:
        return find(*args)
    except Exception:  # no database here: nothing is available
        return None


def _control_unit(fields: dict, available: dict) -> dict | None:
    """A "ControlNet N" line as a native unit without its picture, when its module runs here
    and its model is an enabled ControlNet; None otherwise."""
    module = fields.get("module") or "none"
    preprocessor = a1111_controlnet.preprocessor_of(module, available)
    model = _lookup(a1111_controlnet.find_guide, None, fields.get("model"), "controlnet")
    if preprocessor is None or model is None:
        return None
    same = a1111_controlnet.same_sliders(module, preprocessor, available)
    resize = str(fields.get("resize_mode") or "").strip().lower()
    mode = str(fields.get("control_mode") or "").strip().lower()
    unit = {"preprocessor": preprocessor, "model": model.id, "weight": _float(fields.get("weight")),
            "start": _float(fields.get("guidance_start")), "end": _float(fields.get("guidance_end")),
            "control_mode": a1111_controlnet.CONTROL_MODES.get(mode),
            "resize_mode": a1111_controlnet.RESIZE_MODES.get(resize),
            "processor_res": _int(fields.get("processor_res")),
            "threshold_a": _float(fields.get("threshold_a")) if same else None,
            "threshold_b": _float(fields.get("threshold_b")) if same else None,
            "pixel_perfect": {"true": True, "false": False}.get(str(fields.get("pixel_perfect")).lower())}
    if unit["processor_res"] is not None and not 64 <= unit["processor_res"] <= 2048:
        unit["processor_res"] = None
    return _clean(unit)


def _reference(fields: dict) -> dict | None:
    model = _lookup(a1111_controlnet.find_guide, None, fields.get("model"), "ipadapter")
    if model is None:
        return None
    return _clean({"model": model.id, "weight": _float(fields.get("weight"))})


def guides_from_infotext(raw: dict) -> dict:
    """The guides of an A1111 infotext (parse_infotext's fields) as native task fields:
    `control` from its "ControlNet N" lines (an IP-Adapter module's line a reference),
    `references` from "IP-Adapter N" lines, `edit` from "Edit images". Only units whose
    module runs here and whose model is enabled are kept, without their pictures (a
    picture is not in the text: Reuse asks for it again)."""
    if not has_app_context() or not any(key.startswith(("ControlNet ", "IP-Adapter ", "Edit images")) for key in raw):
        return {}
    available = _lookup(guides.preprocessors) or {}
    control, references = [], []
    for key in sorted((k for k in raw if re.fullmatch(r"(ControlNet|IP-Adapter) \d+", k)),
                      key=lambda k: (k.split(" ")[0], int(k.rsplit(" ", 1)[1]))):
        fields = _unit_fields(raw[key])
        if key.startswith("IP-Adapter") or a1111_controlnet.is_reference_module(fields.get("module")):
            item = _reference(fields)
            references += [item] if item else []
        else:
            item = _control_unit(fields, available)
            control += [item] if item else []
    found: dict = {"control": control or None, "references": references or None}
    images = [item.strip() for item in str(raw.get("Edit images") or "").replace(";", ",").split(",")
              if re.fullmatch(r"[A-Za-z0-9]{6,40}", item.strip())]
    if images:
        found["edit"] = {"images": images}
    return _clean(found)


def guides_from_daydream(meta: dict) -> dict:
    """Daydream's own record of the guides (Task.parameters()), the units whose model and
    preprocessor are still available kept as they are (their pictures the owner's ids)."""
    found = {key: meta.get(key) for key in ("control", "references", "edit")}
    if not any(found.values()):
        return {}
    if found["control"] or found["references"]:
        if not has_app_context():
            return {}
        available = _lookup(guides.preprocessors) or {}
        enabled = {row.id for row in (_lookup(a1111_controlnet.guide_models, None) or [])}
        found["control"] = [unit for unit in found["control"] or [] if isinstance(unit, dict)
                            and unit.get("model") in enabled and unit.get("preprocessor") in available] or None
        found["references"] = [ref for ref in found["references"] or [] if isinstance(ref, dict)
                               and ref.get("model") in enabled] or None
    if not isinstance(found["edit"], dict) or not isinstance(found["edit"].get("images"), list):
        found["edit"] = None
    return _clean(found)


def _clean(params: dict) -> dict:
    return {key: value for key, value in params.items() if value is not None and value != {}}


def from_infotext(text: str) -> dict:
    """A1111's infotext as native task fields; `<lora:…>` tags stay in the prompt."""
    raw = parse_infotext(text)
    params: dict = {"prompt": raw.get("Prompt", ""), "negative_prompt": raw.get("Negative prompt") or None,
                    "steps": _int(raw.get("Steps")), "guidance": _float(raw.get("CFG scale")),
                    "seed": _int(raw.get("Seed")), "scheduler": scheduler_for(raw.get("Sampler"), raw.get("Schedule type")),
                    "width": _int(raw.get("Size-1")), "height": _int(raw.get("Size-2"))}
    params.update(_model(raw.get("Model")))
    params.update(guides_from_infotext(raw))
    if _text(raw.get(fast.INFOTEXT_KEY)):
        params["fast"] = True
    strength = _float(raw.get("Denoising strength"))
    if raw.get("Hires upscale") is not None or raw.get("Hires resize-1") is not None:
        hires = {"scale": _float(raw.get("Hires upscale")), "steps": _int(raw.get("Hires steps")),
                 "denoising": strength, "prompt": _text(raw.get("Hires prompt")),
                 "negative_prompt": _text(raw.get("Hires negative prompt"))}
        if raw.get("Hires resize-1") is not None:
            hires.update(width=_int(raw.get("Hires resize-1")), height=_int(raw.get("Hires resize-2")))
            hires.pop("scale")
        upscaler = raw.get("Hires upscaler")
        if isinstance(upscaler, str) and upscaler.strip():
            hires["upscaler"] = HIRES_UPSCALERS.get(upscaler.strip().lower(), upscaler.strip())
        params["hires"] = _clean(hires)
    else:
        params["strength"] = strength
    return _clean(params)


# --- ComfyUI ---------------------------------------------------------------------------------

def _node(graph: dict, link) -> dict | None:
    """The node a ComfyUI input links to ([node id, output index])."""
    if isinstance(link, list) and link:
        node = graph.get(str(link[0]))
        return node if isinstance(node, dict) else None
    return None


def _inputs(node) -> dict:
    inputs = node.get("inputs") if isinstance(node, dict) else None
    return inputs if isinstance(inputs, dict) else {}


def _follow_text(graph: dict, link, depth: int = 0) -> str | None:
    """The text a sampler's positive or negative input encodes (through a few pass-through nodes)."""
    node = _node(graph, link)
    if node is None or depth > 8:
        return None
    inputs = _inputs(node)
    # A text input first, then what passes conditioning or a string through.
    for name in ("text", "text_g", "prompt", "conditioning", "conditioning_1", "positive", "value", "string"):
        if isinstance(inputs.get(name), str):
            return inputs[name]
        if isinstance(inputs.get(name), list):
            found = _follow_text(graph, inputs[name], depth + 1)
            if found is not None:
                return found
    return None


def _follow_class(graph: dict, link, wanted: tuple[str, ...], through: tuple[str, ...], depth: int = 0) -> dict | None:
    node = _node(graph, link)
    if node is None or depth > 8:
        return None
    if node.get("class_type") in wanted:
        return node
    inputs = _inputs(node)
    for name in through:
        if isinstance(inputs.get(name), list):
            found = _follow_class(graph, inputs[name], wanted, through, depth + 1)
            if found is not None:
                return found
    return None


def from_comfyui(graph: dict) -> dict:
    """ComfyUI's API graph (its `prompt` chunk) as native task fields: the first KSampler's
    settings, the texts its positive and negative inputs encode, the latent's size and the
    checkpoint it loads."""
    nodes = [node for _id, node in sorted(graph.items(), key=lambda item: str(item[0])) if isinstance(node, dict)]
    sampler = next((n for n in nodes if n.get("class_type") in ("KSampler", "KSamplerAdvanced")), None)
    if sampler is None:
        return {}
    inputs = _inputs(sampler)
    params = {"prompt": _follow_text(graph, inputs.get("positive")) or "",
              "negative_prompt": _follow_text(graph, inputs.get("negative")) or None,
              "steps": _int(inputs.get("steps")), "guidance": _float(inputs.get("cfg")),
              "seed": _int(inputs.get("seed", inputs.get("noise_seed")))}
    name = inputs.get("sampler_name")
    key = COMFY_SAMPLERS.get(name) if isinstance(name, str) else None
    schedule = inputs.get("scheduler")
    if key and isinstance(schedule, str) and schedule in SCHEDULE_TYPES:
        key = with_schedule(sampler_of(key), schedule) or key
    params["scheduler"] = key
    latent = _follow_class(graph, inputs.get("latent_image"), ("EmptyLatentImage", "EmptySD3LatentImage"),
                           ("samples", "latent", "latent_image"))
    if latent is None:
        latent = next((n for n in nodes if n.get("class_type") in ("EmptyLatentImage", "EmptySD3LatentImage")), None)
    if latent is not None:
        size = _inputs(latent)
        params.update(width=_int(size.get("width")), height=_int(size.get("height")))
    denoise = _float(inputs.get("denoise"))
    if denoise is not None and denoise < 1:
        params["strength"] = denoise
    checkpoint = _follow_class(graph, inputs.get("model"), ("CheckpointLoaderSimple", "CheckpointLoader"),
                               ("model",))
    if checkpoint is None:
        checkpoint = next((n for n in nodes if n.get("class_type") in ("CheckpointLoaderSimple", "CheckpointLoader")),
                          None)
    if checkpoint is not None:
        name = _inputs(checkpoint).get("ckpt_name")
        if isinstance(name, str):
            params.update(_model(re.sub(r"\.(safetensors|ckpt|pt|pth)$", "", name.split("/")[-1].split("\\")[-1])))
    loras = [n for n in nodes if n.get("class_type") in ("LoraLoader", "LoraLoaderModelOnly")]
    tags = []
    for node in loras:
        lora = _inputs(node)
        name = lora.get("lora_name")
        weight = _float(lora.get("strength_model"))
        if isinstance(name, str) and name:
            stem = re.sub(r"\.(safetensors|ckpt|pt|pth)$", "", name.split("/")[-1].split("\\")[-1])
            tags.append(f"<lora:{stem}:{weight if weight is not None else 1:g}>")
    if tags:
        params["prompt"] = " ".join([params["prompt"], *tags]).strip()
    return _clean(params)


# --- InvokeAI ------------------------------------------------------------------------------

def from_invokeai(meta: dict) -> dict:
    """InvokeAI's `invokeai_metadata` (3.x and later) as native task fields."""
    prompt = meta.get("positive_prompt")
    if not isinstance(prompt, str):
        prompt = ""
    model = meta.get("model")
    model_name = model.get("name") or model.get("model_name") if isinstance(model, dict) else model
    tags = []
    for lora in meta.get("loras") or []:
        if not isinstance(lora, dict):
            continue
        inner = lora.get("model") or lora.get("lora")
        name = (inner.get("name") or inner.get("model_name")) if isinstance(inner, dict) else None
        weight = _float(lora.get("weight"))
        if isinstance(name, str) and name:
            tags.append(f"<lora:{name}:{weight if weight is not None else 1:g}>")
    params = {"prompt": " ".join([prompt, *tags]).strip(), "negative_prompt": _text(meta.get("negative_prompt")) or None,
              "steps": _int(meta.get("steps")), "guidance": _float(meta.get("cfg_scale")),
              "seed": _int(meta.get("seed")), "width": _int(meta.get("width")), "height": _int(meta.get("height")),
              "scheduler": INVOKE_SCHEDULERS.get(meta.get("scheduler")) if isinstance(meta.get("scheduler"), str)
              else None}
    strength = _float(meta.get("strength"))
    if strength is not None and strength < 1 and meta.get("generation_mode") not in ("txt2img", "sdxl_txt2img"):
        params["strength"] = strength
    params.update(_model(model_name))
    return _clean(params)


def from_invokeai_legacy(meta: dict) -> dict:
    """InvokeAI 2.x's `sd-metadata`: {"image": {prompt, steps, cfg_scale, seed, width, height, sampler}, "model_weights"}."""
    image = meta.get("image")
    if not isinstance(image, dict):
        return {}
    prompt = image.get("prompt")
    if isinstance(prompt, list):
        prompt = " ".join(p.get("prompt", "") for p in prompt if isinstance(p, dict) and isinstance(p.get("prompt"), str))
    negative = None
    if isinstance(prompt, str):  # InvokeAI 2 wrote the negative prompt in [brackets]
        negative = " ".join(re.findall(r"\[([^\]]*)\]", prompt)) or None
        prompt = re.sub(r"\s*\[[^\]]*\]", "", prompt).strip()
    sampler = image.get("sampler")
    params = {"prompt": prompt if isinstance(prompt, str) else "", "negative_prompt": negative,
              "steps": _int(image.get("steps")), "guidance": _float(image.get("cfg_scale")),
              "seed": _int(image.get("seed")), "width": _int(image.get("width")), "height": _int(image.get("height")),
              "scheduler": INVOKE_SCHEDULERS.get(sampler.removeprefix("k_")) if isinstance(sampler, str) else None}
    params.update(_model(meta.get("model_weights")))
    return _clean(params)


# --- Daydream's own ------------------------------------------------------------------------

DAYDREAM_FIELDS = ("prompt", "negative_prompt", "model", "width", "height", "steps", "guidance", "seed", "scheduler",
                   "samples", "loras", "strength", "init_fit", "hires", "inpaint", "fast")


def from_daydream(meta: dict) -> dict:
    params = {key: meta[key] for key in DAYDREAM_FIELDS if meta.get(key) is not None}
    params.update(guides_from_daydream(meta))
    if not meta.get("init_image"):
        params.pop("strength", None)
        params.pop("init_fit", None)
    if isinstance(params.get("model"), str) and has_app_context():
        resolved = _model(params["model"])
        if "model" not in resolved:  # a model that is not here (any more)
            params.pop("model")
            params.update(resolved)
    return params


# --- all together ----------------------------------------------------------------------------

def _json(raw) -> dict | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _infotext(params: dict) -> str:
    """Native fields as A1111's infotext (a model not here by the name it was written with)."""
    return format_parameters({**params, "model": params.get("model") or params.get("model_name")})


def read_texts(texts: dict[str, str]) -> dict:
    """read_png_info's answer from a picture's text metadata (image_texts)."""
    meta = _json(texts.get(METADATA_KEY))
    if meta is not None:
        params = from_daydream(meta)
        text = texts.get(PARAMETERS_KEY) or format_parameters(meta)
        return {"source": "daydream", "text": text, "parameters": params}
    infotext = texts.get(PARAMETERS_KEY)
    if isinstance(infotext, str) and infotext.strip():
        return {"source": "a1111", "text": infotext, "parameters": from_infotext(infotext)}
    graph = _json(texts.get("prompt"))
    if graph is not None:
        params = from_comfyui(graph)
        if params:
            return {"source": "comfyui", "text": _infotext(params), "parameters": params}
    invoke = _json(texts.get("invokeai_metadata"))
    if invoke is not None:
        params = from_invokeai(invoke)
        return {"source": "invokeai", "text": _infotext(params), "parameters": params}
    legacy = _json(texts.get("sd-metadata"))
    if legacy is not None:
        params = from_invokeai_legacy(legacy)
        if params:
            return {"source": "invokeai", "text": _infotext(params), "parameters": params}
    return {"source": None, "text": "", "parameters": {}}


def read_png_info(data: bytes, field: str = "image") -> dict:
    """{"source": "daydream" | "a1111" | "comfyui" | "invokeai" | None, "text": the settings
    as A1111's infotext ("" when the picture has none), "parameters": them as native task
    fields (model: an enabled model's id, else model_name: the name as written)}.
    Bad input (not an image, damaged, over the upload limits, a text bomb): a 4xx naming `field`."""
    return read_texts(image_texts(data, field))
