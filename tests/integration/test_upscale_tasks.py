"""Upscale tasks through the real stack (web, Redis, a real worker with the tiny demo
models and the demo ESRGAN ×2): the output's size, the link to the source, the cost by
output pixels (and the estimate that shows it), progress events, a refining pass, cancel
with its refund, the timeline and the gallery, and bad input refused with nothing charged."""
from __future__ import annotations

import io

import pytest
import requests
from PIL import Image as PILImage

from services.generation.params import task_cost
from tests.helpers import image_bytes, wait_for
from tests.integration.helpers import ApiUser, connect, csrf_from, post_upload


@pytest.fixture(scope="module")
def upscale_stack(stack_factory):
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker, app.server = shared.worker, shared.web(1)
    return app


@pytest.fixture(scope="module")
def upscaler_user(upscale_stack):
    return ApiUser(upscale_stack.test_client(), "upscaleuser")


@pytest.fixture(scope="module")
def upscale_source(upscaler_user) -> dict:
    """A 64×64 picture made by the demo model, to upscale."""
    response = upscaler_user.submit(model="demo", width=64, height=64, steps=2, seed=11)
    assert response.status_code == 202, response.get_json()
    task = upscaler_user.wait_task(response.get_json()["id"], timeout=120)
    assert task["state"] == "done", task
    return task["images"][0]


def upscaled_picture(user, image: dict) -> PILImage.Image:
    return PILImage.open(io.BytesIO(user.get(image["url"]).data))


def upscale(user, **body):
    return user.post("/api/v1/upscales", json=body)


def finished_upscale(user, **body) -> dict:
    response = upscale(user, **body)
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=180)
    assert task["state"] == "done", task
    return task


def tokens(user) -> int:
    return user.me()["tokens"]


@pytest.mark.parametrize("upscaler", ["lanczos", "demo-esrgan-x2"])
def test_an_upscale_makes_a_bigger_image_linked_to_its_source_and_charged_by_its_pixels(
        upscaler_user, upscale_source, upscaler):
    body = {"image": upscale_source["id"], "scale": 2, "upscaler": upscaler}
    estimate = upscaler_user.post("/api/v1/estimate", json={"upscale": body})
    assert estimate.status_code == 200, estimate.get_json()
    assert estimate.get_json()["cost"] == 1  # 128 × 128: one token a megapixel, rounded up
    assert (estimate.get_json()["width"], estimate.get_json()["height"]) == (128, 128)
    before = tokens(upscaler_user)
    task = finished_upscale(upscaler_user, **body)
    assert task["cost"] == 1 and tokens(upscaler_user) == before - 1
    assert task["upscale"] == {"image": upscale_source["id"], "scale": 2.0, "upscaler": upscaler, "refine": None}
    assert (task["width"], task["height"], task["samples"]) == (128, 128, 1)
    [image] = task["images"]
    assert image["source_image"] == upscale_source["id"]
    assert upscaled_picture(upscaler_user, image).size == (128, 128)
    meta = upscaler_user.get(image["metadata_url"]).get_json()
    assert meta["source_image"] == upscale_source["id"] and meta["upscale"]["upscaler"] == upscaler
    # It shows in the timeline (the user's tasks) and in the gallery.
    listed = upscaler_user.get("/api/v1/tasks?limit=200").get_json()["items"]
    assert task["id"] in [t["id"] for t in listed]
    gallery = upscaler_user.get("/api/v1/images?limit=200").get_json()["items"]
    assert [i.get("source_image") for i in gallery if i["id"] == image["id"]] == [upscale_source["id"]]


def test_a_model_upscale_differs_from_lanczos(upscaler_user, upscale_source):
    lanczos = finished_upscale(upscaler_user, image=upscale_source["id"], scale=2, upscaler="lanczos")
    model = finished_upscale(upscaler_user, image=upscale_source["id"], width=128, height=128,
                             upscaler="demo-esrgan-x2")
    assert upscaled_picture(upscaler_user, model["images"][0]).size == (128, 128)
    assert (upscaled_picture(upscaler_user, model["images"][0]).tobytes()
            != upscaled_picture(upscaler_user, lanczos["images"][0]).tobytes())


def socket_session(stack, user) -> tuple[requests.Session, str]:
    server = stack.server
    session = requests.Session()
    token = csrf_from(session.get(server.url + "/login").content)
    response = session.post(server.url + "/login", data={
        "login": user.username, "password": user.password, "csrf_token": token})
    return session, csrf_from(response.content)


def test_a_refining_pass_runs_its_steps_in_tiles_with_progress_events(upscale_stack, upscaler_user, upscale_source):
    session, token = socket_session(upscale_stack, upscaler_user)
    received: list[dict] = []
    sio = connect(upscale_stack.server, session)
    sio.on("task", received.append)
    plain = finished_upscale(upscaler_user, image=upscale_source["id"], scale=2, upscaler="lanczos")
    refine = {"strength": 0.5, "steps": 20}  # 9 tiles × 10 steps: longer than the progress throttle
    try:
        before = tokens(upscaler_user)
        task = session.post(upscale_stack.server.url + "/api/v1/upscales", headers={"X-CSRFToken": token}, json={
            "image": upscale_source["id"], "scale": 2, "upscaler": "lanczos", "refine": refine}).json()
        assert "id" in task, task
        wait_for(lambda: any(e.get("id") == task["id"] and e.get("state") == "done" for e in received),
                 180, interval=0.1, message="the refined upscale to finish")
    finally:
        sio.disconnect()
    # One token a megapixel, plus the refining pass: ceil(20 × 0.5) steps at 128 × 128.
    assert task["cost"] == 1 + task_cost(10, 128, 128, 1) and tokens(upscaler_user) == before - task["cost"]
    done = upscaler_user.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert done["upscale"]["refine"] == refine and done["steps"] == 20
    steps = [e for e in received if e.get("id") == task["id"] and e.get("state") == "running" and e.get("total")]
    # The demo model's native size is 64: 3 × 3 tiles overlapping by 8 over 128 × 128, each
    # int(20 × 0.5) = 10 steps, after the one unit of the Lanczos resize.
    assert max(e["total"] for e in steps) == 1 + 9 * 10
    assert max(e["step"] for e in steps) == 1 + 9 * 10
    assert len({e["step"] for e in steps}) >= 3  # progress moved in several events
    refined = upscaled_picture(upscaler_user, done["images"][0])
    assert refined.size == (128, 128)
    assert refined.tobytes() != upscaled_picture(upscaler_user, plain["images"][0]).tobytes()


def test_a_canceled_upscale_is_refunded_and_makes_no_image(upscaler_user, upscale_source):
    before = tokens(upscaler_user)
    response = upscale(upscaler_user, image=upscale_source["id"], scale=8, upscaler="lanczos",
                       refine={"strength": 0.6, "steps": 150})
    assert response.status_code == 202, response.get_json()
    task = response.get_json()
    assert tokens(upscaler_user) == before - task["cost"] and task["cost"] > 1

    def started():
        got = upscaler_user.get(f"/api/v1/tasks/{task['id']}").get_json()
        return got if got["state"] == "running" and got["progress"]["step"] >= 1 else None

    running = wait_for(started, 120, interval=0.05, message="the upscale to make progress")
    assert running["progress"]["total"] > 100  # tiles × steps, counted by the worker
    canceled = upscaler_user.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert canceled.status_code == 200, canceled.get_json()
    final = upscaler_user.wait_task(task["id"], timeout=60)
    assert final["state"] == "canceled" and final["refunded"] is True and final["images"] == []
    assert tokens(upscaler_user) == before


def test_bad_upscales_are_refused_naming_the_field_with_nothing_charged(upscale_stack, upscaler_user, upscale_source):
    other = ApiUser(upscale_stack.test_client(), "upscaleother")
    big = post_upload(upscaler_user, image_bytes(size=(600, 600)), name="big.png")
    assert big.status_code == 201, big.get_json()
    before, tasks_before = tokens(upscaler_user), upscaler_user.get("/api/v1/tasks").get_json()["total"]
    cases = [
        ({"image": big.get_json()["id"], "scale": 8}, "scale"),  # 4800 × 4800: over the tier's 4096²
        ({"image": upscale_source["id"], "scale": 9}, "scale"),
        ({"image": upscale_source["id"], "scale": 1}, "scale"),
        ({"image": upscale_source["id"], "scale": 2, "upscaler": "no-such-upscaler"}, "upscaler"),
        ({"image": upscale_source["id"], "scale": 2, "refine": {"strength": 0.9}}, "refine.strength"),
        ({"image": "nope", "scale": 2}, "image"),
    ]
    for body, field in cases:
        for answer in (upscale(upscaler_user, **body), upscaler_user.post("/api/v1/estimate", json={"upscale": body})):
            assert answer.status_code == 422, (body, answer.get_json())
            assert answer.get_json()["error"]["field"] == field, (body, answer.get_json())
    # Another user's image is not theirs to upscale.
    mine = upscale(other, image=upscale_source["id"], scale=2)
    assert mine.status_code == 422 and mine.get_json()["error"]["field"] == "image"
    assert tokens(upscaler_user) == before
    assert upscaler_user.get("/api/v1/tasks").get_json()["total"] == tasks_before
