"""Estimates from measured step times on this server: what a task will cost, how long
it will wait and how long it will run. The worker records seconds per step after every
task, per model and size (and per megapixel, to scale to sizes not yet seen)."""
from __future__ import annotations

import math
from types import SimpleNamespace

import redis
import sqlalchemy as sa
from flask import current_app

from extensions import db
from models import Task, TaskState, effective_steps, utcnow
from services.core import queue, redis_client
from services.generation import dispatch

ALPHA = 0.3  # weight of the newest measurement in the moving average


def _key(model: str, name: str) -> str:
    # Per queue: deployments (or test instances) sharing a Redis keep their own timings.
    return redis_client.key("steptime", current_app.config["QUEUE_NAME"], model, name)


def record_step_time(model: str, width: int, height: int, seconds_per_step: float) -> None:
    """seconds_per_step: the time of one denoising step of one sample."""
    conn = redis_client.connection()
    mpx = width * height / 1e6
    for name, value in ((f"{width}x{height}", seconds_per_step), ("per_mpx", seconds_per_step / mpx)):
        key = _key(model, name)
        old = conn.get(key)
        new = value if old is None else ALPHA * value + (1 - ALPHA) * float(old)
        conn.set(key, f"{new:.6f}")


def seconds_per_step(model: str, width: int, height: int) -> float | None:
    conn = redis_client.connection()
    exact = conn.get(_key(model, f"{width}x{height}"))
    if exact is not None:
        return float(exact)
    per_mpx = conn.get(_key(model, "per_mpx"))
    if per_mpx is not None:
        return float(per_mpx) * width * height / 1e6
    return None


def run_seconds(task) -> float | None:
    per_step = seconds_per_step(task.model, task.width, task.height)
    return None if per_step is None else (
        per_step * effective_steps(task.steps, task.init_image_id, task.strength) * task.samples)


def estimate(user, params: dict, cost: int) -> dict:
    """Where a task with these parameters would land in the fair order now, and the
    time until it starts (the work ahead, shared among the workers) and runs."""
    probe = SimpleNamespace(id="__probe__", user_id=user.id, created_at=utcnow(), model=params["model"],
                            width=params["width"], height=params["height"], steps=params["steps"],
                            samples=params["samples"], init_image_id=params.get("init_image"),
                            strength=params.get("strength"))
    order = dispatch.fair_order(dispatch.queued_tasks() + [probe])
    position = next(n for n, t in enumerate(order, start=1) if t is probe)
    run_s = run_seconds(probe)
    try:
        workers = len(queue.workers())
        remaining = 0.0
        for task_id in db.session.scalars(sa.select(Task.id).where(Task.state == TaskState.RUNNING.value)):
            progress = queue.get_progress(task_id) or {}
            remaining += progress.get("eta_s") or 0.0
        ahead = [run_seconds(t) for t in order[:position - 1]]
        known = workers and not any(a is None for a in ahead)
        wait_s = (sum(ahead) + remaining) / workers if known else None  # no worker: no estimate
    except redis.RedisError:
        wait_s = None
    eta_s = None if run_s is None or wait_s is None else wait_s + run_s
    rounded = lambda v: None if v is None else round(v, 2)  # noqa: E731
    return {"cost": cost, "position": position, "wait_s": rounded(wait_s), "run_s": rounded(run_s),
            "eta_s": rounded(eta_s)}


def retry_after() -> int:
    """Seconds until a queue place is likely to free: the shortest remaining run."""
    best = None
    for task in dispatch.fair_order()[:1]:
        best = run_seconds(task)
    return max(5, min(300, math.ceil(best or 30)))
