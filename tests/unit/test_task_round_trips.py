"""The worker's fixed cost per task, counted: the claim → done path of a one-image task
(worker/jobs.run_next: claim, render, store the PNG and thumbnail, finish, metrics) makes
a known number of database round trips, commits and events, and this test fails when
one of them grows (issue 28: the fixed cost per task decides throughput on a GPU).

Everything around the pipeline call is real: the app on a SQLite file, the services, the
Render, storage (the files are written), progress; Redis is fakeredis (a unit test
reaches no server) and the pipeline a stand-in that calls the step callback as diffusers
does and returns pictures, since what is counted is the machinery around it. Events are
counted at services/core/events.emit_* (nothing is published)."""
from __future__ import annotations

import collections
from pathlib import Path

import pytest
import sqlalchemy as sa

from extensions import db
from models import Image, Task, User
from services.accounts import users
from services.core import events
from services.generation import tasks as task_service
from tests.unit.helpers import STEPS
from worker import jobs

# Measured on the claim → done path of a one-image, one-step task (the second of the
# run: the first warms caches). Lower them when a change makes fewer; never raise one
# without saying in the commit what the new round trip or event is for.
# (Before issue 28's cuts: 20 statements, 3 commits, 5 `task` events: the image row had a
# commit of its own, an event of its own, and the finish re-read the row it had moved.)
STATEMENTS = 17  # SELECT, INSERT and UPDATE statements sent to the database
COMMITS = 2  # the claim (queued → running); the image row with running → done
TASK_EVENTS = 4  # running (claimed), the progress of steps 0 and 1, done (with its image)
QUEUE_EVENTS = 1  # the queue changed (one task fewer queued)


@pytest.fixture
def round_trip_counts(worker_app, monkeypatch):
    """Counters of statements, commits and emits while `round_trip_counts["on"]` is set."""
    counts = {"on": False, "statements": collections.Counter(), "commits": 0, "events": collections.Counter()}

    def statement(_conn, _cursor, text, *_rest):
        if counts["on"]:
            counts["statements"][text.split()[0].upper()] += 1

    def commit(_conn):
        if counts["on"]:
            counts["commits"] += 1

    for name in [n for n in dir(events) if n.startswith("emit_")]:
        def emit(*_args, _name=name, **_kwargs):
            if counts["on"]:
                counts["events"][_name] += 1
        monkeypatch.setattr(events, name, emit)
    with worker_app.app_context():
        engine = db.engine
    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "commit", commit)
    yield counts
    sa.event.remove(engine, "before_cursor_execute", statement)
    sa.event.remove(engine, "commit", commit)


def submit_one(app, user_id: int, n: int) -> str:
    with app.app_context():
        user = db.session.get(User, user_id)
        task = task_service.submit_task(user, {"prompt": f"a lighthouse, study {n}", "width": 64, "height": 64,
                                               "steps": STEPS, "samples": 1, "seed": n})
        return task.id


def test_claim_to_done_of_a_one_image_task_makes_no_more_round_trips_or_events(worker_app, round_trip_counts):
    counts = round_trip_counts
    with worker_app.app_context():
        user = users.register_user("roundtrips", "roundtrips@example.com", "a long enough password")
        db.session.commit()
        user_id = user.id
    first = submit_one(worker_app, user_id, 1)
    assert jobs.run_next().startswith("ran task")  # warms what a worker keeps between jobs
    second = submit_one(worker_app, user_id, 2)

    counts["on"] = True
    assert jobs.run_next() == f"ran task {second}"
    counts["on"] = False

    with worker_app.app_context():
        for task_id in (first, second):
            task = db.session.get(Task, task_id)
            assert task.state == "done", (task.state, task.error)
            image = db.session.scalar(sa.select(Image).where(Image.task_id == task_id))
            assert image is not None and (Path(worker_app.config["IMAGES_PATH"]) / image.filename).is_file()
        statements = sum(counts["statements"].values())
        assert statements <= STATEMENTS, (
            f"claim → done of a one-image task now sends {statements} statements (was {STATEMENTS}): "
            f"{dict(counts['statements'])}")
        assert counts["commits"] <= COMMITS, f"{counts['commits']} commits (was {COMMITS})"
        assert counts["events"]["emit_task"] <= TASK_EVENTS, dict(counts["events"])
        assert counts["events"]["emit_queue"] <= QUEUE_EVENTS, dict(counts["events"])
        assert set(counts["events"]) <= {"emit_task", "emit_queue"}, dict(counts["events"])
        # The counts are of a path that ran: it claimed, stored and ended the task.
        assert counts["statements"]["UPDATE"] >= 2 and counts["statements"]["INSERT"] >= 1
        assert counts["events"]["emit_task"] >= 2 and counts["commits"] >= 1


def test_a_task_canceled_while_its_image_is_stored_keeps_no_row_and_no_file(worker_app, monkeypatch):
    """The last image's row is committed with the task's end: when a cancel lands between
    the file being written and the end (another process's commit), the row goes with
    the lost move and the worker removes the files."""
    with worker_app.app_context():
        user = users.register_user("roundtrips2", "roundtrips2@example.com", "a long enough password")
        db.session.commit()
        user_id = user.id
    task_id = submit_one(worker_app, user_id, 3)
    saved = []
    real_save = jobs.ServiceContext.save

    def save_then_cancel_elsewhere(context, row, encoded, verdict):
        image = real_save(context, row, encoded, verdict)
        saved.append(image.filename)
        with db.engine.begin() as other:  # the web tier's cancel, on its own connection
            other.execute(sa.update(Task).where(Task.id == row.task.id).values(state="canceled"))
        return image

    monkeypatch.setattr(jobs.ServiceContext, "save", save_then_cancel_elsewhere)
    jobs.run_next()
    with worker_app.app_context():
        assert db.session.get(Task, task_id).state == "canceled"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(Image.task_id == task_id)) == 0
    assert len(saved) == 1
    folder = Path(worker_app.config["IMAGES_PATH"])
    assert not (folder / saved[0]).exists() and not (folder / saved[0]).with_suffix(".webp").exists()


def test_a_database_error_at_the_tasks_end_leaves_no_file_behind(worker_app, monkeypatch):
    """The last image's row goes in the transaction of the task's end: when that commit
    raises (a locked or lost database), the row is lost, so its files go too, and the
    task fails with a full refund (nothing was delivered)."""
    import pytest as _pytest

    with worker_app.app_context():
        user = users.register_user("roundtrips3", "roundtrips3@example.com", "a long enough password")
        db.session.commit()
        user_id, before = user.id, user.tokens
    task_id = submit_one(worker_app, user_id, 4)
    saved = []
    real_save = jobs.ServiceContext.save

    def save_and_note(context, row, encoded, verdict):
        image = real_save(context, row, encoded, verdict)
        saved.append(image.filename)
        return image

    def the_end_fails(_task, _withheld):
        raise sa.exc.OperationalError("COMMIT", {}, Exception("database is locked"))

    monkeypatch.setattr(jobs.ServiceContext, "save", save_and_note)
    monkeypatch.setattr(task_service, "finish_checked", the_end_fails)
    with _pytest.raises(sa.exc.OperationalError):
        jobs.run_next()
    assert len(saved) == 1
    folder = Path(worker_app.config["IMAGES_PATH"])
    assert not (folder / saved[0]).exists() and not (folder / saved[0]).with_suffix(".webp").exists()
    assert [path for path in folder.rglob("*") if path.is_file()] == []
    with worker_app.app_context():
        task = db.session.get(Task, task_id)
        assert task.state == "failed" and task.refunded
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Image).where(Image.task_id == task_id)) == 0
        assert db.session.get(User, user_id).tokens == before
