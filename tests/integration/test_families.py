"""Every model family through the real worker: the tiny demo models of SD 1.x, SDXL, SD 3
and FLUX.1 schnell (DAYDREAM_DEMO_MODELS=all), their LoRAs, the schedulers each offers,
and validation by the model's card."""
from __future__ import annotations

import io
import json

import pytest
import redis
import requests
from PIL import Image as PILImage

from services.core import keys
from services.core import queue as queue_service
from tests.helpers import wait_for
from tests.integration.helpers import ApiUser, connect, csrf_from, make_staff

MODELS = {"demo": "sd1", "demo-sdxl": "sdxl", "demo-sd3": "sd3", "demo-flux": "flux", "demo-chroma": "chroma",
          "demo-zimage": "zimage", "demo-flux2": "flux2", "demo-qwen": "qwen"}


@pytest.fixture(scope="module")
def family_stack(stack_factory):
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker, app.server = shared.worker, shared.web(1)
    return app


@pytest.fixture(scope="module")
def family_user(family_stack):
    return ApiUser(family_stack.test_client(), "familyuser")


def pixels_of(user, task) -> bytes:
    return PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).tobytes()


def run(user, **params) -> dict:
    response = user.submit(**{"width": 64, "height": 64, "steps": 2, "seed": 77, **params})
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=120)
    assert task["state"] == "done", task
    return task


def test_the_models_list_carries_each_models_card_and_the_loras(family_user):
    items = family_user.get("/api/v1/models").get_json()["items"]
    models = {m["id"]: m for m in items if m["kind"] == "model"}
    loras = {m["id"]: m for m in items if m["kind"] == "lora"}
    # (demo-kontext only edits; FLUX.2 edits optionally, and makes pictures from text too)
    assert {k: m["family"] for k, m in models.items() if not m["edits"] or m["edit_optional"]} == MODELS
    assert sorted(m["family"] for m in loras.values()) == sorted(MODELS.values())
    sdxl, flux = models["demo-sdxl"], models["demo-flux"]
    assert (sdxl["native_width"], sdxl["native_height"]) == (1024, 1024)
    assert [1344, 768] in sdxl["sizes"] and sdxl["max_side"] == 1344
    assert "dpmpp_2m_karras" in sdxl["schedulers"] and sdxl["uses_negative_prompt"]
    assert flux["variant"] == "schnell" and flux["uses_guidance"] is False
    assert flux["uses_negative_prompt"] is False and flux["schedulers"] == ["flow_euler"]
    assert flux["defaults"]["steps"] == 4 and flux["size_step"] == 16 and flux["latent_channels"] == 16


@pytest.mark.parametrize("model", list(MODELS))
def test_each_family_renders_text_to_image_and_image_to_image_the_same_for_a_seed(family_user, model):
    size = {"width": 128, "height": 96} if model != "demo-flux" else {"width": 128, "height": 96}
    first = run(family_user, model=model, **size)
    again = run(family_user, model=model, **size)
    assert PILImage.open(io.BytesIO(family_user.get(first["images"][0]["url"]).data)).size == (128, 96)
    assert pixels_of(family_user, first) == pixels_of(family_user, again)
    other = run(family_user, model=model, seed=78, **size)
    assert pixels_of(family_user, other) != pixels_of(family_user, first)
    meta = family_user.get(first["images"][0]["metadata_url"]).get_json()
    assert meta["family"] == MODELS[model] and meta["model"] == model

    varied = run(family_user, model=model, init_image=first["images"][0]["id"], strength=0.6,
                 width=64, height=64)
    assert varied["strength"] == 0.6
    picture = PILImage.open(io.BytesIO(family_user.get(varied["images"][0]["url"]).data))
    assert picture.size == (64, 64)


def test_switching_family_keeps_one_model_loaded(family_stack, family_user):
    conn = redis.Redis.from_url(family_stack.config["REDIS_URL"])
    with family_stack.app_context():
        [name] = [n for n, w in queue_service.workers().items() if w["pid"] == family_stack.worker.proc.pid]

    def state():
        return {k.decode(): v.decode() for k, v in conn.hgetall(keys.worker_info(name)).items()}

    run(family_user, model="demo-sdxl")
    before = int(state()["loads"])
    run(family_user, model="demo-flux")
    after = state()
    assert after["model"] == "demo-flux" and int(after["loads"]) == before + 1
    assert after["resident"] == "1"  # the SDXL pipeline was let go before FLUX loaded
    run(family_user, model="demo-flux")
    assert int(state()["loads"]) == before + 1  # kept loaded for the next task


def test_previews_arrive_for_every_family(family_stack, family_user):
    server = family_stack.server
    session = requests.Session()
    token = csrf_from(session.get(server.url + "/login").content)
    response = session.post(server.url + "/login", data={
        "login": family_user.username, "password": family_user.password, "csrf_token": token})
    token = csrf_from(response.content)
    received: list[dict] = []
    sio = connect(server, session)
    sio.on("task", received.append)
    try:
        for model in MODELS:
            task = session.post(server.url + "/api/v1/tasks", headers={"X-CSRFToken": token}, json={
                "prompt": "a cat", "model": model, "width": 64, "height": 64, "steps": 6}).json()
            assert "id" in task, task
            wait_for(lambda: any(e.get("id") == task["id"] and e.get("state") == "done" for e in received),
                     120, interval=0.1, message=f"the {model} task to finish")
            previews = [e["preview"] for e in received if e.get("id") == task["id"] and e.get("preview")]
            assert previews, f"no preview for {model}"
            assert previews[-1].startswith("data:image/jpeg;base64,")
    finally:
        sio.disconnect()


def test_a_lora_changes_the_pixels_and_leaves_no_trace_in_the_next_task(family_user):
    plain = run(family_user, model="demo-sdxl")
    with_lora = run(family_user, model="demo-sdxl", loras=[{"id": "demo-lora-sdxl", "weight": 0.8}])
    assert with_lora["loras"] == [{"id": "demo-lora-sdxl", "name": "demo-sdxl-lora", "weight": 0.8}]
    assert pixels_of(family_user, with_lora) != pixels_of(family_user, plain)
    after = run(family_user, model="demo-sdxl")
    assert pixels_of(family_user, after) == pixels_of(family_user, plain)
    weaker = run(family_user, model="demo-sdxl", loras=[{"id": "demo-lora-sdxl", "weight": 0.3}])
    assert pixels_of(family_user, weaker) not in (pixels_of(family_user, plain), pixels_of(family_user, with_lora))
    png = PILImage.open(io.BytesIO(family_user.get(with_lora["images"][0]["url"]).data))
    assert "<lora:demo-sdxl-lora:0.8>" in png.info["parameters"].splitlines()[0]
    assert json.loads(png.info["daydream"])["loras"][0]["weight"] == 0.8


@pytest.mark.parametrize("model", ["demo-sd3", "demo-flux", "demo"])
def test_the_other_families_take_their_loras(family_user, model):
    family = MODELS[model]
    plain = run(family_user, model=model)
    with_lora = run(family_user, model=model, loras=[{"id": f"demo-lora-{family}", "weight": 1.0}])
    assert pixels_of(family_user, with_lora) != pixels_of(family_user, plain)


@pytest.mark.parametrize("loras, words", [
    ([{"id": "demo-lora-flux", "weight": 0.8}], "is a LoRA for FLUX.1 models; 'demo-sdxl' is a Stable Diffusion XL model"),
    ([{"id": "demo-lora-sdxl", "weight": 2.5}], "weight must be from -2 to 2"),
    ([{"id": "demo-lora-sdxl", "weight": "strong"}], "must be a number"),
    ([{"id": "no-such-lora"}], "is not an available LoRA"),
    ([{"id": "demo-lora-sdxl"}, {"id": "demo-lora-sdxl"}], "listed twice"),
    ([{"id": "demo-lora-sdxl"}] * 5, "at most 4 LoRAs"),
    ("demo-lora-sdxl", "must be a list"),
])
def test_a_lora_that_does_not_fit_is_a_422_naming_why(family_user, loras, words):
    before = family_user.me()["tokens"]
    response = family_user.submit(model="demo-sdxl", loras=loras)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == "loras" and words in error["message"], error
    assert family_user.me()["tokens"] == before


def offered():
    from services.generation.families import card

    for model, family in MODELS.items():
        for scheduler in card(family).schedulers:
            yield model, scheduler


@pytest.mark.parametrize("model, scheduler", list(offered()))
def test_every_scheduler_runs_for_each_family_it_is_offered_for(family_user, model, scheduler):
    # (That each gives the same pixels for a seed is tests/unit/test_schedulers.py's.)
    task = run(family_user, model=model, scheduler=scheduler)
    assert task["scheduler"] == scheduler
    png = PILImage.open(io.BytesIO(family_user.get(task["images"][0]["url"]).data))
    assert "Sampler: " in png.info["parameters"]


@pytest.mark.parametrize("model, scheduler", [("demo-flux", "euler_a"), ("demo-sd3", "dpmpp_2m_karras"),
                                              ("demo-sdxl", "flow_euler"), ("demo", "flow_euler")])
def test_a_scheduler_the_model_cannot_use_is_a_422(family_user, model, scheduler):
    response = family_user.submit(model=model, scheduler=scheduler)
    assert response.status_code == 422
    assert "does not work with" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("model, params, field, words", [
    ("demo-flux", {"negative_prompt": "blurry"}, "negative_prompt", "ignore negative prompts"),
    ("demo-flux", {"guidance": 5}, "guidance", "takes no guidance"),
    ("demo-flux", {"width": 72}, "width", "multiple of 16"),
    ("demo-sd3", {"height": 204}, "height", "multiple of 16 (try 208)"),
    ("demo-sdxl", {"width": 1344, "height": 768}, "width", "pixels"),  # the user's pixel limit holds
    ("demo", {"width": 1024}, "width", "between 64 and 768"),
])
def test_validation_follows_the_models_card(family_user, model, params, field, words):
    response = family_user.submit(model=model, **params)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == field and words in error["message"], error


def test_the_defaults_of_an_omitted_field_come_from_the_card(family_stack, family_user):
    staff = make_staff(family_stack, "familystaff2")
    client = family_stack.test_client()
    flux = client.post("/api/v1/estimate", headers=staff, json={"prompt": "x", "model": "demo-flux"})
    assert flux.status_code == 200, flux.get_json()
    # Staff (1024 × 1024 pixels) may ask SDXL for its own 1344 × 768 though their side
    # limit is 1024; SD 1.x keeps the side limit.
    wide = client.post("/api/v1/estimate", headers=staff, json={
        "prompt": "x", "model": "demo-sdxl", "width": 1344, "height": 768})
    assert wide.status_code == 200, wide.get_json()
    narrow = client.post("/api/v1/estimate", headers=staff, json={
        "prompt": "x", "model": "demo", "width": 1344, "height": 768})
    assert narrow.status_code == 422
    task = run(family_user, model="demo-flux", width=None, height=None, steps=None, seed=None)
    assert (task["steps"], task["guidance"], task["scheduler"]) == (4, 0.0, "flow_euler")
    assert (task["width"], task["height"]) == (256, 256)


def test_a_lora_that_cannot_be_read_fails_its_task_with_why_and_a_refund(family_stack, family_user, models_path):
    from worker.demo_model import build_demo_lora

    path = models_path / "loras" / "fragile.safetensors"
    build_demo_lora(path, "sdxl", models_path / "daydream-demo-sdxl")
    try:
        staff = make_staff(family_stack, "familystaff3")
        client = family_stack.test_client()
        items = client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]
        [lora] = [m for m in items if m["spec"] == "loras/fragile.safetensors"]
        assert lora["kind"] == "lora" and lora["family"] == "sdxl"
        assert client.patch(f"/api/v1/admin/models/{lora['id']}", json={"enabled": True},
                            headers=staff).status_code == 200
        path.write_bytes(b"damaged after it was enabled")
        before = family_user.me()["tokens"]
        response = family_user.submit(model="demo-sdxl", loras=[{"id": lora["id"], "weight": 0.5}])
        assert response.status_code == 202, response.get_json()
        task = family_user.wait_task(response.get_json()["id"], timeout=120)
        assert task["state"] == "failed" and task["refunded"] is True
        assert "The LoRA fragile could not be applied" in task["error"] and "refunded" in task["error"]
        assert family_user.me()["tokens"] == before
        assert run(family_user, model="demo-sdxl")["state"] == "done"  # the worker goes on
    finally:
        path.unlink(missing_ok=True)
