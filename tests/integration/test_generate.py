"""Submit → worker → done, against the real Redis and a real worker process."""
from __future__ import annotations

import io

import redis
import sqlalchemy as sa
from PIL import Image as PILImage

from extensions import db
from models import Ledger, Task
from services.core import keys
from services.core import queue as queue_service
from services.generation.params import task_cost
from tests.helpers import wait_for


def test_submit_runs_to_done_with_images_of_the_right_size(make_user):
    user = make_user()
    before = user.me()["tokens"]
    response = user.submit(width=64, height=96, samples=2, steps=3)
    assert response.status_code == 202, response.get_json()
    task = response.get_json()
    assert task["state"] == "queued"
    assert isinstance(task["seed"], int)  # a random seed is resolved at submit
    assert task["cost"] == task_cost(3, 64, 96, 2) == 2
    assert user.me()["tokens"] == before - task["cost"]

    done = user.wait_task(task["id"])
    assert done["state"] == "done", done
    assert done["progress"] == {"step": 6, "total": 6}  # steps × samples
    assert done["duration_s"] is not None
    assert [img["seed"] for img in done["images"]] == [task["seed"], task["seed"] + 1]
    for image in done["images"]:
        png = user.get(image["url"])
        assert png.status_code == 200
        assert png.headers["Content-Type"] == "image/png"
        assert "immutable" in png.headers["Cache-Control"]
        assert PILImage.open(io.BytesIO(png.data)).size == (64, 96)
        thumb = user.get(image["thumbnail_url"])
        assert thumb.headers["Content-Type"] == "image/webp"
        meta = user.get(image["metadata_url"]).get_json()
        assert meta["prompt"] == "a lighthouse at dusk" and meta["seed"] == image["seed"]


def test_the_same_seed_gives_the_same_pixels(make_user):
    user = make_user()
    ids = [user.submit(seed=1234, steps=2).get_json()["id"] for _ in range(2)]
    pixels = []
    for task_id in ids:
        task = user.wait_task(task_id)
        assert task["state"] == "done", task
        pixels.append(PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).tobytes())
    assert pixels[0] == pixels[1]
    other = user.wait_task(user.submit(seed=4321, steps=2).get_json()["id"])
    assert PILImage.open(io.BytesIO(user.get(other["images"][0]["url"]).data)).tobytes() != pixels[0]


def test_the_worker_loads_the_pipeline_once_for_many_jobs(app, make_user):
    user = make_user()
    conn = redis.Redis.from_url(app.config["REDIS_URL"])

    with app.app_context():
        [worker_name] = [n for n, w in queue_service.workers().items() if w["pid"] == app.worker.proc.pid]

    def loads() -> int:
        return int(conn.hget(keys.worker_info(worker_name), "loads") or 0)

    first = user.wait_task(user.submit(steps=2).get_json()["id"])
    assert first["state"] == "done"
    after_first = loads()
    assert after_first >= 1
    for _ in range(2):
        assert user.wait_task(user.submit(steps=2).get_json()["id"])["state"] == "done"
    assert loads() == after_first  # the second and third jobs paid no load cost


def test_a_failing_job_is_refunded_once_and_the_worker_goes_on(app, make_user):
    from models import AiModel

    user = make_user()
    before = user.me()["tokens"]
    with app.app_context():
        # Enabled by staff, but it cannot be loaded (offline, not downloaded).
        if db.session.get(AiModel, "broken") is None:
            db.session.add(AiModel(id="broken", name="Broken", spec="no-such-org/no-such-model",
                                   kind="hub", enabled=True))
            db.session.commit()
    response = user.submit(model="broken", steps=2)
    assert response.status_code == 202, response.get_json()
    task_id = response.get_json()["id"]
    failed = user.wait_task(task_id)
    assert failed["state"] == "failed"
    assert "no-such-org/no-such-model" in failed["error"]
    # The user learns whom to ask; the operator's advice (DAYDREAM_MODEL) is for staff.
    assert "Admin → Models" in failed["error"] and "refunded" in failed["error"]
    assert failed["refunded"] is True
    assert user.me()["tokens"] == before
    with app.app_context():
        refunds = db.session.scalars(sa.select(Ledger).where(
            Ledger.task_id == task_id, Ledger.kind == "refund")).all()
        assert len(refunds) == 1
        row = db.session.get(AiModel, "broken")
        db.session.refresh(row)
        assert row.state == "error" and "no-such-org/no-such-model" in row.error
        assert "DAYDREAM_MODEL" in row.error
    # The same worker goes on with the next job.
    nxt = user.wait_task(user.submit(steps=2).get_json()["id"])
    assert nxt["state"] == "done", nxt
    assert app.worker.proc.poll() is None


def test_a_tasks_images_download_as_a_zip_stored_without_recompression(make_user):
    import csv
    import zipfile

    from services.library import imaging

    user = make_user()
    task = user.wait_task(user.submit(samples=2, steps=2, seed=77).get_json()["id"])
    response = user.get(f"/api/v1/tasks/{task['id']}/archive")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = archive.namelist()
    assert names == [f"{task['id']}_0.png", f"{task['id']}_1.png", "manifest.csv"]
    for n, name in enumerate(names[:2]):
        info = archive.getinfo(name)
        assert info.compress_type == zipfile.ZIP_STORED
        data = archive.read(name)
        assert data == user.get(task["images"][n]["url"]).data
        assert imaging.read_metadata(data)["seed"] == 77 + n
    rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert [r["seed"] for r in rows] == ["77", "78"] and rows[0]["prompt"] == "a lighthouse at dusk"
    stranger = make_user()
    assert stranger.get(f"/api/v1/tasks/{task['id']}/archive").status_code == 404


def test_the_worker_switches_models_and_keeps_the_last_one_loaded(app, make_user, models_path):
    from models import AiModel
    from worker.demo_model import build_demo_model

    build_demo_model(models_path / "second-model")
    with app.app_context():
        if db.session.get(AiModel, "second") is None:
            db.session.add(AiModel(id="second", name="Second", spec="second-model", kind="folder",
                                   enabled=True))
            db.session.commit()
        [worker_name] = [n for n, w in queue_service.workers().items() if w["pid"] == app.worker.proc.pid]
    conn = redis.Redis.from_url(app.config["REDIS_URL"])
    state = lambda: conn.hgetall(keys.worker_info(worker_name))  # noqa: E731
    user = make_user()
    loads = int(state()[b"loads"])
    assert user.wait_task(user.submit(model="second", steps=2).get_json()["id"])["state"] == "done"
    assert state()[b"model"] == b"second" and int(state()[b"loads"]) == loads + 1
    assert user.wait_task(user.submit(model="second", steps=2).get_json()["id"])["state"] == "done"
    assert int(state()[b"loads"]) == loads + 1  # kept loaded
    assert user.wait_task(user.submit(model="demo", steps=2).get_json()["id"])["state"] == "done"
    assert state()[b"model"] == b"demo" and int(state()[b"loads"]) == loads + 2
