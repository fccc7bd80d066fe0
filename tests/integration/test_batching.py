"""Batching through the real worker (DAYDREAM_MAX_BATCH=8, the demo model): a task's
samples and compatible tasks of other users share one pipeline call, and every
per-task promise holds: own images, seeds, ledger_kinds rows, progress, cancel and refund.

The worker is kept busy with a long "blocker" task while the tasks under test are
submitted, so they are all queued when it looks for its next batch; the blocker is
then canceled. Pixels of a batched image match a solo run of the same task within
TOLERANCE: batched convolutions and matrix products add up in another order (on this
CPU in float32 a difference under 1e-3 before rounding, tests/unit/test_batching.py), so
a pixel may differ by a level of 255 or two; a different seed or prompt changes most of
them by far more. (On a GPU in float16 the noise is larger; tests run on the CPU.)"""
from __future__ import annotations

import io

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from extensions import db
from models import Ledger
from services.core import keys
from services.core import queue as queue_service
from services.core import redis_client
from tests.helpers import wait_for
from tests.integration.helpers import ApiUser

TOLERANCE = {"max": 2, "mean": 0.1}  # levels of 255: the largest difference, and the mean
SMALL = {"width": 64, "height": 64, "steps": 4}


@pytest.fixture(scope="module")
def batch_stack(stack_factory):
    shared = stack_factory(DAYDREAM_MAX_BATCH=8, DAYDREAM_STARTING_TOKENS=10000, DAYDREAM_PREVIEW_HZ=50)
    app = shared.app
    app.worker = shared.worker
    return app


@pytest.fixture
def batch_users(batch_stack):
    made = iter(range(1000))

    def make(n: int, prefix: str = "b") -> list[ApiUser]:
        return [ApiUser(batch_stack.test_client(), f"{prefix}{next(made)}x{i}") for i in range(n)]

    return make


def batch_worker_name(app) -> str:
    with app.app_context():
        [name] = [n for n, w in queue_service.workers().items() if w["pid"] == app.worker.proc.pid]
    return name


def worker_calls(app) -> list[dict]:
    """The worker's calls, oldest first."""
    from worker.jobs import recent_batches

    with app.app_context():
        return list(reversed(recent_batches(batch_worker_name(app), redis_client.connection())))


def calls_with(app, task_ids) -> list[dict]:
    wanted = set(task_ids)
    return [b for b in worker_calls(app) if wanted & set(b["tasks"])]


class Blocker:
    """A long task that keeps the worker busy until it is canceled."""

    def __init__(self, user: ApiUser):
        self.user = user
        self.id = user.submit(width=256, height=256, steps=150, samples=1).get_json()["id"]
        wait_for(lambda: user.get(f"/api/v1/tasks/{self.id}").get_json()["state"] == "running", 60,
                 message="the blocker to start")

    def release(self) -> None:
        self.user.post(f"/api/v1/tasks/{self.id}/cancel")
        self.user.wait_task(self.id)


def submit_each(user_params) -> list[str]:
    ids = []
    for user, params in user_params:
        response = user.submit(**params)
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    return ids


def png_pixels(user, image) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(user.get(image["url"]).data)).convert("RGB"), dtype=np.int16)


def assert_pixels_close(a: np.ndarray, b: np.ndarray) -> None:
    diff = np.abs(a - b)
    assert diff.max() <= TOLERANCE["max"] and diff.mean() <= TOLERANCE["mean"], (diff.max(), diff.mean())


def ledger_kinds(app, task_id: str) -> list[str]:
    with app.app_context():
        return sorted(row.kind for row in db.session.scalars(sa.select(Ledger).where(Ledger.task_id == task_id)))


def test_four_users_share_one_call_and_each_gets_their_own_images(batch_stack, batch_users):
    app = batch_stack
    blocker_user, *people = batch_users(5)
    prompts = ["a red fox", "a blue whale", "a green hill", "a yellow moon"]
    params = [{**SMALL, "prompt": p, "seed": 1000 + n, "samples": 2 if n == 0 else 1}
              for n, p in enumerate(prompts)]
    before = [p.me()["tokens"] for p in people]
    blocker = Blocker(blocker_user)
    ids = submit_each(zip(people, params))
    blocker.release()
    done = [user.wait_task(task_id) for user, task_id in zip(people, ids)]
    assert [t["state"] for t in done] == ["done"] * 4, done

    [call] = calls_with(app, ids)  # one call rendered all five images
    assert sorted(call["tasks"]) == sorted(ids) and call["images"] == 5
    for user, task, wanted, tokens in zip(people, done, params, before):
        assert len(task["images"]) == wanted["samples"]
        assert [img["seed"] for img in task["images"]] == [wanted["seed"] + i for i in range(wanted["samples"])]
        assert task["progress"] == {"step": 4 * wanted["samples"], "total": 4 * wanted["samples"]}
        assert user.me()["tokens"] == tokens - task["cost"]
        assert ledger_kinds(app, task["id"]) == ["debit"]
        meta = user.get(task["images"][0]["metadata_url"]).get_json()
        assert meta["prompt"] == wanted["prompt"]

    # Each image matches the same task run alone, one image a call (seed + i for image i).
    first_user, first = people[0], done[0]
    for index, image in enumerate(first["images"]):
        solo = first_user.wait_task(first_user.submit(**{**params[0], "samples": 1,
                                                         "seed": params[0]["seed"] + index}).get_json()["id"])
        assert solo["state"] == "done"
        assert calls_with(app, [solo["id"]])[0]["images"] == 1
        assert_pixels_close(png_pixels(first_user, image), png_pixels(first_user, solo["images"][0]))
    other = people[1].wait_task(people[1].submit(**params[1]).get_json()["id"])
    assert_pixels_close(png_pixels(people[1], done[1]["images"][0]), png_pixels(people[1], other["images"][0]))
    # ...and the rows really were different pictures (prompt and seed per row).
    assert np.abs(png_pixels(people[1], done[1]["images"][0]) - png_pixels(people[2], done[2]["images"][0])).mean() > 5


def test_incompatible_tasks_are_not_batched_and_a_fairer_one_runs_first(batch_stack, batch_users):
    app = batch_stack
    blocker_user, a, b, c, d, e = batch_users(6, "inc")
    blocker = Blocker(blocker_user)
    ids = submit_each([
        (a, {**SMALL, "seed": 1}),
        (b, {**SMALL, "seed": 2, "scheduler": "ddim"}),  # another scheduler: cannot join a
        (c, {**SMALL, "seed": 3}),  # could join a, but b is fairer and cannot: c waits
        (d, {**SMALL, "seed": 4, "loras": [{"id": "demo-lora-sd1", "weight": 0.8}]}),  # a LoRA
        (e, {**SMALL, "seed": 5, "width": 96}),  # another size
    ])
    blocker.release()
    done = [user.wait_task(task_id) for user, task_id in zip((a, b, c, d, e), ids)]
    assert [t["state"] for t in done] == ["done"] * 5, done
    calls = calls_with(app, ids)
    assert [call["tasks"] for call in calls] == [[task_id] for task_id in ids]  # one call each, fair order
    started = [t["started_at"] for t in done]
    assert started == sorted(started)


def test_a_canceled_task_of_a_running_batch_is_refunded_and_the_others_finish(batch_stack, batch_users):
    app = batch_stack
    blocker_user, a, b, c = batch_users(4, "cancel")
    before = b.me()["tokens"]
    blocker = Blocker(blocker_user)
    long = {"width": 64, "height": 64, "steps": 80}  # long enough to cancel one mid-call
    ids = submit_each([(a, {**long, "seed": 1}), (b, {**long, "seed": 2}), (c, {**long, "seed": 3})])
    blocker.release()

    def all_rendering():  # running, and a step of the call done (the call holds them all)
        tasks = [u.get(f"/api/v1/tasks/{i}").get_json() for u, i in zip((a, b, c), ids)]
        return all(t["state"] == "running" and t["progress"]["step"] >= 1 for t in tasks)

    wait_for(all_rendering, 120, message="the batch to start rendering")
    canceled = b.post(f"/api/v1/tasks/{ids[1]}/cancel")
    assert canceled.status_code == 200, canceled.get_json()
    assert b.me()["tokens"] == before  # refunded at once
    done_a, done_b, done_c = (u.wait_task(i, timeout=180) for u, i in zip((a, b, c), ids))
    assert done_b["state"] == "canceled" and done_b["refunded"] is True and done_b["images"] == []
    assert done_a["state"] == done_c["state"] == "done"
    assert len(done_a["images"]) == len(done_c["images"]) == 1
    assert ledger_kinds(app, ids[1]) == ["debit", "refund"]
    [call] = calls_with(app, ids)
    assert sorted(call["tasks"]) == sorted(ids)  # they did share the call
    assert b.me()["tokens"] == before


def test_estimates_keep_a_step_time_per_batch_size(batch_stack, batch_users):
    from types import SimpleNamespace

    from services.generation import estimates

    app = batch_stack
    [user] = batch_users(1, "est")
    for samples in (3, 1):
        task = user.wait_task(user.submit(width=80, height=80, steps=3, samples=samples).get_json()["id"])
        assert task["state"] == "done", task
    with app.app_context():
        stored = redis_client.connection().hgetall(keys.steptime_batches(app.config["QUEUE_NAME"], "demo", "80x80"))
        assert set(stored) == {b"3"}  # calls of 3 images; the single image's figure is kept apart
        per_three = estimates.seconds_per_step("demo", 80, 80, images=3)
        single = estimates.seconds_per_step("demo", 80, 80)
        assert per_three == pytest.approx(float(stored[b"3"])) and single is not None
        assert estimates.seconds_per_step("demo", 80, 80, images=8) == per_three  # the largest measured up to 8
        assert estimates.seconds_per_step("demo", 80, 80, images=2) == single  # none measured from 2 to 2
        probe = SimpleNamespace(model="demo", width=80, height=80, steps=3, samples=3, init_image_id=None,
                                strength=None)
        assert estimates.run_seconds(probe) == pytest.approx(per_three * 3 * 3)
