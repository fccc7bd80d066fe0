"""A running task canceled after some of its images were stored: the worker's real path
(worker/jobs.run_next on SQLite, fakeredis, the stand-in pipeline of
test_task_round_trips; on the CPU one image a call, so a task's earlier images are
committed before its last) with the cancel made by services/generation/tasks.py:cancel
in another session, as the web tier makes it.

The owner keeps the images stored before the cancel and gets back the share of the
others (rounded down, as a task that ran out of disk), to whichever balance paid (a
class pool), once; an image whose row was not committed when the cancel landed is rolled
back with its files, and counts as not delivered."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from extensions import db
from models import ClassMember, Image, Ledger, SchoolClass, Task, User
from services.accounts import credits, users
from services.generation import tasks as task_service
from worker import jobs


def new_user(app, name: str, pool: int | None = None) -> tuple[int, str | None]:
    """A user (and, with `pool`, the only pupil of a class whose pool pays); (id, class id)."""
    with app.app_context():
        user = users.register_user(name, f"{name}@example.com", "a long enough password")
        db.session.flush()
        class_id = None
        if pool is not None:
            school_class = SchoolClass(name=f"Class of {name}", budget_mode="pool", budget_tokens=pool,
                                       budget_period="week")
            db.session.add(school_class)
            db.session.flush()
            db.session.add(ClassMember(class_id=school_class.id, user_id=user.id, role="pupil", via="staff"))
            class_id = school_class.id
        db.session.commit()
        return user.id, class_id


def submit_samples(app, user_id: int, samples: int) -> str:
    with app.app_context():
        user = db.session.get(User, user_id)
        return task_service.submit_task(user, {"prompt": "a lighthouse", "width": 64, "height": 64, "steps": 1,
                                               "samples": samples, "seed": 7}).id


def cancel_elsewhere(app, task_id: str) -> None:
    """The web tier's cancel: its own app context, so its own session and connection."""
    with app.app_context():
        task_service.cancel(db.session.get(Task, task_id))


def ledger_rows_of(app, task_id: str) -> list[tuple]:
    with app.app_context():
        return [tuple(row) for row in db.session.execute(
            sa.select(Ledger.kind, Ledger.delta, Ledger.class_id).where(Ledger.task_id == task_id)
            .order_by(Ledger.id)).all()]


def images_of(app, task_id: str) -> list[Image]:
    with app.app_context():
        found = db.session.scalars(sa.select(Image).where(Image.task_id == task_id).order_by(Image.id)).all()
        db.session.expunge_all()
        return found


def test_a_task_canceled_after_one_of_three_images_keeps_it_and_gets_two_thirds_back(worker_app, monkeypatch):
    app = worker_app
    user_id, _ = new_user(app, "partlycanceled")
    task_id = submit_samples(app, user_id, samples=3)
    real_keep = jobs.ServiceContext.keep

    def keep_then_cancel(context, images):
        kept = real_keep(context, images)
        cancel_elsewhere(app, task_id)  # after the first image's commit, before the second call
        return kept

    monkeypatch.setattr(jobs.ServiceContext, "keep", keep_then_cancel)
    jobs.run_next()
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert task.state == "canceled"
        cost, balance, refunded, note = task.cost, db.session.get(User, user_id).tokens, task.refunded, task.error
        problems = credits.check_ledger()
    [kept] = images_of(app, task_id)
    assert kept.kind == "result" and (Path(app.config["IMAGES_PATH"]) / kept.filename).is_file()
    share = cost * 2 // 3
    assert 0 < share < cost
    assert ledger_rows_of(app, task_id) == [("debit", -cost, None), ("refund", share, None)]
    assert balance == 1000 - cost + share
    assert refunded is False  # (it delivered an image and paid for it)
    assert note == f"Canceled with 1 of 3 images made: you keep it, and the share of the other 2 ({share} tokens) " \
                   "was refunded."
    assert problems == []


def test_a_pool_paid_task_canceled_part_way_gets_its_share_back_into_the_pool_once(worker_app, monkeypatch):
    app = worker_app
    user_id, class_id = new_user(app, "poolcanceled", pool=500)
    task_id = submit_samples(app, user_id, samples=4)
    real_keep = jobs.ServiceContext.keep
    kept_calls = []

    def keep_then_cancel(context, images):
        kept = real_keep(context, images)
        kept_calls.append(len(images))
        if len(kept_calls) == 2:  # two images committed, two to come
            cancel_elsewhere(app, task_id)
        return kept

    monkeypatch.setattr(jobs.ServiceContext, "keep", keep_then_cancel)
    jobs.run_next()
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert task.state == "canceled" and task.class_id == class_id
        cost, own = task.cost, db.session.get(User, user_id).tokens
        pool = db.session.get(SchoolClass, class_id).pool_tokens
        problems = credits.check_ledger()
    assert len(images_of(app, task_id)) == 2
    share = cost * 2 // 4
    assert ledger_rows_of(app, task_id) == [("debit", -cost, class_id), ("refund", share, class_id)]
    assert pool == 500 - cost + share and own == 1000  # the pool paid, the pool got the share back
    assert problems == []
    # A second cancel finds the task ended: 409, nothing more refunded.
    with app.app_context():
        try:
            task_service.cancel(db.session.get(Task, task_id))
            raise AssertionError("a second cancel was accepted")
        except task_service.Conflict:
            pass
    assert ledger_rows_of(app, task_id) == [("debit", -cost, class_id), ("refund", share, class_id)]


def test_a_cancel_between_an_earlier_image_and_its_commit_rolls_it_back_and_refunds_in_full(worker_app, monkeypatch):
    """The images of a task with more to come are committed on their own (keep): a cancel
    landing after the file is written and before that commit wins, the row is rolled back
    and the files removed, so what the cancel counted is what the owner keeps."""
    app = worker_app
    user_id, _ = new_user(app, "racecanceled")
    task_id = submit_samples(app, user_id, samples=3)
    saved = []
    real_save = jobs.ServiceContext.save

    def save_then_cancel(context, row, encoded, verdict):
        image = real_save(context, row, encoded, verdict)
        saved.append(image.filename)
        if len(saved) == 1:
            cancel_elsewhere(app, task_id)
        return image

    monkeypatch.setattr(jobs.ServiceContext, "save", save_then_cancel)
    jobs.run_next()
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert task.state == "canceled"
        cost, balance, refunded = task.cost, db.session.get(User, user_id).tokens, task.refunded
    assert images_of(app, task_id) == []
    assert ledger_rows_of(app, task_id) == [("debit", -cost, None), ("refund", cost, None)]
    assert balance == 1000 and refunded is True
    folder = Path(app.config["IMAGES_PATH"])
    assert len(saved) == 1 and not (folder / saved[0]).exists()
