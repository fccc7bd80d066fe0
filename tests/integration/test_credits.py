"""The ledger invariant under random sequences of what happens to a balance: submits,
starts, completions, failures, cancels (in any order, twice, racing), staff grants and
revokes, voucher redemptions (and second tries), and allowances; and a class's budget
(issue 27): joining a class whose pool pays (or that grants an allowance), its budget
changing, new periods (the pool refilled, the allowance granted again).

After every step: the user's balance equals the sum of their own ledger rows and the
class pool's the sum of its rows, neither negative. After every sequence: each task was
debited once and each failed or canceled task refunded exactly once (a done task
never), both from the balance that paid it. Runs the real services on a SQLite file and
the test Redis."""
from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import instance_env, make_app

LATER_PERIODS = itertools.count(1)
OPS = st.one_of(
    st.tuples(st.just("submit"), st.integers(1, 4), st.integers(1, 150)),
    st.tuples(st.just("start"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("complete"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("fail"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("cancel"), st.integers(0, 20), st.just(0)),
    st.tuples(st.just("grant"), st.integers(1, 50), st.just(0)),
    st.tuples(st.just("revoke"), st.integers(1, 50), st.just(0)),
    st.tuples(st.just("redeem"), st.integers(1, 30), st.booleans()),
    st.tuples(st.just("allowance"), st.just(0), st.just(0)),
    st.tuples(st.just("class_budget"), st.integers(0, 300), st.sampled_from(["pool", "allowance", "none"])),
    st.tuples(st.just("new_period"), st.just(0), st.just(0)),
)


@pytest.fixture(scope="module")
def books_app(tmp_path_factory, redis_url, models_path):
    app = make_app(instance_env(tmp_path_factory.mktemp("books"), redis_url, models_path,
                                DAYDREAM_USER_QUEUE_LIMIT=1000, DAYDREAM_QUEUE_LIMIT=100000))
    with app.app_context():
        from services.accounts.users import create_staff

        create_staff("bookkeeper", "bookkeeper@example.com", "a staff password")
    return app


def apply(op, user, staff, task_ids: list[str], school_class) -> None:
    from extensions import db
    from models import ClassMember, Task, User, utcnow
    from services.accounts import credits, vouchers
    from services.generation import tasks
    from services.core.errors import Conflict, NotEnoughTokens, ValidationError

    kind, a, b = op
    task = None
    if kind in ("start", "complete", "fail", "cancel") and task_ids:
        task = db.session.get(Task, task_ids[a % len(task_ids)])
    if kind == "submit":
        try:
            made = tasks.submit_task(user, {"prompt": "books", "width": 512, "height": 512,
                                            "steps": b, "samples": a})
            task_ids.append(made.id)
        except NotEnoughTokens:
            db.session.rollback()
    elif kind == "start" and task is not None:
        tasks.start_task(task.id, "hypothesis-worker")
    elif kind == "complete" and task is not None:
        tasks.complete_task(task)
    elif kind == "fail" and task is not None:
        tasks.fail_task(task.id, "the model ran out of memory")
    elif kind == "cancel" and task is not None:
        try:
            tasks.cancel(task)
        except Conflict:
            db.session.rollback()
    elif kind in ("grant", "revoke"):
        try:
            credits.staff_adjust(user, a if kind == "grant" else -a, "hypothesis", staff=staff)
            db.session.commit()
        except ValidationError:
            db.session.rollback()
    elif kind == "redeem":
        code = vouchers.create_batch(staff, a, 1)[0].code
        vouchers.redeem(user, code)
        if b:  # a second try with the same code is refused and changes nothing
            with pytest.raises(Conflict):
                vouchers.redeem(user, code)
    elif kind == "allowance":
        db.session.execute(sa.update(User).where(User.id == user.id)
                           .values(allowance_at=utcnow() - timedelta(days=31)))
        db.session.commit()
        db.session.refresh(user)
        assert credits.grant_allowance_if_due(user) is not None
        assert credits.grant_allowance_if_due(user) is None  # once a period
    elif kind == "class_budget":  # the user is (or becomes) a pupil of a class with this budget
        if db.session.scalar(sa.select(ClassMember).filter_by(class_id=school_class.id, user_id=user.id)) is None:
            db.session.add(ClassMember(class_id=school_class.id, user_id=user.id, role="pupil"))
        school_class.budget_mode, school_class.budget_tokens, school_class.budget_at = b, a, None
        db.session.commit()
    elif kind == "new_period":  # the pool is refilled at its next use; a new allowance is due
        school_class.budget_at = utcnow() - timedelta(days=40)
        db.session.commit()
        later = utcnow() + timedelta(days=40 * next(LATER_PERIODS))  # (a period of its own)
        granted = credits.grant_class_allowances(user, later)
        assert len(granted) == (school_class.budget_mode == "allowance" and school_class.budget_tokens > 0
                                and db.session.scalar(sa.select(sa.func.count()).select_from(ClassMember)
                                                      .filter_by(class_id=school_class.id, user_id=user.id)) > 0)
        assert credits.grant_class_allowances(user, later) == []  # once a period


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=1, max_size=25),
       budget=st.tuples(st.just("class_budget"), st.integers(0, 300), st.sampled_from(["pool", "allowance", "none"])))
def test_the_balance_always_equals_the_sum_of_the_ledger(books_app, ops, budget):
    from extensions import db
    from models import Ledger, SchoolClass, Task, User
    from services.accounts import credits
    from services.accounts.users import register_user

    with books_app.app_context():
        staff = db.session.scalar(sa.select(User).where(User.username == "bookkeeper"))
        user = register_user(f"b{uuid.uuid4().hex[:12]}", f"{uuid.uuid4().hex[:12]}@example.com",
                             "a long enough password")
        school_class = SchoolClass(name=f"books {uuid.uuid4().hex[:8]}")
        db.session.add(school_class)
        db.session.commit()
        task_ids: list[str] = []
        for op in [budget, *ops]:  # (a pupil of the class from the start, with its budget)
            apply(op, user, staff, task_ids, school_class)
            db.session.refresh(user)
            db.session.refresh(school_class)
            assert user.tokens >= 0 and school_class.pool_tokens >= 0
            assert user.tokens == credits.ledger_balance(user.id), op
            assert school_class.pool_tokens == credits.pool_balance(school_class.id), op

        rows = db.session.execute(sa.select(Ledger.kind, Ledger.task_id, Ledger.delta, Ledger.class_id)
                                  .where(Ledger.user_id == user.id)).all()
        for task in db.session.scalars(sa.select(Task).where(Task.user_id == user.id)):
            debits = [(d, c) for k, t, d, c in rows if t == task.id and k == "debit"]
            refunds = [(d, c) for k, t, d, c in rows if t == task.id and k == "refund"]
            assert debits == [(-task.cost, task.class_id)]  # from the pool that paid, or the user
            if task.state in ("failed", "canceled"):
                assert refunds == [(task.cost, task.class_id)] and task.refunded
            else:
                assert refunds == [] and not task.refunded
        assert [m for m in credits.check_ledger()
                if m["user_id"] == user.id or m.get("class_id") == school_class.id] == []
        db.session.remove()


def test_a_partial_refund_is_made_once_by_the_move_that_ends_the_task(books_app):
    """A task done with 1 of its 4 images withheld is refunded that image's share in one
    ledger row; a second end changes nothing, and a second refund row is refused by the
    ledger's unique (task, kind) constraint, however it is asked for."""
    from sqlalchemy.exc import IntegrityError

    from extensions import db
    from models import Ledger, Task
    from services.accounts import credits
    from services.accounts.users import register_user
    from services.generation import tasks

    with books_app.app_context():
        user = register_user(f"p{uuid.uuid4().hex[:12]}", f"{uuid.uuid4().hex[:12]}@example.com",
                             "a long enough password")
        task = tasks.submit_task(user, {"prompt": "books", "width": 512, "height": 512, "steps": 40, "samples": 4})
        assert task.cost >= 4
        tasks.start_task(task.id, "a-test")
        task = db.session.get(Task, task.id)
        assert tasks.finish_checked(task, 1) is True
        assert tasks.finish_checked(task, 1) is False  # ended already: no second move, no refund

        def refunds():
            return db.session.scalars(sa.select(Ledger.delta).where(
                Ledger.task_id == task.id, Ledger.kind == "refund")).all()

        assert refunds() == [task.cost // 4]
        assert db.session.get(Task, task.id).state == "done" and not task.refunded
        with pytest.raises(IntegrityError):
            credits.refund_partly(task, 1, "again")
            db.session.flush()
        db.session.rollback()
        assert refunds() == [task.cost // 4]
        db.session.refresh(user)
        assert user.tokens == credits.ledger_balance(user.id)
        db.session.remove()
