"""Redis and the RQ queue: jobs carry a task id and nothing else. Also the live,
ephemeral state of running tasks (progress), which lives in Redis, not the database."""
from __future__ import annotations

import json
import time

import redis
from flask import current_app
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job

JOB_FUNCTION = "worker.jobs.run_task"
PROGRESS_TTL = 24 * 3600


def connection() -> redis.Redis:
    """One client (and connection pool) per app, made on first use."""
    ext = current_app.extensions
    if "daydream_redis" not in ext:
        ext["daydream_redis"] = redis.Redis.from_url(
            current_app.config["REDIS_URL"], socket_connect_timeout=3, health_check_interval=30
        )
    return ext["daydream_redis"]


def key(*parts: str) -> str:
    return ":".join(("daydream",) + parts)


def generation_queue() -> Queue:
    return Queue(current_app.config["QUEUE_NAME"], connection=connection())


def enqueue_task(task_id: str) -> None:
    generation_queue().enqueue(
        JOB_FUNCTION, task_id, job_id=task_id,
        job_timeout=current_app.config["JOB_TIMEOUT"],
        result_ttl=3600, failure_ttl=7 * 24 * 3600,
        description=f"generate task {task_id}",
    )


def remove_job(task_id: str) -> None:
    """Take a queued job out of the queue (the task row says canceled already, so a
    worker that picks it up anyway skips it)."""
    try:
        job = Job.fetch(task_id, connection=connection())
    except NoSuchJobError:
        return
    generation_queue().remove(job)
    job.delete()


def position(task_id: str) -> int | None:
    """1 for the next task to run; None when it is not waiting in the queue."""
    index = generation_queue().get_job_position(task_id)
    return None if index is None else index + 1


def workers() -> list[Worker]:
    return Worker.all(queue=generation_queue())


def stats() -> dict:
    q = generation_queue()
    return {"queued": q.count, "running": q.started_job_registry.count,
            "workers": len(workers())}


# --- progress of running tasks -------------------------------------------------

def set_progress(task_id: str, step: int, total: int, eta_s: float | None) -> None:
    conn = connection()
    conn.set(key("progress", task_id),
             json.dumps({"step": step, "total": total, "eta_s": eta_s, "at": time.time()}),
             ex=PROGRESS_TTL)


def get_progress(task_id: str) -> dict | None:
    raw = connection().get(key("progress", task_id))
    return json.loads(raw) if raw else None


def clear_progress(task_id: str) -> None:
    connection().delete(key("progress", task_id))
