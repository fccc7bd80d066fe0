"""The AUTOMATIC1111 web UI API (/sdapi/v1) spoken to the real `webuiapi` client, against
the real web server (gunicorn) and worker: every picture is an ordinary task of the
caller's (tokens, timeline, gallery, ledger), progress and interrupt only ever concern
the caller's own task, and bad input is a 4xx in A1111's error shape."""
from __future__ import annotations

import base64
import io
import json
import socket
import struct
import threading
import zlib

import pytest
import requests
import webuiapi
from PIL import Image as PILImage

from tests.helpers import WebServer, WorkerProcess, image_bytes, instance_env, make_app, unique, wait_for
from tests.integration.helpers import ApiUser, make_staff

A1111_ERROR_KEYS = {"error", "detail", "body", "errors"}


@pytest.fixture(scope="module")
def a1111_stack(tmp_path_factory, redis_url, models_path):
    instance = tmp_path_factory.mktemp("compat-a1111")
    env = instance_env(instance, redis_url, models_path, DAYDREAM_PREVIEW_HZ=50)
    app = make_app(env)
    worker = WorkerProcess(env, instance / "worker.log").start()
    server = WebServer(env, instance / "web.log").start()
    app.server = server
    app.staff = make_staff(app, unique("chief"))
    yield app
    server.stop()
    worker.stop()


class WebUiCaller:
    """A Daydream user with an API token, and the webuiapi client set up as docs/TOOLS.md says."""

    def __init__(self, app, prefix: str):
        self.user = ApiUser(app.test_client(), unique(prefix))
        self.token = self.user.headers["Authorization"][7:]
        self.basic = (self.user.username, self.token)
        self.url = app.server.url
        self.api = webuiapi.WebUIApi(baseurl=f"{self.url}/sdapi/v1", username=self.user.username,
                                     password=self.token, sampler="Euler a", steps=2)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, auth=self.basic, timeout=120, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, auth=self.basic, timeout=30, **kw)

    def tasks(self) -> list[dict]:
        return self.user.get("/api/v1/tasks?session=current").get_json()["items"]


@pytest.fixture
def webui_caller(a1111_stack):
    return WebUiCaller(a1111_stack, "webui")


def claimed_size_png(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose header claims width × height pixels, in a few hundred bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 4096))
            + chunk(b"IEND", b""))


def long_task(webui_caller: WebUiCaller) -> str:
    """A task that keeps the worker busy for a while (canceled by the test)."""
    response = webui_caller.user.submit(width=256, height=256, steps=150, prompt="a slow one")
    assert response.status_code == 202, response.get_json()
    task_id = response.get_json()["id"]
    wait_for(lambda: webui_caller.user.get(f"/api/v1/tasks/{task_id}").get_json()["state"] == "running",
             60, message="the long task to start")
    return task_id


def test_txt2img_makes_a_batch_of_two_for_a_fixed_seed_as_an_ordinary_task(webui_caller):
    before = webui_caller.user.me()["tokens"]
    result = webui_caller.api.txt2img(prompt="a red boat", negative_prompt="fog", width=64, height=64,
                                steps=2, batch_size=2, seed=1234, cfg_scale=7, sampler_name="Euler a")
    assert len(result.images) == 2
    assert all(image.size == (64, 64) for image in result.images)
    assert result.info["seed"] == 1234 and result.info["all_seeds"] == [1234, 1235]
    assert result.info["prompt"] == "a red boat" and result.info["sampler_name"] == "Euler a"
    assert len(result.info["infotexts"]) == 2 and "Seed: 1234" in result.info["infotexts"][0]
    assert result.parameters["batch_size"] == 2 and result.parameters["steps"] == 2
    # An ordinary task: in the timeline, the gallery and the ledger, paid for.
    [task] = [t for t in webui_caller.tasks() if t["id"] == result.info["daydream_task_id"]]
    assert task["state"] == "done" and task["samples"] == 2 and task["scheduler"] == "euler_a"
    assert task["seed"] == 1234 and task["guidance"] == 7.0 and task["negative_prompt"] == "fog"
    assert webui_caller.user.me()["tokens"] == before - task["cost"] and task["cost"] == 2
    ledger = webui_caller.user.get("/api/v1/me/ledger").get_json()["items"]
    assert {"kind": "debit", "task_id": task["id"], "delta": -2} in [
        {k: row[k] for k in ("kind", "task_id", "delta")} for row in ledger]
    gallery = {image["id"] for image in webui_caller.user.get("/api/v1/images").get_json()["items"]}
    assert {image["id"] for image in task["images"]} <= gallery
    # The same seed paints the same pictures.
    again = webui_caller.api.txt2img(prompt="a red boat", negative_prompt="fog", width=64, height=64, steps=2,
                               batch_size=2, seed=1234, cfg_scale=7, sampler_name="Euler a")
    assert again.images[1].tobytes() == result.images[1].tobytes()


def test_img2img_reworks_the_init_image(webui_caller):
    init = PILImage.new("RGB", (96, 64), (200, 30, 30))
    result = webui_caller.api.img2img(images=[init], prompt="a blue boat", width=64, height=64, steps=2,
                                denoising_strength=0.5, seed=7)
    assert len(result.images) == 1 and result.images[0].size == (64, 64)
    task = webui_caller.user.get(f"/api/v1/tasks/{result.info['daydream_task_id']}").get_json()
    assert task["init_image"] and task["strength"] == 0.5 and task["state"] == "done"
    assert result.info["denoising_strength"] == 0.5


def test_lists_and_the_callers_own_default_model(a1111_stack, webui_caller):
    assert "Euler a" in webui_caller.api.util_get_sampler_names()
    assert "Karras" in [s["label"] for s in webui_caller.api.get_schedulers()]
    [title] = webui_caller.api.util_get_model_names()
    assert title.startswith("Demo") and title.endswith("]")
    assert webui_caller.api.get_options()["sd_model_checkpoint"] == title
    assert webui_caller.api.get_upscalers() == [] and webui_caller.api.get_sd_vae() == []
    assert [lora["name"] for lora in webui_caller.api.get_loras()] == ["demo-sd1-lora"]
    assert webui_caller.api.get_cmd_flags()["api"] is True
    # Setting the model is the caller's own setting, by title or id.
    assert webui_caller.post("/sdapi/v1/options", json={"sd_model_checkpoint": "demo"}).status_code == 200
    bad = webui_caller.post("/sdapi/v1/options", json={"sd_model_checkpoint": "no-such-model"})
    assert bad.status_code == 422 and set(bad.json()) == A1111_ERROR_KEYS
    # A LoRA in the prompt, A1111's way.
    result = webui_caller.api.txt2img(prompt="a boat <lora:demo-sd1-lora:0.6>", width=64, height=64, steps=2, seed=3)
    task = webui_caller.user.get(f"/api/v1/tasks/{result.info['daydream_task_id']}").get_json()
    assert task["loras"] == [{"id": "demo-lora-sd1", "name": "demo-sd1-lora", "weight": 0.6}]
    assert task["prompt"] == "a boat"


def test_progress_and_interrupt_only_ever_concern_the_callers_own_task(a1111_stack):
    alice, bob = WebUiCaller(a1111_stack, "alice"), WebUiCaller(a1111_stack, "bob")
    answer = {}
    held = threading.Thread(target=lambda: answer.update(result=alice.api.txt2img(
        prompt="a long walk", width=256, height=256, steps=150, seed=5)))
    held.start()
    try:
        def alice_sampling():
            progress = alice.api.get_progress()
            return progress if progress["progress"] > 0 and progress["current_image"] else None

        progress = wait_for(alice_sampling, 60, interval=0.1, message="alice's progress and preview")
        assert progress["state"]["sampling_steps"] == 150 and progress["state"]["job_count"] == 1
        assert 0 < progress["state"]["sampling_step"] <= 150 and progress["eta_relative"] >= 0
        assert PILImage.open(io.BytesIO(base64.b64decode(progress["current_image"]))).format == "JPEG"
        assert alice.get("/sdapi/v1/progress", params={"skip_current_image": "true"}).json()["current_image"] is None
        # Bob sees nothing of it, and his interrupt stops nothing of hers.
        theirs = bob.api.get_progress()
        assert theirs["progress"] == 0 and theirs["current_image"] is None and theirs["state"]["job_count"] == 0
        assert bob.api.interrupt() == {} and bob.api.skip() == {}
        [task] = [t for t in alice.tasks() if t["state"] == "running"]
        step = alice.api.get_progress()["state"]["sampling_step"]
        wait_for(lambda: alice.api.get_progress()["state"]["sampling_step"] > step, 30,
                 message="alice's task to go on after bob's interrupt")
        tokens = alice.user.me()["tokens"]
        assert alice.api.interrupt() == {}
    finally:
        alice.api.interrupt()
        held.join(60)
    assert not held.is_alive()
    assert answer["result"].images == [] and answer["result"].info["interrupted"] is True
    task = alice.user.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert task["state"] == "canceled" and task["refunded"] is True
    assert alice.user.me()["tokens"] == tokens + task["cost"]


def test_a_client_that_goes_away_cancels_its_queued_task_and_is_refunded(a1111_stack):
    busy, leaver = WebUiCaller(a1111_stack, "busy"), WebUiCaller(a1111_stack, "leaver")
    blocker = long_task(busy)
    try:
        tokens = leaver.user.me()["tokens"]
        body = json.dumps({"prompt": "never mind", "width": 64, "height": 64, "steps": 2}).encode()
        credentials = base64.b64encode(f"{leaver.user.username}:{leaver.token}".encode()).decode()
        with socket.create_connection(("127.0.0.1", a1111_stack.server.port), timeout=10) as sock:
            sock.sendall(b"POST /sdapi/v1/txt2img HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Type: application/json\r\nAuthorization: Basic " + credentials.encode()
                         + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            queued = wait_for(lambda: [t for t in leaver.tasks() if t["state"] == "queued"], 30,
                              message="the held request's task to be queued")
            assert leaver.user.me()["tokens"] == tokens - queued[0]["cost"]
        task = wait_for(lambda: (lambda t: t if t["state"] != "queued" else None)(
            leaver.user.get(f"/api/v1/tasks/{queued[0]['id']}").get_json()), 30,
            message="the task of the client that left to be canceled")
        assert task["state"] == "canceled" and task["refunded"] is True
        assert leaver.user.me()["tokens"] == tokens
    finally:
        busy.user.post(f"/api/v1/tasks/{blocker}/cancel")


def test_not_enough_tokens_is_a_402_in_a1111s_shape(a1111_stack, webui_caller):
    tokens = webui_caller.user.me()["tokens"]
    drained = a1111_stack.test_client().patch(f"/api/v1/admin/users/{webui_caller.user.data['id']}",
                                              json={"tokens_delta": -tokens, "reason": "test"},
                                              headers=a1111_stack.staff)
    assert drained.status_code == 200, drained.get_json()
    with pytest.raises(RuntimeError) as raised:
        webui_caller.api.txt2img(prompt="a boat", width=64, height=64, steps=2)
    status, text = raised.value.args
    body = json.loads(text)
    assert status == 402 and set(body) == A1111_ERROR_KEYS and body["error"] == "NotEnoughTokens"
    assert "token" in body["detail"]
    assert webui_caller.tasks() == []


def test_credentials_are_an_api_token_never_a_cookie(a1111_stack, webui_caller):
    for auth in (None, (webui_caller.user.username, "wrong-token"), ("someone-else", webui_caller.token)):
        response = requests.get(webui_caller.url + "/sdapi/v1/options", auth=auth, timeout=10)
        assert response.status_code == 401 and "Basic" in response.headers["WWW-Authenticate"]
        assert set(response.json()) == A1111_ERROR_KEYS
    bearer = requests.get(webui_caller.url + "/sdapi/v1/sd-models", timeout=10,
                          headers={"Authorization": f"Bearer {webui_caller.token}"})
    assert bearer.status_code == 200
    browser = requests.Session()
    page = browser.get(webui_caller.url + "/login", timeout=10)
    assert page.status_code == 200
    assert browser.get(webui_caller.url + "/sdapi/v1/options", timeout=10).status_code == 401


BAD_BODIES = [
    ("/sdapi/v1/txt2img", {"prompt": "x", "steps": "many"}, "steps"),
    ("/sdapi/v1/txt2img", {"prompt": 5}, "prompt"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "batch_size": "two"}, "batch_size"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "batch_size": 3, "n_iter": 3}, "batch_size"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "seed": "abc"}, "seed"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "width": 20000, "height": 64}, "width"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "cfg_scale": [1]}, "cfg_scale"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "sampler_name": "Heun++"}, "sampler_name"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "scheduler": "Beta"}, "scheduler"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "enable_hr": True}, "enable_hr"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "override_settings": "demo"}, "override_settings"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "override_settings": {"sd_model_checkpoint": "nope"}},
     "override_settings.sd_model_checkpoint"),
    ("/sdapi/v1/txt2img", {"prompt": "x <lora:nothing-like-it:1>"}, "prompt"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "alwayson_scripts": {"ControlNet": {"args": [{"enabled": True}]}}},
     "alwayson_scripts"),
    ("/sdapi/v1/txt2img", [1, 2], "body"),
    ("/sdapi/v1/img2img", {"prompt": "x"}, "init_images"),
    ("/sdapi/v1/img2img", {"prompt": "x", "init_images": "abc"}, "init_images"),
    ("/sdapi/v1/img2img", {"prompt": "x", "init_images": [12]}, "init_images"),
    ("/sdapi/v1/img2img", {"prompt": "x", "init_images": ["this is not base64!"]}, "init_images"),
    ("/sdapi/v1/img2img", {"prompt": "x", "init_images": [base64.b64encode(b"plain words").decode()]},
     "init_images"),
    ("/sdapi/v1/img2img", {"prompt": "x", "init_images": [base64.b64encode(claimed_size_png()).decode()]},
     "init_images"),
    ("/sdapi/v1/img2img", {"prompt": "x", "denoising_strength": 2,
                           "init_images": [base64.b64encode(image_bytes()).decode()]}, "denoising_strength"),
    ("/sdapi/v1/img2img", {"prompt": "x", "mask": base64.b64encode(image_bytes()).decode(),
                           "init_images": [base64.b64encode(image_bytes()).decode()]}, "mask"),
    ("/sdapi/v1/options", {"sd_model_checkpoint": 12}, "sd_model_checkpoint"),
]


def test_bad_input_is_a_clear_4xx_in_a1111s_shape_and_charges_nothing(a1111_stack):
    webui_caller = WebUiCaller(a1111_stack, "fuzzy")
    tokens = webui_caller.user.me()["tokens"]
    uploads = webui_caller.user.get("/api/v1/images?kind=upload").get_json()["total"]
    for path, body, field in BAD_BODIES:
        response = webui_caller.post(path, json=body)
        assert response.status_code == 422, (path, body, response.status_code, response.text[:300])
        error = response.json()
        assert set(error) == A1111_ERROR_KEYS, error
        assert error["detail"].startswith(field + ":"), (body, error)
    not_json = webui_caller.post("/sdapi/v1/txt2img", data=b"{nope", headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and set(not_json.json()) == A1111_ERROR_KEYS
    assert webui_caller.get("/sdapi/v1/txt2img").status_code == 405
    assert set(webui_caller.get("/sdapi/v1/no-such-route").json()) == A1111_ERROR_KEYS
    assert webui_caller.user.me()["tokens"] == tokens and webui_caller.tasks() == []
    assert webui_caller.user.get("/api/v1/images?kind=upload").get_json()["total"] == uploads


def test_without_a_worker_an_a1111_request_is_refused_at_once_with_a_503(tmp_path, redis_url, models_path):
    app = make_app(instance_env(tmp_path / "idle", redis_url, models_path))
    user = ApiUser(app.test_client(), unique("idle"))
    response = user.post("/sdapi/v1/txt2img", json={"prompt": "x", "width": 64, "height": 64, "steps": 2})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert set(response.get_json()) == A1111_ERROR_KEYS
    assert user.get("/api/v1/tasks").get_json()["items"] == []


def test_a_task_not_done_by_the_deadline_is_canceled_and_refunded(tmp_path, redis_url, models_path):
    import sqlalchemy as sa

    from extensions import db
    from models import User
    from services.generation import compat, tasks

    app = make_app(instance_env(tmp_path / "slow", redis_url, models_path))
    caller = ApiUser(app.test_client(), unique("patient"))
    tokens = caller.me()["tokens"]
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == caller.username))
        task = tasks.submit_task(user, {"prompt": "x", "width": 64, "height": 64, "steps": 2})
        pauses = []
        with pytest.raises(compat.TimedOut) as raised:
            compat.wait_for_task(task, timeout=0.3, pause=lambda s: pauses.append(s) or False)
        assert raised.value.status == 504 and "refunded" in raised.value.message
        assert pauses and max(pauses) <= 0.5
        # A client that went away while its task was queued: canceled too.
        other = tasks.submit_task(user, {"prompt": "y", "width": 64, "height": 64, "steps": 2})
        assert compat.wait_for_task(other, timeout=30, pause=lambda s: True) is None
        ids = (task.id, other.id)
    for task_id in ids:
        row = caller.get(f"/api/v1/tasks/{task_id}").get_json()
        assert row["state"] == "canceled" and row["refunded"] is True
    assert caller.me()["tokens"] == tokens
