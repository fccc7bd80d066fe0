"""Estimates against the real worker and the tiny demo model: the server's estimate at
submit, the worker's ETA before its first step, image-to-image counting only the steps
it runs, and the wait of the estimate line being the time left of what runs ahead."""
from __future__ import annotations

import json
import threading
import time

import pytest
import redis

from services.core import keys
from services.generation import estimates
from tests.helpers import image_bytes, wait_for
from tests.integration.helpers import post_upload

CHANNEL = "flask-socketio"  # services/core/events.py: what the worker publishes for the pages


class TaskEvents:
    """The `task` events the worker publishes for the pages (over Redis), by task id."""

    def __init__(self, redis_url: str):
        self.pubsub = redis.Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(CHANNEL)
        self.seen: dict[str, list[dict]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()

    def _listen(self):
        while not self.stopping.is_set():
            message = self.pubsub.get_message(timeout=0.2)
            if not message:
                continue
            try:
                data = json.loads(message["data"])
            except (ValueError, TypeError):
                continue
            if data.get("event") == "task" and data.get("data"):
                payload = data["data"][0]
                self.seen.setdefault(payload.get("id"), []).append(payload)

    def of(self, task_id: str) -> list[dict]:
        return list(self.seen.get(task_id, []))

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.pubsub.close()


@pytest.fixture
def task_events(redis_url):
    events = TaskEvents(redis_url)
    yield events
    events.close()


def step_time(app, width: int, height: int) -> float | None:
    with app.app_context():
        return estimates.seconds_per_step("demo", width, height)


def measure(user, width: int, height: int, steps: int = 6) -> None:
    task = user.wait_task(user.submit(width=width, height=height, steps=steps).get_json()["id"],
                          timeout=180)
    assert task["state"] == "done", task


def test_sizes_never_measured_are_read_off_a_fit_of_the_measured_ones(app, make_user):
    user = make_user("fit")
    for side in (64, 192):
        measure(user, side, side)
        measure(user, side, side)  # the second settles the first run's warm-up
    small, large = step_time(app, 64, 64), step_time(app, 192, 192)
    assert small and large
    side = 136  # a size no other test measures
    predicted = step_time(app, side, side)
    # Read off the fit over every size measured so far (other tests' sizes included).
    with app.app_context():
        stored = estimates.redis_client.connection().hgetall(keys.steptime_sizes(app.config["QUEUE_NAME"], "demo"))
    points = []
    for size, value in stored.items():
        w, h = (int(v) for v in size.decode().split("x"))
        points.append((w * h, float(value.decode().split("|")[0])))
    assert {64 * 64, 192 * 192} <= {p for p, _ in points} and side * side not in {p for p, _ in points}
    fit = estimates.fit_step_time(points)
    assert fit[0] >= 0 and fit[1] >= 0
    assert predicted == pytest.approx(estimates.predict_step_time(fit, side * side), rel=1e-3)
    per_mpx = large * (side * side) / (192 * 192)  # the old linear per-megapixel scale
    measure(user, side, side)
    # For the record (timings on a shared machine are too noisy to assert on closely).
    print(f"demo model s/step: 64²={small:.4f} 192²={large:.4f} {side}² predicted={predicted:.4f} "
          f"measured={step_time(app, side, side):.4f} (linear per-megapixel guess from 192²: {per_mpx:.4f})")


def test_the_card_has_the_server_estimate_before_and_at_step_zero(app, make_user, task_events):
    user = make_user("eta")
    measure(user, 64, 64, steps=4)
    measure(user, 64, 64, steps=4)
    answer = user.submit(width=64, height=64, steps=40)
    assert answer.status_code == 202
    body = answer.get_json()
    per_step = step_time(app, 64, 64)
    expected = per_step * 40
    assert body["estimate"]["run_s"] == pytest.approx(expected, rel=0.05, abs=0.05)
    assert body["run_s"] == pytest.approx(expected, rel=0.05, abs=0.05)
    # Queued (wait + run) or just taken by the worker (its time left): the whole run ahead.
    assert body["estimate"]["eta_s"] is not None and body["estimate"]["eta_s"] >= expected * 0.5, body
    task_id = body["id"]
    user.wait_task(task_id, timeout=120)
    events = wait_for(lambda: [e for e in task_events.of(task_id) if e.get("state") == "running"],
                      10, message="the running events")
    first = events[0]
    assert first["step"] == 0
    # Before any step is measured: the server's run estimate, not "about 1 s".
    assert first["eta_s"] == pytest.approx(expected, rel=0.1, abs=0.1)
    # Then measured time per step × the steps left, down to nothing left at the last step.
    measured = [e for e in events if e["step"] >= 2]
    assert measured and all(e["eta_s"] is not None for e in measured)
    assert [e["eta_s"] for e in events if e["step"] == e["total"]][-1] == 0


def test_image_to_image_estimates_only_the_steps_it_runs(app, make_user):
    user = make_user("i2i")
    measure(user, 64, 64, steps=4)
    upload = post_upload(user, image_bytes((64, 64)))
    assert upload.status_code == 201, upload.get_json()
    init = upload.get_json()["id"]
    plain = user.post("/api/v1/estimate", json={"prompt": "x", "width": 64, "height": 64,
                                                "steps": 20}).get_json()
    half = user.post("/api/v1/estimate", json={"prompt": "x", "width": 64, "height": 64, "steps": 20,
                                               "init_image": init, "strength": 0.5}).get_json()
    assert plain["run_s"] and half["run_s"] == pytest.approx(plain["run_s"] / 2, rel=0.05, abs=0.02)
    body = user.submit(width=64, height=64, steps=20, init_image=init, strength=0.5).get_json()
    assert body["progress"]["total"] == 10
    assert body["run_s"] == pytest.approx(half["run_s"], rel=0.05, abs=0.02)
    assert user.wait_task(body["id"], timeout=120)["state"] == "done"


def test_the_wait_is_the_time_left_of_the_running_task(app, make_user):
    user = make_user("wait")
    measure(user, 256, 256, steps=2)
    per_step = step_time(app, 256, 256)
    steps = max(10, min(150, int(12 / per_step)))  # a run of about 12 s
    task_id = user.submit(width=256, height=256, steps=steps).get_json()["id"]

    def running_midway():
        task = user.get(f"/api/v1/tasks/{task_id}").get_json()
        return task if task["state"] == "running" and task["progress"]["step"] >= 2 else None

    wait_for(running_midway, 60, interval=0.1, message="the task to be running")
    params = {"prompt": "x", "width": 64, "height": 64, "steps": 2}
    for _ in range(3):
        estimate = user.post("/api/v1/estimate", json=params).get_json()
        task = user.get(f"/api/v1/tasks/{task_id}").get_json()
        if task["state"] != "running":
            break
        # The line's wait is what the running card shows (one worker, nothing else queued).
        assert estimate["wait_s"] == pytest.approx(task["eta_s"], abs=1.0), (estimate, task)
        assert estimate["eta_s"] == pytest.approx(estimate["wait_s"] + estimate["run_s"], abs=0.02)
        time.sleep(0.5)  # spread the comparisons over the run
    user.post(f"/api/v1/tasks/{task_id}/cancel")
    user.wait_task(task_id, timeout=60)
