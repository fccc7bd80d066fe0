"""Fair dispatch: which queued task a worker runs next.

Users with queued work are served round-robin (the one served longest ago first),
FIFO within a user. A worker may take a task for the model it has loaded ahead of
its turn, but only within the current round (no user gets two turns before another
gets one) and only while the fairer task has not waited AFFINITY_WAIT seconds; and
it leaves a task to another live, idle worker that has that task's model loaded.
The RQ queue holds one job per submitted task; each job runs whichever task is
fairest when a worker gets to it (tasks.claim_next: pick, then queued → running)."""
from __future__ import annotations

from collections import OrderedDict
from datetime import datetime, timedelta

import sqlalchemy as sa

from extensions import db
from models import Task, TaskState, utcnow

AFFINITY_WAIT = timedelta(seconds=60)  # the default of DAYDREAM_AFFINITY_WAIT


def queued_tasks() -> list[Task]:
    return list(db.session.scalars(sa.select(Task).where(Task.state == TaskState.QUEUED.value)
                                   .order_by(Task.created_at, Task.id)))


def last_served(user_ids: set[int]) -> dict[int, datetime]:
    if not user_ids:
        return {}
    rows = db.session.execute(sa.select(Task.user_id, sa.func.max(Task.started_at))
                              .where(Task.user_id.in_(user_ids)).group_by(Task.user_id))
    return {user_id: started for user_id, started in rows if started is not None}


def fair_rounds(tasks: list[Task], served: dict[int, datetime] | None = None) -> list[list[Task]]:
    """The queue as rounds: round k holds each user's k-th task, users ordered by
    when they were last served (never first), then by their oldest task."""
    per_user: "OrderedDict[int, list[Task]]" = OrderedDict()
    for task in sorted(tasks, key=lambda t: (t.created_at, t.id)):
        per_user.setdefault(task.user_id, []).append(task)
    served = last_served(set(per_user)) if served is None else served
    users = sorted(per_user, key=lambda u: (served.get(u) or datetime.min, per_user[u][0].created_at))
    rounds: list[list[Task]] = []
    depth = max((len(v) for v in per_user.values()), default=0)
    for k in range(depth):
        rounds.append([per_user[u][k] for u in users if k < len(per_user[u])])
    return rounds


def fair_order(tasks: list[Task] | None = None) -> list[Task]:
    return [task for rnd in fair_rounds(queued_tasks() if tasks is None else tasks) for task in rnd]


def positions() -> dict[str, int]:
    """1 for the task that runs next."""
    return {task.id: n for n, task in enumerate(fair_order(), start=1)}


def pick(rounds: list[list[Task]], loaded_model: str | None, now: datetime | None = None,
         idle_elsewhere: set[str] = frozenset(), *, patience: timedelta = AFFINITY_WAIT) -> Task | None:
    """The task a worker with loaded_model runs next, from the fair rounds; no database,
    no Redis. patience: how long the fairest task may wait for a worker with its model
    (DAYDREAM_AFFINITY_WAIT). idle_elsewhere: the models loaded on other live, idle
    workers (their heartbeats, services/core/liveness.py). Within the first round, a
    task for one of those is left to that worker, which takes it without loading
    anything, when another task can go."""
    if not rounds:
        return None
    fairest = rounds[0][0]
    if loaded_model and fairest.model != loaded_model:
        if (now or utcnow()) - fairest.created_at < patience:
            for task in rounds[0]:
                if task.model == loaded_model:
                    return task
    if fairest.model != loaded_model and fairest.model in idle_elsewhere:
        for task in rounds[0]:
            if task.model not in idle_elsewhere:
                return task
    return fairest
