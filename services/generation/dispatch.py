"""Fair dispatch: the order of the queue, and which queued task a worker runs next.

Users with queued work are served round-robin, FIFO within a user, and the order is
kept in the rows themselves, so that a submit, a cancel or a claim costs the same
whatever the queue's depth. Each task gets a round at submit (Task.fair_round):

    round = max(current round, the user's latest round + 1)

where the current round is the round being served (that of the tasks started last) and
the user's latest round is that of their last task still queued or already started (one
canceled before it started gave its turn up). So a user's next task goes one round after
their last one; a user served in the current round waits for the next one, and a user
not served in it (a newcomer, or one served rounds ago) joins it, ahead of every later
round: no user gets two turns before another gets one. Workers take tasks from the
first round only, so the rounds served only grow. The queue runs in
(fair_round, created_at, id) order, an index
(ix_tasks_fair_order): the first round and the position of a task (1 + the queued
tasks before it) are index reads, and a change touches its own row only.

A worker may take a task for the model it has loaded ahead of its turn, but only within
the first round and only while the fairer task has not waited AFFINITY_WAIT seconds;
and it leaves a task to another live, idle worker that has that task's model loaded
(pick). The RQ queue holds one job per submitted task; each job runs whichever task is
fairest when a worker gets to it (tasks.claim_next / claim_batch)."""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from itertools import groupby

import sqlalchemy as sa
import sqlalchemy.orm as so

from extensions import db
from models import Task, TaskState, utcnow

AFFINITY_WAIT = timedelta(seconds=60)  # the default of DAYDREAM_AFFINITY_WAIT
# A worker's choice reads this many tasks of the first round at most (one per user with
# queued work): an affinity candidate further down that round waits for its turn.
FIRST_ROUND_READ = 256
QUEUED = TaskState.QUEUED.value
# The columns a run estimate needs (estimates.run_seconds), read without ORM objects.
ESTIMATE_COLUMNS = (Task.id, Task.model, Task.width, Task.height, Task.steps, Task.samples,
                    Task.init_image_id, Task.strength)


def fair_key(task) -> tuple:
    return (task.fair_round, task.created_at, task.id)


def _queued():
    return Task.state == QUEUED


def _ordered(stmt):
    return stmt.order_by(Task.fair_round, Task.created_at, Task.id)


def _before(fair_round, created_at, task_id):
    """Queued rows ahead of (fair_round, created_at, id) in the fair order."""
    return sa.tuple_(Task.fair_round, Task.created_at, Task.id) < sa.tuple_(fair_round, created_at, task_id)


# --- rounds at submit ---------------------------------------------------------------

def round_for(current: int, user_latest: int | None) -> int:
    """The round of a user's new task: the current round, or one after the user's last."""
    return current if user_latest is None else max(current, user_latest + 1)


def current_round() -> int:
    """The round being served: the highest round of a running or done task (each an index
    read; a task that failed or was canceled does not count, which errs towards serving
    the others first), 0 before any."""
    served = sa.union_all(*(sa.select(sa.func.max(Task.fair_round).label("r")).where(Task.state == state)
                            for state in (TaskState.RUNNING.value, TaskState.DONE.value))).subquery()
    return db.session.scalar(sa.select(sa.func.max(served.c.r))) or 0


def latest_round(user_id: int) -> int | None:
    """The round of the user's last task that is queued or was started."""
    return db.session.scalar(
        sa.select(Task.fair_round).where(Task.user_id == user_id,
                                         sa.or_(_queued(), Task.started_at.is_not(None)))
        .order_by(Task.fair_round.desc()).limit(1))


def next_round(user_id: int) -> int:
    return round_for(current_round(), latest_round(user_id))


# --- positions ------------------------------------------------------------------------

def position_of(task) -> int | None:
    """1 for the task that runs next; None unless it is queued."""
    if task.state != QUEUED:
        return None
    ahead = db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        _queued(), _before(task.fair_round, task.created_at, task.id)))
    return ahead + 1


def positions(user_id: int | None = None) -> dict[str, int]:
    """Queued task id → position (1 runs next), in one narrow query: every queued task
    (staff's queue page), or only the user's own (each a count of the tasks ahead)."""
    if user_id is None:
        ids = db.session.scalars(_ordered(sa.select(Task.id).where(_queued())))
        return {task_id: n for n, task_id in enumerate(ids, start=1)}
    mine = so.aliased(Task)
    ahead = (sa.select(sa.func.count()).select_from(Task)
             .where(_queued(), _before(mine.fair_round, mine.created_at, mine.id)).scalar_subquery())
    # From the first round up: the user's recent tasks (ix_tasks_user_round), not all their history.
    lowest = sa.select(sa.func.min(Task.fair_round)).where(_queued()).scalar_subquery()
    rows = db.session.execute(sa.select(mine.id, ahead + 1).where(
        mine.user_id == user_id, mine.fair_round >= lowest, mine.state == QUEUED))
    return {task_id: position for task_id, position in rows}


def count_through_round(fair_round: int) -> int:
    """Queued tasks in rounds up to fair_round: those ahead of a task submitted now in it."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(
        _queued(), Task.fair_round <= fair_round))


def ahead(count: int) -> list:
    """The first `count` queued tasks in the fair order, as narrow rows (ESTIMATE_COLUMNS)."""
    if count <= 0:
        return []
    return list(db.session.execute(_ordered(sa.select(*ESTIMATE_COLUMNS).where(_queued())).limit(count)))


# --- what a worker takes --------------------------------------------------------------

def first_round(limit: int = FIRST_ROUND_READ) -> list:
    """The first round of the queue in order, as narrow rows (id, user_id, model,
    created_at, fair_round): what pick chooses from."""
    lowest = sa.select(sa.func.min(Task.fair_round)).where(_queued()).scalar_subquery()
    return list(db.session.execute(
        sa.select(Task.id, Task.user_id, Task.model, Task.created_at, Task.fair_round)
        .where(_queued(), Task.fair_round == lowest).order_by(Task.created_at, Task.id).limit(limit)))


def after_in_round(head, limit: int) -> list[Task]:
    """The queued tasks after `head` in the fair order within head's round, in order."""
    if limit <= 0:
        return []
    return list(db.session.scalars(
        sa.select(Task).where(_queued(), Task.fair_round == head.fair_round,
                              sa.tuple_(Task.created_at, Task.id) > sa.tuple_(head.created_at, head.id))
        .order_by(Task.created_at, Task.id).limit(limit)))


def join_batch(head, after: list, *, max_images: int, joins: Callable, start: Callable) -> list:
    """The batch led by head (which always runs): then the tasks of `after` (those after
    head in the fair order) taken in order while they are of head's round, joins(head,
    task) is true and the images (the sum of .samples, head's included) stay within
    max_images. It stops at the first that cannot join, so that no user overtakes a
    fairer one. start(task) moves one queued → running and answers it, or None when
    another worker took it (or it was canceled) meanwhile: that one is skipped."""
    batch, images = [head], head.samples
    for task in after:
        if task.fair_round != head.fair_round or images + task.samples > max_images or not joins(head, task):
            break
        started = start(task)
        if started is None:
            continue
        batch.append(started)
        images += started.samples
    return batch


def fair_rounds(tasks: list) -> list[list]:
    """Tasks (rows or objects with fair_round, created_at, id) grouped by round, in order."""
    ordered = sorted(tasks, key=fair_key)
    return [list(group) for _, group in groupby(ordered, key=lambda t: t.fair_round)]


def fair_order(tasks: list) -> list:
    return sorted(tasks, key=fair_key)


def pick(rounds: list[list], loaded_model: str | None, now: datetime | None = None,
         idle_elsewhere: set[str] = frozenset(), *, patience: timedelta = AFFINITY_WAIT):
    """The task a worker with loaded_model runs next, from the fair rounds (only the first
    is read); no database, no Redis. patience: how long the fairest task may wait for a
    worker with its model (DAYDREAM_AFFINITY_WAIT). idle_elsewhere: the models loaded on
    other live, idle workers (their heartbeats, services/core/liveness.py). Within the
    first round, a task for one of those is left to that worker, which takes it without
    loading anything, when another task can go."""
    if not rounds or not rounds[0]:
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
