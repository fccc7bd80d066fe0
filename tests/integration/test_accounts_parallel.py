"""Parallel submits against the real web server (gunicorn, threads), on a SQLite file
and on PostgreSQL: the balance never goes negative, the accepted tasks match the
debits, and one Idempotency-Key makes one task and one debit."""
from __future__ import annotations

import threading
import uuid

import pytest
import requests
import sqlalchemy as sa

from tests.helpers import WebServer, instance_env, make_app

PASSWORD = "correct horse battery"
SUBMITS = 20


@pytest.fixture(params=["sqlite", "postgresql"])
def db_server(request, tmp_path, redis_url, models_path):
    settings = {"DAYDREAM_USER_QUEUE_LIMIT": 100, "DAYDREAM_QUEUE_LIMIT": 1000}
    if request.param == "postgresql":
        settings["DATABASE_URL"] = request.getfixturevalue("postgres_url")
    env = instance_env(tmp_path / "instance", redis_url, models_path, **settings)
    app = make_app(env)  # builds the tables; no worker: the tasks stay queued
    web = WebServer(env, tmp_path / "web.log").start()
    web.app = app
    yield web
    web.stop()
    if request.param == "postgresql":
        from extensions import db

        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def register_racer(db_server) -> tuple[str, dict]:
    name = f"racer{uuid.uuid4().hex[:8]}"
    response = requests.post(db_server.url + "/api/v1/auth/register", timeout=30, json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD})
    assert response.status_code == 201, response.text
    token = requests.post(db_server.url + "/api/v1/auth/tokens", timeout=30, json={
        "login": name, "password": PASSWORD, "name": "race"}).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    # The first request to touch the models catalog seeds its table; do that once here so
    # that the race below is about credits only.
    assert requests.get(db_server.url + "/api/v1/models", headers=headers, timeout=30).status_code == 200
    return name, headers


def in_parallel(count: int, call) -> list[requests.Response]:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(n: int) -> None:
        barrier.wait()
        try:
            results[n] = call(n)
        except Exception as exc:  # reported below
            results[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(isinstance(r, Exception) or r is None for r in results), results
    return results


def books(app, username: str) -> dict:
    from extensions import db
    from models import Ledger, Task, User

    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == username))
        rows = db.session.execute(sa.select(Ledger.kind, Ledger.delta, Ledger.task_id)
                                  .where(Ledger.user_id == user.id)).all()
        tasks = db.session.execute(sa.select(Task.id, Task.cost).where(Task.user_id == user.id)).all()
        db.session.remove()
        return {"balance": user.tokens, "ledger": rows, "tasks": dict(tasks)}


def test_parallel_submits_never_overdraw_and_match_the_debits(db_server):
    name, headers = register_racer(db_server)
    params = {"prompt": "a race", "width": 64, "height": 64, "steps": 4, "samples": 3}  # 3 tokens each

    responses = in_parallel(SUBMITS, lambda n: requests.post(
        db_server.url + "/api/v1/tasks", json=params, headers=headers, timeout=60))
    codes = sorted(r.status_code for r in responses)
    accepted = [r.json()["id"] for r in responses if r.status_code == 202]
    assert set(codes) == {202, 402}, codes  # nothing else: no 500, no lock errors
    assert len(accepted) == 20 // 3  # 6 × 3 = 18 of the 20 tokens
    refused = next(r for r in responses if r.status_code == 402).json()["error"]
    assert refused["code"] == "not_enough_tokens"

    state = books(db_server.app, name)
    debits = [(delta, task_id) for kind, delta, task_id in state["ledger"] if kind == "debit"]
    assert state["balance"] == 20 - 3 * len(accepted) >= 0
    assert sorted(task_id for _, task_id in debits) == sorted(accepted) == sorted(state["tasks"])
    assert all(delta == -3 for delta, _ in debits)
    assert state["balance"] == sum(delta for _, delta, _ in state["ledger"])


def test_parallel_submits_with_one_idempotency_key_make_one_task(db_server):
    name, headers = register_racer(db_server)
    key = {"Idempotency-Key": f"once-{uuid.uuid4().hex}"}
    params = {"prompt": "only once", "width": 64, "height": 64, "steps": 4, "samples": 2}

    responses = in_parallel(SUBMITS, lambda n: requests.post(
        db_server.url + "/api/v1/tasks", json=params, headers={**headers, **key}, timeout=60))
    assert {r.status_code for r in responses} == {202}, [r.text for r in responses if r.status_code != 202]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1

    state = books(db_server.app, name)
    assert list(state["tasks"]) == list(ids)
    assert [(kind, delta) for kind, delta, _ in state["ledger"] if kind == "debit"] == [("debit", -2)]
    assert state["balance"] == 18 == sum(delta for _, delta, _ in state["ledger"])
