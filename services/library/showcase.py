"""The public showcase (/gallery, and the landing page's artwork): images that staff
featured, shown only while their owner keeps them public, plus the picture files
dropped into the showcase folder on the server (DAYDREAM_SHOWCASE_PATH), picked up
automatically. Staff can hide any of them.

Items are addressed by an id: a featured image's own id, or for a folder file
`file_` and a digest of its name (never the name itself)."""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from PIL import Image as PILImage

from extensions import db
from models import Image, ShowcaseEntry, User, iso
from services.core import audit
from services.core.errors import Conflict, NotFound, ValidationError
from services.library import imaging, storage

log = logging.getLogger(__name__)

EXTENSIONS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
SCAN_TTL_S = 10.0  # the folder is scanned again after this, or at once when it changes
MAX_FOLDER_FILES = 2000
FILE_PREFIX = "file_"

_lock = threading.Lock()
_scans: dict[str, tuple[float, int, list["FolderFile"]]] = {}  # folder -> (when, its mtime, files)


@dataclass(frozen=True)
class FolderFile:
    key: str
    name: str  # relative to the showcase folder
    path: Path
    mtime: float
    size: int
    width: int
    height: int
    prompt: str

    @property
    def mimetype(self) -> str:
        return EXTENSIONS[self.path.suffix.lower()]


def folder() -> Path:
    return Path(current_app.config["SHOWCASE_PATH"])


def file_key(name: str) -> str:
    return FILE_PREFIX + hashlib.sha1(name.encode("utf-8")).hexdigest()[:17]


def _title(name: str) -> str:
    stem = Path(name).stem.replace("_", " ").replace("-", " ")
    return " ".join(stem.split()).capitalize() or "Untitled"


def _read(path: Path, name: str, stat: os.stat_result) -> FolderFile | None:
    try:
        with PILImage.open(path) as picture:  # reads the header, not the pixels
            width, height = picture.size
        prompt = imaging.read_metadata(path).get("prompt", "") if path.suffix.lower() == ".png" else ""
    except Exception as exc:  # not a picture after all: left out, and said why
        log.warning("showcase: skipping %s (%s)", path, exc)
        return None
    return FolderFile(key=file_key(name), name=name, path=path, mtime=stat.st_mtime, size=stat.st_size,
                      width=width, height=height, prompt=str(prompt or "")[:300])


def _scan(root: Path, previous: list[FolderFile]) -> list[FolderFile]:
    known = {(f.name, f.mtime, f.size): f for f in previous}
    found: list[FolderFile] = []
    for directory, subdirs, names in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for filename in sorted(names):
            if filename.startswith(".") or Path(filename).suffix.lower() not in EXTENSIONS:
                continue
            path = Path(directory) / filename
            try:
                stat = path.stat()
            except OSError:
                continue
            name = path.relative_to(root).as_posix()
            entry = known.get((name, stat.st_mtime, stat.st_size)) or _read(path, name, stat)
            if entry:
                found.append(entry)
            if len(found) >= MAX_FOLDER_FILES:
                return found
    return found


def folder_files() -> list[FolderFile]:
    """The showcase folder's pictures, newest first; scanned again when the folder
    changes (a file dropped in or removed) or every SCAN_TTL_S seconds."""
    root = folder()
    try:
        mtime = root.stat().st_mtime_ns
    except OSError:
        return []
    with _lock:
        scanned_at, seen_mtime, files = _scans.get(str(root), (0.0, -1, []))
        if seen_mtime != mtime or time.monotonic() - scanned_at > SCAN_TTL_S:
            files = sorted(_scan(root, files), key=lambda f: (-f.mtime, f.name))
            _scans[str(root)] = (time.monotonic(), mtime, files)
        return files


# --- what visitors see ------------------------------------------------------------------

def _image_item(image: Image, entry: ShowcaseEntry | None) -> dict:
    task = image.task
    base = f"/api/v1/showcase/{image.id}"
    return {
        "id": image.id, "kind": "featured", "title": (task.prompt if task else "") or "Untitled",
        "prompt": task.prompt if task else "", "width": image.width, "height": image.height,
        "url": f"{base}/full", "thumbnail_url": f"{base}/thumbnail",
        "featured": entry is not None, "hidden": bool(entry and entry.hidden),
        "added_at": iso(entry.created_at if entry else image.created_at),
    }


def _file_item(item: FolderFile, hidden: bool) -> dict:
    base = f"/api/v1/showcase/{item.key}"
    return {
        "id": item.key, "kind": "folder", "title": item.prompt or _title(item.name), "prompt": item.prompt,
        "width": item.width, "height": item.height, "url": f"{base}/full", "thumbnail_url": f"{base}/thumbnail",
        "featured": True, "hidden": hidden, "file": item.name,
        "added_at": iso(time_from(item.mtime)),
    }


def time_from(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)


def items(*, include_hidden: bool = False) -> list[dict]:
    """Everything the showcase shows, newest first. A featured image shows only while
    its owner keeps it public; include_hidden (staff) adds what staff hid."""
    featured = sa.select(ShowcaseEntry, Image).join(Image, ShowcaseEntry.image_id == Image.id).where(
        Image.public.is_(True), storage.not_held())
    if not include_hidden:
        # nor what a teacher hid (issue 27: Image.hidden_by_id), nor a deactivated owner's
        featured = featured.where(ShowcaseEntry.hidden.is_(False), Image.hidden_by_id.is_(None),
                                  Image.user_id.in_(_active_users()))
    result = [_image_item(image, entry) for entry, image in db.session.execute(featured).all()]
    hidden_files = set(db.session.scalars(sa.select(ShowcaseEntry.file_key).where(
        ShowcaseEntry.file_key.is_not(None), ShowcaseEntry.hidden.is_(True))))
    for item in folder_files():
        if include_hidden or item.key not in hidden_files:
            result.append(_file_item(item, item.key in hidden_files))
    result.sort(key=lambda i: i["added_at"] or "", reverse=True)
    return result


def _active_users():
    """The ids of the accounts whose public images may show (not deactivated)."""
    return sa.select(User.id).where(User.active.is_(True))


def page(*, offset: int, limit: int, include_hidden: bool = False) -> tuple[list[dict], int]:
    everything = items(include_hidden=include_hidden)
    return everything[offset:offset + limit], len(everything)


def _folder_file(item_id: str) -> FolderFile | None:
    return next((f for f in folder_files() if f.key == item_id), None)


def _entry(**where) -> ShowcaseEntry | None:
    return db.session.scalar(sa.select(ShowcaseEntry).filter_by(**where))


def file_of(item_id: str, variant: str, *, staff: bool = False) -> tuple[Path, str]:
    """(path, mimetype) of a showcase item's picture ("full" or "thumbnail"). Visitors
    get only what the showcase shows; staff also any public image (to pick from) and
    what they hid. Anything else is a 404."""
    if item_id.startswith(FILE_PREFIX):
        item = _folder_file(item_id)
        entry = _entry(file_key=item_id)
        if item is None or (entry and entry.hidden and not staff):
            raise NotFound("No such showcase image.")
        if variant == "full":
            return item.path, item.mimetype
        return _folder_thumbnail(item), "image/webp"
    image = db.session.scalar(sa.select(Image).where(Image.id == item_id, Image.public.is_(True),
                                                     storage.not_held()))
    entry = _entry(image_id=item_id) if image else None
    shown = (entry is not None and not entry.hidden and image.hidden_by_id is None
             and db.session.get(User, image.user_id).active)
    if image is None or not (shown or staff):
        raise NotFound("No such showcase image.")
    if variant == "full":
        return storage.file_of(image), "image/png"
    return storage.file_of(image, "thumbnail"), "image/webp"


def _folder_thumbnail(item: FolderFile) -> Path:
    """A WebP thumbnail of a folder file, made once (kept in the instance folder)."""
    cache = Path(current_app.config["INSTANCE_PATH"]) / "cache" / "showcase"
    path = cache / f"{item.key}-{int(item.mtime)}-{item.size}.webp"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with PILImage.open(item.path) as picture:
            data = imaging.encode_thumbnail(picture)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path


# --- staff curation ----------------------------------------------------------------------

# `reason` (None: the caller records the action itself, as moderation does): the staff
# action's row in the audit trail, committed with it.

def _audit(action: str, item_id: str, reason: str | None, title: str = "") -> None:
    if reason is not None:
        kind = "showcase_file" if item_id.startswith(FILE_PREFIX) else "image"
        audit.record(action, target_type=kind, target_id=item_id, target_name=title, reason=reason)


def feature(staff: User, image_id, reason: str | None = None) -> dict:
    """Feature a user's public image (again, if staff had hidden it)."""
    if not isinstance(image_id, str) or not image_id:
        raise ValidationError("image_id", "must be the id of a public image")
    image = db.session.get(Image, image_id)
    if image is None:
        raise NotFound("No such image.")
    if not image.public:
        raise Conflict("Its owner has not made this image public; only public images can be "
                       "featured.", code="not_public")
    entry = _entry(image_id=image_id)
    if entry is None:
        entry = ShowcaseEntry(image_id=image_id, curated_by_id=staff.id)
        db.session.add(entry)
    entry.hidden = False
    entry.curated_by_id = staff.id
    _audit("showcase.feature", image_id, reason)
    db.session.commit()
    return _image_item(image, entry)


def unfeature(item_id: str, reason: str | None = None) -> None:
    """Take a featured image out of the showcase (its owner's image is untouched)."""
    if item_id.startswith(FILE_PREFIX):
        raise Conflict("This picture comes from the showcase folder: hide it, or remove the "
                       "file from the folder.", code="folder_file")
    entry = _entry(image_id=item_id)
    if entry is None:
        raise NotFound("This image is not featured.")
    db.session.delete(entry)
    _audit("showcase.unfeature", item_id, reason)
    db.session.commit()


def set_hidden(staff: User, item_id: str, hidden, reason: str | None = None) -> dict:
    if not isinstance(hidden, bool):
        raise ValidationError("hidden", "must be true or false")
    if item_id.startswith(FILE_PREFIX):
        item = _folder_file(item_id)
        if item is None:
            raise NotFound("No such showcase image.")
        entry = _entry(file_key=item_id)
        if entry is None:
            entry = ShowcaseEntry(file_key=item_id)
            db.session.add(entry)
        entry.hidden, entry.curated_by_id = hidden, staff.id
        _audit("showcase.hide" if hidden else "showcase.show", item_id, reason, item.name)
        db.session.commit()
        return _file_item(item, hidden)
    entry = _entry(image_id=item_id)
    image = entry.image if entry else None
    if entry is None or image is None or not image.public:
        raise NotFound("No such showcase image.")
    entry.hidden, entry.curated_by_id = hidden, staff.id
    _audit("showcase.hide" if hidden else "showcase.show", item_id, reason)
    db.session.commit()
    return _image_item(image, entry)


def candidates(*, offset: int, limit: int) -> tuple[list[dict], int]:
    """Public images that are not featured (or that staff hid), newest first: what
    staff can feature."""
    shown = sa.select(ShowcaseEntry.image_id).where(ShowcaseEntry.image_id.is_not(None),
                                                   ShowcaseEntry.hidden.is_(False))
    where = (Image.public.is_(True), Image.id.not_in(shown), storage.not_held(), Image.hidden_by_id.is_(None))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(*where))
    rows = db.session.scalars(sa.select(Image).where(*where).order_by(
        Image.created_at.desc(), Image.id).offset(offset).limit(limit)).all()
    return [_image_item(image, _entry(image_id=image.id)) | {"featured": False} for image in rows], total
