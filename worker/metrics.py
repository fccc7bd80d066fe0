"""What a worker adds to GET /metrics (services/core/metrics.py reads it back): after
each job, the tasks of its batch as the database has them then (how long each waited
and ran, how it ended, the images it kept) and the prompt cache's hits and misses since
the last job, counted into Redis; with each heartbeat,
the process's GPU memory. Both are a convenience: a failure here is logged, never in
the way of a task."""
from __future__ import annotations

import logging
import sys

import redis
import sqlalchemy as sa

from extensions import db
from models import Image, Task, TaskState
from services.core import metrics
from services.core.redis_client import connection
from worker.pipelines import prompt_cache

log = logging.getLogger(__name__)


def record_tasks(task_ids: list[str]) -> None:
    """The tasks of a finished job (done, failed or canceled by now): one histogram
    observation each of wait and run time, a count by end state, the images kept.
    A task still unfinished (nothing ended it) is left out."""
    try:
        _record(task_ids)
    except (redis.RedisError, sa.exc.SQLAlchemyError) as exc:
        log.warning("could not record the metrics of tasks %s: %s", ", ".join(task_ids), exc)
    except Exception:  # never in the way of the job's own outcome
        log.exception("could not record the metrics of tasks %s", ", ".join(task_ids))


def _record(task_ids: list[str]) -> None:
    if not task_ids:
        return
    rows = db.session.execute(sa.select(Task.id, Task.model, Task.state, Task.created_at, Task.started_at,
                                        Task.finished_at).where(Task.id.in_(task_ids))).all()
    kept = dict(db.session.execute(sa.select(Image.task_id, sa.func.count()).where(
        Image.task_id.in_(task_ids)).group_by(Image.task_id)).all())
    with connection().pipeline() as pipe:  # one transaction: all of a job's figures or none
        for row in rows:
            if row.state in TaskState.unfinished():
                continue
            if row.started_at is not None:
                metrics.observe(pipe, "task_wait_seconds", row.model,
                                (row.started_at - row.created_at).total_seconds())
                if row.finished_at is not None:
                    metrics.observe(pipe, "task_run_seconds", row.model,
                                    (row.finished_at - row.started_at).total_seconds())
            metrics.count(pipe, "tasks_finished", (row.model, row.state))
            metrics.count(pipe, "images", (row.model,), kept.get(row.id, 0))
        cached = prompt_cache.cache.unreported()  # this process's, since the last job reported
        metrics.count(pipe, "prompt_cache_hits", (), cached[0])
        metrics.count(pipe, "prompt_cache_misses", (), cached[1])
        pipe.execute()
    prompt_cache.cache.mark_reported(cached)


def heartbeat_info() -> dict:
    """For the heartbeat: the GPU memory this process holds, summed over its devices
    (allocated by tensors, reserved by the caching allocator, the devices' total). Nothing
    without CUDA, or before this process used it (asking must not start CUDA in the
    heartbeat's thread)."""
    torch = sys.modules.get("torch")
    try:
        if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
            return {}
        devices = range(torch.cuda.device_count())
        return {"gpu_allocated_bytes": sum(torch.cuda.memory_allocated(d) for d in devices),
                "gpu_reserved_bytes": sum(torch.cuda.memory_reserved(d) for d in devices),
                "gpu_total_bytes": sum(torch.cuda.get_device_properties(d).total_memory for d in devices)}
    except Exception as exc:  # pragma: no cover - a driver in trouble: the heartbeat goes on
        log.warning("could not read the GPU memory: %s", exc)
        return {}
