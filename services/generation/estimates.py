"""Estimates from measured step times on this server: what a task will cost, how long
it will wait and how long it will run. The worker records seconds per step after every
task, per model and size; sizes never measured are read off a per-model fit
time = a + b × pixels over the sizes that were (a: the per-step overhead that does not
grow with the image, b: the time per pixel), so a small image is not estimated as a
shrunken copy of a large one (nor a large one as a blown-up small one)."""
from __future__ import annotations

import heapq
import math
import time
from datetime import timezone
from types import SimpleNamespace

import redis
import sqlalchemy as sa
from flask import current_app

from extensions import db
from models import Task, TaskState, effective_steps
from services.core import keys, queue, redis_client
from services.generation import dispatch
from services.generation.params import hires_steps

ALPHA = 0.3  # weight of the newest measurement in the moving average
MAX_SIZES = 32  # sizes kept per model for the fit (the least recently measured go first)
# With a single size measured there is nothing to fit: assume this share of its time per
# step is overhead that does not scale with the pixels (between "all fixed" and "all per pixel").
ONE_SIZE_OVERHEAD = 0.5


def _queue() -> str:
    # Per queue: deployments (or test instances) sharing a Redis keep their own timings.
    return current_app.config["QUEUE_NAME"]


def record_step_time(model: str, width: int, height: int, seconds_per_step: float, images: int = 1) -> None:
    """seconds_per_step: the time of one denoising step of one image, in a pipeline call
    of `images` images (worker/batching.py): a batched call's step costs less per image,
    so each batch size keeps its own figure (per model and size)."""
    conn = redis_client.connection()
    size = f"{width}x{height}"
    if images > 1:
        batches = keys.steptime_batches(_queue(), model, size)  # images a call -> seconds per image-step
        old = conn.hget(batches, str(images))
        new = moving_average(None if old is None else float(old), seconds_per_step)
        conn.hset(batches, str(images), f"{new:.6f}")
        return
    key = keys.steptime_size(_queue(), model, size)
    old = conn.get(key)
    new = moving_average(None if old is None else float(old), seconds_per_step)
    conn.set(key, f"{new:.6f}")
    sizes = keys.steptime_sizes(_queue(), model)  # size -> "seconds per step|when", for the fit
    conn.hset(sizes, size, f"{new:.6f}|{time.time():.0f}")
    fields = conn.hgetall(sizes)
    if len(fields) > MAX_SIZES:
        by_age = sorted(fields, key=lambda f: float(_decode(fields[f]).split("|")[1]))
        conn.hdel(sizes, *by_age[:len(fields) - MAX_SIZES])


def moving_average(old: float | None, value: float) -> float:
    """The moving average of step times, except that a time under half the average
    replaces it: a slow outlier (a warm-up, a busy machine) is not the rule, and
    estimates that stay high for several runs after one are what misleads."""
    if old is None or value < old / 2:
        return value
    return ALPHA * value + (1 - ALPHA) * old


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def fit_step_time(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(a, b) of seconds per step = a + b × pixels, by least squares over the measured
    (pixels, seconds per step) points; neither term negative. One point: split its time
    by ONE_SIZE_OVERHEAD. None without points."""
    points = [(float(p), float(t)) for p, t in points if p > 0 and t > 0]
    if not points:
        return None
    if len({p for p, _ in points}) == 1:
        pixels = points[0][0]
        mean = sum(t for _, t in points) / len(points)
        return ONE_SIZE_OVERHEAD * mean, (1 - ONE_SIZE_OVERHEAD) * mean / pixels
    n = len(points)
    mean_p = sum(p for p, _ in points) / n
    mean_t = sum(t for _, t in points) / n
    var = sum((p - mean_p) ** 2 for p, _ in points)
    b = sum((p - mean_p) * (t - mean_t) for p, t in points) / var
    a = mean_t - b * mean_p
    if b < 0:  # larger was not slower (noise): a flat estimate
        return mean_t, 0.0
    if a < 0:  # no overhead to speak of: through the origin
        return 0.0, sum(p * t for p, t in points) / sum(p * p for p, _ in points)
    return a, b


def predict_step_time(fit: tuple[float, float] | None, pixels: float) -> float | None:
    if fit is None:
        return None
    a, b = fit
    return max(a + b * pixels, 1e-6)


def seconds_per_step(model: str, width: int, height: int, images: int = 1) -> float | None:
    """Seconds a denoising step costs one image of this model and size, in a call of
    `images` images: the figure measured for the largest batch size up to `images` at
    this size, else the single-image figure (measured, or read off the fit)."""
    conn = redis_client.connection()
    if images > 1:
        measured = {int(_decode(n)): float(v) for n, v in conn.hgetall(keys.steptime_batches(_queue(), model, f"{width}x{height}")).items()}
        fitting = [n for n in measured if n <= images]
        if fitting:
            return measured[max(fitting)]
    exact = conn.get(keys.steptime_size(_queue(), model, f"{width}x{height}"))
    if exact is not None:
        return float(exact)
    points = []
    for size, value in conn.hgetall(keys.steptime_sizes(_queue(), model)).items():
        w, h = (int(v) for v in _decode(size).split("x"))
        points.append((w * h, float(_decode(value).split("|")[0])))
    if points:
        return predict_step_time(fit_step_time(points), width * height)
    per_mpx = conn.get(keys.steptime_per_mpx(_queue(), model))  # recorded by earlier versions
    if per_mpx is not None:
        return float(per_mpx) * width * height / 1e6
    return None


def run_seconds(task) -> float | None:
    """The whole run of a task: seconds per image-step × the steps it runs (image-to-image
    runs only strength × steps) × samples, at the step time measured for calls of its
    samples (they render together when the worker's batches allow; on a worker that makes
    one image a call, only single-image figures exist); None when nothing measured applies."""
    per_step = seconds_per_step(task.model, task.width, task.height, images=task.samples)
    if per_step is None:
        return None
    seconds = per_step * effective_steps(task.steps, task.init_image_id, task.strength) * task.samples
    hires = getattr(task, "hires", None)
    second = hires_steps(task.steps, hires)
    if second:  # a hires fix's second pass, at its final size
        at_final = seconds_per_step(task.model, hires["width"], hires["height"], images=task.samples)
        if at_final is None:
            return None
        seconds += at_final * second * task.samples
    return seconds


def step_zero_eta(run_s: float | None, total_steps: int, elapsed: float) -> float | None:
    """Time left of a run whose first step is not measured yet: the server's run estimate,
    counting down by at most one step's share (that first step is what is under way)."""
    if run_s is None:
        return None
    return max(run_s - min(max(elapsed, 0.0), run_s / max(total_steps, 1)), 0.0)


def remaining_seconds(task, now: float | None = None) -> float | None:
    """Time left of a running task: its live ETA (the number its card shows), aged by the
    time since the worker wrote it; before any, the run estimate from its start."""
    now = time.time() if now is None else now
    progress = queue.get_progress(task.id) or {}
    if progress.get("eta_s") is not None:
        return max(float(progress["eta_s"]) - max(now - float(progress.get("at") or now), 0.0), 0.0)
    started = now
    if task.started_at is not None:  # naive UTC in the database
        started = task.started_at.replace(tzinfo=task.started_at.tzinfo or timezone.utc).timestamp()
    return step_zero_eta(run_seconds(task), task.effective_steps * task.samples, now - started)


def wait_seconds(running: list[float], ahead: list[float], workers: int) -> float | None:
    """When a worker is free for the next task: the running tasks (their time left) and
    the queued tasks ahead (their run estimates), dealt in order to whichever worker is
    free first. With one worker this is exactly the sum of everything ahead; with more,
    the same work divided over them (a free worker means no wait). None without workers."""
    if workers <= 0:
        return None
    free = [0.0] * workers
    for seconds in list(running) + list(ahead):
        heapq.heapreplace(free, free[0] + seconds)
    return free[0]


def _run_seconds_of(rows) -> list[float | None]:
    """run_seconds of each row, reading each model and size's step time once."""
    per_size: dict[tuple, float | None] = {}
    result = []
    for row in rows:
        size = (row.model, row.width, row.height, row.samples)
        if size not in per_size:
            per_size[size] = seconds_per_step(*size[:3], images=row.samples)
        per_step = per_size[size]
        result.append(None if per_step is None else
                      per_step * effective_steps(row.steps, row.init_image_id, row.strength) * row.samples)
    return result


def _wait_for(position: int, user_id: int | None = None) -> tuple[float | None, dict]:
    """The wait of the task at `position` of the fair order, and the time left that it
    counted for each running task of `user_id` (by id), which that user's cards show live.
    The tasks ahead are read as narrow rows (dispatch.ahead), their step times once a size."""
    workers = len(queue.workers())
    if not workers:
        return None, {}  # no worker: no estimate
    ahead = _run_seconds_of(dispatch.ahead(position - 1))
    if any(a is None for a in ahead):
        return None, {}  # work ahead nobody can size: no estimate
    now = time.time()
    running, mine = [], {}
    for task in db.session.scalars(sa.select(Task).where(Task.state == TaskState.RUNNING.value)):
        left = remaining_seconds(task, now) or 0.0
        running.append(left)
        if task.user_id == user_id:
            mine[task.id] = round(left, 2)
    return wait_seconds(running, ahead, workers), mine


def _answer(cost, position: int, wait_s, run_s) -> dict:
    eta_s = None if run_s is None or wait_s is None else wait_s + run_s
    rounded = lambda v: None if v is None else round(v, 2)  # noqa: E731
    answer = {"position": position, "wait_s": rounded(wait_s), "run_s": rounded(run_s),
              "eta_s": rounded(eta_s)}
    return answer if cost is None else {"cost": cost, **answer}


def estimate(user, params: dict, cost: int) -> dict:
    """Where a task with these parameters would land in the fair order now, and the
    time until it starts (the work ahead, shared among the workers) and runs. The
    running tasks count with the same time left that their cards show."""
    probe = SimpleNamespace(model=params["model"], width=params["width"], height=params["height"],
                            steps=params["steps"], samples=params["samples"],
                            init_image_id=params.get("init_image"), strength=params.get("strength"),
                            hires=params.get("hires"))
    # A task submitted now would go last in its round (dispatch.next_round).
    position = 1 + dispatch.count_through_round(dispatch.next_round(user.id))
    run_s = run_seconds(probe)
    try:
        wait_s, mine = _wait_for(position, user.id)
    except redis.RedisError:
        wait_s, mine = None, {}
    # running: the time left counted for each of the user's running tasks, so that the
    # page can follow their cards' live ETA between answers (pages/studio/eta.js).
    return {**_answer(cost, position, wait_s, run_s), "running": mine}


def for_task(task) -> dict:
    """The estimate of a submitted task: {position, wait_s, run_s, eta_s} (once it runs:
    no position, no wait, and eta_s its time left). Nulls where unknown."""
    try:
        run_s = run_seconds(task)
        position = wait_s = None
        if task.state == TaskState.QUEUED.value:
            db.session.refresh(task, ["state"])  # a worker may have taken it meanwhile
            position = dispatch.position_of(task)
            if position is not None:
                wait_s = _wait_for(position)[0]
                return _answer(None, position, wait_s, run_s)
            db.session.refresh(task, ["state", "started_at"])  # a worker took it meanwhile
        if task.state == TaskState.RUNNING.value:
            return {"position": None, "wait_s": 0.0, "run_s": _round(run_s),
                    "eta_s": _round(remaining_seconds(task))}
        return {"position": None, "wait_s": None, "run_s": _round(run_s), "eta_s": None}
    except redis.RedisError:
        return {"position": None, "wait_s": None, "run_s": None, "eta_s": None}


def _round(value):
    return None if value is None else round(value, 2)


def retry_after() -> int:
    """Seconds until a queue place is likely to free: the shortest remaining run."""
    best = None
    for row in dispatch.ahead(1):
        best = run_seconds(row)
    return max(5, min(300, math.ceil(best or 30)))
