"""The OpenAI Images API (/v1) spoken to the real `openai` client, against the real web
server (gunicorn) and worker: generations (base64 and signed links), edits, the model
list; every picture an ordinary, paid task of the caller's; signed links that open only
their own image, without a cookie, for 60 minutes; bad input a 4xx in OpenAI's shape."""
from __future__ import annotations

import base64
import io
import struct
import time
import zlib

import openai
import pytest
import requests
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from PIL import Image as PILImage

from services.generation.compat.common import URL_SALT
from tests.helpers import image_bytes, instance_env, make_app, unique
from tests.integration.helpers import ApiUser, make_staff


@pytest.fixture(scope="module")
def openai_stack(stack_factory):
    """The default stack (shared with the other modules) and its web server."""
    shared = stack_factory(web=1)
    app = shared.app
    app.server, app.env = shared.web(1), shared.env
    app.staff = make_staff(app, unique("chief"))
    return app


class OpenAiCaller:
    """A Daydream user, and the openai client set up as docs/TOOLS.md says."""

    def __init__(self, app, prefix: str):
        self.user = ApiUser(app.test_client(), unique(prefix))
        self.token = self.user.headers["Authorization"][7:]
        self.url = app.server.url
        self.client = openai.OpenAI(base_url=f"{self.url}/v1", api_key=self.token, max_retries=0, timeout=120)

    def post(self, path: str, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return requests.post(self.url + path, headers=headers, timeout=60, **kw)

    def tasks(self) -> list[dict]:
        return self.user.get("/api/v1/tasks?session=current").get_json()["items"]


@pytest.fixture
def openai_caller(openai_stack):
    return OpenAiCaller(openai_stack, "openai")


def picture(b64: str) -> PILImage.Image:
    return PILImage.open(io.BytesIO(base64.b64decode(b64)))


def assert_openai_error(response: requests.Response, status: int, param: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"} and error["message"], error
    if param is not None:
        assert error["param"] == param, error
    return error


def test_generate_base64_images_as_an_ordinary_paid_task(openai_caller):
    before = openai_caller.user.me()["tokens"]
    result = openai_caller.client.images.generate(model="demo", prompt="a lighthouse", n=2, size="64x64",
                                           response_format="b64_json")
    assert len(result.data) == 2
    assert [picture(item.b64_json).size for item in result.data] == [(64, 64), (64, 64)]
    assert result.data[0].revised_prompt == "a lighthouse" and result.created > 0
    [task] = openai_caller.tasks()
    assert task["state"] == "done" and task["samples"] == 2 and (task["width"], task["height"]) == (64, 64)
    assert openai_caller.user.me()["tokens"] == before - task["cost"] and task["cost"] == 2
    ledger = openai_caller.user.get("/api/v1/me/ledger").get_json()["items"]
    assert [(row["kind"], row["task_id"]) for row in ledger[:1]] == [("debit", task["id"])]
    gallery = {image["id"] for image in openai_caller.user.get("/api/v1/images").get_json()["items"]}
    assert {image["id"] for image in task["images"]} <= gallery


def test_generate_url_links_work_without_a_cookie_open_only_their_image_and_expire(openai_stack):
    alice, bob = OpenAiCaller(openai_stack, "alice"), OpenAiCaller(openai_stack, "bob")
    result = alice.client.images.generate(model="Demo (tiny, paints noise)", prompt="a fox", size="64x64",
                                          response_format="url")
    link = result.data[0].url
    assert link.startswith(alice.url + "/v1/images/files/")
    opened = requests.get(link, timeout=10)  # no cookie, no token
    assert opened.status_code == 200 and opened.headers["Content-Type"] == "image/png"
    assert PILImage.open(io.BytesIO(opened.content)).size == (64, 64)

    theirs = bob.client.images.generate(prompt="a hen", size="64x64", response_format="b64_json")
    [bob_task] = bob.tasks()
    bob_image = bob_task["images"][0]["id"]
    token = link.rsplit("/", 1)[1].removesuffix(".png")
    secret = openai_stack.env["DAYDREAM_SECRET_KEY"]
    # Alice's link with Bob's image id in it: the signature no longer matches.
    payload, rest = token.split(".", 1)
    forged = base64.urlsafe_b64encode(
        base64.urlsafe_b64decode(payload + "==").replace(
            alice.tasks()[0]["images"][0]["id"].encode(), bob_image.encode())).decode().rstrip("=")
    assert_openai_error(requests.get(f"{alice.url}/v1/images/files/{forged}.{rest}.png", timeout=10), 404)
    wrong_key = URLSafeTimedSerializer("not the secret", salt=URL_SALT).dumps({"i": bob_image, "u": 1})
    assert_openai_error(requests.get(f"{alice.url}/v1/images/files/{wrong_key}.png", timeout=10), 404)
    # A link made 61 minutes ago has expired.

    class Earlier(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - 61 * 60

    old = URLSafeTimedSerializer(secret, salt=URL_SALT, signer=Earlier).dumps(
        {"i": bob_image, "u": _user_id(openai_stack, bob)})
    assert_openai_error(requests.get(f"{alice.url}/v1/images/files/{old}.png", timeout=10), 410)
    fresh = URLSafeTimedSerializer(secret, salt=URL_SALT).dumps({"i": bob_image, "u": _user_id(openai_stack, alice)})
    assert_openai_error(requests.get(f"{alice.url}/v1/images/files/{fresh}.png", timeout=10), 404)
    assert theirs.data[0].b64_json


def _user_id(app, openai_caller: OpenAiCaller) -> int:
    from tests.integration.helpers import user_row

    return user_row(app, openai_caller.user.username).id


def test_edit_reworks_the_uploaded_image(openai_caller):
    result = openai_caller.client.images.edit(model="demo", image=("in.png", image_bytes((64, 64)), "image/png"),
                                       prompt="the same, in blue", n=1, size="64x64",
                                       response_format="b64_json")
    assert [picture(item.b64_json).size for item in result.data] == [(64, 64)]
    [task] = openai_caller.tasks()
    assert task["init_image"] and task["state"] == "done"
    # Without a size the picture takes the image's own shape.
    result = openai_caller.client.images.edit(image=("in.png", image_bytes((128, 96)), "image/png"),
                                       prompt="again", response_format="b64_json")
    assert picture(result.data[0].b64_json).size == (128, 96)


def test_models_list_the_enabled_models(openai_caller):
    models = openai_caller.client.models.list()
    assert [m.id for m in models.data] == ["demo"] and models.data[0].object == "model"
    assert openai_caller.client.models.retrieve("demo").id == "demo"


def test_not_enough_tokens_is_a_402_in_openais_shape(openai_stack, openai_caller):
    tokens = openai_caller.user.me()["tokens"]
    drained = openai_stack.test_client().patch(f"/api/v1/admin/users/{openai_caller.user.data['id']}",
                                               json={"tokens_delta": -tokens, "reason": "test"},
                                               headers=openai_stack.staff)
    assert drained.status_code == 200
    with pytest.raises(openai.APIStatusError) as raised:
        openai_caller.client.images.generate(prompt="a boat", size="64x64", response_format="b64_json")
    assert raised.value.status_code == 402
    error = raised.value.response.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "not_enough_tokens"
    assert openai_caller.tasks() == []


def test_credentials_are_an_api_token(openai_caller):
    unknown = openai.OpenAI(base_url=f"{openai_caller.url}/v1", api_key="not-a-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        unknown.models.list()
    response = requests.get(openai_caller.url + "/v1/models", timeout=10)
    assert_openai_error(response, 401)
    assert "Bearer" in response.headers["WWW-Authenticate"]


def bomb_bytes(width: int = 20000, height: int = 20000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 4096)) + chunk(b"IEND", b""))


def test_bad_input_is_a_clear_4xx_in_openais_shape_and_charges_nothing(openai_stack):
    openai_caller = OpenAiCaller(openai_stack, "fuzzy")
    tokens = openai_caller.user.me()["tokens"]
    for body, param in [({"prompt": "x", "size": "99999x1"}, "size"), ({"prompt": "x", "size": "big"}, "size"),
                        ({"prompt": "x", "n": "two"}, "n"), ({"prompt": "x", "n": 99}, "n"),
                        ({"size": "64x64"}, "prompt"), ({"prompt": ["x"]}, "prompt"),
                        ({"prompt": "x", "model": "no-such-model"}, "model"), ({"prompt": "x", "model": 3}, "model"),
                        ({"prompt": "x", "response_format": "gif"}, "response_format"),
                        ({"prompt": "x", "stream": True}, "stream"), ([1], "body")]:
        assert_openai_error(openai_caller.post("/v1/images/generations", json=body), 400, param)
    assert_openai_error(openai_caller.post("/v1/images/generations", data=b"{nope",
                                    headers={"Content-Type": "application/json"}), 400)
    for files, data, param in [({"image": ("a.png", b"plain words", "image/png")}, {"prompt": "x"}, "image"),
                               ({"image": ("a.png", bomb_bytes(), "image/png")}, {"prompt": "x"}, "image"),
                               ({}, {"prompt": "x"}, "image"),
                               # a mask without transparency (test_compat_inpaint.py: masks that work)
                               ({"image": ("a.png", image_bytes(), "image/png"),
                                 "mask": ("m.png", image_bytes(), "image/png")}, {"prompt": "x"}, "mask"),
                               ({"image": ("a.png", image_bytes(), "image/png"),
                                 "mask": ("m.png", b"plain words", "image/png")}, {"prompt": "x"}, "mask"),
                               ({"image": ("a.png", image_bytes(), "image/png")}, {"prompt": "x", "mask": "m"},
                                "mask"),
                               ({"image": ("a.png", image_bytes(), "image/png")},
                                {"prompt": "x", "size": "99999x1"}, "size")]:
        response = requests.post(openai_caller.url + "/v1/images/edits", files=files or {"x": ("x", b"x")}, data=data,
                                 headers={"Authorization": f"Bearer {openai_caller.token}"}, timeout=30)
        assert_openai_error(response, 400, param)
    assert_openai_error(requests.get(openai_caller.url + "/v1/images/generations", timeout=10,
                                     headers={"Authorization": f"Bearer {openai_caller.token}"}), 405)
    assert openai_caller.user.me()["tokens"] == tokens and openai_caller.tasks() == []
    assert openai_caller.user.get("/api/v1/images?kind=upload").get_json()["total"] == 0
    assert openai_caller.user.get("/api/v1/images?kind=mask").get_json()["total"] == 0


def test_without_a_worker_an_openai_request_is_refused_at_once_with_a_503(tmp_path, redis_url, models_path):
    app = make_app(instance_env(tmp_path / "idle", redis_url, models_path))
    user = ApiUser(app.test_client(), unique("idle"))
    response = user.post("/v1/images/generations", json={"prompt": "x", "size": "64x64"})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert response.get_json()["error"]["type"] == "server_error"
    assert user.get("/api/v1/tasks").get_json()["items"] == []
