"""The RQ queue of generation jobs: a job carries a task id and nothing else. Also the
live, ephemeral state of running tasks (progress, stop requests), which lives in
Redis, not the database. The client itself is services/core/redis_client.py."""
from __future__ import annotations

import json
import time

from flask import current_app
from rq import Queue

from services.core import keys, liveness
from services.core.redis_client import connection

JOB_FUNCTION = "worker.jobs.run_next"
PROGRESS_TTL = 24 * 3600


def generation_queue() -> Queue:
    return Queue(current_app.config["QUEUE_NAME"], connection=connection())


def enqueue_slot(task_id: str) -> None:
    """One job per submitted task. The job runs whichever queued task is fairest when
    a worker takes it (services/generation/dispatch.py); the id it carries names the
    submit that made it. A canceled task's job stays in the queue (removing it would
    mean a scan of the queue): the worker that takes it finds nothing to run, or the
    next task, whose own job then finds nothing."""
    generation_queue().enqueue(
        JOB_FUNCTION, task_id, job_id=keys.generation_job(task_id, int(time.time() * 1000)),
        job_timeout=current_app.config["JOB_TIMEOUT"],
        result_ttl=3600, failure_ttl=7 * 24 * 3600,
        description=f"generate (submitted with task {task_id})",
    )


def waiting_jobs() -> int:
    """Jobs waiting in the queue: each one runs one queued task, or nothing (a spare
    job of a canceled task)."""
    return generation_queue().count


def request_stop(task_id: str) -> None:
    """Ask the worker running this task to stop at its next step."""
    connection().set(keys.stop(task_id), "1", ex=PROGRESS_TTL)


def workers() -> dict[str, dict]:
    """The live generation workers, by Daydream's own heartbeat (services/core/liveness.py)."""
    return liveness.alive_workers()


# --- progress of running tasks -------------------------------------------------

def set_progress(task_id: str, step: int, total: int, eta_s: float | None) -> None:
    conn = connection()
    conn.set(keys.progress(task_id),
             json.dumps({"step": step, "total": total, "eta_s": eta_s, "at": time.time()}),
             ex=PROGRESS_TTL)


def get_progress(task_id: str) -> dict | None:
    raw = connection().get(keys.progress(task_id))
    return json.loads(raw) if raw else None


def clear_progress(task_id: str) -> None:
    connection().delete(keys.progress(task_id))
