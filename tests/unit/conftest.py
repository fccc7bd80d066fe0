"""Unit tests run alone: no Redis, no network, no worker or web server process, no
browser. While a test in this folder runs (its setup, call and teardown, and so the
fixtures it sets up), every socket connect is refused, and so is starting a service
process (a worker, the web server, Redis, Chromium). A refusal raises, and fails the
test even where the code under test swallowed the error, since a service that answers
nothing can look like one that is down, which the app is built to survive. A test that
needs one of these belongs in tests/integration/ (or tests/e2e/ for the browser).

This is a check of the tests in this folder, not a sandbox: the hooks are conftest hooks,
called for the items under this folder only, so the other folders run as before."""
from __future__ import annotations

import os
import socket
import subprocess
import threading
import weakref

import pytest

# Programs no unit test starts: the services and the browser.
SERVICE_PROGRAMS = ("qworker", "qarchiver", "gunicorn", "serve.py", "redis-server", "chromium",
                    "chrome", "playwright")

# The threads of the unit tests (and the threads those start) are watched; threads that
# tests in other folders left running in this process, a mail pool say, are not.
UNIT_THREADS: weakref.WeakSet = weakref.WeakSet()


class UnitIsolationError(RuntimeError):
    """Raised where a unit test reaches for a service. Not an OSError, so that the
    code under test does not take it for a service that is down and carry on."""


class Isolation:
    """What one unit test was refused (kept across its setup, call and teardown)."""

    def __init__(self):
        self.refused: list[str] = []

    def refuse(self, what: str):
        self.refused.append(what)
        raise UnitIsolationError(
            f"a unit test tried to {what}; unit tests use no Redis, network, worker or browser: "
            "move the test to tests/integration/ (or tests/e2e/)")

    def check(self) -> None:
        if self.refused:
            refused, self.refused = self.refused, []
            pytest.fail("refused in a unit test: " + "; ".join(refused) +
                        " (see tests/unit/conftest.py)", pytrace=False)

    def __enter__(self) -> "Isolation":
        isolation = self
        self._saved = (socket.socket.connect, socket.socket.connect_ex, subprocess.Popen.__init__,
                       threading.Thread.start)
        real_connect, real_connect_ex, real_popen_init, real_start = self._saved
        UNIT_THREADS.add(threading.current_thread())

        def mine() -> bool:
            return threading.current_thread() in UNIT_THREADS

        def connect(sock, address):
            if mine():
                isolation.refuse(f"connect a socket to {address!r}")
            return real_connect(sock, address)

        def connect_ex(sock, address):
            if mine():
                isolation.refuse(f"connect a socket to {address!r}")
            return real_connect_ex(sock, address)

        def popen_init(popen, args, *more, **kwargs):
            words = [os.fsdecode(args)] if isinstance(args, (str, bytes, os.PathLike)) else \
                [os.fsdecode(a) if isinstance(a, (str, bytes, os.PathLike)) else str(a) for a in args]
            if mine() and any(name in word for word in words for name in SERVICE_PROGRAMS):
                isolation.refuse(f"start {' '.join(words)!r}")
            real_popen_init(popen, args, *more, **kwargs)

        def start(thread):
            if mine():
                UNIT_THREADS.add(thread)
            return real_start(thread)

        socket.socket.connect = connect
        socket.socket.connect_ex = connect_ex
        subprocess.Popen.__init__ = popen_init
        threading.Thread.start = start
        return self

    def __exit__(self, *exc) -> None:
        (socket.socket.connect, socket.socket.connect_ex, subprocess.Popen.__init__,
         threading.Thread.start) = self._saved


ISOLATION = pytest.StashKey[Isolation]()


def isolated(item):
    if ISOLATION not in item.stash:
        item.stash[ISOLATION] = Isolation()
    return item.stash[ISOLATION]


def guarded(item):
    isolation = isolated(item)
    with isolation:
        try:
            result = yield
        except BaseException:
            isolation.refused.clear()  # the phase failed already, with its own error
            raise
    isolation.check()
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    return (yield from guarded(item))


@pytest.fixture
def isolation(request) -> Isolation:
    """This test's Isolation: tests/unit/test_test_layout.py reads what it refused."""
    return isolated(request.node)


@pytest.fixture
def worker_app(tmp_path, monkeypatch):
    """The worker's claim → done path in this process (tests/unit/helpers.stand_in_worker_app)."""
    from tests.unit.helpers import stand_in_worker_app

    return stand_in_worker_app(tmp_path, monkeypatch)
