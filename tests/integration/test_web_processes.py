"""Several web processes (DAYDREAM_WEB_PROCESSES): connections are spread over them,
and nothing a person sees depends on which process answers. A signed-in session works
whichever process serves each request; a Socket.IO client receives its own tasks' events
from whichever process (or worker) emits them; Socket.IO is WebSocket-only, so a
long-polling handshake is refused with a clear 400; writers in several processes do
not lock the SQLite database.

Which process holds a connection is read from the kernel (the web process whose file
descriptors hold the server end of the TCP connection), so nothing is exposed for it."""
from __future__ import annotations

import http.client
import json
import threading
import uuid
from http.cookies import SimpleCookie

import pytest
import requests
import socketio as socketio_client

from tests.helpers import WebServer, wait_for
from tests.integration.helpers import connect, csrf_from, owner_of, sign_up

PROCESSES = 2
PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def web_tier(stack, tmp_path_factory):
    server = WebServer(stack.env, tmp_path_factory.mktemp("web2") / "web.log", processes=PROCESSES).start()
    assert len(server.worker_pids()) == PROCESSES
    yield server
    server.stop()


class Browser:
    """One keep-alive HTTP connection, so that its requests go to the web process that
    accepted it (`process`), with a cookie jar as a browser keeps one."""

    def __init__(self, web: WebServer, cookies: dict | None = None):
        self.web = web
        self.cookies = dict(cookies or {})
        self.conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
        self.conn.connect()
        self.process: int | None = None
        self.served_by: list[int] = []

    def request(self, method: str, path: str, *, form: dict | None = None, json_body=None,
                headers: dict | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        headers = dict(headers or {})
        body = None
        if form is not None:
            from urllib.parse import urlencode

            body, headers["Content-Type"] = urlencode(form), "application/x-www-form-urlencoded"
        elif json_body is not None:
            body, headers["Content-Type"] = json.dumps(json_body), "application/json"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if attempt == 2:
                    raise
                self.conn.close()  # it let the idle connection go before reading this request
        data = response.read()
        for value in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(value).items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        process = wait_for(lambda: owner_of(self.web, self.conn.sock), 5, message="the serving process")
        self.process = process
        self.served_by.append(process)
        return response.status, response.headers, data

    def close(self) -> None:
        self.conn.close()


def browser_on(web: WebServer, process: int, cookies: dict | None = None) -> Browser:
    """A Browser whose connection the given web process accepted (new connections until one is)."""
    def attempt():
        browser = Browser(web, cookies)
        browser.request("GET", "/healthz")
        if browser.process == process:
            return browser
        browser.close()
        return None

    return wait_for(attempt, 30, interval=0, message=f"a connection accepted by web process {process}")


def other(web: WebServer, process: int) -> int:
    return next(pid for pid in web.worker_pids() if pid != process)


def test_connections_are_served_by_every_web_process(web_tier):
    seen: set[int] = set()

    def both_seen():
        browser = Browser(web_tier)
        status, _, body = browser.request("GET", "/healthz")
        browser.close()
        assert status == 200, body
        seen.add(browser.process)
        return seen == web_tier.worker_pids()

    wait_for(both_seen, 30, interval=0, message=f"requests served by {PROCESSES} processes (seen {seen})")


def test_a_signed_in_session_works_whichever_process_answers(web_tier):
    first = min(web_tier.worker_pids())
    a = browser_on(web_tier, first)
    b = browser_on(web_tier, other(web_tier, first))
    try:
        name = f"hop{uuid.uuid4().hex[:8]}"
        status, _, body = a.request("POST", "/api/v1/auth/register", json_body={
            "username": name, "email": f"{name}@example.com", "password": PASSWORD})
        assert status == 201, body
        # The sign-in page (and its CSRF token) from one process, the form posted to the other.
        status, _, page = a.request("GET", "/login")
        assert status == 200
        b.cookies = dict(a.cookies)
        status, headers, body = b.request("POST", "/login", form={
            "login": name, "password": PASSWORD, "csrf_token": csrf_from(page)})
        assert status == 302 and headers["Location"].endswith("/studio"), body[:300]
        a.cookies = dict(b.cookies)
        status, _, studio = a.request("GET", "/studio")
        assert status == 200
        token = csrf_from(studio)
        b.cookies = dict(a.cookies)
        status, _, body = b.request("POST", "/api/v1/tasks", headers={"X-CSRFToken": token}, json_body={
            "prompt": "a harbour", "width": 64, "height": 64, "steps": 2})
        assert status == 202, body
        task = json.loads(body)
        status, _, body = a.request("GET", f"/api/v1/tasks/{task['id']}")
        assert status == 200 and json.loads(body)["id"] == task["id"]
        status, _, body = a.request("GET", "/api/v1/me")
        assert status == 200 and json.loads(body)["username"] == name
        # A write without the token is refused in either process.
        status, _, body = a.request("POST", "/api/v1/tasks", json_body={"prompt": "no token"})
        assert status == 400 and json.loads(body)["error"]["code"] == "csrf_failed"
        # Signing out in one process ends the session in the other.
        status, _, _ = b.request("POST", "/logout", form={"csrf_token": token})
        assert status == 302
        a.cookies = dict(b.cookies)
        status, _, _ = a.request("GET", "/api/v1/me")
        assert status == 401
        assert set(a.served_by) == {first} and set(b.served_by) == {other(web_tier, first)}
    finally:
        a.close()
        b.close()


def test_socketio_clients_get_their_own_events_whichever_process_holds_them(web_tier):
    """Each user's socket sits in one process; their task is submitted through the other
    one (whose `task` event, "queued", must cross over through Redis), and the worker's
    events (running ... done) reach every process as well. No one hears another's tasks."""
    users, sockets, received, queue_events = [], [], {}, {}
    try:
        def sockets_in_both_processes():
            name, session = sign_up(web_tier, "sock")
            sio = connect(web_tier, session)
            events: list = []
            sio.on("task", events.append)
            queue_events[name] = []
            sio.on("queue", queue_events[name].append)
            process = wait_for(lambda: owner_of(web_tier, sio.eio.ws.sock), 5, message="the socket's process")
            users.append((name, session, process))
            sockets.append(sio)
            received[name] = events
            return len(users) >= 4 and {p for _, _, p in users} == web_tier.worker_pids()

        wait_for(sockets_in_both_processes, 60, interval=0,
                 message="Socket.IO clients connected to every web process")
        tasks = {}
        for name, session, process in users:
            browser = browser_on(web_tier, other(web_tier, process), session.cookies.get_dict())
            try:
                status, _, page = browser.request("GET", "/studio")
                assert status == 200
                status, _, body = browser.request(
                    "POST", "/api/v1/tasks", headers={"X-CSRFToken": csrf_from(page)},
                    json_body={"prompt": f"a lighthouse for {name}", "width": 64, "height": 64, "steps": 3})
                assert status == 202, body
                assert browser.process != process  # submitted (and "queued" emitted) elsewhere
                tasks[name] = json.loads(body)["id"]
            finally:
                browser.close()

        for name, task_id in tasks.items():
            wait_for(lambda: {"queued", "done"} <= {e["state"] for e in received[name] if e["id"] == task_id},
                     90, interval=0.1, message=f"{name}'s queued and done events")
        for name, events in received.items():
            assert {e["id"] for e in events} == {tasks[name]}, f"{name} heard another user's task"
            assert queue_events[name], f"{name} got no queue event"  # sent to everyone, from both processes
    finally:
        for sio in sockets:
            sio.disconnect()


def test_socketio_is_websocket_only_and_a_polling_handshake_gets_a_clear_400(web_tier):
    response = requests.get(web_tier.url + "/socket.io/", params={"EIO": "4", "transport": "polling"}, timeout=10)
    assert response.status_code == 400
    assert "Invalid transport" in response.text
    _, session = sign_up(web_tier, "poll")
    client = socketio_client.Client(reconnection=False)
    cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
    with pytest.raises(socketio_client.exceptions.ConnectionError):
        client.connect(web_tier.url, headers={"Cookie": cookie}, transports=["polling"], wait_timeout=5)
    connect(web_tier, session).disconnect()  # the same session over a WebSocket is welcome


def test_writers_in_several_processes_do_not_lock_the_sqlite_database(web_tier):
    """Sign-ups, tokens and submits at once from connections held by both processes:
    every one succeeds (WAL plus a busy timeout: writers wait their turn)."""
    per_process = 4
    browsers = [browser_on(web_tier, pid) for pid in sorted(web_tier.worker_pids()) for _ in range(per_process)]
    answers: list = [None] * len(browsers)
    writers: list = [set()] * len(browsers)
    barrier = threading.Barrier(len(browsers))

    def sign_up_and_submit(n: int) -> None:
        browser, name = browsers[n], f"lock{uuid.uuid4().hex[:8]}"
        try:
            barrier.wait(30)
            register = browser.request("POST", "/api/v1/auth/register", json_body={
                "username": name, "email": f"{name}@example.com", "password": PASSWORD})
            token = browser.request("POST", "/api/v1/auth/tokens", json_body={
                "login": name, "password": PASSWORD, "name": "lock"})
            bearer = {"Authorization": f"Bearer {json.loads(token[2])['token']}"}
            submit = browser.request("POST", "/api/v1/tasks", headers=bearer, json_body={
                "prompt": "a crowd", "width": 64, "height": 64, "steps": 2})
            answers[n] = [register[0], token[0], submit[0]]
            writers[n] = set(browser.served_by[-3:])
        except Exception as exc:  # recorded, and failed on below
            answers[n] = exc

    threads = [threading.Thread(target=sign_up_and_submit, args=(n,)) for n in range(len(browsers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for browser in browsers:
        browser.close()
    assert answers == [[201, 201, 202]] * len(browsers), answers
    assert set().union(*writers) == web_tier.worker_pids()  # both processes wrote
    assert "database is locked" not in web_tier.log_path.read_text(errors="replace")
