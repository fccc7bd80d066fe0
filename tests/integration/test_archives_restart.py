"""An archive asked for is a row in the database and a job in Redis, not work of the web
process: it survives the web server restarting, and the archive worker builds it."""
from __future__ import annotations

import io
import random
import zipfile

import redis
import sqlalchemy as sa
import requests
from PIL import Image as PILImage

from tests.helpers import ArchiveWorkerProcess, WebServer, instance_env, make_app, wait_for
from tests.integration.helpers import connect, csrf_from

PASSWORD = "correct horse battery"


def noise_png(seed: int) -> bytes:
    rng = random.Random(seed)
    picture = PILImage.new("RGB", (64, 64))
    picture.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(64 * 64)])
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def test_an_archive_survives_the_web_server_restarting(tmp_path, redis_url, models_path):
    env = instance_env(tmp_path / "instance", redis_url, models_path)
    make_app(env)
    first = WebServer(env, tmp_path / "web1.log").start()
    second = archiver = sio = None
    try:
        api = requests.Session()
        assert api.post(first.url + "/api/v1/auth/register", json={
            "username": "restarter", "email": "restarter@example.com", "password": PASSWORD}).status_code == 201
        token = api.post(first.url + "/api/v1/auth/tokens", json={
            "login": "restarter", "password": PASSWORD, "name": "t"}).json()["token"]
        api.headers["Authorization"] = f"Bearer {token}"
        uploads = [api.post(first.url + "/api/v1/uploads", files={"file": (f"{n}.png", noise_png(n), "image/png")}).json()
                   for n in range(3)]
        assert all("id" in u for u in uploads), uploads

        response = api.post(first.url + "/api/v1/archives", json={"all": True})
        assert response.status_code == 202, response.text
        archive = response.json()
        assert archive["state"] == "queued" and archive["image_count"] == 3

        first.stop()  # the web server goes away with the archive unbuilt (no archive worker yet)
        from rq import Queue

        waiting = Queue(f"{env['DAYDREAM_QUEUE']}-archives", connection=redis.Redis.from_url(redis_url))
        assert f"archive-{archive['id']}" in waiting.job_ids

        second = WebServer(env, tmp_path / "web2.log").start()
        assert api.get(f"{second.url}/api/v1/archives/{archive['id']}").json()["state"] == "queued"
        # A browser watching for the archive's progress.
        browser = requests.Session()
        login = csrf_from(browser.get(second.url + "/login").content)
        browser.post(second.url + "/login", data={"login": "restarter", "password": PASSWORD,
                                                   "csrf_token": login})
        events: list[dict] = []
        sio = connect(second, browser)
        sio.on("archive", events.append)

        archiver = ArchiveWorkerProcess(env, tmp_path / "archiver.log").start()

        def ready():
            current = api.get(f"{second.url}/api/v1/archives/{archive['id']}").json()
            return current if current["state"] in ("ready", "failed") else None

        done = wait_for(ready, 60, interval=0.1, message="the archive to be built")
        assert done["state"] == "ready", (done, archiver.output()[-2000:])
        download = api.get(second.url + done["url"])
        assert download.status_code == 200
        assert download.headers["Content-Type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
        assert sorted(names) == sorted([f"upload_{u['id']}.png" for u in uploads] + ["manifest.csv"])
        wait_for(lambda: any(e["id"] == archive["id"] and e["state"] == "ready" for e in events), 10,
                 message="the archive event saying it is ready")
        states = [e["state"] for e in events if e["id"] == archive["id"]]
        assert states[0] == "building" and states[-1] == "ready"
        assert events[-1]["url"] == done["url"]
    finally:
        if sio:
            sio.disconnect()
        for process in (archiver, second, first):
            if process:
                process.stop()


def test_an_archive_lost_with_a_killed_archive_worker_is_built_again_within_15_s(tmp_path, redis_url, models_path):
    """The archive worker is killed (kill -9) in the middle of a build. The one started
    in its place knows at once that its predecessor is dead (its heartbeat names a pid
    that is gone on this machine), queues the archive again and builds it: well within
    15 s of the kill, not a minute later."""
    import os
    import signal
    import time

    from tests.helpers import wait_for
    from tests.integration.helpers import ApiUser, add_image

    env = instance_env(tmp_path / "instance", redis_url, models_path)
    app = make_app(env)
    api = ApiUser(app.test_client(), "lostarchive")
    from extensions import db
    from models import User

    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.username == "lostarchive"))
    picture, _thumbnail = add_image(app, user_id)
    # The image's file is a named pipe for now: the build blocks opening it, mid-way.
    picture.unlink()
    os.mkfifo(picture)
    first = ArchiveWorkerProcess(env, tmp_path / "archiver1.log").start()
    second = None
    try:
        response = api.post("/api/v1/archives", json={"all": True})
        assert response.status_code == 202, response.get_json()
        archive_id = response.get_json()["id"]
        wait_for(lambda: api.get(f"/api/v1/archives/{archive_id}").get_json()["state"] == "building", 30,
                 interval=0.1, message="the build to start")
        os.kill(first.proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        first.proc.wait(10)
        picture.unlink()
        picture.write_bytes(noise_png(5))  # the file is readable again

        second = ArchiveWorkerProcess(env, tmp_path / "archiver2.log").start()

        def ready():
            current = api.get(f"/api/v1/archives/{archive_id}").get_json()
            return current if current["state"] in ("ready", "failed") else None

        done = wait_for(ready, 60, interval=0.1, message="the lost archive to be built again")
        took = time.monotonic() - killed
        assert done["state"] == "ready", (done, second.output()[-2000:])
        assert took < 15, f"the lost archive took {took:.1f} s to be built again"
        download = api.get(done["url"])
        assert download.status_code == 200
        names = zipfile.ZipFile(io.BytesIO(download.data)).namelist()
        assert len([n for n in names if n.endswith(".png")]) == 1 and "manifest.csv" in names
    finally:
        for process in (second, first):
            if process:
                process.stop()
