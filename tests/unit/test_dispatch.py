"""Fair dispatch: round-robin between users, FIFO within a user, model affinity
only within a round and only for a while."""
from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from flask import Flask

from services.generation.dispatch import fair_rounds, pick

T0 = datetime(2026, 1, 1, 12, 0, 0)


def task(name: str, user: int, second: int, model: str = "demo"):
    return SimpleNamespace(id=name, user_id=user, created_at=T0 + timedelta(seconds=second), model=model)


@pytest.fixture(autouse=True)
def app_context():
    app = Flask(__name__)
    app.config["AFFINITY_WAIT"] = 60
    with app.app_context():
        yield


def test_round_robin_between_users_fifo_within_each():
    tasks = [task("a1", 1, 0), task("a2", 1, 1), task("a3", 1, 2), task("b1", 2, 3), task("c1", 3, 4),
             task("b2", 2, 5)]
    order = [t.id for rnd in fair_rounds(tasks, served={}) for t in rnd]
    assert order == ["a1", "b1", "c1", "a2", "b2", "a3"]


def test_the_user_served_longest_ago_goes_first():
    tasks = [task("a1", 1, 0), task("b1", 2, 1), task("c1", 3, 2)]
    served = {1: T0 + timedelta(seconds=50), 2: T0 + timedelta(seconds=40)}  # c never served
    order = [t.id for rnd in fair_rounds(tasks, served=served) for t in rnd]
    assert order == ["c1", "b1", "a1"]


def test_the_loaded_model_goes_first_within_the_round():
    tasks = [task("a1", 1, 0, "sd15"), task("a2", 1, 1, "demo"), task("b1", 2, 2, "demo")]
    rounds = fair_rounds(tasks, served={})
    # b1 (same round as a1) uses the loaded model; a2 is in the next round: not eligible.
    assert pick(rounds, "demo", now=T0 + timedelta(seconds=5)).id == "b1"
    assert pick(rounds, "sd15", now=T0 + timedelta(seconds=5)).id == "a1"
    assert pick(rounds, None, now=T0 + timedelta(seconds=5)).id == "a1"


def test_affinity_never_skips_a_round_or_waits_forever():
    tasks = [task("a1", 1, 0, "sd15"), task("a2", 1, 1, "demo")]
    rounds = fair_rounds(tasks, served={})
    assert pick(rounds, "demo", now=T0 + timedelta(seconds=5)).id == "a1"  # FIFO within a user
    tasks = [task("a1", 1, 0, "sd15"), task("b1", 2, 1, "demo")]
    rounds = fair_rounds(tasks, served={})
    assert pick(rounds, "demo", now=T0 + timedelta(seconds=5)).id == "b1"
    assert pick(rounds, "demo", now=T0 + timedelta(seconds=61)).id == "a1"  # a1 waited long enough


def test_an_empty_queue_picks_nothing():
    assert pick([], "demo") is None


def test_a_task_is_left_to_the_idle_worker_that_has_its_model_loaded():
    """Worker W has sd15 loaded; another live, idle worker has sdxl. The fairest task
    (sdxl) is left to that one; W takes the next task of the round instead."""
    tasks = [task("a1", 1, 0, "sdxl"), task("b1", 2, 1, "flux"), task("a2", 1, 2, "demo")]
    rounds = fair_rounds(tasks, served={})
    now = T0 + timedelta(seconds=5)
    assert pick(rounds, "sd15", now=now, idle_elsewhere={"sdxl"}).id == "b1"
    assert pick(rounds, "sd15", now=now).id == "a1"  # nobody else has it: plain fairness
    # Never a task from a later round: a2 is not eligible even if b1 is loaded elsewhere.
    assert pick(rounds, "sd15", now=now, idle_elsewhere={"sdxl", "flux"}).id == "a1"
    assert pick(rounds, "sdxl", now=now, idle_elsewhere={"sdxl"}).id == "a1"  # its own model
