"""ZIP archives of images: PNGs with their metadata, named by the server, stored
without recompression (PNG is compressed already), plus a manifest.csv of the
parameters of every image. An inpainted image's mask (an image of its own) goes into
the ZIP with it, once, as mask_{image id}.png; the manifest names it in its `mask` column
and carries the inpaint settings as JSON in `inpaint`, and a task's guides (issue 25: its
ControlNet units, reference images and edit, their pictures by image id) as JSON in
`control`, `references` and `edit`.

Two ways out, one writer (write_zip):
- a task's samples are streamed as the ZIP is written (stream_zip), no file kept;
- a selection, a board or a whole account is built in the background by the archive
  worker (qarchiver.py → worker/archive_jobs.py → build()) into a file under
  ARCHIVES_PATH, downloaded from there, and deleted when it expires (expire_archives).

Neither holds an archive in memory: entries are copied a block at a time, image rows
are read in batches and the manifest is spooled to disk once it grows."""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path

import redis
import sqlalchemy as sa
import sqlalchemy.orm as so
from flask import current_app
from rq import Queue
from rq.job import Job, JobStatus

from extensions import db
from models import Archive, ArchiveState, Image, User, utcnow
from services.core import events, keys, liveness, redis_client, transitions
from services.core.errors import Conflict, NotFound, QueueFull, Unavailable, ValidationError
from services.library import boards, storage

log = logging.getLogger(__name__)

MANIFEST_FIELDS = ("file", "image_id", "task_id", "prompt", "negative_prompt", "width", "height",
                   "steps", "guidance", "seed", "scheduler", "model", "loras", "strength", "init_image",
                   "mask", "inpaint", "control", "references", "edit", "created_at")
BLOCK = 1 << 20  # bytes copied at a time
BATCH = 500  # image rows read at a time
MAX_SELECTION = 10_000  # image ids one request may name
JOB_FUNCTION = "worker.archive_jobs.build_archive"
PROGRESS_EVERY_S = 0.25  # the most often progress is saved and sent
KEEP_FINISHED_ROWS = timedelta(days=30)  # expired or failed archives are listed this long

Item = tuple[str, str, dict | None]  # (file path, entry name, manifest row; None: a mask, no row)


# --- writing ZIPs -------------------------------------------------------------------

class _Chunks(io.RawIOBase):
    """A write-only, non-seekable sink: zipfile then writes data descriptors, so the
    archive can be sent while it is being made."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def mask_name(mask_id: str) -> str:
    return f"mask_{mask_id}.png"


def entry_name(image: Image) -> str:
    if image.task_id:
        return f"{image.task_id}_{image.index}.png"
    return mask_name(image.id) if image.kind == "mask" else f"upload_{image.id}.png"


def item(image: Image) -> Item:
    """What write_zip needs of one image, read from its row (and its task's)."""
    name = entry_name(image)
    params = image.task.parameters() if image.task else {}
    row = {k: params.get(k, "") for k in MANIFEST_FIELDS if k in params}
    # LoRAs as the PNG's parameters write them (A1111's tags): "<lora:name:0.8> <lora:other:1>".
    row["loras"] = " ".join(f"<lora:{lora.get('name') or lora.get('id')}:{float(lora.get('weight', 1.0)):g}>"
                            for lora in params.get("loras") or () if isinstance(lora, dict))
    row["mask"] = params.get("mask") or ""
    for field in ("inpaint", "control", "references", "edit"):  # JSON; empty where the task has none
        row[field] = json.dumps(params[field], sort_keys=True) if params.get(field) else ""
    row.update(file=name, image_id=image.id, task_id=image.task_id or "", width=image.width,
               height=image.height, seed="" if image.seed is None else image.seed,
               created_at=image.created_at.isoformat())
    return str(storage.path_of(image)), name, row


def _mask_ids(images: Iterable[Image]) -> list[str]:
    """The masks of these images' tasks, in order, once each."""
    return list(dict.fromkeys(image.task.mask_image_id for image in images
                              if image.task is not None and image.task.mask_image_id))


def _mask_items(user_id: int, mask_ids: list[str]) -> list[Item]:
    """The files of the user's own masks among mask_ids (not held), with no manifest row."""
    if not mask_ids:
        return []
    masks = db.session.scalars(sa.select(Image).where(Image.id.in_(mask_ids), Image.user_id == user_id,
                                                      storage.not_held())).all()
    return [(str(storage.path_of(mask)), mask_name(mask.id), None) for mask in masks]


def entries(images: Iterable[Image]) -> list[Item]:
    """Items for a few images (and the masks of their tasks), read up front so that
    streaming needs no database session."""
    images = list(images)
    listed = {image.id for image in images}
    masks = [mask_id for mask_id in _mask_ids(images) if mask_id not in listed]
    user_id = images[0].user_id if images else None
    return [item(image) for image in images] + _mask_items(user_id, masks)


def _zipinfo(name: str, size: int, mtime: float | None = None) -> zipfile.ZipInfo:
    stamp = time.localtime(mtime if mtime is not None else time.time())[:6]
    info = zipfile.ZipInfo(name, date_time=max(stamp, (1980, 1, 1, 0, 0, 0)))
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = size
    info.external_attr = 0o644 << 16  # unzip makes readable files
    return info


def write_zip(target, items: Iterable[Item], *, block: int = BLOCK,
              on_entry: Callable[[int], None] | None = None) -> Iterator[None]:
    """Write the ZIP of `items` into `target` (a file, or a _Chunks sink), yielding after
    every block so that a caller can send what was written. A file that is gone (its
    image was deleted meanwhile) is left out. An item without a manifest row (a mask)
    is written but not counted: on_entry(n) is called after each image's entry."""
    manifest = tempfile.SpooledTemporaryFile(max_size=1 << 20, mode="w+", newline="", encoding="utf-8")
    writer = csv.DictWriter(manifest, fieldnames=MANIFEST_FIELDS, extrasaction="ignore")
    writer.writeheader()
    done = 0
    with manifest, zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for path, name, row in items:
            try:
                source = open(path, "rb")
            except FileNotFoundError:
                log.warning("archive: %s is gone; left out", path)
                continue
            with source:
                stat = os.fstat(source.fileno())
                with archive.open(_zipinfo(name, stat.st_size, stat.st_mtime), "w") as out:
                    while chunk := source.read(block):
                        out.write(chunk)
                        yield
            if row is None:
                continue
            writer.writerow(row)
            done += 1
            if on_entry:
                on_entry(done)
        size = manifest.tell()
        manifest.seek(0)
        data = manifest.read().encode("utf-8") if size <= 1 << 20 else None
        if data is not None:
            archive.writestr(_zipinfo("manifest.csv", len(data)), data)
        else:  # a big manifest: copied from its spool file
            with archive.open(_zipinfo("manifest.csv", 0), "w", force_zip64=True) as out:
                while text := manifest.read(block):
                    out.write(text.encode("utf-8"))
                    yield
    yield


def stream_zip(items: list[Item]) -> Iterator[bytes]:
    """The ZIP as it is written, a block at a time (a task's download)."""
    sink = _Chunks()
    for _ in write_zip(sink, items, block=1 << 16):
        data = sink.take()
        if data:
            yield data
    data = sink.take()
    if data:
        yield data


def write_zip_file(items: Iterable[Item], destination: Path, *,
                   on_entry: Callable[[int], None] | None = None) -> int:
    """Write the ZIP to a file (atomically: a part file renamed when complete); its size."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    try:
        with open(part, "wb") as target:
            for _ in write_zip(target, items, on_entry=on_entry):
                pass
        os.replace(part, destination)
    finally:
        part.unlink(missing_ok=True)
    return destination.stat().st_size


# --- archives built in the background -------------------------------------------------

def root() -> Path:
    return Path(current_app.config["ARCHIVES_PATH"])


def path_of(archive: Archive) -> Path:
    return root() / (archive.filename or f"{archive.id[:2]}/{archive.id}.zip")


def archive_queue() -> Queue:
    return Queue(current_app.config["ARCHIVE_QUEUE_NAME"], connection=redis_client.connection())


def job_id(archive_id: str) -> str:
    return keys.archive_job(archive_id)


def _selected_ids(user: User, data: dict) -> tuple[str, str | None, list[str]]:
    """(scope, board id, image ids in order) of what the request asks for."""
    asked = [key for key in ("image_ids", "board_id", "all") if data.get(key) not in (None, False)]
    if len(asked) != 1:
        raise ValidationError("image_ids", "send one of image_ids (a list of image ids), "
                                           "board_id, or all: true")
    if asked == ["image_ids"]:
        ids = data["image_ids"]
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
            raise ValidationError("image_ids", "must be a non-empty list of image ids")
        if len(ids) > MAX_SELECTION:
            raise ValidationError("image_ids", f"has {len(ids)} ids; at most {MAX_SELECTION} are "
                                               "allowed (archive a board or everything instead)")
        ids = list(dict.fromkeys(ids))
        owned = set()
        for start in range(0, len(ids), BATCH):
            chunk = ids[start:start + BATCH]
            owned.update(db.session.scalars(sa.select(Image.id).where(
                Image.id.in_(chunk), Image.user_id == user.id)))
        if len(owned) != len(ids):
            raise NotFound("No such image: " + next(i for i in ids if i not in owned))
        return "selection", None, ids
    newest_first = (Image.created_at.desc(), Image.id.desc())
    if asked == ["board_id"]:
        board = boards.get_board(user, data["board_id"])
        ids = db.session.scalars(sa.select(Image.id).where(
            Image.user_id == user.id, Image.board_id == board.id).order_by(*newest_first)).all()
        return "board", board.id, list(ids)
    if data["all"] is not True:
        raise ValidationError("all", "must be true to archive all your images")
    ids = db.session.scalars(sa.select(Image.id).where(Image.user_id == user.id).order_by(*newest_first)).all()
    return "all", None, list(ids)


def request_archive(user: User, data: dict) -> Archive:
    """Fix the images now, then let the archive worker build the ZIP (202)."""
    scope, board_id, ids = _selected_ids(user, data)
    if not ids:
        raise Conflict("There are no images to put in an archive.", code="no_images")
    limit = current_app.config["ARCHIVE_USER_LIMIT"]
    unfinished = db.session.scalar(sa.select(sa.func.count()).select_from(Archive).where(
        Archive.user_id == user.id, Archive.state.in_(ArchiveState.unfinished())))
    if unfinished >= limit:
        raise QueueFull(f"You have {limit} archives being made already, the most allowed; "
                        "ask again when one is ready.", code="too_many_archives",
                        headers={"Retry-After": "10"})
    archive = Archive(user_id=user.id, scope=scope, board_id=board_id, image_ids=json.dumps(ids),
                      image_count=len(ids))
    db.session.add(archive)
    db.session.commit()
    try:
        enqueue(archive.id)
    except redis.RedisError as exc:
        log.error("enqueue of archive %s failed: %s", archive.id, exc)
        _finish(archive.id, ArchiveState.FAILED, error="The queue was unavailable; ask again.")
        raise Unavailable("The queue (Redis) is unavailable; try again in a moment.",
                          headers={"Retry-After": "10"})
    return archive


def enqueue(archive_id: str) -> None:
    archive_queue().enqueue(
        JOB_FUNCTION, archive_id, job_id=job_id(archive_id),
        job_timeout=current_app.config["ARCHIVE_JOB_TIMEOUT"],
        result_ttl=3600, failure_ttl=7 * 24 * 3600, description=f"archive {archive_id}")


def get_archive(user: User, archive_id: str) -> Archive:
    """The user's own archive; anyone else's (or none) is a 404."""
    archive = db.session.scalar(sa.select(Archive).where(Archive.id == archive_id,
                                                         Archive.user_id == user.id))
    if archive is None:
        raise NotFound("No such archive.")
    return archive


def list_archives(user: User, *, offset: int, limit: int) -> tuple[list[Archive], int]:
    where = Archive.user_id == user.id
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Archive).where(where))
    items = db.session.scalars(sa.select(Archive).where(where).order_by(
        Archive.created_at.desc(), Archive.id).offset(offset).limit(limit)).all()
    return list(items), total


def download_path(user: User, archive_id: str) -> tuple[Archive, Path]:
    archive = get_archive(user, archive_id)
    if archive.state == ArchiveState.EXPIRED.value:
        raise Conflict("This archive has expired and was deleted; ask for a new one.",
                       code="archive_expired")
    if archive.state == ArchiveState.FAILED.value:
        raise Conflict(f"This archive could not be made: {archive.error}", code="archive_failed")
    if archive.state != ArchiveState.READY.value:
        raise Conflict(f"This archive is still being made ({archive.done_count} of "
                       f"{archive.image_count} images); it downloads once it is ready.",
                       code="archive_not_ready", headers={"Retry-After": "2"})
    path = path_of(archive)
    if not path.exists():
        raise NotFound("The archive's file is gone; ask for a new one.")
    return archive, path


def delete_archive(user: User, archive_id: str) -> None:
    archive = get_archive(user, archive_id)
    if archive.state in ArchiveState.unfinished():
        raise Conflict("This archive is still being made; delete it once it is ready.",
                       code="archive_not_ready")
    path_of(archive).unlink(missing_ok=True)
    db.session.delete(archive)
    db.session.commit()


# --- the archive worker's side ----------------------------------------------------------

def _transition(archive_id: str, from_states, **values) -> bool:
    """Move an archive along (or save its progress) if it is still in one of from_states."""
    return transitions.advance(Archive, archive_id, from_states, **values)


def _announce(archive_id: str) -> None:
    archive = db.session.get(Archive, archive_id)
    if archive is None:
        return
    db.session.refresh(archive)
    user = db.session.get(User, archive.user_id)
    if user is not None:
        try:
            events.emit_archive(user.room, archive.to_dict())
        except Exception as exc:  # events are a courtesy: the state is in the database
            log.warning("archive event not sent: %s", exc)


def _finish(archive_id: str, state: ArchiveState, **values) -> bool:
    moved = _transition(archive_id, ArchiveState.unfinished(), state=state.value,
                        finished_at=utcnow(), **values)
    if moved:
        _announce(archive_id)
    return moved


def _items(user_id: int, ids: list[str]) -> Iterator[Item]:
    """The archive's images in order, read a batch of rows at a time; deleted ones
    (and any held for review by the image check) are left out. The masks of their tasks
    follow each batch, once, unless the archive lists them itself."""
    listed, sent = set(ids), set()
    for start in range(0, len(ids), BATCH):
        chunk = ids[start:start + BATCH]
        rows = db.session.scalars(sa.select(Image).where(Image.id.in_(chunk), Image.user_id == user_id,
                                                         storage.not_held())
                                  .options(so.selectinload(Image.task))).all()
        by_id = {image.id: image for image in rows}
        batch = [item(by_id[i]) for i in chunk if i in by_id]
        masks = [mask_id for mask_id in _mask_ids(rows) if mask_id not in listed and mask_id not in sent]
        sent.update(masks)
        batch += _mask_items(user_id, masks)
        db.session.expunge_all()  # keep the session (and memory) small
        yield from batch


def build(archive_id: str) -> str:
    """Build one archive (the archive worker's job): queued → building → ready, with
    progress saved and sent as it goes; failed (with a message) if it cannot be made."""
    if not _transition(archive_id, (ArchiveState.QUEUED.value,), state=ArchiveState.BUILDING.value,
                       started_at=utcnow(), done_count=0):
        return "skipped"  # gone, or already built by another job
    _announce(archive_id)
    archive = db.session.get(Archive, archive_id)
    user_id, ids = archive.user_id, json.loads(archive.image_ids)
    relative = f"{archive_id[:2]}/{archive_id}.zip"
    last = [time.monotonic()]

    def on_entry(done: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            _transition(archive_id, (ArchiveState.BUILDING.value,), done_count=done)
            _announce(archive_id)

    count = [0]

    def counted(done: int) -> None:
        count[0] = done
        on_entry(done)

    try:
        size = write_zip_file(_items(user_id, ids), root() / relative, on_entry=counted)
    except Exception as exc:
        db.session.rollback()
        log.exception("archive %s failed", archive_id)
        _finish(archive_id, ArchiveState.FAILED, error=f"The archive could not be written ({exc.__class__.__name__}).")
        raise
    ttl = current_app.config["ARCHIVE_TTL"]
    if not _finish(archive_id, ArchiveState.READY, filename=relative, size_bytes=size,
                   image_count=count[0], done_count=count[0], expires_at=utcnow() + timedelta(seconds=ttl)):
        (root() / relative).unlink(missing_ok=True)
        return "lost"
    return "ready"


def expire_archives(now=None) -> dict:
    """Delete the files of archives past their time (state → expired), and forget
    expired or failed archives after a while. The archive worker runs this after each
    job and at each maintenance round; `flask --app app expire-archives` runs it too."""
    now = now or utcnow()
    expired = 0
    due = db.session.scalars(sa.select(Archive).where(
        Archive.state == ArchiveState.READY.value, Archive.expires_at <= now)).all()
    for archive in due:
        if _transition(archive.id, (ArchiveState.READY.value,), state=ArchiveState.EXPIRED.value,
                       filename=None):
            path_of(archive).unlink(missing_ok=True)
            expired += 1
            _announce(archive.id)
    old = sa.delete(Archive).where(Archive.state.in_((ArchiveState.EXPIRED.value, ArchiveState.FAILED.value)),
                                   Archive.created_at < now - KEEP_FINISHED_ROWS)
    forgotten = db.session.execute(old.execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return {"expired": expired, "forgotten": forgotten, "orphans": _sweep_orphans()}


def _sweep_orphans(min_age_s: float = 3600) -> int:
    """Delete files of the archives folder that no archive owns any more (its user was
    deleted, or a build died half-way), once they are old enough not to be in the making."""
    folder = root()
    if not folder.is_dir():
        return 0
    cutoff = time.time() - max(min_age_s, current_app.config["ARCHIVE_JOB_TIMEOUT"])
    removed = 0
    for path in folder.glob("*/*.zip*"):
        try:
            if path.stat().st_mtime > cutoff:
                continue
        except OSError:
            continue
        archive_id = path.name.split(".", 1)[0]
        if path.name.endswith(".zip") and db.session.scalar(sa.select(Archive.id).where(
                Archive.id == archive_id, Archive.state.in_((ArchiveState.READY.value, ArchiveState.BUILDING.value)))):
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def reconcile_archives(*, grace: timedelta = timedelta(seconds=30)) -> int:
    """Archives whose job was lost (the archive worker died mid-build, Redis restarted)
    are queued again. Runs at archive worker start-up, at each maintenance round and
    from the archive workers' reconciler thread (one at a time, every RECONCILE_INTERVAL).

    A job being built by a worker that is dead (its heartbeat is gone, or names a pid that
    is gone on this machine: services/core/liveness.py) is lost at once, however young;
    a job that is missing or ended without a result only once the archive is `grace` old
    (a request commits its row a moment before it queues the job)."""
    conn = redis_client.connection()
    alive = set(archive_workers())
    requeued = 0
    settled = utcnow() - grace
    unfinished = db.session.scalars(sa.select(Archive).where(
        Archive.state.in_(ArchiveState.unfinished()))).all()
    for archive in unfinished:
        job = Job.fetch(job_id(archive.id), connection=conn) if Job.exists(job_id(archive.id), conn) else None
        status = job.get_status(refresh=False) if job else None
        orphaned = status == JobStatus.STARTED and job.worker_name not in alive
        ended = job is None or status in (JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)
        if not (orphaned or (ended and archive.created_at < settled)):
            continue
        _transition(archive.id, ArchiveState.unfinished(), state=ArchiveState.QUEUED.value, done_count=0)
        if job is not None:
            job.delete()
        enqueue(archive.id)
        requeued += 1
    return requeued


def archive_workers() -> dict[str, dict]:
    """The live archive workers, by their heartbeat (services/core/liveness.py)."""
    return liveness.alive_archive_workers()
