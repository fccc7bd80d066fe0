"""The worker's life: RQ's own CLI, a model from a local folder, lost jobs reconciled."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import redis
import sqlalchemy as sa

from extensions import db
from models import Ledger, Task, User, utcnow
from services.accounts import credits
from services.core import queue as queue_service
from services.generation.tasks import reconcile
from tests.helpers import ROOT, instance_env, make_app


def add_task(app, username: str, **values) -> str:
    with app.app_context():
        owner = db.session.scalar(sa.select(User).where(User.username == username))
        task = Task(user_id=owner.id, session_id=owner.sessionid, prompt="a boat", width=64,
                    height=64, steps=2, guidance=7.5, samples=1, seed=5, scheduler="euler",
                    model="demo", cost=1, **values)
        db.session.add(task)
        db.session.flush()
        credits.debit_task(task)
        db.session.commit()
        return task.id


def test_rq_cli_runs_jobs_with_the_preloading_worker(tmp_path, redis_url, models_path):
    """`rq worker -c qworker -w qworker.DaydreamWorker` serves the queue too."""
    from tests.integration.helpers import ApiUser

    env = instance_env(tmp_path, redis_url, models_path)
    app = make_app(env)
    user = ApiUser(app.test_client(), "cliuser")
    task = user.submit(steps=2).get_json()
    result = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "-c", "qworker", "-w", "qworker.DaydreamWorker",
         "--burst"], cwd=ROOT, env={**os.environ, **env, "HF_HUB_OFFLINE": "1"},
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert user.get(f"/api/v1/tasks/{task['id']}").get_json()["state"] == "done"


def test_a_model_in_a_local_diffusers_folder_loads_by_path(tmp_path, redis_url, models_path):
    from tests.helpers import WorkerProcess
    from tests.integration.helpers import ApiUser
    from worker.demo_model import build_demo_model

    folder = build_demo_model(tmp_path / "my-model")
    env = instance_env(tmp_path / "instance", redis_url, models_path, DAYDREAM_MODEL=str(folder))
    app = make_app(env)
    user = ApiUser(app.test_client(), "folderuser")
    models = user.get("/api/v1/models").get_json()["items"]
    mine = {k: models[0][k] for k in ("id", "name", "default", "kind", "format", "family")}
    assert mine == {"id": "my-model", "name": "my-model", "default": True, "kind": "model", "format": "folder",
                    "family": "sd1"}
    # the demo model is always there (and its LoRA)
    assert [m["id"] for m in models if m["kind"] == "model"] == ["my-model", "demo"]
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        task = user.wait_task(user.submit(steps=2).get_json()["id"])
    finally:
        worker.stop()
    assert task["state"] == "done", task
    assert task["model"] == "my-model"


def test_the_reconciler_settles_lost_tasks(tmp_path, redis_url, models_path):
    from tests.integration.helpers import ApiUser

    idle_app = make_app(instance_env(tmp_path, redis_url, models_path))  # a queue of its own
    user = ApiUser(idle_app.test_client(), "lost")
    before = user.me()["tokens"]
    long_ago = utcnow() - timedelta(minutes=5)
    # A task whose worker died mid-run, and one whose job vanished with a Redis restart.
    dead = add_task(idle_app, user.username, state="running", worker="gone.123",
                    started_at=long_ago, created_at=long_ago)
    orphan = add_task(idle_app, user.username, created_at=long_ago)
    fresh = add_task(idle_app, user.username)  # just submitted: left alone
    with idle_app.app_context():
        queue_service.enqueue_slot(fresh)
        assert reconcile() == {"failed": 1, "requeued": 1}
        assert reconcile() == {"failed": 0, "requeued": 0}  # settled once
        by_id = {t.id: t for t in db.session.scalars(sa.select(Task).where(Task.id.in_([dead, orphan, fresh])))}
        assert by_id[dead].state == "failed" and by_id[dead].refunded
        assert "worker" in by_id[dead].error
        assert by_id[orphan].state == "queued" and by_id[fresh].state == "queued"
        assert queue_service.waiting_jobs() == 2  # one job for each queued task
        refunds = db.session.scalar(sa.select(sa.func.count()).select_from(Ledger).where(
            Ledger.task_id == dead, Ledger.kind == "refund"))
        assert refunds == 1
    assert user.me()["tokens"] == before - 2  # three debits, one refund
