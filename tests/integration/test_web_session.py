"""The browser path: pages, CSRF on cookie-authenticated writes, sessions, Socket.IO."""
from __future__ import annotations

import pytest
import requests
import socketio as socketio_client

from tests.helpers import wait_for
from tests.integration.helpers import connect, csrf_from, sign_in


def test_signing_in_starts_a_new_session_and_the_timeline_shows_its_tasks(make_user, client):
    user = make_user()
    token = sign_in(client, user.username, user.password)
    first_session = client.get("/api/v1/me").get_json()["sessionid"]
    response = client.post("/api/v1/tasks", json={"prompt": "a cat", "width": 64, "height": 64,
                                                  "steps": 2}, headers={"X-CSRFToken": token})
    assert response.status_code == 202, response.get_json()
    assert client.get("/api/v1/tasks?session=current").get_json()["total"] == 1
    client.post("/logout", data={"csrf_token": token})
    assert client.get("/api/v1/me").status_code == 401
    sign_in(client, user.username, user.password)
    me = client.get("/api/v1/me").get_json()
    assert me["sessionid"] != first_session
    assert client.get("/api/v1/tasks?session=current").get_json()["total"] == 0
    assert client.get("/api/v1/tasks").get_json()["total"] == 1


def test_cookie_writes_need_the_csrf_token(make_user, client):
    user = make_user()
    sign_in(client, user.username, user.password)
    response = client.post("/api/v1/tasks", json={"prompt": "a cat"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"


def test_login_form_rejects_a_wrong_password_and_a_missing_csrf_token(make_user, client):
    user = make_user()
    no_csrf = client.post("/login", data={"login": user.username, "password": user.password})
    assert no_csrf.status_code == 400
    token = csrf_from(client.get("/login").data)
    wrong = client.post("/login", data={"login": user.username, "password": "not it at all",
                                        "csrf_token": token})
    assert wrong.status_code == 401 and b"Wrong username/email or password" in wrong.data


def test_register_page_creates_an_account_with_the_starting_balance(client):
    token = csrf_from(client.get("/register").data)
    bad = client.post("/register", data={"username": "x", "email": "nope", "password": "short",
                                         "csrf_token": token})
    assert bad.status_code == 422
    response = client.post("/register", data={"username": "pagereg", "email": "pagereg@example.com",
                                              "password": "a long enough password",
                                              "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/studio")
    assert client.get("/api/v1/me").get_json()["tokens"] == 20
    assert client.get("/studio").status_code == 200


def test_studio_needs_a_sign_in(client):
    response = client.get("/studio")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.fixture(scope="module")
def server(stack, stack_factory):
    """The web server of the default stack (the `stack` fixture's, shared with other modules)."""
    return stack_factory(web=1).web(1)


def browser_session(server, username: str, password: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    token = csrf_from(session.get(server.url + "/login").content)
    response = session.post(server.url + "/login", data={"login": username, "password": password,
                                                         "csrf_token": token})
    assert response.url.endswith("/studio"), response.url
    return session, csrf_from(response.content)


def test_socketio_refuses_a_signed_out_connection(server):
    with pytest.raises(socketio_client.exceptions.ConnectionError):
        connect(server, None)


def test_socketio_relays_the_workers_progress_to_the_owner_only(server, make_user):
    owner, other = make_user(), make_user()
    session, token = browser_session(server, owner.username, owner.password)
    other_session, _ = browser_session(server, other.username, other.password)
    received, overheard = [], []
    sio = connect(server, session)
    eavesdropper = connect(server, other_session)
    sio.on("task", received.append)
    eavesdropper.on("task", overheard.append)
    try:
        task = session.post(server.url + "/api/v1/tasks", headers={"X-CSRFToken": token},
                            json={"prompt": "a cat", "width": 64, "height": 64, "steps": 5}).json()
        wait_for(lambda: any(e["id"] == task["id"] and e["state"] == "done" for e in received),
                 60, interval=0.1, message="a done event")
    finally:
        sio.disconnect()
        eavesdropper.disconnect()
    mine = [e for e in received if e["id"] == task["id"]]
    steps = [e["step"] for e in mine if e["state"] == "running"]
    assert steps and steps == sorted(steps) and max(steps) == 5
    assert all(e["total"] == 5 for e in mine if e["state"] == "running")
    final = mine[-1]
    assert final["state"] == "done" and len(final["images"]) == 1
    assert not any(e["id"] == task["id"] for e in overheard)


def submit_and_collect(server, session, token, sio, received, **params):
    task = session.post(server.url + "/api/v1/tasks", headers={"X-CSRFToken": token},
                        json={"prompt": "a cat", "width": 64, "height": 64, **params}).json()
    wait_for(lambda: any(e["id"] == task["id"] and e["state"] in ("done", "failed") for e in received),
             90, interval=0.1, message="the task to finish")
    return task, [e for e in received if e["id"] == task["id"]]


def test_previews_of_the_current_step_arrive_a_few_times_a_second(server, make_user):
    import base64
    import io

    from PIL import Image as PILImage

    user = make_user()
    session, token = browser_session(server, user.username, user.password)
    received: list[dict] = []
    sio = connect(server, session)
    sio.on("task", received.append)
    try:
        task, events = submit_and_collect(server, session, token, sio, received,
                                          width=256, height=256, steps=40)
    finally:
        sio.disconnect()
    previews = [e["preview"] for e in events if e.get("preview")]
    assert len(set(previews)) >= 2, f"{len(previews)} previews"  # the preview changes
    head, data = previews[-1].split(",", 1)
    assert head == "data:image/jpeg;base64"
    assert max(PILImage.open(io.BytesIO(base64.b64decode(data))).size) <= 256
    running = [e for e in events if e["state"] == "running"]
    assert len(previews) < len(running)  # throttled: not every progress event carries one


def test_previews_can_be_turned_off_and_images_arrive_one_by_one(server, make_user):
    user = make_user()
    session, token = browser_session(server, user.username, user.password)
    response = session.patch(server.url + "/api/v1/me", headers={"X-CSRFToken": token},
                             json={"settings": {"previews": False}})
    assert response.json()["settings"] == {"cancel_on_leave": False, "previews": False}
    received: list[dict] = []
    sio = connect(server, session)
    sio.on("task", received.append)
    try:
        task, events = submit_and_collect(server, session, token, sio, received, steps=20, samples=3)
    finally:
        sio.disconnect()
    assert not any(e.get("preview") for e in events)
    counts = [len(e["images"]) for e in events if e["state"] == "running" and e.get("images")]
    assert counts[:2] == [1, 2], counts  # each image as soon as it is ready
    assert len(events[-1]["images"]) == 3


def test_leaving_the_studio_cancels_unfinished_tasks_when_asked(server, make_user):
    user = make_user()
    session, token = browser_session(server, user.username, user.password)
    session.patch(server.url + "/api/v1/me", headers={"X-CSRFToken": token},
                  json={"settings": {"cancel_on_leave": True}})
    sio = connect(server, session)
    task = session.post(server.url + "/api/v1/tasks", headers={"X-CSRFToken": token},
                        json={"prompt": "slow", "width": 512, "height": 512, "steps": 150}).json()
    wait_for(lambda: session.get(f"{server.url}/api/v1/tasks/{task['id']}").json()["state"] == "running",
             60, message="the task to run")
    sio.disconnect()  # the last studio page closes
    final = wait_for(lambda: (lambda t: t if t["state"] != "running" else None)(
        session.get(f"{server.url}/api/v1/tasks/{task['id']}").json()), 30, message="the cancel")
    assert final["state"] == "canceled" and final["refunded"] is True
    assert session.get(server.url + "/api/v1/me").json()["tokens"] == 20


def test_settings_are_validated(server, make_user):
    user = make_user()
    session, token = browser_session(server, user.username, user.password)
    bad = session.patch(server.url + "/api/v1/me", headers={"X-CSRFToken": token},
                        json={"settings": {"previews": "yes"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "settings.previews"
