"""The Redis client of the web tier and the workers (the keys are named in keys.py).

Every call gives up after REDIS_TIMEOUT seconds (one retry), so a hung Redis cannot
hold a web thread; /healthz has a probe of its own with shorter timeouts. Within one web
request, the first call that times out makes every later one fail at once (the request
waits for one timeout, not one per call): pages then answer from the database without
the Redis-only extras (estimates, progress, worker details), or 503."""
from __future__ import annotations

import redis
from flask import current_app, g, has_request_context
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

_GAVE_UP = "daydream_redis_timed_out"


def _guarded(call, *args, **kwargs):
    """call(), unless Redis timed out earlier in this request: then fail at once."""
    in_request = has_request_context()
    if in_request and g.get(_GAVE_UP):
        raise redis.TimeoutError("Redis did not answer earlier in this request; not waiting again")
    try:
        return call(*args, **kwargs)
    except redis.TimeoutError:
        # (A refused or dropped connection is not marked: the retry of a connection that
        # a Redis restart closed should still go through; a refused one fails fast anyway.)
        if in_request:
            setattr(g, _GAVE_UP, True)
        raise


class _OneTimeoutPerRequest:
    """Mixed into the client's connection class: every way a call reaches the server
    (connecting, sending, reading; pipelines and RQ included) goes through _guarded."""

    def connect_check_health(self, *args, **kwargs):
        return _guarded(super().connect_check_health, *args, **kwargs)

    def send_packed_command(self, *args, **kwargs):
        return _guarded(super().send_packed_command, *args, **kwargs)

    def read_response(self, *args, **kwargs):
        return _guarded(super().read_response, *args, **kwargs)


_CONNECTIONS = {base: type(f"Guarded{base.__name__}", (_OneTimeoutPerRequest, base), {})
                for base in (redis.Connection, redis.UnixDomainSocketConnection, redis.SSLConnection)}


def _client(url: str, timeout: float, retries: int) -> redis.Redis:
    base = redis.connection.parse_url(url).get("connection_class", redis.Connection)
    return redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                health_check_interval=30, connection_class=_CONNECTIONS.get(base, base),
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
