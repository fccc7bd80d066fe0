"""Fixtures shared by every suite: a real Redis, one models folder, and the factory of
server-and-worker stacks. The plain helpers (instances, processes, polling) are in
tests/helpers.py. The `integration` and `e2e` markers are set here by folder, so
`-m "not e2e"` and the like select by them."""
from __future__ import annotations

import os
from pathlib import Path

# One compute thread per process (torch's OpenMP pool), set before anything imports torch
# and inherited by every worker and server the tests start. The tiny models gain nothing
# from a second thread, and a test process, its workers and a second test process
# (`make test` runs two) each spinning two threads on two cores slowed every render
# several times over.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import pytest  # noqa: E402
import redis  # noqa: E402

from tests.helpers import REDIS_URL, StackFactory

MARKED_FOLDERS = {"integration": "integration", "e2e": "e2e"}  # folder under tests/: marker


def pytest_collection_modifyitems(config, items):
    tests = Path(__file__).resolve().parent
    for item in items:
        try:
            folder = Path(str(item.path)).resolve().relative_to(tests).parts[0]
        except ValueError:
            continue
        if folder in MARKED_FOLDERS:
            item.add_marker(MARKED_FOLDERS[folder])


@pytest.fixture(scope="session")
def redis_url() -> str:
    conn = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        conn.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not answering at {REDIS_URL} ({exc}); `make test` starts one")
    # No flush: every test instance has a queue of its own, so runs can share a Redis.
    return REDIS_URL


@pytest.fixture(scope="session")
def models_path(tmp_path_factory) -> Path:
    """One models folder for the whole run, so the demo model is built once."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def stack_factory(tmp_path_factory, redis_url, models_path):
    """`stack_factory(worker=True, archiver=False, web=0, keep=False, **settings)`: a
    server-and-worker stack (tests.helpers.Stack) with those env overrides, shared by
    every module that asks for the same settings and stopped at the session's end
    (see StackFactory for which stacks are kept between modules)."""
    factory = StackFactory(tmp_path_factory.mktemp("stacks"), redis_url, models_path)
    yield factory
    factory.stop()
