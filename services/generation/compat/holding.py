"""Holding a compatibility request until its task ends, and the caller's own running
task (A1111's progress and interrupt).

A compat request keeps one web thread (gunicorn gthread) while its task waits and runs.
A process lets at most `max_waiting()` of its threads be held so (half of
DAYDREAM_WEB_THREADS), so pages and the JSON API always have the other half; one more
is answered 429 with Retry-After, nothing charged."""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import redis
import sqlalchemy as sa
from flask import Flask, current_app

from extensions import db
from models import Task, TaskState, User
from services.core import queue
from services.core.errors import Conflict, NotFound, QueueFull, ServiceError, Unavailable
from services.generation import tasks

DEFAULT_TIMEOUT = 600


class TimedOut(ServiceError):
    status = 504
    code = "timeout"


def timeout_s() -> float:
    return float(current_app.config.get("COMPAT_TIMEOUT") or DEFAULT_TIMEOUT)


def max_waiting() -> int:
    """Compat requests one web process holds at once: half its threads."""
    configured = current_app.config.get("COMPAT_MAX_WAITING")
    if configured:
        return int(configured)
    return max(1, int(os.environ.get("DAYDREAM_WEB_THREADS") or 64) // 2)


_slots_lock = threading.Lock()


def _slots(app: Flask) -> threading.BoundedSemaphore:
    slots = app.extensions.get("daydream_compat_waiters")
    if slots is None:
        with _slots_lock:
            slots = app.extensions.setdefault("daydream_compat_waiters", threading.BoundedSemaphore(max_waiting()))
    return slots


class Holding:
    """`with Holding():` around a held request: refused (429) when the process holds
    max_waiting() already."""

    def __enter__(self):
        self.slots = _slots(current_app._get_current_object())
        if not self.slots.acquire(blocking=False):
            raise QueueFull("The server is holding as many waiting image requests as it may; "
                            "try again shortly. Nothing was charged.", code="too_many_waiting",
                            headers={"Retry-After": "5"})
        return self

    def __exit__(self, *exc):
        self.slots.release()
        return False


def require_worker() -> None:
    """A held request would only wait out its timeout with no worker to run it: 503 at
    once instead, nothing charged."""
    try:
        alive = queue.workers()
    except redis.RedisError:
        alive = None
    if not alive:
        raise Unavailable("No generation worker is running right now; nothing was charged. "
                          "Try again in a minute.", code="no_worker", headers={"Retry-After": "30"})


def _state(task_id: str) -> str | None:
    db.session.rollback()  # a fresh snapshot, and no connection held while waiting
    state = db.session.scalar(sa.select(Task.state).where(Task.id == task_id))
    db.session.rollback()
    return state


def wait_for_task(task: Task, *, timeout: float | None = None,
                  pause: Callable[[float], bool] | None = None) -> Task | None:
    """Hold until the task is done, failed or canceled, and return it. `pause(s)` waits
    up to s seconds and says True when the client has gone away: a task that has not
    started is then canceled (refunded) and None returned; a running one goes on (its
    pictures land in the gallery) and None is returned. At the deadline an unfinished
    task is canceled (refunded) and TimedOut raised."""
    timeout = timeout_s() if timeout is None else timeout
    pause = pause or (lambda seconds: time.sleep(seconds) or False)
    deadline = time.monotonic() + timeout
    interval = 0.05
    task_id = task.id
    while True:
        state = _state(task_id)
        if state is None:
            raise NotFound("The task is gone.")
        if state not in TaskState.unfinished():
            return db.session.get(Task, task_id)
        left = deadline - time.monotonic()
        if left <= 0:
            _cancel_quietly(task_id)
            raise TimedOut(f"The picture was not ready within {timeout:g} s (DAYDREAM_COMPAT_TIMEOUT); "
                           "the task was canceled and your tokens refunded. Try again when the queue is shorter.")
        if pause(min(interval, left)):
            if _state(task_id) == TaskState.QUEUED.value:
                _cancel_quietly(task_id)
            return None
        interval = min(interval * 1.5, 0.5)


def _cancel_quietly(task_id: str) -> None:
    row = db.session.get(Task, task_id)
    if row is None:
        return
    try:
        tasks.cancel(row)
    except Conflict:
        pass  # it finished meanwhile


# --- the caller's own tasks only ----------------------------------------------------------

def _unfinished(user: User) -> list[Task]:
    return list(db.session.scalars(sa.select(Task).where(
        Task.user_id == user.id, Task.state.in_(TaskState.unfinished())).order_by(Task.created_at, Task.id)))


def current_task(user: User) -> tuple[Task | None, int]:
    """The caller's running task (the latest started), else their oldest queued one; and
    how many unfinished tasks they have."""
    mine = _unfinished(user)
    running = [t for t in mine if t.state == TaskState.RUNNING.value]
    if running:
        return max(running, key=lambda t: t.started_at or t.created_at), len(mine)
    return (mine[0] if mine else None), len(mine)


def interrupt(user: User) -> int:
    """Cancel (and refund) the caller's running task(s); with none running, the one
    waiting first. Never anyone else's."""
    mine = _unfinished(user)
    targets = [t for t in mine if t.state == TaskState.RUNNING.value] or mine[:1]
    canceled = 0
    for task in targets:
        try:
            tasks.cancel(task)
            canceled += 1
        except Conflict:
            pass
    return canceled
