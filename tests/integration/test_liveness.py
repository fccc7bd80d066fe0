"""Worker liveness from Daydream's own heartbeat: a worker that dies mid-task is known
dead in seconds (not after RQ's hour), its task is failed and refunded once within
60 s by another worker's reconciler, and /healthz counts only the live ones."""
from __future__ import annotations

import os
import signal
import time

import pytest
import sqlalchemy as sa

from extensions import db
from models import Ledger, Task
from services.core import queue as queue_service
from tests.helpers import WorkerProcess, instance_env, make_app, wait_for
from tests.integration.helpers import ApiUser

# Fast beats so the heartbeat path (not only the pid check) is seen within the test.
FAST = {"DAYDREAM_HEARTBEAT_INTERVAL": "0.5", "DAYDREAM_HEARTBEAT_TTL": "2",
        "DAYDREAM_RECONCILE_INTERVAL": "1"}


@pytest.fixture(params=["sqlite", "postgresql"])
def two_workers(request, tmp_path, redis_url, models_path):
    settings = dict(FAST)
    if request.param == "postgresql":
        settings["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    env = instance_env(tmp_path / "instance", redis_url, models_path, **settings)
    app = make_app(env)
    workers = [WorkerProcess(env, tmp_path / f"worker{n}.log").launch() for n in range(2)]
    for worker in workers:
        worker.wait_ready()
    app.workers = workers
    yield app
    for worker in workers:
        if worker.proc.poll() is None:
            os.kill(worker.proc.pid, signal.SIGCONT)
        worker.stop()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def running_on(app, user: ApiUser, task_id: str) -> WorkerProcess:
    """Wait until the task renders (a step done), and say which worker runs it."""
    wait_for(lambda: user.get(f"/api/v1/tasks/{task_id}").get_json()["progress"]["step"] > 0,
             60, message="the task to render its first step")
    with app.app_context():
        name = db.session.get(Task, task_id).worker
        pid = queue_service.workers()[name]["pid"]
    return next(w for w in app.workers if w.proc.pid == pid)


def refunds(app, task_id: str) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(Ledger).where(
            Ledger.task_id == task_id, Ledger.kind == "refund"))


def health(app) -> dict:
    return app.test_client().get("/healthz").get_json()


def test_frozen_then_killed_workers_are_settled_by_the_survivor(two_workers):
    app = two_workers
    user = ApiUser(app.test_client(), f"live{os.getpid()}{time.time_ns() % 10**6}")
    assert wait_for(lambda: health(app)["workers"] == 2, 10, message="two live workers")
    before = user.me()["tokens"]

    # SIGSTOP: the process still exists, so only the heartbeat's expiry can tell.
    task = user.submit(width=256, height=256, steps=50).get_json()
    frozen = running_on(app, user, task["id"])
    os.kill(frozen.proc.pid, signal.SIGSTOP)
    try:
        failed = user.wait_task(task["id"], timeout=30)
        assert failed["state"] == "failed" and failed["refunded"], failed
        assert refunds(app, task["id"]) == 1
        assert wait_for(lambda: health(app)["workers"] == 1, 10, message="one live worker")
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)
    # Woken up, it sees its task ended, stops, and refunds nothing more.
    assert wait_for(lambda: health(app)["workers"] == 2, 20, message="the worker to beat again")

    # kill -9 mid-task: settled within 60 s, whichever worker ran it.
    task = user.submit(width=256, height=256, steps=50).get_json()
    victim = running_on(app, user, task["id"])
    os.kill(victim.proc.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    victim.proc.wait(10)
    failed = user.wait_task(task["id"], timeout=60)
    assert time.monotonic() - killed_at < 60
    assert failed["state"] == "failed" and failed["refunded"], failed
    assert "worker" in failed["error"]
    assert refunds(app, task["id"]) == 1
    assert health(app)["workers"] == 1
    # The survivor goes on serving, and every token came back.
    assert user.wait_task(user.submit(steps=2).get_json()["id"])["state"] == "done"
    assert user.me()["tokens"] == before - 1
    with app.app_context():
        first = db.session.scalar(sa.select(Task).where(Task.error.is_not(None)).order_by(Task.created_at))
        assert refunds(app, first.id) == 1


def test_a_restarted_worker_settles_what_its_predecessor_left_at_once(tmp_path, redis_url, models_path):
    """Default heartbeat settings (15 s TTL): the new worker on the same machine sees the
    old pid is gone and settles the task before taking any job; queued tasks whose jobs
    were lost (a Redis restart without persistence) get new ones, however young."""
    env = instance_env(tmp_path / "instance", redis_url, models_path)
    app = make_app(env)
    app.workers = [WorkerProcess(env, tmp_path / "first.log").start()]
    user = ApiUser(app.test_client(), "restarted")
    task = user.submit(width=256, height=256, steps=50).get_json()
    victim = running_on(app, user, task["id"])
    waiting = [user.submit(steps=2).get_json()["id"] for _ in range(2)]
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(10)
    with app.app_context():
        queue_service.generation_queue().empty()  # the jobs are gone; the tasks are queued
        assert queue_service.waiting_jobs() == 0
    replacement = WorkerProcess(env, tmp_path / "second.log").start()
    try:
        # Settled at start-up: well before the dead worker's 15 s heartbeat would expire.
        failed = user.wait_task(task["id"], timeout=10)
        assert failed["state"] == "failed" and failed["refunded"]
        assert refunds(app, task["id"]) == 1
        for task_id in waiting:
            assert user.wait_task(task_id, timeout=30)["state"] == "done"
    finally:
        replacement.stop()
