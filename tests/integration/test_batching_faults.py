"""A batch that fails, and a batch that runs out of GPU memory, in a real worker whose
pipeline call alone is a test double (worker/render.call_pipeline): it raises
torch.OutOfMemoryError for calls of more images than a number the test sets in Redis,
or a RuntimeError when told to. Everything else is the real worker."""
from __future__ import annotations

import sqlalchemy as sa
import pytest

from extensions import db
from models import Ledger
from services.core import queue as queue_service
from services.core import redis_client
from tests.helpers import ROOT, WorkerProcess, instance_env, make_app, wait_for
from tests.integration.helpers import ApiUser

DOUBLE = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r})
import redis, torch
from worker import render

conn = redis.Redis.from_url(os.environ["REDIS_URL"])
prefix = "double:" + os.environ["DAYDREAM_QUEUE"]
real = render.call_pipeline


def double(runner, **kwargs):
    images = len(kwargs["prompt"])
    above = conn.get(prefix + ":oom-above")
    if above is not None and images > int(above):
        raise torch.OutOfMemoryError(f"CUDA out of memory (test double: {{images}} images)")
    if conn.get(prefix + ":fail"):
        raise RuntimeError("forced failure (test double)")
    return real(runner, **kwargs)


render.call_pipeline = double
import qworker
qworker.main()
"""


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory, redis_url, models_path):
    instance = tmp_path_factory.mktemp("batchfaults")
    script = instance / "double_worker.py"
    script.write_text(DOUBLE)
    env = instance_env(instance, redis_url, models_path, DAYDREAM_MAX_BATCH=8, DAYDREAM_STARTING_TOKENS=10000)
    app = make_app(env)
    worker = WorkerProcess(env, instance / "worker.log")
    worker.SCRIPT = str(script)  # (an absolute path: ROOT / it is itself)
    app.worker = worker.start()
    app.double_key = f"double:{env['DAYDREAM_QUEUE']}"
    yield app
    app.worker.stop()


@pytest.fixture
def fault_users(fault_stack):
    made = iter(range(1000))

    def make(n: int, prefix: str) -> list[ApiUser]:
        return [ApiUser(fault_stack.test_client(), f"{prefix}{next(made)}x{i}") for i in range(n)]

    return make


@pytest.fixture
def set_double(fault_stack):
    with fault_stack.app_context():
        conn = redis_client.connection()
    yield lambda name, value: conn.set(f"{fault_stack.double_key}:{name}", value)
    conn.delete(f"{fault_stack.double_key}:oom-above", f"{fault_stack.double_key}:fail")


def fault_calls(app, task_ids) -> list[dict]:
    from worker.jobs import recent_batches

    with app.app_context():
        [name] = [n for n, w in queue_service.workers().items() if w["pid"] == app.worker.proc.pid]
        calls = list(reversed(recent_batches(name, redis_client.connection())))
    return [c for c in calls if set(task_ids) & set(c["tasks"])]


def refund_rows(app, task_id: str) -> int:
    with app.app_context():
        return len(db.session.scalars(sa.select(Ledger).where(Ledger.task_id == task_id,
                                                              Ledger.kind == "refund")).all())


def hold_worker(user: ApiUser) -> str:
    task_id = user.submit(width=256, height=256, steps=150).get_json()["id"]
    wait_for(lambda: user.get(f"/api/v1/tasks/{task_id}").get_json()["state"] == "running", 60,
             message="the blocker to start")
    return task_id


def test_out_of_memory_halves_the_call_then_learns_the_size(fault_stack, fault_users, set_double):
    app = fault_stack
    [user] = fault_users(1, "oom")
    set_double("oom-above", 2)
    first = user.wait_task(user.submit(width=64, height=64, steps=2, samples=4, seed=50).get_json()["id"])
    assert first["state"] == "done", first
    assert [img["seed"] for img in first["images"]] == [50, 51, 52, 53]
    assert [c["images"] for c in fault_calls(app, [first["id"]])] == [2, 2]  # the 4 ran out of memory
    assert app.worker.output().count("out of memory with 4 images") == 1
    # Learned: the next task of that model and size goes in calls of 2 at once.
    again = user.wait_task(user.submit(width=64, height=64, steps=2, samples=4, seed=60).get_json()["id"])
    assert again["state"] == "done"
    assert [c["images"] for c in fault_calls(app, [again["id"]])] == [2, 2]
    assert app.worker.output().count("out of memory with 4 images") == 1


def test_out_of_memory_even_alone_fails_with_advice_and_the_worker_goes_on(fault_stack, fault_users, set_double):
    app = fault_stack
    [user] = fault_users(1, "oomall")
    before = user.me()["tokens"]
    set_double("oom-above", 0)
    failed = user.wait_task(user.submit(width=64, height=80, steps=2, samples=2).get_json()["id"])
    assert failed["state"] == "failed" and failed["refunded"] is True
    assert "ran out of memory" in failed["error"] and "smaller size" in failed["error"]
    assert user.me()["tokens"] == before and refund_rows(app, failed["id"]) == 1
    assert "out of memory with 2 images" in app.worker.output()  # it tried one image a call too
    set_double("oom-above", 100)
    ok = user.wait_task(user.submit(width=64, height=64, steps=2).get_json()["id"])
    assert ok["state"] == "done" and app.worker.proc.poll() is None


def test_a_failing_batch_fails_and_refunds_each_task_once(fault_stack, fault_users, set_double):
    app = fault_stack
    holder, a, b, c = fault_users(4, "fail")
    before = [u.me()["tokens"] for u in (a, b, c)]
    blocker = hold_worker(holder)
    # (64×96: 64×64 has learned a limit of 2 images a call in the test above)
    ids = [u.submit(width=64, height=96, steps=2, seed=n).get_json()["id"] for n, u in enumerate((a, b, c))]
    set_double("fail", "1")
    holder.post(f"/api/v1/tasks/{blocker}/cancel")
    failed = [u.wait_task(i) for u, i in zip((a, b, c), ids)]
    assert [t["state"] for t in failed] == ["failed"] * 3, failed
    assert all("forced failure" in t["error"] and t["refunded"] for t in failed)
    assert [u.me()["tokens"] for u in (a, b, c)] == before
    assert [refund_rows(app, i) for i in ids] == [1, 1, 1]
    assert "tasks " + ", ".join(ids) + " failed" in app.worker.output()  # one batch
    set_double("fail", "")
    nxt = a.wait_task(a.submit(width=64, height=64, steps=2).get_json()["id"])
    assert nxt["state"] == "done" and app.worker.proc.poll() is None
