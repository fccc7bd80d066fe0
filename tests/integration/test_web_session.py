"""The browser path: pages, CSRF on cookie-authenticated writes, sessions, Socket.IO."""
from __future__ import annotations

import pytest
import requests
import socketio as socketio_client

from tests.conftest import WebServer, wait_for
from tests.integration.conftest import csrf_from, sign_in


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
    from tests.integration.conftest import csrf_from

    token = csrf_from(client.get("/login").data)
    wrong = client.post("/login", data={"login": user.username, "password": "not it at all",
                                        "csrf_token": token})
    assert wrong.status_code == 401 and b"Wrong username/email or password" in wrong.data


def test_register_page_creates_an_account_with_the_starting_balance(client):
    from tests.integration.conftest import csrf_from

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
def server(stack, tmp_path_factory):
    web = WebServer(stack.env, tmp_path_factory.mktemp("web") / "web.log").start()
    yield web
    web.stop()


def browser_session(server, username: str, password: str) -> tuple[requests.Session, str]:
    session = requests.Session()
    token = csrf_from(session.get(server.url + "/login").content)
    response = session.post(server.url + "/login", data={"login": username, "password": password,
                                                         "csrf_token": token})
    assert response.url.endswith("/studio"), response.url
    return session, csrf_from(response.content)


def connect(server, session: requests.Session | None) -> socketio_client.Client:
    sio = socketio_client.Client(reconnection=False)
    cookie = "; ".join(f"{k}={v}" for k, v in (session.cookies.items() if session else []))
    sio.connect(server.url, headers={"Cookie": cookie} if cookie else {},
                transports=["websocket"], wait_timeout=10)
    return sio


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
