"""Redis and the RQ queue: jobs carry a task id and nothing else. Also the live,
ephemeral state of running tasks (progress), which lives in Redis, not the database."""
from __future__ import annotations

import json
import time

import redis
from flask import current_app
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job

JOB_FUNCTION = "worker.jobs.run_next"
PROGRESS_TTL = 24 * 3600


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
    return ":".join(("daydream",) + parts)


def generation_queue() -> Queue:
    return Queue(current_app.config["QUEUE_NAME"], connection=connection())


def enqueue_slot(task_id: str) -> None:
    """One job per submitted task. The job runs whichever queued task is fairest when
    a worker takes it (services/dispatch.py); the id it carries names the submit that
    made it."""
    generation_queue().enqueue(
        JOB_FUNCTION, task_id, job_id=f"{task_id}_{int(time.time() * 1000)}",
        job_timeout=current_app.config["JOB_TIMEOUT"],
        result_ttl=3600, failure_ttl=7 * 24 * 3600,
        description=f"generate (submitted with task {task_id})",
    )


def waiting_jobs() -> int:
    """Jobs waiting in the queue: each one will run one queued task."""
    return generation_queue().count


def remove_slot(task_id: str) -> None:
    """A queued task was canceled: drop one waiting job (preferably its own), so that the
    queue's length keeps matching the queued tasks. A job left over is harmless: it finds
    nothing to run."""
    q = generation_queue()
    ids = q.get_job_ids()
    if not ids:
        return
    own = [job_id for job_id in ids if job_id.startswith(f"{task_id}_")]
    victim = own[0] if own else ids[-1]
    try:
        job = Job.fetch(victim, connection=connection())
    except NoSuchJobError:
        return
    q.remove(job)
    job.delete()


def request_stop(task_id: str) -> None:
    """Ask the worker running this task to stop at its next step."""
    connection().set(key("stop", task_id), "1", ex=PROGRESS_TTL)


def stop_requested(task_id: str) -> bool:
    return bool(connection().exists(key("stop", task_id)))


def workers() -> dict[str, dict]:
    """The live generation workers, by Daydream's own heartbeat (services/liveness.py)."""
    from services import liveness

    return liveness.alive_workers()


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
