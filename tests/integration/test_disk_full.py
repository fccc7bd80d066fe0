"""A full disk under the images folder: a small file system (tmpfs) mounted for this
module holds the instance's images, with a real worker. What a task stored is kept and
paid for, and the rest refunded; nothing half-written is left; an upload is refused
with 507; a file that is gone is a 404; and below DAYDREAM_MIN_FREE_MB the worker takes
no task while /healthz and Admin → Queue say why.

The tests share one instance and run in order (each leaves the disk as the next needs it)."""
from __future__ import annotations

import os
import random
import subprocess
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import WorkerProcess, instance_env, make_app, wait_for
from tests.integration.helpers import ApiUser, make_staff, post_upload

DISK_MB = 4
MIN_FREE_MB = 0.1  # the worker's threshold here (DAYDREAM_MIN_FREE_MB)
SIZE = {"width": 128, "height": 128, "steps": 2}


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """A DISK_MB tmpfs, or a skip saying why it cannot be mounted here."""
    folder = tmp_path_factory.mktemp("small-disk")
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "tmpfs",
                                  str(folder)], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a small file system here: {exc}")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here (needs root or CAP_SYS_ADMIN): "
                    f"{mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=20)


@pytest.fixture(scope="module")
def full_stack(small_disk, tmp_path_factory, redis_url, models_path):
    instance = tmp_path_factory.mktemp("disk-full")
    env = instance_env(instance, redis_url, models_path, DAYDREAM_IMAGES_PATH=small_disk / "images",
                       DAYDREAM_MIN_FREE_MB=MIN_FREE_MB, DAYDREAM_HEARTBEAT_INTERVAL=0.5,
                       DAYDREAM_RECONCILE_INTERVAL=2)
    app = make_app(env)
    worker = WorkerProcess(env, instance / "worker.log").start()
    app.worker, app.disk = worker, small_disk
    yield app
    worker.stop()


@pytest.fixture(scope="module")
def disk_client(full_stack):
    return full_stack.test_client()


@pytest.fixture(scope="module")
def user(disk_client):
    return ApiUser(disk_client, "diskfull" + uuid.uuid4().hex[:6])


def images(app) -> Path:
    return app.disk / "images"


def fill_disk(app, leave_bytes: int) -> None:
    """Fill the disk but `leave_bytes` (a filler file, grown or shrunk)."""
    filler = app.disk / "filler"
    filler.touch()
    free = os.statvfs(app.disk).f_bavail * os.statvfs(app.disk).f_frsize
    size = max(0, filler.stat().st_size + free - leave_bytes)
    with open(filler, "r+b") as handle:  # written, not sparse: tmpfs counts written pages
        handle.truncate(0)
        handle.write(b"\0" * size)


def empty(app) -> None:
    (app.disk / "filler").unlink(missing_ok=True)


def half_written(app) -> list[Path]:
    return [p for p in images(app).rglob("*") if p.name.endswith(".tmp")]


def task_images(app, task_id: str):
    from extensions import db
    from models import Image

    with app.app_context():
        return db.session.scalars(sa.select(Image).where(Image.task_id == task_id)).all()


def ledger_matches_balance(app, username: str) -> tuple[int, int]:
    from extensions import db
    from models import User
    from services.accounts import credits

    with app.app_context():
        row = db.session.scalar(sa.select(User).where(User.username == username))
        return row.tokens, credits.ledger_balance(row.id)


def on_disk(path: Path) -> int:
    return path.stat().st_blocks * 512


def test_a_task_that_runs_out_of_room_keeps_what_it_stored_and_is_refunded_the_rest(full_stack, user):
    app = full_stack
    empty(app)
    # One image's files, as this model and size make them, tell how much room two and a
    # half take.
    one = user.submit(samples=1, **SIZE).get_json()
    assert user.wait_task(one["id"])["state"] == "done"
    [image] = task_images(app, one["id"])
    per_image = on_disk(images(app) / image.filename) + on_disk(images(app) / image.thumbnail)

    fill_disk(app, int(2.5 * per_image) + 8192)
    before = user.me()["tokens"]
    response = user.submit(samples=4, **SIZE)
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"])
    stored = task_images(app, task["id"])
    assert 0 < len(stored) < 4, (len(stored), app.worker.output()[-3000:])
    # Kept and paid for: the task is done, with the images it stored; the others' share
    # of the cost came back, in one ledger row, and the message says why.
    assert task["state"] == "done", task
    assert len(task["images"]) == len(stored)
    missing = 4 - len(stored)
    refund = task["cost"] * missing // 4
    assert refund > 0
    assert user.me()["tokens"] == before - task["cost"] + refund
    tokens, ledger = ledger_matches_balance(app, user.username)
    assert tokens == ledger
    assert "disk is full" in task["error"] and f"{len(stored)} of 4 images" in task["error"]
    # Nothing half-written is left, and every file on the disk is one a row names.
    assert half_written(app) == []
    files = {str(p.relative_to(images(app))) for p in images(app).rglob("*") if p.is_file()}
    named = {f for i in task_images(app, one["id"]) + stored for f in (i.filename, i.thumbnail)}
    assert files == named


def test_an_upload_to_a_full_disk_is_refused_with_507(full_stack, user):
    app = full_stack
    fill_disk(app, 16 * 1024)
    rng = random.Random(7)
    from PIL import Image as PILImage
    import io

    picture = PILImage.frombytes("RGB", (256, 256), bytes(rng.randrange(256) for _ in range(256 * 256 * 3)))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    files_before = sorted(p for p in images(app).rglob("*") if p.is_file())
    response = post_upload(user, buffer.getvalue(), "noise.png")
    assert response.status_code == 507, response.get_data(as_text=True)[:500]
    error = response.get_json()["error"]
    assert error["code"] == "insufficient_storage" and "no room" in error["message"]
    assert half_written(app) == []
    assert sorted(p for p in images(app).rglob("*") if p.is_file()) == files_before
    # With room again, the same upload is stored.
    empty(app)
    assert post_upload(user, buffer.getvalue(), "noise.png").status_code == 201


def test_a_file_that_is_gone_is_a_404(full_stack, user):
    app = full_stack
    empty(app)
    task = user.wait_task(user.submit(samples=1, **SIZE).get_json()["id"])
    image = task["images"][0]
    from extensions import db
    from models import Archive, ArchiveState, Image, User

    with app.app_context():
        row = db.session.get(Image, image["id"])
        (images(app) / row.filename).unlink()
        (images(app) / row.thumbnail).unlink()
        owner = db.session.scalar(sa.select(User).where(User.username == user.username))
        archive = Archive(user_id=owner.id, scope="all", image_ids="[]", image_count=1,
                          state=ArchiveState.READY.value, filename="zz/gone.zip")
        db.session.add(archive)
        db.session.commit()
        archive_id = archive.id
    for path in (f"/api/v1/images/{image['id']}/full", f"/api/v1/images/{image['id']}/thumbnail",
                 f"/api/v1/images/{image['id']}/metadata", f"/api/v1/archives/{archive_id}/download"):
        response = user.get(path)
        assert response.status_code == 404, (path, response.status_code, response.get_data(as_text=True)[:300])
        assert response.get_json()["error"]["code"] in ("not_found", "file_missing")
    assert user.get(f"/api/v1/images/{image['id']}").status_code == 200  # the row is still there


def test_below_the_threshold_the_worker_takes_no_task_and_says_why(full_stack, disk_client, user):
    app = full_stack
    staff = make_staff(app, "diskstaff" + uuid.uuid4().hex[:6])
    fill_disk(app, 16 * 1024)  # below DAYDREAM_MIN_FREE_MB
    health = wait_for(lambda: (h := disk_client.get("/healthz").get_json())["disk"] != "ok" and h, 20,
                      message="/healthz to say the disk is almost full")
    assert health["disk"].startswith("low:") and "DAYDREAM_MIN_FREE_MB" in health["disk"]
    assert health["workers"] == 1 and health["workers_ready"] == 0
    [worker] = disk_client.get("/api/v1/admin/queue", headers=staff).get_json()["workers"]
    assert worker["disk"] == health["disk"]

    task = user.submit(samples=1, **SIZE).get_json()
    wait_for(lambda: "taking no tasks until there is room" in app.worker.output(), 20,
             message="the worker to hold its job until there is room")
    assert user.get(f"/api/v1/tasks/{task['id']}").get_json()["state"] == "queued"

    empty(app)
    assert user.wait_task(task["id"], timeout=60)["state"] == "done"
    wait_for(lambda: disk_client.get("/healthz").get_json()["disk"] == "ok", 20, message="/healthz to say ok again")
    assert disk_client.get("/healthz").get_json()["workers_ready"] == 1
