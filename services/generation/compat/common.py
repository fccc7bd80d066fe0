"""What both compatibility APIs (views/compat/: AUTOMATIC1111's /sdapi/v1 and OpenAI's
/v1/images) share: models by any of their names, complaints in the client's own field
names, the pictures a request brings (stored as the caller's uploads, discarded when the
submit is refused) and the pictures an answer carries (base64, or signed links)."""
from __future__ import annotations

import base64
import binascii
import hashlib
import io
import logging
import re
from collections.abc import Callable

import sqlalchemy as sa
from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from extensions import db
from models import AiModel, Image, Task, User
from services.core.errors import NotFound, ServiceError, TooLarge, Unavailable, ValidationError
from services.generation import access, catalog, masks, tasks, uploads
from services.generation.params import fit_size, model_limits
from services.library import storage

log = logging.getLogger(__name__)

URL_TTL = 3600  # seconds a signed image link works
URL_SALT = "daydream-compat-image"


class LinkExpired(ServiceError):
    status = 410
    code = "link_expired"


# --- models ----------------------------------------------------------------------

def short_hash(model_id: str) -> str:
    """A stable 10-hex-digit "hash" like the one A1111 shows in a checkpoint's title."""
    return hashlib.sha256(model_id.encode()).hexdigest()[:10]


def model_title(row: AiModel) -> str:
    """A1111's checkpoint title, "name [hash]"."""
    return f"{row.name} [{short_hash(row.id)}]"


def find_model(name) -> AiModel | None:
    """An enabled model by id, name, A1111-style title ("name [hash]"), file name
    (with or without .safetensors / .ckpt) or hash; any case."""
    if not isinstance(name, str) or not name.strip():
        return None
    wanted = name.strip().lower()
    bare = re.sub(r"\s*\[[0-9a-f]{8,64}\]$", "", wanted)
    stems = {wanted, bare} | {w[: -len(ext)] for w in (wanted, bare) for ext in catalog.CHECKPOINTS
                              if w.endswith(ext)}
    rows = catalog.enabled_models()
    for test in (lambda r: r.id.lower() in stems,
                 lambda r: model_title(r).lower() == wanted,
                 lambda r: r.name.lower() in stems,
                 lambda r: short_hash(r.id) in (wanted, bare) or f"[{short_hash(r.id)}]" in wanted):
        for row in rows:
            if test(row):
                return row
    return None


def user_default_model(user: User) -> str:
    """The model the caller chose with POST /sdapi/v1/options (sd_model_checkpoint,
    kept on their own row), while it is enabled and theirs to use; else their default
    (access.py: the server's, or the first they may use)."""
    usable = access.usable_model_ids(user)
    if user.api_model and user.api_model in usable:
        return user.api_model
    return access.default_model_for(user, usable)


def set_user_default_model(user: User, name, field: str = "sd_model_checkpoint") -> AiModel:
    """The caller's own default model for these APIs; nothing server-wide changes."""
    row = find_model(name)
    if row is None:
        raise ValidationError(field, f"'{str(name)[:80]}' is not an available model; see GET /sdapi/v1/sd-models")
    access.check_model(user, row.id, field=field, shown=str(name))
    user.api_model = row.id
    db.session.commit()
    return row


def resolve_model(user: User, name, field: str) -> str:
    """A model asked for by any of its names, or the caller's default when none is given."""
    if name is None or name == "":
        return user_default_model(user)
    row = find_model(name)
    if row is None:
        raise ValidationError(field, f"'{str(name)[:80]}' is not an available model")
    access.check_model(user, row.id, field=field, shown=str(name))  # (422 model_not_available)
    return row.id


def fit_to_card(params: dict) -> dict:
    """Drop what the model's card says it ignores (FLUX.1 schnell takes no guidance,
    FLUX no negative prompt) instead of refusing: these clients send them by default."""
    card = catalog.cards().get(params.get("model") or catalog.default_model())
    if card is not None:
        if not card.uses_guidance:
            params.pop("guidance", None)
        if not card.uses_negative_prompt:
            params.pop("negative_prompt", None)
    return params


# --- complaints in the client's terms ------------------------------------------------

def rename_fields(exc: ValidationError, names: dict[str, str]) -> ValidationError:
    """The same complaint, naming the client API's fields instead of Daydream's (a
    complaint made while translating names the client's field already)."""
    if getattr(exc, "client_field", False):
        return exc
    fields = {names.get(name, name): message for name, message in exc.fields.items()}
    field = names.get(exc.field, exc.field)
    renamed = ValidationError(field, fields.get(field) or exc.message, fields=fields)
    renamed.headers = exc.headers
    return renamed


def in_client_terms(translate):
    """Complaints raised while translating name the client's own fields: not renamed."""
    def wrapper(*args, **kwargs):
        try:
            return translate(*args, **kwargs)
        except ValidationError as exc:
            exc.client_field = True
            raise
    wrapper.__doc__, wrapper.__name__ = translate.__doc__, translate.__name__
    return wrapper


def truthy(value) -> bool:
    return bool(value) and value not in ("0", "false", "False")


# --- pictures in: the caller's uploads ----------------------------------------------

DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)


def decode_base64_image(value, field: str) -> bytes:
    """A picture sent base64-encoded (a data URL's prefix allowed), within the body limit;
    complaints name `field`, the client's own."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "must be a base64-encoded PNG, JPEG or WebP image")
    value = value.strip()
    if value.startswith(("http://", "https://")):
        raise ValidationError(field, "image links are not fetched; send the image itself, base64-encoded")
    value = re.sub(r"\s+", "", DATA_URL.sub("", value))
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if len(value) > limit * 4 // 3 + 4:
        raise TooLarge(f"The image is larger than {limit // (1024 * 1024)} MB; scale it down first.")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(field, "is not valid base64: send a base64-encoded PNG, JPEG or WebP image")


def data_url(data: bytes) -> str:
    """A picture's bytes as a data URL, as the native guide fields (control, references,
    edit) take one; the picture itself is checked where the task stores it."""
    mime = "image/jpeg" if data[:3] == b"\xff\xd8\xff" else "image/webp" if data[8:12] == b"WEBP" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def store_init_image(user: User, data: bytes, field: str) -> Image:
    """The init image stored as the user's upload, by the studio's upload checks (format,
    pixels, decompression bombs, decode budget); their complaints name `field`."""
    try:
        return uploads.store_upload(user, io.BytesIO(data), None)
    except (Unavailable, TooLarge):
        raise
    except ValidationError as exc:
        raise ValidationError(field, exc.fields.get("file") or exc.message)
    except ServiceError as exc:  # not an image, damaged, another format
        raise ValidationError(field, exc.message)


def store_mask_image(user: User, data: bytes, reading: str, picture: Image, field: str) -> Image:
    """The mask stored as the user's mask image at the picture's size (masks.store_mask),
    read as the client's API defines it; its complaints are 422s naming `field`, as the
    picture's are (store_init_image)."""
    try:
        return masks.store_mask(user, data, reading=reading, picture=picture, field=field)
    except (Unavailable, TooLarge, ValidationError):
        raise
    except ServiceError as exc:  # not an image, damaged, another format
        message = exc.message.removeprefix(f"{field}: ")
        raise ValidationError(field, message)


def discard_upload(image: Image | None) -> None:
    """Remove an init image (or a mask) stored for a request whose task was refused."""
    if image is None:
        return
    try:
        db.session.rollback()
        row = db.session.get(Image, image.id)
        if row is not None:
            relatives = storage.files_of([row])
            db.session.delete(row)
            db.session.commit()
            storage.remove_files(relatives)
    except Exception as exc:  # tidying only
        log.warning("could not remove the refused request's picture: %s", exc)
        db.session.rollback()


def submit_with_picture(user: User, params: dict, data: bytes, field: str, idempotency_key: str | None, *,
                        size_from_picture: bool = False, mask: bytes | None = None, mask_reading: str = "native",
                        mask_field: str = "mask", on_stored: Callable[[dict, str], None] | None = None) -> Task:
    """Submit a task that starts from a picture the request brought: `data` is stored as
    the caller's upload (complaints name `field`, the client's own) and becomes the task's
    init image. With `mask` (the mask's file as sent), the mask is read as the client's API
    defines it (`mask_reading`: "a1111" or "openai"), scaled to the stored picture and
    stored as the caller's mask image (complaints name `mask_field`); the task gets its id.
    Both are removed again when the submit is refused (nothing is charged then), or when an
    earlier request with the same Idempotency-Key answers with its own task.
    size_from_picture: with no width asked for, the picture's own shape (image_size).
    on_stored(params, picture id): what else in params takes the stored picture (an A1111
    ControlNet unit sent without a picture of its own takes the init image)."""
    init = store_init_image(user, data, field)
    stored_mask = None
    try:
        params["init_image"] = init.id
        if on_stored is not None:
            on_stored(params, init.id)
        if mask is not None:
            stored_mask = store_mask_image(user, mask, mask_reading, init, mask_field)
            params["mask"] = stored_mask.id
        if size_from_picture and "width" not in params:
            params["width"], params["height"] = image_size(init, params["model"], user)
        task = tasks.submit_task(user, params, idempotency_key)
    except Exception:
        discard_upload(stored_mask)
        discard_upload(init)
        raise
    if stored_mask is not None and getattr(task, "mask_image_id", None) != stored_mask.id:
        discard_upload(stored_mask)  # an earlier request's task, with its own mask
    if task.init_image_id != init.id:
        discard_upload(init)  # an earlier request with the same Idempotency-Key: its own picture
    return task


def image_size(image: Image, model_id: str, user: User) -> tuple[int, int]:
    """A size for image-to-image when the client gives none: the init image's shape,
    in the card's size steps, within the caller's limits."""
    card = catalog.cards().get(model_id) or catalog.card_for(model_id)
    limits = model_limits(tasks.limits_for(user), card)
    step = card.size_step
    width, height = image.width, image.height
    side = limits.get("max_side") or card.max_side
    if max(width, height) > side:
        scale = side / max(width, height)
        width, height = width * scale, height * scale
    width, height = max(64, int(width) // step * step), max(64, int(height) // step * step)
    return fit_size(width, height, limits, step)


# --- pictures out ------------------------------------------------------------------

def image_base64(image: Image) -> str:
    return base64.b64encode(storage.path_of(image).read_bytes()).decode("ascii")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=URL_SALT)


def signed_token(image: Image) -> str:
    return _serializer().dumps({"i": image.id, "u": image.user_id})


def image_for_token(token: str) -> Image:
    """The image a signed link names, within URL_TTL of its making; the image must
    still be its owner's, its owner active, and the image neither held for review nor
    hidden by a teacher: a link stops working once its owner is deactivated or deleted,
    or the image is held or hidden."""
    try:
        data = _serializer().loads(token, max_age=URL_TTL)
    except SignatureExpired:
        raise LinkExpired("This image link has expired (links work for 60 minutes); ask for the image again.")
    except BadSignature:
        raise NotFound("No such image.")
    if not isinstance(data, dict):
        raise NotFound("No such image.")
    image = db.session.scalar(sa.select(Image).join(User, User.id == Image.user_id).where(
        Image.id == str(data.get("i")), Image.user_id == data.get("u"), User.active.is_(True),
        storage.not_held(), Image.hidden_by_id.is_(None)))
    if image is None:
        raise NotFound("No such image.")
    return image
