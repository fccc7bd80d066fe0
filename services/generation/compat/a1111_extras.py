"""AUTOMATIC1111's Extras in Daydream's terms (views/compat/a1111.py): its
extra-single-image and extra-batch-images bodies (field names and types as A1111's
modules/api/models.py ExtrasBaseRequest) as upscale tasks, its upscaler names as
Daydream's upscaler ids, and the finished tasks as A1111's answer {html_info, image(s)}.

Each picture is stored as the caller's upload and becomes one charged upscale task
(services/generation/upscales.submit_upscale). A second upscaler (upscaler_2 with
extras_upscaler_2_visibility above 0) is a second upscale task of the same picture,
blended here as A1111 blends them (Image.blend(first, second, visibility)); both tasks'
pictures stay in the caller's gallery and the blend is only answered. Every picture and
every upscale is checked (and the total cost against the balance) before the first task
is submitted, so a refused request stores and charges nothing. An Idempotency-Key makes a
retry answer from the first request's tasks, storing and charging nothing again: the
request's fingerprint is its pictures' bytes and its settings (not the uploads they
become), its first task carries the key and the others keys made from it, so the same
key with another request (here or on another route) is a 422. Face restoration
(gfpgan_visibility, codeformer_visibility above 0) is refused: no face restorer is
installed here. upscale_first and show_extras_results change nothing here."""
from __future__ import annotations

import base64
import hashlib
import html
import io
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from extensions import db
from models import Image, Task, TaskState, User
from services.core.errors import Conflict, NotEnoughTokens, ServiceError, TooLarge, Unavailable, ValidationError
from services.generation import tasks, upscalers, uploads, upscales
from services.generation.compat import common
from services.generation.compat.a1111 import decode_base64_image
from services.generation.compat.common import in_client_terms, rename_fields
from services.generation.compat.holding import wait_for_task
from services.library import storage

MAX_BATCH = 16  # pictures in one extra-batch-images request
MAX_SCALE = upscales.MAX_SCALE
FACE_FIELDS = ("gfpgan_visibility", "codeformer_visibility")
# A1111's latent upscale modes (shared.latent_upscale_modes), as /latent-upscale-modes lists them.
LATENT_MODES = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                "Latent (nearest)", "Latent (nearest-exact)")
NONE_NAME = "None"  # A1111's "no upscaler": its Upscaler.upscale then resizes with Lanczos
A1111_SCALE = 4  # what A1111's UpscalerData says of its resamplers


# --- upscalers by A1111's names ------------------------------------------------------------

def upscaler_list() -> list[dict]:
    """GET /sdapi/v1/upscalers: None, Lanczos, Nearest and the enabled upscaler models, in
    A1111's shape {name, model_name, model_path, model_url, scale}."""
    items = [{"name": NONE_NAME, "model_name": None, "model_path": None, "model_url": None, "scale": A1111_SCALE}]
    for upscaler in upscalers.available():
        if upscaler["builtin"]:
            items.append({"name": upscaler["name"], "model_name": None, "model_path": None, "model_url": None,
                          "scale": A1111_SCALE})
        else:
            items.append({"name": upscaler["name"], "model_name": upscaler.get("architecture") or upscaler["id"],
                          "model_path": upscaler["id"], "model_url": None, "scale": upscaler.get("scale") or 1})
    return items


def latent_modes() -> list[dict]:
    return [{"name": name} for name in LATENT_MODES]


def upscaler_id(name, field: str) -> str:
    """An upscaler id for an A1111 upscaler name: "None" (and nothing) is Lanczos, as A1111
    resizes with it; "Lanczos", "Nearest", an enabled model's name or id, any case."""
    if name is None or (isinstance(name, str) and name.strip().lower() in ("", "none")):
        return upscales.DEFAULT_UPSCALER
    if not isinstance(name, str):
        raise ValidationError(field, "must be an upscaler's name; see GET /sdapi/v1/upscalers")
    wanted = name.strip().lower()
    choices = upscalers.available()
    for upscaler in choices:
        if wanted in (str(upscaler["name"]).lower(), str(upscaler["id"]).lower()):
            return upscaler["id"]
    names = ", ".join([NONE_NAME] + [u["name"] for u in choices])
    raise ValidationError(field, f"'{name[:80]}' is not an upscaler here; choose one of {names}")


# --- the request ---------------------------------------------------------------------------

@dataclass
class Source:
    data: bytes
    name: str
    field: str


@dataclass
class ExtrasJob:
    sources: list[Source]
    upscaler: str  # the first upscaler's id
    second: str | None = None  # the second's, when it is blended in
    visibility: float = 0.0  # the second's share of the blend
    scale: float | None = None  # resize_mode 0
    size: tuple[int, int] | None = None  # resize_mode 1
    crop: bool = True
    names: dict = field(default_factory=dict)  # the upscalers' names as asked for


def _number(body: dict, name: str, default, low: float, high: float, *, whole: bool = False):
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValidationError(name, "must be a number")
    if whole and float(value) != int(value):
        raise ValidationError(name, "must be a whole number")
    if not low <= value <= high:
        raise ValidationError(name, f"must be from {low:g} to {high:g}")
    return int(value) if whole else float(value)


def _flag(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ValidationError(name, "must be true or false")
    return value


@in_client_terms
def extras_job(body: dict, *, batch: bool) -> ExtrasJob:
    """The request checked in A1111's terms (complaints name its fields), the pictures
    decoded from base64; nothing is stored yet."""
    for name in FACE_FIELDS:
        if _number(body, name, 0.0, 0, 1) > 0:
            raise ValidationError(name, "face restoration is not available here (no face restorer is "
                                        "installed); send 0")
    _number(body, "codeformer_weight", 0.0, 0, 1)
    _flag(body, "show_extras_results", True)
    _flag(body, "upscale_first", False)
    mode = body.get("resize_mode")
    mode = 0 if mode is None else mode
    if isinstance(mode, bool) or mode not in (0, 1):
        raise ValidationError("resize_mode", "must be 0 (scale by upscaling_resize) or 1 (scale to "
                                             "upscaling_resize_w × upscaling_resize_h)")
    job = ExtrasJob(sources=[], upscaler=upscaler_id(body.get("upscaler_1"), "upscaler_1"))
    job.names["upscaler_1"] = body.get("upscaler_1") if isinstance(body.get("upscaler_1"), str) else NONE_NAME
    if mode == 0:
        job.scale = _number(body, "upscaling_resize", 2.0, 1, MAX_SCALE)
        if job.scale <= 1:
            raise ValidationError("upscaling_resize", f"must be more than 1 (and at most {MAX_SCALE:g}): "
                                                      "there is nothing else to do here")
    else:
        job.size = (_number(body, "upscaling_resize_w", 512, 1, upscales.MAX_SIDE, whole=True),
                    _number(body, "upscaling_resize_h", 512, 1, upscales.MAX_SIDE, whole=True))
        job.crop = _flag(body, "upscaling_crop", True)
    visibility = _number(body, "extras_upscaler_2_visibility", 0.0, 0, 1)
    second = body.get("upscaler_2")
    if visibility > 0 and not (second is None or (isinstance(second, str) and second.strip().lower() in ("", "none"))):
        job.second = upscaler_id(second, "upscaler_2")
        job.visibility = visibility
        job.names["upscaler_2"] = second
    if batch:
        items = body.get("imageList")
        if not isinstance(items, list) or not items:
            raise ValidationError("imageList", "send a list of {data: base64 image, name}")
        if len(items) > MAX_BATCH:
            raise ValidationError("imageList", f"at most {MAX_BATCH} pictures a request")
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise ValidationError("imageList", "each item must be {data: base64 image, name}")
            name = item.get("name") if isinstance(item.get("name"), str) else f"image{index + 1:05}"
            job.sources.append(Source(decode_base64_image(item.get("data"), "imageList"), name[:200], "imageList"))
    else:
        job.sources.append(Source(decode_base64_image(body.get("image"), "image"), "image", "image"))
    return job


# --- storing and submitting ------------------------------------------------------------------

def _store(user: User, source: Source, job: ExtrasJob) -> Image:
    """The picture as the caller's upload (the upload checks: format, pixels, bombs), cut
    to the asked shape first when resize_mode 1 crops (A1111 crops the upscaled picture
    around its middle: the same pixels)."""
    data = source.data
    if job.size is not None and job.crop:
        try:
            with uploads.decoded(data, field=source.field) as (picture, _format, (width, height)):
                want_w, want_h = job.size
                if abs(width / height - want_w / want_h) > 1e-3:
                    if width / height > want_w / want_h:  # too wide
                        keep = max(1, round(height * want_w / want_h))
                        box = ((width - keep) // 2, 0, (width - keep) // 2 + keep, height)
                    else:
                        keep = max(1, round(width * want_h / want_w))
                        box = (0, (height - keep) // 2, width, (height - keep) // 2 + keep)
                    out = io.BytesIO()
                    picture.crop(box).save(out, format="PNG")
                    data = out.getvalue()
                del picture
        except (Unavailable, TooLarge, ValidationError):
            raise
        except ServiceError as exc:
            raise ValidationError(source.field, exc.message.removeprefix(f"{source.field}: "))
    return common.store_init_image(user, data, source.field)


def _size_fields(job: ExtrasJob, image: Image) -> dict:
    if job.scale is not None:
        return {"scale": job.scale}
    want_w, want_h = job.size
    if job.crop:
        return {"width": want_w, "height": want_h}
    scale = max(want_w / image.width, want_h / image.height)  # A1111: the larger ratio, no crop
    return {"width": max(1, round(image.width * scale)), "height": max(1, round(image.height * scale))}


NAMES = {"scale": "upscaling_resize", "width": "upscaling_resize_w", "height": "upscaling_resize_h"}


def _checked(user: User, data: dict, job: ExtrasJob, source: Source, upscaler_field: str) -> dict:
    """upscales.upscale_params of one upscale, its complaints in A1111's terms."""
    try:
        return upscales.upscale_params(user, data)
    except ValidationError as exc:
        names = {**NAMES, "upscaler": upscaler_field, "image": source.field}
        if job.size is None:
            names.update(width="upscaling_resize", height="upscaling_resize")
        raise rename_fields(exc, names)


def fingerprint(user: User, job: ExtrasJob) -> str:
    """The request's fingerprint (tasks.request_fingerprint): its pictures by their bytes
    as sent (a retry sends them again; they become new uploads) and its settings."""
    return tasks.request_fingerprint(user, {
        "kind": "a1111-extras", "field": job.sources[0].field if job.sources else None,
        "pictures": [[hashlib.sha256(source.data).hexdigest(), source.name] for source in job.sources],
        "upscaler": job.upscaler, "second": job.second, "visibility": job.visibility, "scale": job.scale,
        "size": list(job.size) if job.size else None, "crop": job.crop})


def task_keys(key: str | None, count: int) -> list[str | None]:
    """The Idempotency-Key of each of a request's `count` tasks: the first carries the
    key as sent (so another route's request with it is told apart), the others keys made
    from it."""
    if not key:
        return [None] * count
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
    return [key] + [f"a1111-extras:{n}:{digest}" for n in range(1, count)]


def _earlier(user: User, keys: list[str | None], fingerprint_: str | None) -> dict[int, Task]:
    """The tasks an earlier request with these keys made ({position: task}); a 422
    (idempotency_key_reused) when one of them was for another request."""
    wanted = {key: n for n, key in enumerate(keys) if key}
    if not wanted:
        return {}
    found = db.session.scalars(sa.select(Task).where(Task.user_id == user.id,
                                                     Task.idempotency_key.in_(list(wanted)))).all()
    return {wanted[task.idempotency_key]: tasks._same_request(task, fingerprint_) for task in found}


def submit_extras(user: User, job: ExtrasJob, idempotency_key: str | None = None) -> list[list[Task]]:
    """Store the pictures, check every upscale and the total cost, then submit them:
    for each picture [its upscale task, its second upscaler's task?]. A refusal stores
    and charges nothing (a later submit's refusal cancels, and so refunds, the earlier,
    and takes their keys off them: a retry starts afresh). With an Idempotency-Key, the
    tasks an earlier request with it made are answered again, their pictures not stored
    again; only those it did not make (it was refused part-way, or is still submitting)
    are submitted."""
    key = (idempotency_key or "").strip()[:255] or None
    request_print = fingerprint(user, job) if key else None
    upscaler_ids = [job.upscaler] + ([job.second] if job.second is not None else [])
    layout = [(index, which) for index in range(len(job.sources)) for which in range(len(upscaler_ids))]
    keys = task_keys(key, len(layout))
    made = _earlier(user, keys, request_print)
    stored: dict[int, Image] = {}
    submitted: list[Task] = []
    try:
        plans = []  # (position, body, params) of the tasks still to submit
        for index, source in enumerate(job.sources):
            wanted = [(n, which) for n, (i, which) in enumerate(layout) if i == index and n not in made]
            if not wanted:
                continue
            image = stored[index] = _store(user, source, job)
            size = _size_fields(job, image)
            for n, which in wanted:
                body = {"image": image.id, "upscaler": upscaler_ids[which], **size}
                plans.append((n, body, _checked(user, body, job, source, f"upscaler_{which + 1}")))
        total = sum(upscales.upscale_cost(user, params) for _n, _body, params in plans)
        if total > (user.tokens or 0) and total > 0:
            raise NotEnoughTokens(f"This needs {total} tokens and you have {user.tokens}. Ask for a smaller "
                                  "scale or fewer pictures, or ask staff for more tokens.")
        for n, body, _params in plans:
            task = upscales.submit_upscale(user, body, keys[n], fingerprint=request_print)
            if (task.upscale or {}).get("image") == body["image"]:
                submitted.append(task)  # (else another request with the key made it meanwhile)
            made[n] = task
    except Exception:
        cancel_unfinished(submitted, forget_keys=True)
        if not submitted:
            for image in stored.values():
                common.discard_upload(image)
        raise
    used = {(task.upscale or {}).get("image") for task in submitted}
    for image in stored.values():
        if image.id not in used:  # another request with the key made its tasks meanwhile
            common.discard_upload(image)
    return [[made[n] for n, (i, _which) in enumerate(layout) if i == index] for index in range(len(job.sources))]


def cancel_unfinished(started: list[Task], *, only_queued: bool = False, forget_keys: bool = False) -> None:
    """Cancel (and so refund) those of the tasks that have not finished (or not started);
    forget_keys: and take their Idempotency-Keys off them (a refused request's)."""
    wanted = [TaskState.QUEUED.value] if only_queued else list(TaskState.unfinished())
    for task in started:
        row = db.session.get(Task, task.id)
        if row is not None and row.state in wanted:
            try:
                tasks.cancel(row)
            except Conflict:
                pass  # it finished meanwhile
    if forget_keys and started:
        db.session.execute(sa.update(Task).where(Task.id.in_([task.id for task in started]))
                           .values(idempotency_key=None).execution_options(synchronize_session=False))
        db.session.commit()


def wait_all(groups: list[list[Task]], pause) -> list[list[Task]] | None:
    """Hold until every task ended (holding.wait_for_task); None when the client went away
    (the tasks not started yet are canceled, refunded). At the deadline every unfinished
    one is canceled (refunded) and TimedOut raised."""
    flat = [task for group in groups for task in group]
    done: dict[str, Task] = {}
    for task in flat:
        try:
            finished = wait_for_task(task, pause=pause)
        except Exception:  # timed out (that task canceled): the others are not waited for either
            cancel_unfinished([t for t in flat if t.id not in done])
            raise
        if finished is None:  # as wait_for_task does: what has not started is canceled
            cancel_unfinished([t for t in flat if t.id not in done], only_queued=True)
            return None
        done[task.id] = finished
    return [[done[task.id] for task in group] for group in groups]


# --- the answer --------------------------------------------------------------------------------

class UpscaleFailed(ServiceError):
    status = 500
    code = "generation_failed"


def _result(task: Task) -> Image:
    if task.state == TaskState.FAILED.value:
        raise UpscaleFailed(task.error or "The upscale failed; your tokens were refunded.")
    if task.state == TaskState.CANCELED.value:
        raise Conflict("The upscale was canceled; your tokens were refunded.")
    images = [image for image in task.images if image.review != "held"]
    if not images:
        raise Conflict("The upscaled picture is held for review; staff will look at it.")
    return images[0]


def _name_of(upscaler: str) -> str:
    found = upscalers.find(upscaler)
    return found["name"] if found else upscaler


def infotext(job: ExtrasJob, task: Task) -> str:
    """A1111's extras infotext: "Postprocess upscale by: 2, Postprocess upscaler: Lanczos"."""
    parts = []
    if job.scale is not None:
        parts.append(f"Postprocess upscale by: {job.scale:g}")
    else:
        parts.append(f"Postprocess upscale to: {job.size[0]}x{job.size[1]}")
        if job.crop:
            parts.append(f"Postprocess crop to: {job.size[0]}x{job.size[1]}")
    parts.append(f"Postprocess upscaler: {_name_of(job.upscaler)}")
    if job.second is not None:
        parts.append(f"Postprocess upscaler 2: {_name_of(job.second)}")
        parts.append(f"Postprocess upscaler 2 visibility: {job.visibility:g}")
    return ", ".join(parts)


def html_info(text: str) -> str:
    """A1111's plaintext_to_html."""
    return "<p>" + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"


def _blend(first: Image, second: Image, visibility: float, text: str) -> str:
    """The two upscales blended as A1111 does (the second's share is `visibility`), as a
    base64 PNG carrying the extras infotext. Decoded within the upload decoders' budget."""
    slots = uploads.decode_slots(current_app._get_current_object())
    if not slots.acquire(timeout=current_app.config["UPLOAD_WAIT"]):
        raise Unavailable("The server is busy processing other pictures; try again in a few seconds.",
                          code="uploads_busy", headers={"Retry-After": "5"})
    try:
        with PILImage.open(storage.path_of(first)) as a, PILImage.open(storage.path_of(second)) as b:
            one, two = a.convert("RGB"), b.convert("RGB")
        if two.size != one.size:
            two = two.resize(one.size, PILImage.Resampling.LANCZOS)
        blended = PILImage.blend(one, two, visibility)
        del one, two
        info = PngInfo()
        info.add_text("parameters", text)
        out = io.BytesIO()
        blended.save(out, format="PNG", pnginfo=info)
        del blended
    finally:
        slots.release()
    return base64.b64encode(out.getvalue()).decode("ascii")


def answer(job: ExtrasJob, groups: list[list[Task]]) -> tuple[list[str], str]:
    """([base64 PNG of each picture, in the order sent], the html_info)."""
    images, texts = [], []
    for group in groups:
        results = [_result(task) for task in group]
        text = infotext(job, group[0])
        if len(results) == 2:
            images.append(_blend(results[0], results[1], job.visibility, text))
        else:
            images.append(common.image_base64(results[0]))
        texts.append(text)
    return images, html_info(texts[-1] if texts else "")
