"""Staff review of the images the image check held (DAYDREAM_SAFETY=flag, worker/safety.py):
list them, release one (its owner sees it again) or delete it (files and row). Each
decision is a row of the audit trail (services/core/audit.py), committed with it, and
the owner's task tells the outcome (a `task` event; a deletion also leaves a line in the
task's message). A deleted image is not refunded: it was made, and its share of the cost
paid for that."""
from __future__ import annotations

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models import Image, Task, User, iso
from services.core import audit
from services.core.errors import NotFound
from services.generation import tasks as task_service
from services.library import storage

HELD, RELEASED = storage.HELD, "released"
REMOVED_NOTE = "An image of this task was removed by staff after review."


def held_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(Image.review == HELD)) or 0


def _item(image: Image, owner: User | None, task: Task | None) -> dict:
    base = f"/api/v1/admin/moderation/held/{image.id}"
    return {
        "id": image.id,
        "review": image.review,
        "safety_label": image.safety_label,
        "width": image.width, "height": image.height,
        "created_at": iso(image.created_at),
        "owner": {"id": owner.uuid, "username": owner.username} if owner else None,
        "task_id": image.task_id,
        "prompt": task.prompt if task else None,
        "negative_prompt": task.negative_prompt if task else None,
        "url": f"{base}/full",
        "thumbnail_url": f"{base}/thumbnail",
    }


def list_held(*, offset: int, limit: int) -> tuple[list[dict], int]:
    """The held images, oldest first (the longest waiting on top)."""
    total = held_count()
    rows = db.session.execute(
        sa.select(Image, User, Task).join(User, Image.user_id == User.id)
        .outerjoin(Task, Image.task_id == Task.id).where(Image.review == HELD)
        .order_by(Image.created_at, Image.id).offset(offset).limit(limit)).all()
    return [_item(image, owner, task) for image, owner, task in rows], total


def _reviewed(image_id: str) -> Image:
    """An image the image check held (or that staff released): staff's to open."""
    image = db.session.scalar(sa.select(Image).where(Image.id == image_id, Image.review.in_((HELD, RELEASED)))
                              .options(so.joinedload(Image.task)))
    if image is None:
        raise NotFound("No such image held for review.")
    return image


def held_file(image_id: str, variant: str):
    """(path, mimetype) of a reviewed image's picture, for staff."""
    image = _reviewed(image_id)
    if variant == "full":
        return storage.file_of(image), "image/png"
    return storage.file_of(image, "thumbnail"), "image/webp"


def _held(image_id: str) -> Image:
    image = _reviewed(image_id)
    if image.review != HELD:
        raise NotFound("This image is not held for review (it was released already).")
    return image


def _tell_owner(task: Task | None) -> None:
    if task is None:
        return
    task_service.announce_task(task)  # the studio updates the card (a convenience: never raises)


def release(image_id: str, reason: str = "") -> dict:
    """The image is its owner's again, shown as any other."""
    image = _held(image_id)
    image.review = RELEASED
    audit.record("moderation.release", target=image, target_name=image.safety_label or "", reason=reason,
                 details={"owner_id": image.user_id, "task_id": image.task_id})
    db.session.commit()
    owner, task = db.session.get(User, image.user_id), image.task
    _tell_owner(task)
    return _item(image, owner, task)


def delete(image_id: str, reason: str = "") -> None:
    """Delete the image (its row, then its files); its task's message says so."""
    image = _held(image_id)
    task = image.task
    files = storage.files_of([image])
    audit.record("moderation.delete", target=image, target_name=image.safety_label or "", reason=reason,
                 details={"owner_id": image.user_id, "task_id": image.task_id})
    if task is not None and REMOVED_NOTE not in (task.error or ""):
        task.error = f"{task.error} {REMOVED_NOTE}" if task.error else REMOVED_NOTE
    db.session.delete(image)
    db.session.commit()
    storage.remove_files(files)
    if task is not None:
        db.session.refresh(task)
    _tell_owner(task)
