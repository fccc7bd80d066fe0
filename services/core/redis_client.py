"""The Redis client of the web tier and the workers, and the naming of Daydream's keys.

Every call gives up after REDIS_TIMEOUT seconds (one retry), so a hung Redis cannot
hold a web thread; /healthz has a probe of its own with shorter timeouts."""
from __future__ import annotations

import redis
from flask import current_app
from redis.backoff import ExponentialBackoff
from redis.retry import Retry


def _client(url: str, timeout: float, retries: int) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30,
                                retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries))


def connection() -> redis.Redis:
    """One client (and connection pool) per app, made on first use. Every call gives up
    after REDIS_TIMEOUT seconds (one retry), so a hung Redis cannot hold a web thread."""
    ext = current_app.extensions
    if "daydream_redis" not in ext:
        ext["daydream_redis"] = _client(current_app.config["REDIS_URL"],
                                        current_app.config["REDIS_TIMEOUT"], 1)
    return ext["daydream_redis"]


def probe_connection() -> redis.Redis:
    """For /healthz: short timeouts and no retry, so it answers in well under 2 s."""
    ext = current_app.extensions
    if "daydream_redis_probe" not in ext:
        ext["daydream_redis_probe"] = _client(current_app.config["REDIS_URL"],
                                              min(current_app.config["REDIS_TIMEOUT"], 0.5), 0)
    return ext["daydream_redis_probe"]


def available() -> bool:
    try:
        return bool(probe_connection().ping())
    except (redis.RedisError, OSError):
        return False


def key(*parts: str) -> str:
    """Every key Daydream writes: daydream:<part>:<part>..."""
    return ":".join(("daydream",) + parts)
