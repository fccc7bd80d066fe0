"""Plain helpers for the integration tests: a user of the API, signing in through the
pages, staff accounts, stored images, Socket.IO clients and migrated apps. The fixtures
are in conftest.py beside this file."""
from __future__ import annotations

import io
import os
import json
import re
import uuid
from pathlib import Path

import requests
import socketio as socketio_client
import sqlalchemy as sa
from PIL import Image as PILImage

from tests.helpers import ROOT, environment, wait_for

POSTGRES_URL = os.environ.get("DAYDREAM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class ApiUser:
    """A registered user talking to the API with a bearer token."""

    def __init__(self, client, username: str, password: str = "correct horse battery"):
        self.client = client
        self.username = username
        self.password = password
        response = client.post("/api/v1/auth/register", json={
            "username": username, "email": f"{username}@example.com", "password": password})
        assert response.status_code == 201, response.get_json()
        self.data = response.get_json()
        token = client.post("/api/v1/auth/tokens", json={
            "login": username, "password": password, "name": "tests"})
        assert token.status_code == 201, token.get_json()
        self.headers = {"Authorization": f"Bearer {token.get_json()['token']}"}

    def get(self, path, **kw):
        return self.client.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path, **kw):
        return self.client.post(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def me(self) -> dict:
        return self.get("/api/v1/me").get_json()

    def submit(self, headers: dict | None = None, **params):
        params = {"prompt": "a lighthouse at dusk", "width": 64, "height": 64, "steps": 4,
                  **params}
        return self.post("/api/v1/tasks", json=params, headers=headers or {})

    def wait_task(self, task_id: str, states=("done", "failed", "canceled"), timeout=60) -> dict:
        def finished():
            task = self.get(f"/api/v1/tasks/{task_id}").get_json()
            return task if task["state"] in states else None

        return wait_for(finished, timeout, interval=0.1, message=f"task {task_id} to finish")


def csrf_from(html: bytes) -> str:
    match = re.search(rb'name="csrf-token" content="([^"]+)"', html) or \
        re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1).decode()


def sign_in(client, login: str, password: str) -> str:
    """Sign in through the page, as a browser does; returns the CSRF token."""
    token = csrf_from(client.get("/login").data)
    response = client.post("/login", data={"login": login, "password": password,
                                            "csrf_token": token})
    assert response.status_code == 302, response.data[:500]
    return csrf_from(client.get("/studio").data)


def signed_in(client) -> bool:
    return client.get("/api/v1/me").status_code == 200


def post_upload(user, data: bytes, name="init.png"):
    """POST a file to /api/v1/uploads as a form would; returns the response."""
    return user.post("/api/v1/uploads", data={"file": (io.BytesIO(data), name)},
                     content_type="multipart/form-data")


def make_staff(app, username: str = "boss", password: str = "a staff password") -> dict:
    """A staff account made with `flask create-staff`; returns its API headers."""
    result = app.test_cli_runner().invoke(
        args=["create-staff", "--username", username, "--email", f"{username}@example.com"],
        input=password + "\n")
    assert result.exit_code == 0, result.output
    token = app.test_client().post("/api/v1/auth/tokens", json={
        "login": username, "password": password, "name": "t"}).get_json()["token"]
    return {"Authorization": f"Bearer {token}"}


def add_image(app, user_id: int):
    """A real image file and row for the user, as the worker would store it."""
    from extensions import db
    from services.library import storage

    with app.app_context():
        image = storage.save_image(user_id=user_id, picture=PILImage.new("RGB", (64, 64), "navy"),
                                   metadata={"prompt": "x"}, kind="upload")
        db.session.commit()
        return storage.path_of(image), storage.path_of(image, "thumbnail")


def user_row(app, username: str):
    from extensions import db
    from models import User

    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        if user is not None:
            db.session.expunge(user)
        return user


def connect(server, session: requests.Session | None) -> socketio_client.Client:
    """A Socket.IO client of the web server, with the cookies of a requests session (or none)."""
    sio = socketio_client.Client(reconnection=False)
    cookie = "; ".join(f"{k}={v}" for k, v in (session.cookies.items() if session else []))
    sio.connect(server.url, headers={"Cookie": cookie} if cookie else {},
                transports=["websocket"], wait_timeout=10)
    return sio


def migrated_app(env: dict):
    """An app whose database the Alembic migrations built (make_app uses the models)."""
    from flask_migrate import upgrade

    from app import create_app
    from config import Config

    with environment(env):
        app = create_app(Config())
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    return app


def starter_prompt_rules() -> list[tuple[int, str, str, str]]:
    """The prompt rules a migrated database starts with, as (n, kind, pattern, note): the
    list e7c3moderation01 seeds, with its two proximity patterns made one pair rule by
    f9c4pairrules01 (test_prompt_rules checks a migrated database agrees)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"migration_{name}", ROOT / "migrations" / "versions" / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    seeded = load("e7c3moderation01_moderation_audit.py").STARTER_RULES
    paired = load("f9c4pairrules01_prompt_pair_rules.py")
    rules = [rule for rule in seeded if rule[1] not in paired.OLD_NEAR] + [paired.PAIR]
    return [(n, kind, pattern, note) for n, (kind, pattern, note) in enumerate(rules)]


def owner_of(web, sock) -> int | None:
    """The web process holding the server end of the client socket `sock`, or None while
    no process has accepted it yet."""
    client_port = sock.getsockname()[1]
    local, remote = f"0100007F:{web.port:04X}", f"0100007F:{client_port:04X}"
    inodes = {fields[9] for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
              if fields[1] == local and fields[2] == remote}
    targets = {f"socket:[{inode}]" for inode in inodes if inode != "0"}
    for pid in web.worker_pids():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in targets:
                    return pid
            except OSError:
                continue
    return None


def sign_up(web, prefix: str, password: str = "correct horse battery") -> tuple[str, "requests.Session"]:
    """A new account, signed in through the pages; its cookies."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    session = requests.Session()
    assert session.post(web.url + "/api/v1/auth/register", timeout=30, json={
        "username": name, "email": f"{name}@example.com", "password": password}).status_code == 201
    token = csrf_from(session.get(web.url + "/login", timeout=30).content)
    response = session.post(web.url + "/login", timeout=30,
                            data={"login": name, "password": password, "csrf_token": token})
    assert response.url.endswith("/studio"), response.url
    return name, session


def studio_config(client) -> tuple[dict, str]:
    """The studio page's JSON config block and the page."""
    html = client.get("/studio").data.decode()
    match = re.search(r'<script type="application/json" id="studio-config">(.*?)</script>', html, re.S)
    assert match, "no studio-config on the page"
    return json.loads(match.group(1)), html


def pupil_in_new_class(app, **settings):
    """A new account (an ApiUser of the app's test client) that is the only pupil of a new
    class with these settings (SchoolClass columns: allowed_models, images_per_day,
    budget_mode, …); returns the user and the class's id."""
    from extensions import db
    from models import ClassMember, SchoolClass, User

    pupil = ApiUser(app.test_client(), f"pupil{uuid.uuid4().hex[:8]}")
    with app.app_context():
        user_id = db.session.scalar(sa.select(User.id).where(User.username == pupil.username))
        school_class = SchoolClass(name=f"Class {uuid.uuid4().hex[:6]}", **settings)
        db.session.add(school_class)
        db.session.flush()
        db.session.add(ClassMember(class_id=school_class.id, user_id=user_id, role="pupil", via="staff"))
        db.session.commit()
        return pupil, school_class.id


def calls_holding(app, task_ids) -> list[dict]:
    """The calls of the app's worker (app.worker), oldest first, that held any of
    `task_ids`: the list worker/jobs.py:recent_batches reads, read here without importing
    the worker's torch."""
    from services.core import keys, redis_client
    from services.core import queue as queue_service

    with app.app_context():
        [name] = [n for n, w in queue_service.workers().items() if w["pid"] == app.worker.proc.pid]
        raw = redis_client.connection().lrange(keys.worker_batches(name), 0, -1)
    calls = [json.loads(entry) for entry in reversed(raw)]
    return [call for call in calls if set(task_ids) & set(call["tasks"])]


def upload_blocks(user, seed: int, size: int = 64):
    """Upload a size × size picture of coloured 8 px blocks (easily told from a model's
    noise); (its id, its pixels as int16)."""
    import numpy as np

    blocks = np.random.default_rng(seed).integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
    picture = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)
    buffer = io.BytesIO()
    PILImage.fromarray(picture).save(buffer, format="PNG")
    response = post_upload(user, buffer.getvalue(), "start.png")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"], picture.astype(np.int16)


def pool_of(app, class_id: str) -> int:
    """A class pool's tokens now."""
    from extensions import db
    from models import SchoolClass

    with app.app_context():
        return db.session.get(SchoolClass, class_id).pool_tokens


def books_balance(app) -> list[dict]:
    """What the ledger check finds wrong (every balance and pool against its rows): []."""
    from services.accounts import credits

    with app.app_context():
        return credits.check_ledger()
