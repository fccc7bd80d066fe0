"""Odd input is a clear 4xx in each API's own shape, never a 500: a lone surrogate
("\\ud800", no character; the database cannot store it) in any text field, a number too
large for a float, and JSON nested 100,000 deep, on every route that takes a JSON body
(the native /api/v1, A1111's /sdapi/v1 and OpenAI's /v1); percent-encoded bytes that
are not UTF-8 in forms and query strings. And image-to-image with less than one step to
run is refused at submit on every route, saying the minimum, with nothing charged."""
from __future__ import annotations

import pytest

from tests.helpers import image_bytes, unique
from tests.integration.helpers import ApiUser, csrf_from, make_staff, post_upload

SURROGATE = '"a \\ud800 b"'
HUGE = "9" * 400
NESTED = "[" * 100_000 + "]" * 100_000

# (method, path, a text field it reads, a number field it reads)
NATIVE = [
    ("POST", "/api/v1/tasks", "prompt", "guidance"),
    ("POST", "/api/v1/estimate", "negative_prompt", "strength"),
    ("PATCH", "/api/v1/me", "first_name", "mobile"),
    ("DELETE", "/api/v1/me", "password", "password"),
    ("POST", "/api/v1/me/password", "current_password", "keep_sessions"),
    ("POST", "/api/v1/me/redeem", "code", "code"),
    ("POST", "/api/v1/auth/reauth", "password", "password"),
    ("POST", "/api/v1/auth/register", "username", "invite"),
    ("POST", "/api/v1/auth/tokens", "name", "login"),
    ("POST", "/api/v1/boards", "name", "name"),
    ("PATCH", "/api/v1/boards/{board}", "name", "cover_image_id"),
    ("PATCH", "/api/v1/images/{image}", "board_id", "starred"),
    ("POST", "/api/v1/images/bulk", "action", "ids"),
    ("POST", "/api/v1/archives", "board_id", "all"),
    ("POST", "/api/v1/showcase", "image_id", "reason"),
    ("PATCH", "/api/v1/showcase/x", "reason", "hidden"),
    ("POST", "/api/v1/showcase/x/report", "reason", "reason"),
    ("POST", "/api/v1/admin/models/scan", "reason", "reason"),
    ("PATCH", "/api/v1/admin/models/demo", "reason", "enabled"),
    ("PATCH", "/api/v1/admin/users/{user}", "reason", "tokens_delta"),
    ("POST", "/api/v1/admin/users/{user}/approve", "reason", "reason"),
    ("POST", "/api/v1/admin/users/{user}/reset-link", "reason", "reason"),
    ("POST", "/api/v1/admin/vouchers", "note", "tokens"),
    ("POST", "/api/v1/admin/moderation/rules", "pattern", "enabled"),
    ("PATCH", "/api/v1/admin/moderation/rules/{rule}", "pattern", "enabled"),
    ("POST", "/api/v1/admin/moderation/rules/test", "prompt", "prompt"),
    ("POST", "/api/v1/admin/moderation/reports/x", "reason", "action"),
    ("POST", "/api/v1/admin/moderation/held/{image}/release", "reason", "reason"),
]
A1111 = [
    ("POST", "/sdapi/v1/txt2img", "prompt", "cfg_scale"),
    ("POST", "/sdapi/v1/img2img", "negative_prompt", "denoising_strength"),
    ("POST", "/sdapi/v1/options", "sd_model_checkpoint", "CLIP_stop_at_last_layers"),
]
OPENAI = [("POST", "/v1/images/generations", "prompt", "n")]
ROUTES = NATIVE + A1111 + OPENAI


@pytest.fixture(scope="module")
def odd_staff(idle_app):
    name = unique("oddboss")
    headers = make_staff(idle_app, name, "a odd_staff password")
    client = idle_app.test_client()
    return client, headers


@pytest.fixture(scope="module")
def things(idle_app, odd_staff):
    """Real ids for the routes that look a resource up before they read the body."""
    client, headers = odd_staff
    owner = ApiUser(idle_app.test_client(), unique("oddowner"))
    image = post_upload(owner, image_bytes()).get_json()["id"]
    board = owner.post("/api/v1/boards", json={"name": unique("b")}).get_json()["id"]
    rule = client.post("/api/v1/admin/moderation/rules", headers=headers, json={
        "pattern": unique("zzodd"), "reason": "a test rule"}).get_json()["id"]
    return owner, {"board": board, "image": image, "user": owner.data["id"], "rule": rule}


def _send(idle_app, odd_staff, things, method: str, path: str, raw: str):
    owner, ids = things
    client, headers = odd_staff
    if any("{" + name + "}" in path for name in ("board", "image")) and "admin" not in path:
        client, headers = owner.client, owner.headers  # the owner's own board or image
    response = client.open(path.format(**ids), method=method, data=raw,
                           headers={**headers, "Content-Type": "application/json"})
    assert response.status_code < 500, (path, response.status_code, response.get_data(as_text=True)[:300])
    return response


def _named(path: str, response) -> str | None:
    """The field an error names, in its API's shape."""
    body = response.get_json()
    if path.startswith("/sdapi/"):
        return body["detail"].split(":")[0] if response.status_code == 422 else None
    if path.startswith("/v1/"):
        return body["error"]["param"]
    return body["error"].get("field")


def _code(path: str, response) -> str:
    body = response.get_json()
    if path.startswith("/sdapi/"):
        return "bad_json" if "nested" in body["detail"] else body["error"]
    return body["error"]["code"]


def _invalid_status(path: str) -> int:
    return 400 if path.startswith("/v1/") else 422  # OpenAI answers a bad parameter 400


@pytest.mark.parametrize("method, path, text, number", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_a_lone_surrogate_is_a_4xx_naming_the_field(idle_app, odd_staff, things, method, path, text, number):
    response = _send(idle_app, odd_staff, things, method, path, '{"%s": %s}' % (text, SURROGATE))
    assert response.status_code == _invalid_status(path), response.get_data(as_text=True)[:300]
    assert _named(path, response) == text
    # deeper in the body too, named by its path
    response = _send(idle_app, odd_staff, things, method, path, '{"%s": {"inner": [1, %s]}}' % (text, SURROGATE))
    assert response.status_code == _invalid_status(path)
    assert _named(path, response) == f"{text}.inner[1]"


@pytest.mark.parametrize("method, path, text, number", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_a_400_digit_number_is_a_4xx_naming_the_field(idle_app, odd_staff, things, method, path, text, number):
    for raw in (HUGE, "-" + HUGE, "1e400"):
        response = _send(idle_app, odd_staff, things, method, path, '{"%s": %s}' % (number, raw))
        assert response.status_code == _invalid_status(path), response.get_data(as_text=True)[:300]
        assert _named(path, response) == number


@pytest.mark.parametrize("method, path, text, number", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_json_nested_100000_deep_is_bad_json(idle_app, odd_staff, things, method, path, text, number):
    for raw in (NESTED, '{"%s": %s}' % (text, "[" * 40 + "]" * 40)):
        response = _send(idle_app, odd_staff, things, method, path, raw)
        assert response.status_code == 400
        assert _code(path, response) in ("bad_json", "ServiceError")


@pytest.mark.parametrize("field, raw", [("guidance", HUGE), ("strength", HUGE), ("prompt", SURROGATE)])
def test_nothing_is_charged_or_stored_for_odd_input(idle_app, field, raw):
    user = ApiUser(idle_app.test_client(), unique("oddpay"))
    before = user.me()["tokens"]
    response = user.post("/api/v1/tasks", data='{"prompt": "x", "%s": %s}' % (field, raw),
                         content_type="application/json")
    assert response.status_code == 422 and response.get_json()["error"]["field"] == field
    assert user.me()["tokens"] == before
    assert user.get("/api/v1/tasks").get_json()["total"] == 0


# --- forms and query strings: bytes that are not UTF-8 ------------------------------------

NOT_UTF8 = b"%ED%A0%80%FF%C0%AF"  # an encoded surrogate, and bytes no UTF-8 text has


@pytest.mark.parametrize("path", ["/login", "/register", "/forgot"])
def test_a_form_field_that_is_not_utf8_is_answered_never_a_500(idle_app, path):
    client = idle_app.test_client()
    token = csrf_from(client.get(path).data).encode()
    fields = b"&".join(name + b"=" + NOT_UTF8 for name in (b"login", b"username", b"email", b"password",
                                                           b"password2", b"next"))
    response = client.post(path, data=fields + b"&csrf_token=" + token,
                           content_type="application/x-www-form-urlencoded")
    assert 200 <= response.status_code < 500, response.status_code
    assert b"\xef\xbf\xbd" not in response.data or response.status_code in (200, 401, 422)


def test_an_upload_and_an_openai_edit_with_fields_that_are_not_utf8_are_4xx(make_user):
    user = make_user("oddform")  # (the compatibility routes check for a worker first)
    body = (b"--B\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n\xed\xa0\x80\xff\r\n"
            b"--B\r\nContent-Disposition: form-data; name=\"strength\"\r\n\r\n" + HUGE.encode() + b"\r\n"
            b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + image_bytes() + b"\r\n--B--\r\n")
    upload = user.post("/api/v1/uploads", data=body, content_type="multipart/form-data; boundary=B")
    assert upload.status_code == 201, upload.get_json()
    # A file name that is not UTF-8 spoils the whole form (the parser drops it): a 4xx.
    spoiled = user.post("/api/v1/uploads", data=body.replace(b"in.png", b"\xed\xa0\x80.png"),
                        content_type="multipart/form-data; boundary=B")
    assert spoiled.status_code == 422 and spoiled.get_json()["error"]["field"] == "file"
    edit = user.post("/v1/images/edits", data=body.replace(b'name="file"', b'name="image"'),
                     content_type="multipart/form-data; boundary=B")
    assert edit.status_code == 400 and edit.get_json()["error"]["param"] == "strength", edit.get_json()


@pytest.mark.parametrize("path", ["/api/v1/tasks", "/api/v1/images", "/api/v1/showcase", "/gallery",
                                  "/api/v1/tasks/%ED%A0%80", "/images/%ED%A0%80", "/sdapi/v1/progress",
                                  "/v1/models/%ED%A0%80"])
def test_a_query_or_path_that_is_not_utf8_is_never_a_500(idle_app, path):
    user = ApiUser(idle_app.test_client(), unique("oddq"))
    query = b"?session=" + NOT_UTF8 + b"&q=" + NOT_UTF8 + b"&offset=" + NOT_UTF8 + b"&starred=" + NOT_UTF8
    response = user.get(path + query.decode("ascii"))
    assert response.status_code < 500, (path, response.status_code)


# --- image-to-image with less than one step -------------------------------------------------

@pytest.fixture
def painter(make_user):
    user = make_user("oddpaint")  # with the worker: the compatibility routes check for one first
    user.upload = post_upload(user, image_bytes((64, 64))).get_json()["id"]
    return user


@pytest.mark.parametrize("steps, strength, field, words", [
    (8, 0.1, "steps", "at strength 0.1, steps must be at least 10"),
    (1, 0.75, "steps", "at strength 0.75, steps must be at least 2"),
    (8, 0, "strength", "at 8 steps, strength must be at least 0.125"),
])
def test_image_to_image_with_no_step_to_run_is_refused_on_the_native_route(painter, steps, strength, field, words):
    before = painter.me()["tokens"]
    for path in ("/api/v1/tasks", "/api/v1/estimate"):
        response = painter.post(path, json={"prompt": "a fox", "init_image": painter.upload, "width": 64,
                                            "height": 64, "steps": steps, "strength": strength})
        assert response.status_code == 422, response.get_json()
        error = response.get_json()["error"]
        assert error["field"] == field and words in error["message"]
    assert painter.me()["tokens"] == before
    ok = painter.post("/api/v1/estimate", json={"prompt": "a fox", "init_image": painter.upload, "width": 64,
                                                "height": 64, "steps": 10, "strength": 0.1})
    assert ok.status_code == 200, ok.get_json()


def test_image_to_image_with_no_step_to_run_is_refused_on_the_a1111_route(painter):
    import base64

    before = painter.me()["tokens"]
    uploads = painter.get("/api/v1/images?kind=upload").get_json()["total"]
    response = painter.post("/sdapi/v1/img2img", json={
        "prompt": "a fox", "init_images": [base64.b64encode(image_bytes()).decode()], "steps": 8,
        "denoising_strength": 0.1, "width": 64, "height": 64})
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert body["detail"].startswith("steps:") and "at least 10" in body["detail"]
    zero = painter.post("/sdapi/v1/img2img", json={
        "prompt": "a fox", "init_images": [base64.b64encode(image_bytes()).decode()], "steps": 8,
        "denoising_strength": 0, "width": 64, "height": 64})
    assert zero.status_code == 422 and zero.get_json()["detail"].startswith("denoising_strength:")
    assert painter.me()["tokens"] == before
    assert painter.get("/api/v1/images?kind=upload").get_json()["total"] == uploads  # init images discarded


def test_image_to_image_with_no_step_to_run_is_refused_on_the_openai_route(painter):
    response = painter.post("/v1/images/edits", data={
        "prompt": "a fox", "size": "64x64", "strength": "0.01",
        "image": (__import__("io").BytesIO(image_bytes()), "in.png")}, content_type="multipart/form-data")
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["param"] == "strength" and "strength must be at least" in error["message"]


# --- an Idempotency-Key reused with another request ------------------------------------------

def test_an_idempotency_key_reused_with_another_body_is_a_422(make_idle_user):
    user = make_idle_user()
    key = {"Idempotency-Key": unique("key")}
    first = user.submit(headers=key, prompt="a mill", steps=8)
    assert first.status_code == 202
    # the same request, spelt differently: keys in another order, 8.0 for 8
    again = user.post("/api/v1/tasks", headers=key, data='{"steps": 8.0, "height": 64, "width": 64, '
                      '"prompt": "a mill"}', content_type="application/json")
    assert again.status_code == 202 and again.get_json()["id"] == first.get_json()["id"]
    tokens = user.me()["tokens"]
    other = user.submit(headers=key, prompt="a windmill", steps=8)
    assert other.status_code == 422, other.get_json()
    error = other.get_json()["error"]
    assert error["code"] == "idempotency_key_reused" and error["field"] == "Idempotency-Key"
    assert first.get_json()["id"] in error["message"]
    assert user.me()["tokens"] == tokens
    assert user.get("/api/v1/tasks").get_json()["total"] == 1


def test_a_blank_idempotency_key_is_no_key(make_idle_user):
    user = make_idle_user()
    first = user.submit()
    blank = user.submit(headers={"Idempotency-Key": "  "}, prompt="another")
    assert blank.status_code == 202 and blank.get_json()["id"] != first.get_json()["id"]


def test_an_a1111_retry_with_its_key_returns_the_first_task_and_another_body_is_refused(make_user):
    import base64
    import json

    user = make_user("oddretry")
    key = {"Idempotency-Key": unique("key")}
    body = {"prompt": "a fox", "init_images": [base64.b64encode(image_bytes()).decode()], "steps": 4,
            "denoising_strength": 0.5, "width": 64, "height": 64}
    first = user.post("/sdapi/v1/img2img", headers=key, json=body)
    assert first.status_code == 200, first.get_json()
    task_id = json.loads(first.get_json()["info"])["daydream_task_id"]
    tokens = user.me()["tokens"]
    again = user.post("/sdapi/v1/img2img", headers=key, json=body)  # the picture is sent (and stored) again
    assert again.status_code == 200 and json.loads(again.get_json()["info"])["daydream_task_id"] == task_id
    other = user.post("/sdapi/v1/img2img", headers=key, json={
        **body, "init_images": [base64.b64encode(image_bytes(colour=(0, 90, 200))).decode()]})
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["detail"]
    assert user.me()["tokens"] == tokens
