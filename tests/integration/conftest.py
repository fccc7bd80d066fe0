"""The integration stack: the app (test client) and a real worker process running the
tiny demo model, sharing a real Redis and a real SQLite database file."""
from __future__ import annotations

import itertools

import pytest
import redis

from tests.conftest import ArchiveWorkerProcess, WorkerProcess, instance_env, make_app, wait_for

_names = itertools.count()


@pytest.fixture(scope="session")
def stack(tmp_path_factory, redis_url, models_path):
    instance = tmp_path_factory.mktemp("instance")
    env = instance_env(instance, redis_url, models_path)
    app = make_app(env)
    worker = WorkerProcess(env, instance / "worker.log").start()
    archiver = ArchiveWorkerProcess(env, instance / "archiver.log").start()
    app.worker = worker
    app.archiver = archiver
    app.env = env
    yield app
    archiver.stop()
    worker.stop()


@pytest.fixture
def app(stack):
    return stack


@pytest.fixture
def client(app):
    return app.test_client()


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


@pytest.fixture
def make_user(client):
    def make(prefix: str = "user") -> ApiUser:
        return ApiUser(client, f"{prefix}{next(_names)}")

    return make


@pytest.fixture(scope="session")
def idle_app(tmp_path_factory, redis_url, models_path):
    """An app whose queue no worker serves: its tasks stay queued."""
    instance = tmp_path_factory.mktemp("idle")
    return make_app(instance_env(instance, redis_url, models_path))


@pytest.fixture
def idle_client(idle_app):
    return idle_app.test_client()


@pytest.fixture
def make_idle_user(idle_client):
    def make(prefix: str = "idle") -> ApiUser:
        return ApiUser(idle_client, f"{prefix}{next(_names)}")

    return make


def csrf_from(html: bytes) -> str:
    import re

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
