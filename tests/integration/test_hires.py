"""Hires fix through the real worker (the tiny demo models, DAYDREAM_DEMO_MODELS=all): the
result is the first pass's size times the scale on SD 1.x and on FLUX.1 (latents
interpolated: other pixels than Lanczos's), with an upscaler model, both passes count in
one progress bar, the PNG's infotext reads as A1111's, and what it costs is what the
estimate said."""
from __future__ import annotations

import io

import pytest
import requests
from PIL import Image as PILImage

from services.generation.params import task_cost
from tests.helpers import a1111_infotext_fields, wait_for
from tests.integration.helpers import ApiUser, connect, csrf_from


@pytest.fixture(scope="module")
def hires_stack(stack_factory):
    # (test_families.py's stack: shared)
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker, app.server = shared.worker, shared.web(1)
    return app


@pytest.fixture(scope="module")
def hires_user(hires_stack):
    return ApiUser(hires_stack.test_client(), "hiresuser")


def hires_run(user, **params) -> dict:
    response = user.submit(**{"width": 64, "height": 64, "steps": 2, "seed": 5, **params})
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=180)
    assert task["state"] == "done", task
    return task


def hires_picture(user, image: dict) -> PILImage.Image:
    picture = PILImage.open(io.BytesIO(user.get(image["url"]).data))
    picture.load()
    return picture


def test_sd1_hires_doubles_the_size_in_one_progress_bar_and_writes_a1111_infotext(hires_stack, hires_user):
    server = hires_stack.server
    session = requests.Session()
    token = csrf_from(session.get(server.url + "/login").content)
    response = session.post(server.url + "/login", data={
        "login": hires_user.username, "password": hires_user.password, "csrf_token": token})
    token = csrf_from(response.content)
    # 60 first-pass steps: the pass outlasts the progress throttle (0.1 s) on any machine, so
    # an event of the first pass is sent before the second pass's.
    body = {"prompt": "a lighthouse", "model": "demo", "width": 64, "height": 64, "steps": 60, "seed": 9,
            "hires": {"scale": 2, "steps": 4, "denoising": 0.5}}
    estimate = session.post(server.url + "/api/v1/estimate", headers={"X-CSRFToken": token}, json=body).json()
    assert estimate["cost"] == task_cost(60, 64, 64, 1) + task_cost(2, 128, 128, 1)
    received: list[dict] = []
    sio = connect(server, session)
    sio.on("task", received.append)
    try:
        task = session.post(server.url + "/api/v1/tasks", headers={"X-CSRFToken": token}, json=body).json()
        assert "id" in task, task
        assert task["hires"]["width"] == 128 and task["cost"] == estimate["cost"]
        assert task["progress"]["total"] == 60 + 2  # both passes: 60 + int(4 × 0.5)
        wait_for(lambda: any(e.get("id") == task["id"] and e.get("state") in ("done", "failed") for e in received),
                 180, interval=0.1, message="the hires task to finish")
    finally:
        sio.disconnect()
    steps = [e for e in received if e.get("id") == task["id"] and e.get("state") == "running" and "step" in e
             and "images" not in e]
    assert steps and all(e["total"] == 62 for e in steps), steps
    counted = [e["step"] for e in steps]
    assert counted == sorted(counted), counted  # one bar: it only rises
    assert any(0 < n <= 60 for n in counted) and counted[-1] == 62  # the first pass, then past it
    done = hires_user.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert done["state"] == "done" and (done["width"], done["height"]) == (64, 64)
    image = done["images"][0]
    assert (image["width"], image["height"]) == (128, 128)
    picture = hires_picture(hires_user, image)
    assert picture.size == (128, 128)
    fields = a1111_infotext_fields(picture.text["parameters"])
    assert fields["Size"] == "64x64" and fields["Steps"] == "60"
    assert fields["Hires upscale"] == "2" and fields["Hires steps"] == "4"
    assert fields["Hires upscaler"] == "Latent" and fields["Denoising strength"] == "0.5"
    meta = hires_user.get(image["metadata_url"]).get_json()
    assert meta["hires"]["upscaler"] == "latent" and meta["hires"]["width"] == 128


def test_flux_hires_to_a_final_size_in_latent_space(hires_user):
    # FLUX.1's packed latents, unpacked and interpolated: not the Lanczos-resized picture.
    hires = {"width": 128, "height": 96, "upscaler": "latent-bicubic", "steps": 2, "denoising": 0.5}
    task = hires_run(hires_user, model="demo-flux", width=64, height=64, steps=2, hires=hires)
    image = task["images"][0]
    picture = hires_picture(hires_user, image)
    assert (image["width"], image["height"]) == (128, 96) and picture.size == (128, 96)
    fields = a1111_infotext_fields(picture.text["parameters"])
    assert fields["Hires resize"] == "128x96" and fields["Hires upscaler"] == "Latent (bicubic)"
    again = hires_run(hires_user, model="demo-flux", width=64, height=64, steps=2, hires=hires)
    assert hires_picture(hires_user, again["images"][0]).tobytes() == picture.tobytes()
    lanczos = hires_run(hires_user, model="demo-flux", width=64, height=64, steps=2,
                        hires={**hires, "upscaler": "lanczos"})
    assert hires_picture(hires_user, lanczos["images"][0]).tobytes() != picture.tobytes()


def test_sdxl_hires_interpolates_its_latents(hires_user):
    task = hires_run(hires_user, model="demo-sdxl", width=64, height=64,
                     hires={"scale": 1.5, "upscaler": "latent-nearest-exact", "denoising": 0.5})
    assert (task["images"][0]["width"], task["images"][0]["height"]) == (96, 96)


def test_an_upscaler_model_as_hires_upscaler(hires_user):
    models = hires_user.get("/api/v1/models").get_json()["items"]
    assert "demo-esrgan-x2" in {m["id"] for m in models if m["kind"] == "upscaler"}
    task = hires_run(hires_user, model="demo", hires={"upscaler": "demo-esrgan-x2", "denoising": 0.5})
    image = task["images"][0]
    assert (image["width"], image["height"]) == (128, 128)
    fields = a1111_infotext_fields(hires_picture(hires_user, image).text["parameters"])
    assert fields["Hires upscaler"] == "demo-esrgan-x2"
    # Denoising 0: the upscale alone, charged for the first pass only.
    plain = hires_run(hires_user, model="demo", hires={"upscaler": "lanczos", "denoising": 0})
    assert plain["cost"] == task_cost(2, 64, 64, 1) and plain["images"][0]["width"] == 128


def test_bad_hires_is_refused_naming_it_and_nothing_is_charged(hires_user):
    before = hires_user.me()["tokens"]
    for hires in ({"scale": 9}, {"upscaler": "no-such-upscaler"}, {"width": 100000, "height": 64}):
        response = hires_user.submit(hires=hires)
        assert response.status_code == 422, response.get_json()
        assert response.get_json()["error"]["field"] == "hires"
    response = hires_user.submit(hires={}, init_image="whatever", strength=0.5)
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "hires"
    assert hires_user.me()["tokens"] == before
