"""Worker liveness: a heartbeat of Daydream's own, so a dead worker is known dead
within seconds (RQ's own worker key outlives a killed worker by the job timeout).

Each worker process (generation or archives) refreshes a short-lived key from a
thread of its own (worker/heartbeat.py): while idle, while loading a model, between
steps and during them. A worker whose key expired is dead. Several instances can
share one Redis: the keys are named by the queue ("pool") the worker serves.

A worker on this machine that was killed is recognised at once, before its key
expires: its heartbeat names its host, pid namespace and pid, and that pid is gone.
That lets a restarted worker settle the task its predecessor left at once."""
from __future__ import annotations

import json
import os
import socket
import time
from functools import lru_cache

from flask import current_app

from services.core import keys
from services.core.redis_client import connection


def _alive_key(pool: str, name: str) -> str:
    return keys.alive(pool, name)


def _members_key(pool: str) -> str:
    return keys.alive_members(pool)


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


@lru_cache(maxsize=1)
def this_machine() -> str:
    """Host, boot and pid namespace: two processes with the same value see each
    other's pids."""
    return "|".join((socket.gethostname(), _read("/proc/sys/kernel/random/boot_id"),
                     _link("/proc/self/ns/pid")))


def beat(pool: str, name: str, ttl: float, **info) -> None:
    """This worker is alive for the next ttl seconds."""
    conn = connection()
    body = json.dumps({**info, "name": name, "machine": this_machine(), "pid": os.getpid(),
                       "at": time.time()})
    with conn.pipeline() as pipe:
        pipe.set(_alive_key(pool, name), body, px=max(int(ttl * 1000), 1))
        pipe.sadd(_members_key(pool), name)
        pipe.execute()


def forget(pool: str, name: str) -> None:
    """A clean stop: this worker is gone now, not in ttl seconds."""
    conn = connection()
    with conn.pipeline() as pipe:
        pipe.delete(_alive_key(pool, name))
        pipe.srem(_members_key(pool), name)
        pipe.execute()


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # somebody else's process: it exists
        return False
    return False


def alive(pool: str, conn=None) -> dict[str, dict]:
    """The live workers of a pool: name → what its last heartbeat said."""
    conn = conn or connection()
    names = sorted(n.decode() for n in conn.smembers(_members_key(pool)))
    if not names:
        return {}
    values = conn.mget([_alive_key(pool, n) for n in names])
    found, gone = {}, []
    here = this_machine()
    for name, raw in zip(names, values):
        info = json.loads(raw) if raw else None
        if info is not None and info.get("machine") == here and _pid_gone(int(info.get("pid", 0))):
            info = None  # killed on this machine: dead before its key expires
        if info is None:
            gone.append(name)
        else:
            found[name] = info
    if gone:
        conn.srem(_members_key(pool), *gone)
        conn.delete(*(_alive_key(pool, n) for n in gone))
    return found


def generation_pool() -> str:
    return current_app.config["QUEUE_NAME"]


def archive_pool() -> str:
    return current_app.config["ARCHIVE_QUEUE_NAME"]


def alive_workers(conn=None) -> dict[str, dict]:
    """The live generation workers."""
    return alive(generation_pool(), conn)


def alive_archive_workers() -> dict[str, dict]:
    return alive(archive_pool())


def take_turn(lock: str, holder: str, period_s: float) -> bool:
    """True for at most one caller per period among every process sharing the Redis:
    the reconciler runs under this, so several workers do not race."""
    return bool(connection().set(keys.turn(lock), holder, nx=True,
                                       px=max(int(period_s * 1000), 1)))
