"""Fixtures shared by every suite: a real Redis and one models folder. The plain
helpers (instances, processes, polling) are in tests/helpers.py."""
from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.helpers import REDIS_URL


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
