"""The live queue and the workers, as staff see them (/admin/queue): every queued and
running task with its owner, position and progress, and every live worker with what
it has loaded and done."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import redis
import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models import Task, TaskState, iso
from services.core import keys, queue, redis_client
from services.generation import dispatch, tasks


def _worker_state(name: str) -> dict:
    try:
        raw = redis_client.connection().hgetall(keys.worker_info(name))
    except redis.RedisError:
        return {}
    return {k.decode(): v.decode() for k, v in raw.items()}


def workers() -> list[dict]:
    """The live workers, by their heartbeat (services/core/liveness.py): a dead one
    drops out within HEARTBEAT_TTL seconds, and its task is settled by the reconciler."""
    running = {t.worker: t for t in db.session.scalars(
        sa.select(Task).where(Task.state == TaskState.RUNNING.value)).all()}
    try:
        found = queue.workers()
    except redis.RedisError:
        found = {}
    now = time.time()
    result = []
    for name, info in sorted(found.items()):
        state = _worker_state(name)
        task = running.get(name)
        beat = info.get("at")
        result.append({
            "name": name,
            "hostname": (info.get("machine") or "").split("|")[0],
            "pid": info.get("pid"),
            "state": "busy" if task else "idle",
            "alive": True,
            "current_task": task.id if task else None,
            "current_user": task.user.username if task else None,
            "model": state.get("model") or info.get("model") or None,
            "jobs_done": int(state.get("jobs") or 0),
            "loads": int(state.get("loads") or 0),
            "last_heartbeat": iso(datetime.fromtimestamp(beat, timezone.utc).replace(tzinfo=None)) if beat else None,
            "last_heartbeat_age_s": round(max(now - beat, 0), 1) if beat else None,
            # The image check (worker/safety.py): "off", "ok", or why it takes no tasks.
            "safety": info.get("safety") or "off",
            # The images folder's disk (worker/disk.py): "ok", or why it takes no tasks.
            "disk": info.get("disk") or "ok",
        })
    return result


def queue_view() -> dict:
    """Every queued and running task with its owner, position and progress."""
    positions = dispatch.positions()  # one narrow query for every queued task
    items = db.session.scalars(sa.select(Task).where(Task.state.in_(TaskState.unfinished()))
                               .options(so.joinedload(Task.user))
                               .order_by(Task.created_at, Task.id)).all()
    rows = []
    for task in items:
        data = tasks.task_to_dict(task, positions)
        data.pop("images", None)
        data["owner"] = {"id": task.user.uuid, "username": task.user.username}
        rows.append(data)
    rows.sort(key=lambda t: (t["state"] != TaskState.RUNNING.value, t["position"] or 0))
    return {"items": rows, "total": len(rows), **tasks.queue_stats(), "workers": workers()}
