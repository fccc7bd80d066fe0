"""Class budgets and plan caps (issue 27), on the app whose queue no worker serves (tasks
stay queued).

A class pool pays its pupils' tasks: filled to the budget at the period's first use,
debited once per task (the task names the pool), refunded to the pool once when the
task is canceled; a pool too short for a task leaves it to the pupil's own tokens, and
when those are short too the 402 says what the pool has. A class allowance is granted
to each pupil once a period. A plan's daily cap holds under parallel submits."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.helpers import unique
from tests.integration.helpers import ApiUser, books_balance, pool_of, pupil_in_new_class, user_row

SMALL = {"width": 64, "height": 64, "steps": 4}


def budget_rows(app, **where) -> list[tuple]:
    """(kind, delta, balance_after, task_id, class_id) of the ledger rows matching `where`, in order."""
    from extensions import db
    from models import Ledger

    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            sa.select(Ledger.kind, Ledger.delta, Ledger.balance_after, Ledger.task_id, Ledger.class_id)
            .filter_by(**where).order_by(Ledger.id)).all()]


def test_the_pool_pays_once_and_a_canceled_task_is_refunded_to_it_once(idle_app):
    pupil, class_id = pupil_in_new_class(idle_app, budget_mode="pool", budget_tokens=100, budget_period="week")
    own = pupil.me()["tokens"]
    funds = lambda: pupil.post("/api/v1/estimate", json={"prompt": "a hut", **SMALL}).get_json()["funds"]  # noqa: E731
    assert funds()["pool"] == 100 and funds()["tokens"] == own  # the pool's budget, its refill due
    answer = pupil.submit(**SMALL)
    assert answer.status_code == 202, answer.get_json()
    task = answer.get_json()
    cost = task["cost"]
    assert 0 < cost < 100
    assert pool_of(idle_app, class_id) == 100 - cost and pupil.me()["tokens"] == own
    assert funds()["pool"] == 100 - cost  # what the studio's cost line counts (estimate.js)
    assert budget_rows(idle_app, class_id=class_id) == [
        ("pool_refill", 100, 100, None, class_id), ("debit", -cost, 100 - cost, task["id"], class_id)]

    assert pupil.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 200
    assert pupil.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 409  # ended: no second refund
    assert pool_of(idle_app, class_id) == 100 and pupil.me()["tokens"] == own
    assert budget_rows(idle_app, task_id=task["id"]) == [
        ("debit", -cost, 100 - cost, task["id"], class_id), ("refund", cost, 100, task["id"], class_id)]
    # The pupil's own ledger shows none of the pool's rows; the books hold.
    assert [r["kind"] for r in pupil.get("/api/v1/me/ledger").get_json()["items"]] == ["starting_grant"]
    assert books_balance(idle_app) == []


def test_a_new_period_refills_the_pool_once(idle_app):
    from extensions import db
    from models import SchoolClass, utcnow

    pupil, class_id = pupil_in_new_class(idle_app, budget_mode="pool", budget_tokens=100, budget_period="day")
    cost = pupil.submit(**SMALL).get_json()["cost"]
    with idle_app.app_context():  # the period began yesterday: the next use refills
        db.session.execute(sa.update(SchoolClass).where(SchoolClass.id == class_id)
                           .values(budget_at=utcnow() - timedelta(days=1)))
        db.session.commit()
    assert pupil.submit(**SMALL).status_code == 202
    assert pupil.submit(**SMALL).status_code == 202
    refills = [row for row in budget_rows(idle_app, class_id=class_id) if row[0] == "pool_refill"]
    assert refills == [("pool_refill", 100, 100, None, class_id), ("pool_refill", cost, 100, None, class_id)]
    assert pool_of(idle_app, class_id) == 100 - 2 * cost
    assert books_balance(idle_app) == []


def test_a_short_pool_leaves_the_task_to_the_pupils_tokens_or_says_what_it_has(idle_app):
    from extensions import db
    from models import Task
    from services.accounts import credits

    pupil, class_id = pupil_in_new_class(idle_app, budget_mode="pool", budget_tokens=1, budget_period="month")
    own = pupil.me()["tokens"]
    paid = pupil.submit(samples=2, **SMALL).get_json()
    assert paid["cost"] > 1 and pupil.me()["tokens"] == own - paid["cost"]
    with idle_app.app_context():
        assert db.session.get(Task, paid["id"]).class_id is None  # the pupil paid, not the pool
        user = db.session.merge(user_row(idle_app, pupil.username))
        credits.staff_adjust(user, -user.tokens, "spent for the test")
        db.session.commit()
    refused = pupil.submit(samples=2, **SMALL)
    assert refused.status_code == 402
    assert refused.get_json()["error"]["message"].startswith(
        f"This needs {paid['cost']} tokens; your class's pool has 1 and you have 0 of your own.")
    assert pool_of(idle_app, class_id) == 1
    assert books_balance(idle_app) == []


def test_a_class_allowance_is_granted_to_a_pupil_once_a_period(idle_app):
    from extensions import db
    from models import utcnow
    from services.accounts import credits

    pupil, _ = pupil_in_new_class(idle_app, budget_mode="allowance", budget_tokens=30, budget_period="week")
    user_id = user_row(idle_app, pupil.username).id
    assert pupil.submit(**SMALL).status_code == 202
    assert pupil.submit(**SMALL).status_code == 202
    assert pupil.me()["tokens"] > 0
    grants = budget_rows(idle_app, user_id=user_id, kind="class_allowance")
    assert [(kind, delta, klass) for kind, delta, _after, _key, klass in grants] == [("class_allowance", 30, None)]
    with idle_app.app_context():
        user = db.session.merge(user_row(idle_app, pupil.username))
        next_week = utcnow() + timedelta(days=7)
        assert len(credits.grant_class_allowances(user, next_week)) == 1
        assert credits.grant_class_allowances(user, next_week) == []
        assert credits.ledger_balance(user.id) == user.tokens
    assert books_balance(idle_app) == []


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_plans_daily_cap_holds_under_parallel_submits(fresh, request, database):
    settings = {"DATABASE_URL": request.getfixturevalue("postgres_url")} if database == "postgresql" else {}
    app = fresh(DAYDREAM_TIERS='[{"id": "free", "images_per_day": 3}]', DAYDREAM_USER_QUEUE_LIMIT=10, **settings)
    user = ApiUser(app.test_client(), unique("capped"))

    def submit(_):  # (a client a thread)
        return app.test_client().post("/api/v1/tasks", json={"prompt": "a hut", **SMALL}, headers=user.headers)

    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(submit, range(6)))
    assert sorted(a.status_code for a in answers) == [202] * 3 + [429] * 3
    refusals = {a.get_json()["error"]["message"] for a in answers if a.status_code == 429}
    assert refusals == {"You have made 3 images today; your plan allows 3; more from 00:00"}
    with app.app_context():  # (the database is dropped after the test)
        from extensions import db

        db.session.remove()
        db.engine.dispose()
