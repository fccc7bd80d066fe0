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

from tests.helpers import image_bytes, instance_env, make_app, unique, wait_for
from tests.integration.helpers import ApiUser, make_staff

A1111_ERROR_KEYS = {"error", "detail", "body", "errors"}


@pytest.fixture(scope="module")
def a1111_stack(stack_factory):
    shared = stack_factory(web=1, DAYDREAM_PREVIEW_HZ=50)
    app = shared.app
    app.server = shared.web(1)
    app.staff = make_staff(app, unique("chief"))
    return app


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
    upscalers = [u["name"] for u in webui_caller.api.get_upscalers()]
    assert upscalers[:3] == ["None", "Lanczos", "Nearest"] and webui_caller.api.get_sd_vae() == []
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


def test_options_answer_a1111s_standard_keys_and_keep_what_means_something_per_caller(webui_caller):
    options = webui_caller.api.get_options()
    # A1111's standard options with its defaults, Daydream's own values where it has them.
    assert options["send_seed"] is True and options["send_size"] is True and options["eta_noise_seed_delta"] == 0
    assert options["samples_format"] == "png" and options["sd_vae"] == "Automatic"
    assert options["CLIP_stop_at_last_layers"] == 1 and options["sd_checkpoint_hash"]
    assert options["sd_model_checkpoint"].startswith("Demo") and options["live_previews_enable"] is True
    assert options["eta_ancestral"] == 1.0 and options["quicksettings_list"] == ["sd_model_checkpoint"]
    assert not any(key.startswith("outdir_") for key in options)  # the server's paths are its own
    # POST takes any option (and unknown ones, as clients send whole settings objects back).
    sent = {**options, "send_seed": False, "samples_format": "jpg", "eta_noise_seed_delta": 31337,
            "live_previews_enable": False, "sd_model_checkpoint": "demo", "some_extension_option": [1, 2]}
    assert webui_caller.post("/sdapi/v1/options", json=sent).status_code == 200
    again = webui_caller.api.get_options()
    # Kept: the caller's model and live previews (the studio's setting too); the rest is not
    # stored here (nothing reads it), so A1111's defaults come back.
    assert again["live_previews_enable"] is False and webui_caller.user.me()["settings"]["previews"] is False
    assert again["sd_model_checkpoint"] == options["sd_model_checkpoint"]
    assert again["send_seed"] is True and again["samples_format"] == "png" and again["eta_noise_seed_delta"] == 0
    assert "some_extension_option" not in again
    # A bad value for a kept option is a 422 naming it, and changes nothing.
    bad = webui_caller.post("/sdapi/v1/options", json={"live_previews_enable": "yes", "sd_model_checkpoint": "nope"})
    assert bad.status_code == 422 and set(bad.json()) == A1111_ERROR_KEYS
    assert bad.json()["detail"].startswith("live_previews_enable:")
    assert webui_caller.post("/sdapi/v1/options", json={"live_previews_enable": True}).status_code == 200
    assert webui_caller.api.get_options()["live_previews_enable"] is True


def test_the_answer_echoes_only_the_fields_a1111_defines(webui_caller):
    # SillyTavern sends its own `auth` ("user:token") and `url` in the body.
    body = {"prompt": "a quiet harbour", "width": 64, "height": 64, "steps": 2, "seed": 9, "sampler_name": "Euler",
            "auth": f"{webui_caller.user.username}:{webui_caller.token}", "url": "http://127.0.0.1:7860",
            "send_images": True, "save_images": False, "override_settings": {"sd_model_checkpoint": "demo"},
            "override_settings_restore_afterwards": True, "hr_scale": 2, "tiling": False, "styles": [],
            "some_field_of_its_own": "x"}
    response = webui_caller.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 200, response.text[:300]
    parameters = response.json()["parameters"]
    assert "auth" not in parameters and "url" not in parameters and "some_field_of_its_own" not in parameters
    assert webui_caller.token not in response.text
    for field in ("send_images", "save_images", "override_settings", "override_settings_restore_afterwards",
                  "hr_scale", "tiling", "styles"):
        assert parameters[field] == body[field], field
    assert parameters["prompt"] == "a quiet harbour" and parameters["steps"] == 2 and parameters["seed"] == 9
    assert parameters["sampler_name"] == "Euler" and parameters["scheduler"] == "Automatic"


def test_euler_a_on_a_karras_schedule_runs_and_is_recorded(webui_caller):
    """SillyTavern offers any sampler with any schedule type: Euler a + Karras here."""
    result = webui_caller.api.txt2img(prompt="a lantern", width=64, height=64, steps=3, seed=11,
                                      sampler_name="Euler a", scheduler="Karras")
    task = webui_caller.user.get(f"/api/v1/tasks/{result.info['daydream_task_id']}").get_json()
    assert task["state"] == "done" and task["scheduler"] == "euler_a_karras"
    assert result.info["sampler_name"] == "Euler a Karras" and result.info["scheduler"] == "Karras"
    assert "Sampler: Euler a Karras" in result.info["infotexts"][0]  # A1111 reads it as Euler a + Karras
    assert result.parameters["scheduler"] == "Karras"
    plain = webui_caller.api.txt2img(prompt="a lantern", width=64, height=64, steps=3, seed=11,
                                     sampler_name="Euler a", scheduler="Automatic")
    assert plain.images[0].tobytes() != result.images[0].tobytes()  # another schedule, another picture
    # Exponential works too; a sampler with no such schedule is a 422.
    exponential = webui_caller.post("/sdapi/v1/txt2img", json={
        "prompt": "a lantern", "width": 64, "height": 64, "steps": 3, "sampler_name": "DPM++ 2M",
        "scheduler": "Exponential"})
    assert exponential.status_code == 200 and json.loads(exponential.json()["info"])["scheduler"] == "Exponential"
    refused = webui_caller.post("/sdapi/v1/txt2img",
                                json={"prompt": "x", "sampler_name": "DDIM", "scheduler": "Karras"})
    assert refused.status_code == 422 and refused.json()["detail"].startswith("scheduler: Karras works here with")
    assert "Exponential" in [s["label"] for s in webui_caller.api.get_schedulers()]


def test_routes_daydream_lacks_answer_json_in_a1111s_shape(webui_caller):
    for method, path in (("GET", "/controlnet/control_types"), ("POST", "/controlnet/render_openpose_json"),
                         ("GET", "/sdapi/v2/anything"), ("GET", "/sdapi"),
                         ("GET", "/sdapi/v1"), ("DELETE", "/controlnet")):
        for auth in (webui_caller.basic, None):  # with a token or without: nothing is there either way
            response = requests.request(method, webui_caller.url + path, auth=auth, timeout=10)
            assert response.status_code == 404 and response.headers["Content-Type"] == "application/json", path
            assert response.json() == {"error": "HTTPException", "detail": "Not Found", "body": "",
                                       "errors": "Not Found"}, path


def test_routes_openai_lacks_answer_json_in_openais_shape_and_pages_stay_pages(webui_caller):
    for path in ("/v1", "/v1/"):
        response = requests.get(webui_caller.url + path, timeout=10)
        assert response.status_code == 404 and response.headers["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "unknown_url" and response.json()["error"]["type"] == \
            "invalid_request_error"
    page = requests.get(webui_caller.url + "/no-such-page", timeout=10)
    assert page.status_code == 404 and page.headers["Content-Type"].startswith("text/html")


def test_a_lora_tag_in_the_prompt_means_the_same_on_the_native_api(a1111_stack, webui_caller):
    """`<lora:name:0.8>` typed into the studio's prompt (POST /api/v1/tasks) applies that
    LoRA, as the A1111 and OpenAI routes do; a tag sets the weight of a listed LoRA."""
    user = webui_caller.user
    tokens = user.me()["tokens"]
    estimate = user.post("/api/v1/estimate", json={"prompt": "a boat <lora:demo-sd1-lora:0.8>", "width": 64,
                                                   "height": 64, "steps": 2})
    assert estimate.status_code == 200, estimate.get_json()
    submitted = user.submit(prompt="a boat, <lora:demo-sd1-lora:0.8>, at dusk", steps=2, seed=5)
    assert submitted.status_code == 202, submitted.get_json()
    task = user.wait_task(submitted.get_json()["id"])
    assert task["state"] == "done"
    assert task["loras"] == [{"id": "demo-lora-sd1", "name": "demo-sd1-lora", "weight": 0.8}]
    assert task["prompt"] == "a boat, at dusk"
    png = PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data))
    assert "<lora:demo-sd1-lora:0.8>" in png.info["parameters"].splitlines()[0]  # pasted back, it applies again
    assert json.loads(png.info["daydream"])["loras"][0]["weight"] == 0.8
    # The tag's weight wins over the same LoRA in the list.
    both = user.submit(prompt="a boat <lora:DEMO-SD1-LORA:0.3>", steps=2, seed=5,
                       loras=[{"id": "demo-lora-sd1", "weight": 1.5}])
    assert both.status_code == 202, both.get_json()
    assert both.get_json()["loras"] == [{"id": "demo-lora-sd1", "name": "demo-sd1-lora", "weight": 0.3}]
    user.wait_task(both.get_json()["id"])
    # A tag naming no LoRA is a 422 naming it; nothing charged.
    before = user.me()["tokens"]
    unknown = user.submit(prompt="a boat <lora:no-such-lora:0.5>", steps=2)
    assert unknown.status_code == 422
    assert unknown.get_json()["error"]["fields"]["prompt"].startswith("<lora:no-such-lora> is not an available LoRA")
    assert user.me()["tokens"] == before < tokens


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
    ("/sdapi/v1/txt2img", {"prompt": "x", "enable_hr": True, "hr_upscaler": "No Such Upscaler"}, "hr_upscaler"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "override_settings": "demo"}, "override_settings"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "override_settings": {"sd_model_checkpoint": "nope"}},
     "override_settings.sd_model_checkpoint"),
    ("/sdapi/v1/txt2img", {"prompt": "x <lora:nothing-like-it:1>"}, "prompt"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "alwayson_scripts": {"ADetailer": {"args": [True, {}]}}},
     "alwayson_scripts"),
    ("/sdapi/v1/txt2img", {"prompt": "x", "alwayson_scripts": {"ControlNet": {"args": [{"model": "nothing"}]}}},
     "alwayson_scripts.ControlNet.args[0].model"),
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
    # A mask is taken (test_compat_inpaint.py); one that selects nothing (dark: A1111 reads its
    # luminance), one that is not an image, and a separate latent mask are refused.
    ("/sdapi/v1/img2img", {"prompt": "x", "mask": base64.b64encode(image_bytes(colour=(20, 20, 20))).decode(),
                           "init_images": [base64.b64encode(image_bytes()).decode()]}, "mask"),
    ("/sdapi/v1/img2img", {"prompt": "x", "mask": base64.b64encode(b"plain words").decode(),
                           "init_images": [base64.b64encode(image_bytes()).decode()]}, "mask"),
    ("/sdapi/v1/img2img", {"prompt": "x", "mask": base64.b64encode(image_bytes(colour=(255, 255, 255))).decode(),
                           "latent_mask": base64.b64encode(image_bytes()).decode(),
                           "init_images": [base64.b64encode(image_bytes()).decode()]}, "latent_mask"),
    ("/sdapi/v1/img2img", {"prompt": "x", "mask": base64.b64encode(image_bytes(colour=(255, 255, 255))).decode(),
                           "inpainting_fill": 7, "init_images": [base64.b64encode(image_bytes()).decode()]},
     "inpainting_fill"),
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
    assert webui_caller.user.get("/api/v1/images?kind=mask").get_json()["total"] == 0


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
    from services.generation import tasks
    from services.generation.compat import holding

    app = make_app(instance_env(tmp_path / "slow", redis_url, models_path))
    caller = ApiUser(app.test_client(), unique("patient"))
    tokens = caller.me()["tokens"]
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == caller.username))
        task = tasks.submit_task(user, {"prompt": "x", "width": 64, "height": 64, "steps": 2})
        pauses = []
        with pytest.raises(holding.TimedOut) as raised:
            holding.wait_for_task(task, timeout=0.3, pause=lambda s: pauses.append(s) or False)
        assert raised.value.status == 504 and "refunded" in raised.value.message
        assert pauses and max(pauses) <= 0.5
        # A client that went away while its task was queued: canceled too.
        other = tasks.submit_task(user, {"prompt": "y", "width": 64, "height": 64, "steps": 2})
        assert holding.wait_for_task(other, timeout=30, pause=lambda s: True) is None
        ids = (task.id, other.id)
    for task_id in ids:
        row = caller.get(f"/api/v1/tasks/{task_id}").get_json()
        assert row["state"] == "canceled" and row["refunded"] is True
    assert caller.me()["tokens"] == tokens
