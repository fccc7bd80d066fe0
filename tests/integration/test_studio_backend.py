"""The studio's backend against the real worker: image-to-image, schedulers, cancel,
fair queue, bounds, uploads, estimates, models."""
from __future__ import annotations

import io
import json
import struct
import zlib

import pytest
import redis
import sqlalchemy as sa
from PIL import Image as PILImage

from extensions import db
from models import Ledger, Task, User
from services.core import keys
from services.core import queue as queue_service
from tests.helpers import WorkerProcess, image_bytes, instance_env, make_app, wait_for
from tests.integration.helpers import ApiUser, post_upload


def pixels(user, image) -> bytes:
    return PILImage.open(io.BytesIO(user.get(image["url"]).data)).tobytes()


# --- image-to-image ------------------------------------------------------------------

def test_image_to_image_from_an_upload_and_from_a_result(make_user):
    user = make_user()
    uploaded = post_upload(user, image_bytes((80, 48), fmt="JPEG"), "photo.jpg")
    assert uploaded.status_code == 201, uploaded.get_json()
    init = uploaded.get_json()
    assert init["kind"] == "upload" and (init["width"], init["height"]) == (80, 48)
    assert user.get(init["url"]).headers["Content-Type"] == "image/png"

    task = user.wait_task(user.submit(init_image=init["id"], strength=0.5, steps=4, seed=3).get_json()["id"])
    assert task["state"] == "done", task
    assert task["init_image"] == init["id"] and task["strength"] == 0.5
    assert task["progress"]["total"] == 2  # img2img runs steps × strength
    meta = user.get(task["images"][0]["metadata_url"]).get_json()
    assert meta["init_image"] == init["id"] and meta["strength"] == 0.5

    # A variant of that result: the result is the init image; strength changes the output.
    result = task["images"][0]
    weak = user.wait_task(user.submit(init_image=result["id"], strength=0.25, steps=4, seed=3).get_json()["id"])
    strong = user.wait_task(user.submit(init_image=result["id"], strength=1.0, steps=4, seed=3).get_json()["id"])
    assert weak["state"] == strong["state"] == "done"
    assert pixels(user, weak["images"][0]) != pixels(user, strong["images"][0])


def test_another_users_image_cannot_be_an_init_image(make_user):
    owner, other = make_user(), make_user()
    init = post_upload(owner, image_bytes()).get_json()
    response = other.submit(init_image=init["id"])
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "init_image"


@pytest.mark.parametrize("scheduler", ["euler", "euler_a", "dpmpp_2m", "ddim", "pndm"])
def test_each_scheduler_runs(make_user, scheduler):
    user = make_user()
    task = user.wait_task(user.submit(scheduler=scheduler, steps=3, seed=11).get_json()["id"])
    assert task["state"] == "done", task
    assert task["scheduler"] == scheduler
    meta = user.get(task["images"][0]["metadata_url"]).get_json()
    assert meta["scheduler"] == scheduler


def test_schedulers_and_models_are_listed(make_user):
    user = make_user()
    schedulers = user.get("/api/v1/schedulers").get_json()["items"]
    assert {s["id"] for s in schedulers} >= {"euler", "euler_a", "dpmpp_2m", "ddim"}
    assert [s["id"] for s in schedulers if s["default"]] == ["euler"]
    models = user.get("/api/v1/models").get_json()["items"]
    demo = next(m for m in models if m["id"] == "demo")
    assert (demo["name"], demo["default"], demo["kind"], demo["format"], demo["family"]) == (
        "Demo (tiny, paints noise)", True, "model", "demo", "sd1")


# --- cancel a running task --------------------------------------------------------------

def test_a_running_task_stops_at_its_next_step_and_is_refunded_once(app, make_user):
    user = make_user()
    before = user.me()["tokens"]
    task = user.submit(width=512, height=512, steps=150, seed=1).get_json()  # ~a minute if left
    assert user.me()["tokens"] == before - 3

    def running_with_progress():
        data = user.get(f"/api/v1/tasks/{task['id']}").get_json()
        return data if data["state"] == "running" and data["progress"]["step"] >= 2 else None

    seen = wait_for(running_with_progress, 60, message="the task to run")["progress"]["step"]
    response = user.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert response.status_code == 200
    assert response.get_json()["state"] == "canceled" and response.get_json()["refunded"] is True
    assert user.me()["tokens"] == before
    conn = redis.Redis.from_url(app.config["REDIS_URL"])
    with app.app_context():
        worker_name = db.session.get(Task, task["id"]).worker

    def its_call():  # the worker's record of the call it ran the task in (worker/jobs.record_batch)
        calls = (json.loads(raw) for raw in conn.lrange(keys.worker_batches(worker_name), 0, -1))
        return next((call for call in calls if task["id"] in call["tasks"]), None)

    stopped = wait_for(its_call, 10, message="the worker to stop")["steps"]
    # Within a step (plus the events in flight): the call ran the step it noticed the stop
    # in, then no more of its 150.
    assert seen <= stopped <= seen + 4, (seen, stopped)
    final = user.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert final["state"] == "canceled" and final["images"] == []
    assert user.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 409
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ledger).where(
            Ledger.task_id == task["id"], Ledger.kind == "refund")) == 1
    # The worker is free again at once: a small task runs to the end.
    assert user.wait_task(user.submit(steps=2).get_json()["id"], timeout=30)["state"] == "done"


# --- the fair queue ----------------------------------------------------------------------

def test_users_are_served_round_robin_and_fifo_within_a_user(tmp_path, redis_url, models_path):
    env = instance_env(tmp_path, redis_url, models_path)
    app = make_app(env)
    client = app.test_client()
    alice, bob, carol = (ApiUser(client, name) for name in ("alice", "bob", "carol"))
    submitted = []
    for user, count in ((alice, 3), (bob, 2), (carol, 2)):
        for n in range(count):
            submitted.append((user.username, n, user.submit(steps=2, seed=n).get_json()["id"]))
    # Positions before any worker runs: the round-robin order.
    position = {tid: alice.client.get(f"/api/v1/tasks/{tid}", headers=u.headers).get_json()["position"]
                for (name, n, tid), u in zip(submitted, [alice] * 3 + [bob] * 2 + [carol] * 2)}
    expected = [("alice", 0), ("bob", 0), ("carol", 0), ("alice", 1), ("bob", 1), ("carol", 1), ("alice", 2)]
    by_position = sorted(submitted, key=lambda s: position[s[2]])
    assert [(name, n) for name, n, _ in by_position] == expected
    assert sorted(position.values()) == list(range(1, 8))

    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        for name, n, tid in submitted:
            user = {"alice": alice, "bob": bob, "carol": carol}[name]
            assert user.wait_task(tid)["state"] == "done"
    finally:
        worker.stop()
    with app.app_context():
        started = db.session.execute(sa.select(User.username, Task.started_at, Task.seed).join(User)
                                     .order_by(Task.started_at)).all()
    assert [(name, seed) for name, _, seed in started] == expected


def test_the_queue_is_bounded_per_user_and_in_all(tmp_path, redis_url, models_path):
    env = instance_env(tmp_path, redis_url, models_path, DAYDREAM_USER_QUEUE_LIMIT=2,
                       DAYDREAM_QUEUE_LIMIT=3)
    app = make_app(env)
    client = app.test_client()
    first, second = ApiUser(client, "first"), ApiUser(client, "second")
    assert [first.submit().status_code for _ in range(2)] == [202, 202]
    refused = first.submit()
    assert refused.status_code == 429
    assert refused.get_json()["error"]["code"] == "too_many_queued"
    assert int(refused.headers["Retry-After"]) > 0
    assert first.me()["tokens"] == 18  # the refused one debited nothing
    assert second.submit().status_code == 202
    full = second.submit()
    assert full.status_code == 429 and full.get_json()["error"]["code"] == "queue_full"
    assert "Retry-After" in full.headers
    assert second.me()["tokens"] == 19
    assert first.get("/api/v1/queue").get_json()["queued"] == 3
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Task)) == 3
        assert queue_service.waiting_jobs() == 3


# --- uploads that must be refused --------------------------------------------------------

def png_bomb(width=20000, height=20000) -> bytes:
    """A valid PNG header claiming 20000×20000 pixels, with almost no data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (width * 3)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(row * 4)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("data, name, status", [
    (b"this is not an image at all", "notes.png", 415),
    (image_bytes((64, 64))[:60], "truncated.png", 415),
    (png_bomb(), "bomb.png", 422),
    (image_bytes((64, 64), fmt="GIF"), "anim.gif", 415),
    (b"", "empty.png", 422),
])
def test_bad_uploads_get_a_clear_4xx_and_the_service_stays_healthy(client, make_user, data, name, status):
    user = make_user()
    response = post_upload(user, data, name)
    assert response.status_code == status, response.get_json()
    error = response.get_json()["error"]
    assert error["message"] and error["code"]
    assert client.get("/healthz").status_code == 200


def test_an_oversize_body_is_413(app, make_user):
    user = make_user()
    limit = app.config["MAX_CONTENT_LENGTH"]
    response = post_upload(user, b"\x89PNG" + b"\x00" * (limit + 10))
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "too_large"
    missing = user.post("/api/v1/uploads", data={}, content_type="multipart/form-data")
    assert missing.status_code == 422 and missing.get_json()["error"]["field"] == "file"


# --- estimates ---------------------------------------------------------------------------

def test_the_estimate_uses_measured_step_times(make_user):
    user = make_user()
    first = user.post("/api/v1/estimate", json={"prompt": "x", "width": 64, "height": 64, "steps": 10,
                                                "samples": 2}).get_json()
    assert first["cost"] == 2 and first["position"] >= 1
    user.wait_task(user.submit(width=64, height=64, steps=10).get_json()["id"])
    after = user.post("/api/v1/estimate", json={"prompt": "x", "width": 64, "height": 64, "steps": 10,
                                                "samples": 2}).get_json()
    assert after["run_s"] is not None and after["run_s"] > 0
    assert after["eta_s"] >= after["run_s"]
    double = user.post("/api/v1/estimate", json={"prompt": "x", "width": 64, "height": 64,
                                                 "steps": 20, "samples": 2}).get_json()
    assert double["run_s"] == pytest.approx(2 * after["run_s"], rel=0.05, abs=0.02)
    bad = user.post("/api/v1/estimate", json={"prompt": "x", "width": 65})
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "width"
