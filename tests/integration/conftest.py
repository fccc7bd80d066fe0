"""The integration stack: the app (test client) and a real worker process running the
tiny demo model, sharing a real Redis and a real SQLite database file."""
from __future__ import annotations

import itertools
import uuid

import pytest

from tests.helpers import instance_env, make_app, unique
from tests.integration.helpers import POSTGRES_URL, ApiUser

_names = itertools.count()


@pytest.fixture(scope="session")
def stack(stack_factory):
    """The default stack (a worker and an archive worker), shared by the session: modules
    that need its web server ask stack_factory for the same settings with `web=`."""
    shared = stack_factory(archiver=True, keep=True)
    app = shared.app
    app.worker, app.archiver, app.env = shared.worker, shared.archiver, shared.env
    return app


@pytest.fixture
def app(stack):
    return stack


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_user(client):
    def make(prefix: str = "user") -> ApiUser:
        return ApiUser(client, f"{prefix}{next(_names)}")

    return make


@pytest.fixture(scope="session")
def idle_app(stack_factory):
    """An app whose queue no worker serves: its tasks stay queued."""
    return stack_factory(worker=False, keep=True).app


@pytest.fixture
def idle_client(idle_app):
    return idle_app.test_client()


@pytest.fixture
def make_idle_user(idle_client):
    def make(prefix: str = "idle") -> ApiUser:
        return ApiUser(idle_client, f"{prefix}{next(_names)}")

    return make


@pytest.fixture
def fresh(tmp_path, redis_url, models_path):
    """An app of its own (no worker: tasks stay queued), for tests that need a clean
    database or their own settings (limits and counts of their own)."""

    def build(**settings):
        return make_app(instance_env(tmp_path / unique("i"), redis_url, models_path, **settings))

    return build


@pytest.fixture
def postgres_url():
    """A PostgreSQL database of the test's own, dropped after it (skips without a server)."""
    psycopg = pytest.importorskip("psycopg")
    admin_url = POSTGRES_URL
    name = f"daydream_test_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {admin_url}: {exc}")
    conn.execute(f'CREATE DATABASE "{name}"')
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    conn.close()
