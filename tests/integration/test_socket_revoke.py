"""Ending a session ends its live connection: signing out, signing out everywhere,
deactivating or deleting the account disconnects the Socket.IO connections it had, in
every web process (the disconnect crosses over through the Redis message queue), and
they hear none of the user's task events afterwards; connecting again with the old
cookies is refused. Another sign-in of the same user keeps its connections until it
ends too. Real Socket.IO clients against the real web server with two processes."""
from __future__ import annotations

import uuid

import pytest
import requests
import socketio as socketio_client

from tests.helpers import WebServer, wait_for
from tests.integration.helpers import connect, csrf_from, make_staff, owner_of, sign_up

PROCESSES = 2
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def revoke_tier(stack, tmp_path_factory):
    server = WebServer(stack.env, tmp_path_factory.mktemp("revoke") / "web.log", processes=PROCESSES).start()
    assert len(server.worker_pids()) == PROCESSES
    yield server
    server.stop()


@pytest.fixture(scope="module")
def staff_headers(stack):
    return make_staff(stack, f"revoker{uuid.uuid4().hex[:6]}", "a staff password")


class Listener:
    """A Socket.IO connection that records the `task` events it hears and whether the
    server ended it."""

    def __init__(self, web: WebServer, session: requests.Session):
        self.events: list[dict] = []
        self.ended_by_server = False
        self.sio = connect(web, session)
        self.sio.on("task", self.events.append)
        self.sio.on("disconnect", self._gone)
        self.process = wait_for(lambda: owner_of(web, self.sio.eio.ws.sock), 5, message="the socket's process")

    def _gone(self, reason=None) -> None:
        self.ended_by_server = reason == socketio_client.Client.reason.SERVER_DISCONNECT

    @property
    def connected(self) -> bool:
        return self.sio.connected

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def listeners_in_every_process(web: WebServer, session: requests.Session) -> list[Listener]:
    """One connection of the session held by each web process."""
    held: dict[int, Listener] = {}

    def every_process():
        listener = Listener(web, session)
        if listener.process in held:
            listener.close()
        else:
            held[listener.process] = listener
        return set(held) == web.worker_pids()

    wait_for(every_process, 60, interval=0, message="a connection in every web process")
    return list(held.values())


def sign_in_again(web: WebServer, name: str) -> requests.Session:
    """Another sign-in (another browser) of the same account."""
    session = requests.Session()
    token = csrf_from(session.get(web.url + "/login", timeout=30).content)
    response = session.post(web.url + "/login", timeout=30,
                            data={"login": name, "password": PASSWORD, "csrf_token": token})
    assert response.url.endswith("/studio"), response.url
    return session


def bearer(web: WebServer, name: str) -> dict:
    response = requests.post(web.url + "/api/v1/auth/tokens", timeout=30,
                             json={"login": name, "password": PASSWORD, "name": "t"})
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


def wait_disconnected(web: WebServer, listeners: list[Listener], what: str) -> None:
    wait_for(lambda: not any(listener.connected for listener in listeners), 10, interval=0.05,
             message=f"the connections to be ended by {what}")
    assert all(listener.ended_by_server for listener in listeners), "the server ended them"
    assert "Traceback" not in web.log_path.read_text(errors="replace"), "the server's disconnect handler failed"


def refused(web: WebServer, session: requests.Session) -> bool:
    try:
        connect(web, session).disconnect()
    except socketio_client.exceptions.ConnectionError:
        return True
    return False


def run_task(web: WebServer, headers: dict, prompt: str) -> str:
    response = requests.post(web.url + "/api/v1/tasks", headers=headers, timeout=30,
                             json={"prompt": prompt, "width": 64, "height": 64, "steps": 2})
    assert response.status_code == 202, response.text
    task_id = response.json()["id"]
    wait_for(lambda: requests.get(f"{web.url}/api/v1/tasks/{task_id}", headers=headers,
                                  timeout=30).json()["state"] == "done", 90, interval=0.2, message="the task")
    return task_id


def test_sign_out_and_sign_out_everywhere_end_the_sessions_connections_in_every_process(revoke_tier):
    name, laptop = sign_up(revoke_tier, "rev")
    phone = sign_in_again(revoke_tier, name)
    token = bearer(revoke_tier, name)
    laptop_sockets = listeners_in_every_process(revoke_tier, laptop)
    phone_sockets = listeners_in_every_process(revoke_tier, phone)
    try:
        # Signing the phone out ends the phone's connections only.
        csrf = csrf_from(phone.get(revoke_tier.url + "/studio", timeout=30).content)
        assert phone.post(revoke_tier.url + "/logout", data={"csrf_token": csrf}, timeout=30).ok
        wait_disconnected(revoke_tier, phone_sockets, "sign-out")
        assert all(listener.connected for listener in laptop_sockets), "another sign-in's connection was ended"
        first = run_task(revoke_tier, token, "a lighthouse while the laptop listens")
        for listener in laptop_sockets:
            wait_for(lambda: "done" in {e["state"] for e in listener.events if e["id"] == first}, 30,
                     message="the laptop's connection to hear its task")

        # Signing out everywhere (with the API token, which stays) ends the laptop's too.
        ended = requests.delete(revoke_tier.url + "/api/v1/me/sessions", headers=token, timeout=30)
        assert ended.status_code == 200 and ended.json() == {"ended": 1}
        wait_disconnected(revoke_tier, laptop_sockets, "sign-out everywhere")
        assert refused(revoke_tier, laptop) and refused(revoke_tier, phone)

        # A new sign-in hears the next task; the ended connections heard nothing of it.
        fresh = listeners_in_every_process(revoke_tier, sign_in_again(revoke_tier, name))
        second = run_task(revoke_tier, token, "a lighthouse after sign-out")
        for listener in fresh:
            wait_for(lambda: "done" in {e["state"] for e in listener.events if e["id"] == second}, 30,
                     message="the new sign-in's connection to hear the task")
            listener.close()
        for listener in laptop_sockets + phone_sockets:
            assert not [e for e in listener.events if e["id"] == second], "an ended connection heard a task"
    finally:
        for listener in laptop_sockets + phone_sockets:
            listener.close()


def test_deactivating_an_account_ends_its_connections_in_every_process(revoke_tier, staff_headers):
    name, browser = sign_up(revoke_tier, "off")
    user_id = requests.get(revoke_tier.url + "/api/v1/me", headers=bearer(revoke_tier, name), timeout=30).json()["id"]
    sockets = listeners_in_every_process(revoke_tier, browser)
    try:
        response = requests.patch(f"{revoke_tier.url}/api/v1/admin/users/{user_id}", headers=staff_headers,
                                  json={"active": False, "reason": "socket test"}, timeout=30)
        assert response.status_code == 200, response.text
        wait_disconnected(revoke_tier, sockets, "deactivation")
        assert refused(revoke_tier, browser)
    finally:
        for listener in sockets:
            listener.close()


def test_deleting_an_account_ends_its_connections_in_every_process(revoke_tier, staff_headers):
    name, browser = sign_up(revoke_tier, "gone")
    user_id = requests.get(revoke_tier.url + "/api/v1/me", headers=bearer(revoke_tier, name), timeout=30).json()["id"]
    sockets = listeners_in_every_process(revoke_tier, browser)
    try:
        response = requests.delete(f"{revoke_tier.url}/api/v1/admin/users/{user_id}", headers=staff_headers,
                                   json={"reason": "socket test"}, timeout=30)
        assert response.status_code == 204, response.text
        wait_disconnected(revoke_tier, sockets, "deletion")
        assert refused(revoke_tier, browser)
    finally:
        for listener in sockets:
            listener.close()
