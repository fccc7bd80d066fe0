"""The fair queue at depth: a submit, a cancel and a claim cost the same (SQL statements,
Socket.IO events) with 10 tasks queued or 500; the positions every API reports are the
fair order; a canceled task's job is left behind and finds nothing; a batch takes the
tasks of the head's round only. Real Redis, real SQLite, no worker unless named."""
from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from rq.registry import FailedJobRegistry

from extensions import db
from models import Ledger, Task, User, utcnow
from services.core import events
from services.core import queue as queue_service
from services.generation import dispatch
from services.generation import tasks as task_service
from tests.helpers import ROOT, instance_env, make_app, unique
from tests.integration.helpers import ApiUser

LIMITS = {"DAYDREAM_QUEUE_LIMIT": 100000}


def fill_queue(app, depth: int, users: int = 50) -> list[str]:
    """`depth` queued tasks of `users` other users (made here, as rows), with the rounds a
    submit gives them (a user's k-th task in round k); answers the tasks' ids."""
    users = max(1, min(users, depth))
    start = utcnow() - timedelta(hours=1)
    with app.app_context():
        owners = [User(email=f"{name}@example.com", username=name, password_hash="x", tokens=0)
                  for name in (unique("filler") for _ in range(users))]
        db.session.add_all(owners)
        db.session.flush()
        rows = []
        for n in range(depth):
            owner = owners[n % users]
            rows.append(dict(id=unique("t") + f"{n:06d}", user_id=owner.id, session_id=owner.sessionid,
                             state="queued", prompt="a boat", negative_prompt="", width=64, height=64, steps=2,
                             guidance=7.5, samples=1, seed=n, scheduler="euler", model="demo", cost=0,
                             refunded=False, created_at=start + timedelta(milliseconds=n),
                             fair_round=n // users))
        db.session.execute(sa.insert(Task), rows)
        db.session.commit()
        return [row["id"] for row in rows]


@contextmanager
def counted(app):
    """Counts the SQL statements and the Socket.IO events (by name) of what runs inside."""
    seen = {"sql": 0, "events": []}

    def statement(*_args):
        seen["sql"] += 1

    original = events._emit

    def emit(event, payload, room):
        seen["events"].append((event, room))
        return original(event, payload, room)

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", statement)
    events._emit = emit
    try:
        yield seen
    finally:
        events._emit = original
        sa.event.remove(engine, "before_cursor_execute", statement)


def queue_at(fresh, depth: int):
    app = fresh(**LIMITS)
    fill_queue(app, depth)
    return app, ApiUser(app.test_client(), unique("probe"))


def submit_counted(app, user):
    with counted(app) as seen:
        response = user.submit()
    assert response.status_code == 202, response.get_json()
    return response.get_json(), seen


def test_a_submit_costs_the_same_at_any_depth(fresh):
    costs = {}
    # The fillers' rounds: 10 users with a task each (round 0), or 50 with ten each (0..9).
    for depth, position in ((10, 12), (500, 102)):
        app, user = queue_at(fresh, depth)
        user.submit()  # round 0, last of it; it also warms the process's caches up
        task, seen = submit_counted(app, user)
        assert task["position"] == position  # the user's second turn: last of round 1
        costs[depth] = seen
    assert costs[10]["sql"] == costs[500]["sql"], costs
    # Two events whatever the depth: the submitter's own `task` event, and one `queue` event
    # for everyone (no event for each queued task, nor for their owners).
    for seen in costs.values():
        assert sorted(name for name, _ in seen["events"]) == ["queue", "task"], seen["events"]


def test_a_cancel_and_a_claim_cost_the_same_at_any_depth(fresh):
    costs = {}
    for depth in (10, 500):
        app, user = queue_at(fresh, depth)
        mine = user.submit().get_json()
        with counted(app) as cancel:
            assert user.post(f"/api/v1/tasks/{mine['id']}/cancel").get_json()["state"] == "canceled"
        with counted(app) as claim, app.app_context():
            assert task_service.claim_next("w1", "demo") is not None
        costs[depth] = (cancel["sql"], len(cancel["events"]), claim["sql"], len(claim["events"]))
    assert costs[10] == costs[500], costs


def test_the_positions_the_api_reports_are_the_fair_order(fresh):
    check_positions(fresh(**LIMITS))


def test_the_fair_order_on_postgresql(fresh, postgres_url):
    check_positions(fresh(**LIMITS, DATABASE_URL=postgres_url))


def check_positions(app):
    fill_queue(app, 300, users=30)  # rounds 0..9, ten tasks each
    client = app.test_client()
    alice, bob = ApiUser(client, unique("alice")), ApiUser(client, unique("bob"))
    mine = [alice.submit().get_json(), bob.submit().get_json(), alice.submit().get_json()]
    # Newcomers join round 0 (no one was served yet), after its 30 tasks; alice's second
    # task is her second turn: last of round 1.
    assert [t["position"] for t in mine] == [31, 32, 63]
    with app.app_context():
        everything = dispatch.positions()
        ids = db.session.scalars(sa.select(Task.id).where(Task.state == "queued")).all()
        order = [t.id for t in dispatch.fair_order(db.session.scalars(
            sa.select(Task).where(Task.state == "queued")).all())]
    assert sorted(everything.values()) == list(range(1, len(ids) + 1))
    assert [task_id for task_id, _ in sorted(everything.items(), key=lambda kv: kv[1])] == order
    for user, own in ((alice, [mine[0], mine[2]]), (bob, [mine[1]])):
        listed = {t["id"]: t["position"] for t in user.get("/api/v1/tasks").get_json()["items"]}
        queue = user.get("/api/v1/queue").get_json()
        single = {t["id"]: user.get(f"/api/v1/tasks/{t['id']}").get_json()["position"] for t in own}
        expected = {t["id"]: everything[t["id"]] for t in own}
        assert listed == queue["positions"] == single == expected
        assert queue["your_position"] == min(expected.values())
    # A claim takes the head; everyone behind moves up by one.
    with app.app_context():
        head = task_service.claim_next("w1", "demo")
        assert everything[head.id] == 1
    assert alice.get("/api/v1/queue").get_json()["positions"] == {
        mine[0]["id"]: 30, mine[2]["id"]: 62}


def test_a_canceled_task_leaves_its_job_which_finds_nothing(tmp_path, redis_url, models_path):
    env = instance_env(tmp_path, redis_url, models_path)
    app = make_app(env)
    user = ApiUser(app.test_client(), unique("canceler"))
    before = user.me()["tokens"]
    first, second = user.submit().get_json(), user.submit().get_json()
    canceled = user.post(f"/api/v1/tasks/{first['id']}/cancel").get_json()
    assert canceled["state"] == "canceled" and canceled["refunded"] is True
    with app.app_context():
        assert queue_service.waiting_jobs() == 2  # its job stays: no scan of the queue
        assert task_service.reconcile() == {"failed": 0, "requeued": 0}  # more jobs than tasks: fine
        assert user.get(f"/api/v1/tasks/{second['id']}").get_json()["position"] == 1
    # A worker runs both jobs: one runs the task left, the other finds nothing to run.
    env = {**os.environ, **env, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "rq.cli", "worker", "-c", "qworker", "-w", "qworker.DaydreamWorker", "--burst"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert user.get(f"/api/v1/tasks/{second['id']}").get_json()["state"] == "done"
    assert user.get(f"/api/v1/tasks/{first['id']}").get_json()["state"] == "canceled"
    assert user.me()["tokens"] == before - second["cost"]
    with app.app_context():
        assert queue_service.waiting_jobs() == 0
        assert FailedJobRegistry(app.config["QUEUE_NAME"], connection=queue_service.connection()).count == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ledger).where(
            Ledger.task_id == first["id"], Ledger.kind == "refund")) == 1


def test_the_reconciler_adds_only_the_missing_jobs_in_the_fair_order(fresh):
    app = fresh(**LIMITS)
    ids = fill_queue(app, 12, users=4)
    with app.app_context():
        for task_id in ids[:3]:
            queue_service.enqueue_slot(task_id)
        assert task_service.reconcile() == {"failed": 0, "requeued": 9}
        assert queue_service.waiting_jobs() == 12
        assert task_service.reconcile() == {"failed": 0, "requeued": 0}


# --- batches ----------------------------------------------------------------------------


def add(app, username: str, second: int, fair_round: int, **values) -> str:
    with app.app_context():
        owner = db.session.scalar(sa.select(User).where(User.username == username))
        if owner is None:
            owner = User(email=f"{username}@example.com", username=username, password_hash="x")
            db.session.add(owner)
            db.session.flush()
        task = Task(user_id=owner.id, session_id=owner.sessionid, prompt="a boat", width=64, height=64,
                    steps=2, guidance=7.5, samples=values.pop("samples", 1), seed=1, scheduler="euler",
                    model=values.pop("model", "demo"), cost=0, fair_round=fair_round,
                    created_at=utcnow() - timedelta(minutes=10) + timedelta(seconds=second), **values)
        db.session.add(task)
        db.session.commit()
        return task.id


def same_model_and_size(head, task) -> bool:
    return head.model == task.model and head.width == task.width


@pytest.fixture
def names():
    return {k: unique(k) for k in "abcde"}


def claim(app, max_images=8, joins=same_model_and_size):
    with app.app_context():
        batch = task_service.claim_batch("w1", "demo", max_images=max_images, joins=joins)
        return [(t.id, t.state, t.worker) for t in batch]


def test_a_batch_is_the_head_and_the_joiners_of_its_round(fresh, names):
    app = fresh()
    a1 = add(app, names["a"], 0, 0)
    b1 = add(app, names["b"], 1, 0)
    c1 = add(app, names["c"], 2, 0, samples=2)
    a2 = add(app, names["a"], 3, 1)  # a's second turn: never in this batch
    batch = claim(app)
    assert [t[0] for t in batch] == [a1, b1, c1]
    assert all(state == "running" and worker == "w1" for _, state, worker in batch)
    assert claim(app) == [(a2, "running", "w1")]
    assert claim(app) == []


def test_a_batch_stops_at_the_first_that_cannot_join_and_at_max_images(fresh, names):
    app = fresh()
    a1 = add(app, names["a"], 0, 0, samples=2)
    b1 = add(app, names["b"], 1, 0, samples=3)
    c1 = add(app, names["c"], 2, 0, samples=4)  # 2 + 3 + 4 > 8
    d1 = add(app, names["d"], 3, 0, samples=1)  # would fit, but may not overtake c
    assert [t[0] for t in claim(app, max_images=8)] == [a1, b1]
    e1 = add(app, names["e"], 4, 0, model="other")
    # c leads now; d joins; e cannot, and the batch ends there.
    assert [t[0] for t in claim(app, max_images=8)] == [c1, d1]
    with app.app_context():
        assert db.session.get(Task, e1).state == "queued"
        assert task_service.claim_next("w2", None).id == e1  # claim_next: the head alone


def test_a_batch_skips_a_joiner_canceled_meanwhile(fresh, names):
    app = fresh()
    a1 = add(app, names["a"], 0, 0)
    b1 = add(app, names["b"], 1, 0)
    c1 = add(app, names["c"], 2, 0)

    def joins(head, task):
        if task.id == b1:  # another worker (or its owner) gets there first
            with app.app_context():
                task_service.cancel(db.session.get(Task, b1))
        return same_model_and_size(head, task)

    assert [t[0] for t in claim(app, joins=joins)] == [a1, c1]


def test_the_queue_bench_measures_what_it_reports():
    """bench/bench_queue.py on a small queue, so that it cannot rot between real runs."""
    from bench.bench_queue import measure, report

    m = measure(depth=30, rounds=3, warmup=1)
    assert {name: len(times) for name, times in m["deep"].items()} == {"submit": 3, "cancel": 3, "claim": 3}
    text, _passed = report(m)
    assert "submit" in text and "p99 ratio" in text and "claim" in text
