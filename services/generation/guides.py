"""A task's guides (issue 25): ControlNet units (`control`), reference images
(`references`: IP-Adapter, FLUX Redux) and editing by instruction (`edit`).

validate() checks a request's guides against the model's card, the enabled guide models
(catalog.guide_table()) and the preprocessors this install has (preprocess.available()),
without reading a picture: the estimate runs it as the submit does. It leaves in params
the shapes a task stores (Task.control, Task.reference_images, Task.edit; API.md,
"Guides and editing"), each picture still as it was sent: an image id or a data URL.

store_pictures() then, at submit, makes every picture an image of the user's: a data URL
is read as an upload is (bytes, pixels, decoded size, decompression bombs, format:
uploads.decoded) and stored, of kind "control" (a unit's), "reference" (a reference's)
or "upload" (an edit's); an id of one of the user's images (not one held for review) is
used as it is. A refusal names the field and the unit; what was stored before it is
removed by the caller (tasks.submit_task), which commits the rest with the task."""
from __future__ import annotations

import base64
import binascii
import contextlib
import io
import math
import re

import sqlalchemy as sa
from PIL import Image as PILImage

from extensions import db
from models import Image, User
from services.core.errors import ServiceError, ValidationError
from services.generation import catalog, preprocess, uploads
from services.generation.families import FAMILIES
from services.library import storage

CONTROL_MODES = ("balanced", "prompt", "control")  # A1111's Balanced, My prompt / ControlNet is more important
RESIZE_MODES = ("resize", "crop", "fill")  # Just Resize, Crop and Resize, Resize and Fill
WEIGHT = (0.0, 2.0)
PROCESSOR_RES = (64, 2048)
# A unit's settings and their defaults (image and model have none: they are required).
UNIT_DEFAULTS = {"preprocessor": "none", "weight": 1.0, "start": 0.0, "end": 1.0, "control_mode": "balanced",
                 "resize_mode": "crop", "processor_res": 512, "threshold_a": None, "threshold_b": None,
                 "pixel_perfect": False}
UNIT_KEYS = ("image", "model", *UNIT_DEFAULTS)
REFERENCE_DEFAULTS = {"weight": 1.0}
REFERENCE_KEYS = ("image", "model", *REFERENCE_DEFAULTS)
EDIT_KEYS = ("images",)
# Families whose ControlNets take the balanced control mode only: diffusers' FLUX
# ControlNet pipelines have neither guess mode nor per-layer soft weights.
BALANCED_ONLY = {"flux"}
# Families whose ControlNet Unions the worker runs.
UNION_FAMILIES = {"flux", "sdxl"}
# Families whose Union takes a task's units together, each unit's map a condition of the one
# model (diffusers' SDXL ControlNet Union pipelines): its units use that Union alone and
# share one control mode.
FUSED_UNIONS = {"sdxl"}
# The kinds of image a picture sent as a data URL is stored as.
STORED_KIND = {"control": "control", "references": "reference", "edit": "upload"}
NOUNS = {"controlnet": "ControlNet", "ipadapter": "IP-Adapter"}
DATA_URL = re.compile(r"data:image/[a-z0-9.+-]+;base64,(.*)", re.IGNORECASE | re.DOTALL)
MAX_ID_LENGTH = 40  # image ids are shortuuids (22 characters)
PICTURE = "an image id of yours or a data URL (data:image/png;base64,...)"


class Refused(Exception):
    """A guide's setting does not fit: the message, without the field's name."""


# --- reading a request's values --------------------------------------------------------

def runs(guide: dict) -> bool:
    """Can the worker run this enabled guide (a guide table item)? A Union of UNION_FAMILIES."""
    return guide.get("architecture") != "union" or guide.get("family") in UNION_FAMILIES


def _number(raw: dict, key: str, low: float, high: float, default, *, whole: bool = False):
    value = raw.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(f"{key} must be a {'whole number' if whole else 'number'} from {low:g} to {high:g}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        finite = False
    if not finite or not low <= value <= high:
        raise Refused(f"{key} must be from {low:g} to {high:g} (got {str(value)[:20]})")
    if whole:
        if isinstance(value, float) and not value.is_integer():
            raise Refused(f"{key} must be a whole number from {low:g} to {high:g}")
        return int(value)
    return round(float(value), 4)


def _choice(raw: dict, key: str, choices: tuple[str, ...], default: str) -> str:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        raise Refused(f"{key} must be one of {', '.join(choices)}")
    return value


def _flag(raw: dict, key: str, default: bool) -> bool:
    value = raw.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Refused(f"{key} must be true or false")
    return value


def picture_value(value) -> str:
    """A picture as sent: an image id or a data URL (its content is read at submit)."""
    if not isinstance(value, str) or not value.strip():
        raise Refused(f"image must be {PICTURE}")
    value = value.strip()
    if not value.startswith("data:") and (len(value) > MAX_ID_LENGTH or not value.isalnum()):
        raise Refused(f"image must be {PICTURE}")
    return value


def _settings(raw, keys: tuple[str, ...], shape: str) -> dict:
    if not isinstance(raw, dict):
        raise Refused(f"must be {shape}")
    extra = set(raw) - set(keys)
    if extra:
        raise Refused(f"'{str(sorted(extra, key=str)[0])[:40]}' is not a setting ({', '.join(keys)})")
    return raw


def _guide(value, adapter: str, card, model: str, table: dict) -> dict:
    """{id, name} of an enabled guide model of `adapter` for the card's family."""
    noun, offered = NOUNS[adapter], _offered(table, adapter, card.family)
    hint = f"; choose {offered}" if offered else f"; none is enabled for {card.label} models"
    if not isinstance(value, str) or not value.strip():
        raise Refused(f"model is required: an enabled {noun} of the model's family (GET /api/v1/models, "
                      f"kind \"{adapter}\"){hint}")
    guide = table.get(value)
    if guide is None or guide.get("adapter") != adapter:
        raise Refused(f"'{value[:80]}' is not an available {noun}{hint}")
    if guide.get("family") != card.family:
        article = "an" if noun[0] in "AEIOU" else "a"
        raise Refused(f"{guide['name']} is {article} {noun} for {_family_label(guide.get('family'))} models; "
                      f"'{model}' is a {card.label} model{hint}")
    return {"id": value, "name": guide["name"]}


def _offered(table: dict, adapter: str, family: str) -> str:
    return ", ".join(sorted(key for key, guide in table.items()
                            if guide.get("adapter") == adapter and guide.get("family") == family))


def _family_label(family) -> str:
    card = FAMILIES.get(family)
    return card.label if card else str(family)


# --- the three guides --------------------------------------------------------------------

def control_unit(raw, card, model: str, table: dict, preprocessors: dict, *, has_mask: bool) -> dict:
    """A ControlNet unit as Task.control stores it (thresholds resolved to the
    preprocessor's defaults; null where it has none)."""
    raw = _settings(raw, UNIT_KEYS, '{"image": id or data URL, "model": ControlNet id, "preprocessor": ..., '
                                    '"weight": 1}')
    image = picture_value(raw.get("image"))
    guide = _guide(raw.get("model"), "controlnet", card, model, table)
    if not runs(table[guide["id"]]):
        others = ", ".join(sorted(key for key, item in table.items() if item.get("adapter") == "controlnet"
                                  and item.get("family") == card.family and item.get("architecture") != "union"))
        raise Refused(f"{guide['name']} is a {card.label} ControlNet Union, which this server cannot run yet; "
                      + (f"choose {others}" if others else f"no other ControlNet is enabled for {card.label} models"))
    name = raw.get("preprocessor")
    name = UNIT_DEFAULTS["preprocessor"] if name is None or name == "" else name
    info = preprocessors.get(name) if isinstance(name, str) else None
    if info is None:
        raise Refused(f"preprocessor '{str(name)[:40]}' is not available on this server; choose one of "
                      f"{', '.join(preprocessors)} (GET /api/v1/control/preprocessors)")
    if info.get("needs_mask") and not has_mask:
        raise Refused(f"the {name} preprocessor needs the task's mask: give init_image and mask")
    why = _missing_mode(name, info, table[guide["id"]])
    if why:
        raise Refused(why)
    unit = {"image": image, "preprocessor": name, "model": guide["id"], "model_name": guide["name"]}
    unit["weight"] = _number(raw, "weight", *WEIGHT, UNIT_DEFAULTS["weight"])
    unit["start"] = _number(raw, "start", 0, 1, UNIT_DEFAULTS["start"])
    unit["end"] = _number(raw, "end", 0, 1, UNIT_DEFAULTS["end"])
    if unit["start"] > unit["end"]:
        raise Refused(f"start ({unit['start']:g}) must not be after end ({unit['end']:g}): they are the "
                      "fractions of the steps the unit applies to")
    unit["control_mode"] = _choice(raw, "control_mode", CONTROL_MODES, UNIT_DEFAULTS["control_mode"])
    if unit["control_mode"] != "balanced" and card.family in BALANCED_ONLY:
        raise Refused(f"control_mode must be balanced with {card.label} models (their ControlNets have "
                      "no prompt or control mode)")
    unit["resize_mode"] = _choice(raw, "resize_mode", RESIZE_MODES, UNIT_DEFAULTS["resize_mode"])
    unit["processor_res"] = _number(raw, "processor_res", *PROCESSOR_RES, UNIT_DEFAULTS["processor_res"],
                                    whole=True)
    thresholds = info.get("thresholds") or {}
    for key, slot in (("threshold_a", "a"), ("threshold_b", "b")):
        rule = thresholds.get(slot)
        if not rule:  # a number for a threshold the preprocessor has not is ignored, as A1111 does
            given = raw.get(key)
            if given is not None and (isinstance(given, bool) or not isinstance(given, (int, float))):
                raise Refused(f"{key} must be a number or null (the {name} preprocessor takes none)")
            unit[key] = None
            continue
        value = _number(raw, key, rule["min"], rule["max"], rule["default"])
        whole = isinstance(rule.get("step"), int) and float(value).is_integer()
        unit[key] = int(value) if whole else value  # (as preprocess.options resolves it)
    unit["pixel_perfect"] = _flag(raw, "pixel_perfect", UNIT_DEFAULTS["pixel_perfect"])
    return unit


def reference(raw, card, model: str, table: dict) -> dict:
    """A reference image as Task.reference_images stores it."""
    raw = _settings(raw, REFERENCE_KEYS, '{"image": id or data URL, "model": IP-Adapter id, "weight": 1}')
    image = picture_value(raw.get("image"))
    guide = _guide(raw.get("model"), "ipadapter", card, model, table)
    return {"image": image, "weight": _number(raw, "weight", *WEIGHT, REFERENCE_DEFAULTS["weight"]),
            "model": guide["id"], "model_name": guide["name"]}


def _listed(data: dict, field: str, most: int, errors: dict) -> list | None:
    raw = data.get(field)
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list):
        errors[field] = "must be a list of " + ("units" if field == "control" else "reference images")
        return None
    if len(raw) > most:
        errors[field] = (f"at most {most} {'units' if field == 'control' else 'reference images'} may be given "
                         f"(got {len(raw)})")
        return None
    return raw


def _each(items: list, field: str, label: str, check, errors: dict) -> list | None:
    out = []
    for n, raw in enumerate(items, start=1):
        try:
            out.append(check(raw))
        except Refused as exc:
            errors[field] = f"{label} {n}: {exc}"
            return None
    return out


def preprocessors() -> dict[str, dict]:
    """{id: info} of the preprocessors this install can run (preprocess.available())."""
    return {item["id"]: item for item in preprocess.available(catalog.models_folder())}


def editing_models(cards: dict) -> list[str]:
    return sorted(model for model, card in cards.items() if card.edits)


def validate(data: dict, params: dict, card, cards: dict, *, guide_models: dict | None,
             preprocessors: dict | None, max_control: int, max_references: int, errors: dict) -> None:
    """params gets "control", "references" and "edit" (None where not given): each as the
    task stores it, its pictures as sent. card: the task model's (None: the model itself
    is refused, and the guides are checked no further). guide_models: {id: {name, family,
    adapter, architecture}} of the enabled guide models; preprocessors: {id: info} of
    those this install has (preprocess.available())."""
    params["control"] = params["references"] = params["edit"] = None
    model = params.get("model")
    units = _listed(data, "control", max_control, errors)
    refs = _listed(data, "references", max_references, errors)
    edit = data.get("edit")
    if card is None:
        return
    if edit is not None:
        _validate_edit(edit, data, params, card, cards, errors)
    elif card.edits and not card.edit_optional:
        errors["edit"] = (f"'{model}' edits pictures by instruction: give the picture to edit in edit.images "
                          "(the prompt is the instruction)")
    if units:
        if not card.controlnet:
            errors["control"] = (f"'{model}' takes no ControlNet ({_what(card)} models do not); choose a model "
                                 "whose card has controlnet true (GET /api/v1/models)")
        elif data.get("hires"):
            errors["control"] = "does not apply with a hires fix yet: leave hires out"
        else:
            has_mask = bool(data.get("mask"))
            params["control"] = _each(units, "control", "unit", lambda raw: control_unit(
                raw, card, model, guide_models or {}, preprocessors or {}, has_mask=has_mask), errors)
            why = _fused_union_refusal(params["control"] or [], guide_models or {})
            if why:
                errors["control"], params["control"] = why, None
    if refs:
        if not card.ip_adapter:
            errors["references"] = (f"'{model}' takes no reference images ({_what(card)} models do not); choose a "
                                    "model whose card has ip_adapter true (GET /api/v1/models)")
        elif data.get("hires"):
            errors["references"] = "do not apply with a hires fix yet: leave hires out"
        else:
            params["references"] = _each(refs, "references", "reference", lambda raw: reference(
                raw, card, model, guide_models or {}), errors)


def _missing_mode(preprocessor: str, info: dict, guide: dict) -> str | None:
    """Why a ControlNet Union cannot run the control mode the unit's preprocessor picks
    (None: it can, it is no Union, or its number of modes is not known). The mode is the one
    the worker runs (worker/guides:_union_type): an SDXL Union's sdxl_union_type (the lines'
    when none), a FLUX one's union_type (canny's 0 when none). xinsir's first SDXL Union has
    six modes (no tile, no repaint), ProMax all eight."""
    modes = guide.get("control_modes")
    if guide.get("architecture") != "union" or not modes:
        return None
    sdxl = guide.get("family") != "flux"
    mode = info.get("sdxl_union_type" if sdxl else "union_type")
    if mode is None:
        mode = preprocess.SDXL_UNION_LINES if sdxl else 0
    if mode < modes:
        return None
    if sdxl:
        return (f"the {preprocessor} preprocessor needs a ControlNet Union with {len(preprocess.SDXL_UNION_MODES)} "
                f"control modes (ProMax); {guide['name']} has {modes}: choose another preprocessor or ControlNet")
    return (f"the {preprocessor} preprocessor needs mode {mode} of a FLUX ControlNet Union; {guide['name']} has "
            f"{modes} modes: choose another preprocessor or ControlNet")


def _fused_union_refusal(units: list[dict], table: dict) -> str | None:
    """Why units with a FUSED_UNIONS Union cannot run together (None: they can): that
    Union takes every unit's map in one model, so the units all use it, with one mode."""
    fused = [unit for unit in units if table[unit["model"]].get("architecture") == "union"
             and table[unit["model"]].get("family") in FUSED_UNIONS]
    if not fused:
        return None
    union = fused[0]
    if any(unit["model"] != union["model"] for unit in units):
        return (f"{union['model_name']} is a ControlNet Union, which takes all of a task's units in one model: "
                f"give every unit model \"{union['model']}\" (its preprocessor picks each unit's mode), "
                "or no unit that Union")
    modes = sorted({unit["control_mode"] for unit in units})
    if len(modes) > 1:
        return (f"the units on {union['model_name']} (a ControlNet Union, one model for all of them) share one "
                f"control_mode: got {', '.join(modes)}")
    return None


def _what(card) -> str:
    return " ".join(part for part in (card.label, card.variant) if part)


def _validate_edit(raw, data: dict, params: dict, card, cards: dict, errors: dict) -> None:
    if not card.edits:
        others = editing_models(cards)
        which = (f"the models that do: {', '.join(others)}" if others
                 else "no editing model is enabled on this server")
        errors["edit"] = f"'{params.get('model')}' does not edit pictures ({which})"
        return
    try:
        raw = _settings(raw, EDIT_KEYS, '{"images": [image id or data URL, ...]}')
    except Refused as exc:
        errors["edit"] = str(exc)
        return
    images, most = raw.get("images"), card.max_references
    if not isinstance(images, list) or not images:
        errors["edit"] = f"images must list the picture to edit (1 to {most} pictures)"
        return
    if len(images) > most:
        errors["edit"] = f"takes at most {most} picture{'s' if most != 1 else ''} with '{params.get('model')}' (got {len(images)})"
        return
    # The pictures are the edit's input: the other ways to give one do not apply.
    for field, given in (("init_image", data.get("init_image")), ("mask", data.get("mask")),
                         ("outpaint", data.get("outpaint")), ("hires", data.get("hires")),
                         ("strength", data.get("strength")), ("control", data.get("control")),
                         ("references", data.get("references"))):
        if given not in (None, [], {}):
            errors.setdefault(field, "does not apply to an edit (edit.images are its pictures; the prompt is "
                                     "the instruction)")
    checked = _each(images, "edit", "picture", picture_value, errors)
    if checked is not None:
        params["edit"] = {"images": checked}


# --- the pictures ---------------------------------------------------------------------------

def decode_data_url(value: str) -> bytes:
    match = DATA_URL.fullmatch(value.strip())
    if match is None:
        raise Refused(f"image must be {PICTURE}")
    try:
        return base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise Refused("its data URL does not hold valid base64")


def own_image(user: User, image_id: str) -> Image | None:
    """One of the user's images, not one held for review."""
    return db.session.scalar(sa.select(Image).where(
        Image.id == image_id, Image.user_id == user.id, Image.review.is_distinct_from("held")))


@contextlib.contextmanager
def _about(field: str, where: str):
    """Errors of a picture's checks name the field and the unit ("control: unit 2: ...")."""
    try:
        yield
    except Refused as exc:
        raise ValidationError(field, f"{where}: {exc}") from None
    except ValidationError as exc:
        raise ValidationError(field, f"{where}: {exc.fields.get(field, exc.message)}") from None
    except ServiceError as exc:  # too large, not a picture: the upload's own status
        if exc.field == field and exc.message.startswith(f"{field}: "):
            exc.message = f"{field}: {where}: {exc.message[len(field) + 2:]}"
            exc.args = (exc.message,)
        raise


def _stored(user: User, value: str, field: str, stored: list) -> str:
    """The id of a picture as an image of the user's (a data URL stored as STORED_KIND)."""
    if not value.startswith("data:"):
        if own_image(user, value) is None:
            raise Refused("is not one of your images")
        return value
    data = decode_data_url(value)
    uploads.check_bytes(data, field)
    with uploads.decoded(data, field=field) as (picture, source_format, (width, height)):
        metadata = {"source": STORED_KIND[field], "original_format": source_format,
                    "width": width, "height": height}
        image = storage.save_image(user_id=user.id, picture=picture, metadata=metadata, kind=STORED_KIND[field])
        del picture  # before the decoder's slot is free again
    stored.append(image)
    return image.id


def store_pictures(user: User, params: dict, stored: list) -> None:
    """Make every picture of the task's guides an image id of the user's (module doc).
    New images are appended to `stored` (rows added, files written) as they are made,
    so that a refusal here or later can remove them."""
    for n, unit in enumerate(params.get("control") or (), start=1):
        with _about("control", f"unit {n}"):
            unit["image"] = _stored(user, unit["image"], "control", stored)
    for n, ref in enumerate(params.get("references") or (), start=1):
        with _about("references", f"reference {n}"):
            ref["image"] = _stored(user, ref["image"], "references", stored)
    if params.get("edit"):
        images = params["edit"]["images"]
        for n, value in enumerate(images):
            with _about("edit", f"picture {n + 1}"):
                images[n] = _stored(user, value, "edit", stored)


def picture_size(user: User, value: str) -> tuple[int, int]:
    """(width, height) of a picture as sent, upright, read from its row or its header
    alone (an edit's size comes from its first picture before anything is stored)."""
    with _about("edit", "picture 1"):
        if not value.startswith("data:"):
            image = own_image(user, value)
            if image is None:
                raise Refused("is not one of your images")
            return image.width, image.height
        data = decode_data_url(value)
        uploads.check_bytes(data, "edit")
        try:
            with PILImage.open(io.BytesIO(data), formats=list(uploads.ALLOWED)) as picture:
                width, height = picture.size
                turned = picture.getexif().get(0x0112) in (5, 6, 7, 8)  # EXIF orientation: a quarter turn
        except PILImage.DecompressionBombError:
            raise Refused("has far more pixels than its size suggests (a decompression bomb); scale it down first")
        except uploads.PIL_ERRORS:
            raise Refused("is not a PNG, JPEG or WebP picture that can be read")
        return (height, width) if turned else (width, height)
