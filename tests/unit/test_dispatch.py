"""Fair dispatch: round-robin between users, FIFO within a user, model affinity
only within a round and only for a while; batches from the head's round only.

The rounds are those a submit stores (dispatch.round_for): the queue below replays
submits and starts the way the database does, in memory."""
from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from flask import Flask

from services.generation.dispatch import fair_order, fair_rounds, join_batch, pick, round_for

T0 = datetime(2026, 1, 1, 12, 0, 0)


def queued_task(name: str, user: int, second: int, model: str = "demo", fair_round: int = 0, samples: int = 1):
    return SimpleNamespace(id=name, user_id=user, created_at=T0 + timedelta(seconds=second), model=model,
                           fair_round=fair_round, samples=samples)


class Queue:
    """Submits and starts as the database sees them: the current round is the round
    served last; a user's latest is their last task queued or started."""

    def __init__(self):
        self.queued: list = []
        self.served_round = 0
        self.latest: dict[int, int] = {}  # user -> round of their last task queued or started
        self.clock = 0

    def submit(self, name: str, user: int, model: str = "demo"):
        self.clock += 1
        new = queued_task(name, user, self.clock, model, round_for(self.served_round, self.latest.get(user)))
        self.latest[user] = new.fair_round
        self.queued.append(new)
        return new

    def start(self, name: str | None = None):
        """Start the named task, or the fairest (a worker without affinity)."""
        chosen = next(t for t in self.queued if t.id == name) if name else fair_order(self.queued)[0]
        assert chosen.fair_round == fair_order(self.queued)[0].fair_round, "a worker takes from the first round"
        self.queued.remove(chosen)
        self.served_round = max(self.served_round, chosen.fair_round)
        return chosen

    def order(self) -> list[str]:
        return [t.id for t in fair_order(self.queued)]

    def rounds(self):
        return fair_rounds(self.queued)


@pytest.fixture(autouse=True)
def app_context():
    app = Flask(__name__)
    app.config["AFFINITY_WAIT"] = 60
    with app.app_context():
        yield


def test_round_robin_between_users_fifo_within_each():
    q = Queue()
    for name, user in (("a1", 1), ("a2", 1), ("a3", 1), ("b1", 2), ("c1", 3), ("b2", 2)):
        q.submit(name, user)
    assert q.order() == ["a1", "b1", "c1", "a2", "b2", "a3"]
    assert [[t.id for t in rnd] for rnd in q.rounds()] == [["a1", "b1", "c1"], ["a2", "b2"], ["a3"]]


def test_the_users_served_longest_ago_go_first():
    """Never served, or served in an earlier round: ahead of a user served in the current
    round, even one who asked first (the round is the unit of "longest ago")."""
    q = Queue()
    q.submit("a0", 1), q.submit("b0", 2), q.submit("a0'", 1)
    q.start("b0"), q.start("a0"), q.start("a0'")  # a was served last, in round 1; b in round 0
    q.submit("a1", 1), q.submit("b1", 2), q.submit("c1", 3)  # c never served
    assert q.order() == ["b1", "c1", "a1"]


def test_a_newcomer_goes_before_the_next_turn_of_a_user_just_served():
    q = Queue()
    for name in ("a1", "a2", "a3"):
        q.submit(name, 1)
    assert q.start().id == "a1"
    q.submit("b1", 2)  # arrives while a1 runs: b was never served, a just was
    assert q.order() == ["b1", "a2", "a3"]
    assert q.start().id == "b1"
    q.submit("b2", 2)  # b's next turn comes after a's
    assert q.order() == ["a2", "b2", "a3"]


def test_a_user_never_gets_two_turns_before_another_gets_one():
    """Three users keep the queue full, submitting again whenever one of theirs starts:
    between two turns of any user, every other user with work waiting gets one."""
    q = Queue()
    for user in (1, 2, 3):
        for n in range(3):
            q.submit(f"u{user}-{n}", user)
    served = []
    for n in range(30):
        started = q.start()
        served.append(started.user_id)
        q.submit(f"u{started.user_id}-{n + 3}", started.user_id)
    for k in range(0, 30, 3):
        assert sorted(served[k:k + 3]) == [1, 2, 3], served


def test_a_canceled_queued_task_gives_its_turn_up():
    q = Queue()
    q.submit("a1", 1), q.submit("b1", 2)
    q.queued = [t for t in q.queued if t.id != "a1"]  # canceled before it started
    del q.latest[1]  # nothing of a's is queued or started: a has no latest round
    q.submit("a2", 1)
    assert q.order() == ["b1", "a2"] and {t.fair_round for t in q.queued} == {0}


def test_the_loaded_model_goes_first_within_the_round():
    q = Queue()
    q.submit("a1", 1, "sd15"), q.submit("a2", 1, "demo"), q.submit("b1", 2, "demo")
    rounds = q.rounds()
    now = T0 + timedelta(seconds=5)
    # b1 (same round as a1) uses the loaded model; a2 is in the next round: not eligible.
    assert pick(rounds, "demo", now=now).id == "b1"
    assert pick(rounds, "sd15", now=now).id == "a1"
    assert pick(rounds, None, now=now).id == "a1"


def test_affinity_never_skips_a_round_or_waits_forever():
    q = Queue()
    q.submit("a1", 1, "sd15"), q.submit("a2", 1, "demo")
    assert pick(q.rounds(), "demo", now=T0 + timedelta(seconds=5)).id == "a1"  # FIFO within a user
    q = Queue()
    q.submit("a1", 1, "sd15"), q.submit("b1", 2, "demo")
    assert pick(q.rounds(), "demo", now=T0 + timedelta(seconds=5)).id == "b1"
    assert pick(q.rounds(), "demo", now=T0 + timedelta(seconds=61)).id == "a1"  # a1 waited long enough


def test_an_empty_queue_picks_nothing():
    assert pick([], "demo") is None
    assert pick([[]], "demo") is None


def test_a_task_is_left_to_the_idle_worker_that_has_its_model_loaded():
    """Worker W has sd15 loaded; another live, idle worker has sdxl. The fairest task
    (sdxl) is left to that one; W takes the next task of the round instead."""
    q = Queue()
    q.submit("a1", 1, "sdxl"), q.submit("b1", 2, "flux"), q.submit("a2", 1, "demo")
    rounds = q.rounds()
    now = T0 + timedelta(seconds=5)
    assert pick(rounds, "sd15", now=now, idle_elsewhere={"sdxl"}).id == "b1"
    assert pick(rounds, "sd15", now=now).id == "a1"  # nobody else has it: plain fairness
    # Never a task from a later round: a2 is not eligible even if b1 is loaded elsewhere.
    assert pick(rounds, "sd15", now=now, idle_elsewhere={"sdxl", "flux"}).id == "a1"
    assert pick(rounds, "sdxl", now=now, idle_elsewhere={"sdxl"}).id == "a1"  # its own model


# --- batches ------------------------------------------------------------------------


def same_model(head, other) -> bool:
    return head.model == other.model


def batch_of(head, after, max_images=8, joins=same_model, lost=()):
    started = []

    def start(t):
        if t.id in lost:
            return None
        started.append(t.id)
        return t

    batch = join_batch(head, after, max_images=max_images, joins=joins, start=start)
    assert [t.id for t in batch[1:]] == started  # only the joiners were started here
    return [t.id for t in batch]


def test_a_batch_takes_the_tasks_after_the_head_in_its_round_only():
    head = queued_task("a1", 1, 0)
    after = [queued_task("b1", 2, 1), queued_task("c1", 3, 2), queued_task("a2", 1, 3, fair_round=1)]
    assert batch_of(head, after) == ["a1", "b1", "c1"]  # a2 is a second turn for a: not now


def test_a_batch_stops_at_the_first_task_that_cannot_join():
    head = queued_task("a1", 1, 0, "demo")
    after = [queued_task("b1", 2, 1, "demo"), queued_task("c1", 3, 2, "sdxl"), queued_task("d1", 4, 3, "demo")]
    # d1 would join, but going with it would let d overtake c, who is fairer.
    assert batch_of(head, after) == ["a1", "b1"]


def test_a_batch_holds_max_images_and_the_head_always_runs():
    head = queued_task("a1", 1, 0, samples=3)
    after = [queued_task("b1", 2, 1, samples=4), queued_task("c1", 3, 2, samples=2), queued_task("d1", 4, 3, samples=1)]
    assert batch_of(head, after, max_images=8) == ["a1", "b1"]  # c1 would make 9: stop there
    assert batch_of(head, after, max_images=9) == ["a1", "b1", "c1"]
    assert batch_of(queued_task("big", 1, 0, samples=12), after, max_images=4) == ["big"]  # alone, whatever its size
    assert batch_of(head, [], max_images=8) == ["a1"]


def test_a_joiner_lost_to_another_worker_is_skipped():
    head = queued_task("a1", 1, 0)
    after = [queued_task("b1", 2, 1), queued_task("c1", 3, 2), queued_task("d1", 4, 3)]
    assert batch_of(head, after, max_images=3, lost={"b1"}) == ["a1", "c1", "d1"]
