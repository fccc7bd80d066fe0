"""Canceling a running multi-image task through the real stack (the web API, Redis, a
real worker with the tiny demo model, which renders one image a call on the CPU, so a
task's earlier images are committed before its last): the owner keeps the images stored
before the cancel and gets back the share of the others (rounded down), once, to the
balance that paid (their own, or their class's pool); the worker stores nothing more.
The core case runs on PostgreSQL too, where the cancel and the worker's keep_images
take real row locks (a worker of its own; SQLite serializes writers anyway)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.helpers import WorkerProcess, instance_env, make_app, wait_for
from tests.integration.helpers import ApiUser, books_balance, pool_of, pupil_in_new_class

SAMPLES = 3
# An image takes a few tenths of a second here: time enough to cancel between two.
LONG = {"model": "demo", "width": 64, "height": 64, "steps": 60, "samples": SAMPLES}


@pytest.fixture(scope="module")
def cancel_stack(stack_factory):
    # The demo models' stack, shared with test_families.py, test_upscale_tasks.py and others.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker = shared.worker
    return app


@pytest.fixture(params=["sqlite", "postgresql"])
def cancel_app(request, tmp_path, redis_url, models_path):
    """The shared stack on SQLite; on PostgreSQL an app and a worker of the test's own."""
    if request.param == "sqlite":
        yield request.getfixturevalue("cancel_stack")
        return
    env = instance_env(tmp_path / "instance", redis_url, models_path, DAYDREAM_STARTING_TOKENS=10000,
                       DATABASE_URL=request.getfixturevalue("postgres_url"))
    app = make_app(env)
    from extensions import db

    with app.app_context():
        assert db.engine.dialect.name == "postgresql"
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        yield app
    finally:
        worker.stop()
        with app.app_context():  # (the database is dropped after the test)
            db.session.remove()
            db.engine.dispose()


def ledger_rows(app, task_id: str) -> list[tuple]:
    from extensions import db
    from models import Ledger

    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            sa.select(Ledger.kind, Ledger.delta, Ledger.class_id).where(Ledger.task_id == task_id)
            .order_by(Ledger.id)).all()]


def cancel_after_first_image(user: ApiUser) -> tuple[dict, dict]:
    """Submit a LONG task, cancel it once its first image is stored; (as submitted, as it ended)."""
    response = user.submit(**LONG)
    assert response.status_code == 202, response.get_json()
    task = response.get_json()

    def first_image():
        got = user.get(f"/api/v1/tasks/{task['id']}").get_json()
        return got if got["images"] or got["state"] not in ("queued", "running") else None

    seen = wait_for(first_image, 120, interval=0.05, message="the task's first image")
    assert seen["state"] == "running" and 1 <= len(seen["images"]) < SAMPLES, seen
    canceled = user.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert canceled.status_code == 200, canceled.get_json()
    # The worker is done with it once a task submitted after it has run.
    after = user.submit(model="demo", width=64, height=64, steps=1).get_json()
    assert user.wait_task(after["id"], timeout=120)["state"] == "done"
    final = user.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert canceled.get_json()["images"] == final["images"]  # nothing stored after the cancel
    return task, final


def test_a_task_canceled_after_its_first_image_keeps_what_was_made_and_gets_the_rest_back(cancel_app):
    app = cancel_app
    user = ApiUser(app.test_client(), "cancelpart")
    before = user.me()["tokens"]
    task, final = cancel_after_first_image(user)
    made = len(final["images"])
    assert final["state"] == "canceled" and 1 <= made < SAMPLES, final
    share = task["cost"] * (SAMPLES - made) // SAMPLES
    assert share > 0
    assert ledger_rows(app, task["id"]) == [("debit", -task["cost"], None), ("refund", share, None)]
    assert user.me()["tokens"] == before - task["cost"] + share - 1  # (the 1-token task after it)
    assert final["refunded"] is False and final["error"].startswith(f"Canceled with {made} of {SAMPLES} images made")
    for image in final["images"]:  # they are the owner's
        assert user.get(image["url"]).status_code == 200
    assert books_balance(app) == []


def test_a_class_pool_that_paid_gets_the_share_back_once_and_the_pupils_own_tokens_are_untouched(cancel_stack):
    app = cancel_stack
    pupil, class_id = pupil_in_new_class(app, budget_mode="pool", budget_tokens=100, budget_period="week")
    own = pupil.me()["tokens"]
    paid, ended = cancel_after_first_image(pupil)
    made = len(ended["images"])
    assert ended["state"] == "canceled" and 1 <= made < SAMPLES, ended
    share = paid["cost"] * (SAMPLES - made) // SAMPLES
    assert ledger_rows(app, paid["id"]) == [("debit", -paid["cost"], class_id), ("refund", share, class_id)]
    assert pool_of(app, class_id) == 100 - paid["cost"] + share - 1 and pupil.me()["tokens"] == own
    assert pupil.post(f"/api/v1/tasks/{paid['id']}/cancel").status_code == 409  # ended: no second refund
    assert ledger_rows(app, paid["id"]) == [("debit", -paid["cost"], class_id), ("refund", share, class_id)]
    assert books_balance(app) == []
