"""A websocket's writer thread in engine.io closing a socket the server's disconnect (or
the client) already shut raises OSError in that thread; the web server logs it in one
line instead of a thread's traceback (views/sockets.quiet_closed_socket_races). Any other
exception in a thread still reaches the previous hook."""
from __future__ import annotations

import errno
import threading

import pytest

from views import sockets


def raiser(filename: str, exc: BaseException):
    """A function whose code claims to live in `filename` and raises `exc`."""
    namespace: dict = {}
    exec(compile("def writer(exc):\n    raise exc\n", filename, "exec"), namespace)
    return lambda: namespace["writer"](exc)


def run_in_thread(target) -> None:
    thread = threading.Thread(target=target, name="writer")
    thread.start()
    thread.join()


@pytest.fixture
def seen(monkeypatch):
    caught = []
    monkeypatch.setattr(threading, "excepthook", lambda args: caught.append(args.exc_value))
    sockets.quiet_closed_socket_races()
    return caught


def test_the_writers_closed_socket_race_is_quiet(seen):
    run_in_thread(raiser("/venv/site-packages/engineio/socket.py", OSError(errno.EBADF, "Bad file descriptor")))
    assert seen == []


@pytest.mark.parametrize("filename, exc", [
    ("/venv/site-packages/engineio/socket.py", ValueError("something else")),
    ("/venv/site-packages/engineio/socket.py", OSError(errno.ENOSPC, "No space left on device")),
    ("/srv/daydream/services/other.py", OSError(errno.EBADF, "Bad file descriptor")),
])
def test_other_thread_errors_still_reach_the_previous_hook(seen, filename, exc):
    run_in_thread(raiser(filename, exc))
    assert seen == [exc]


def test_it_is_installed_once(seen):
    hook = threading.excepthook
    sockets.quiet_closed_socket_races()
    assert threading.excepthook is hook
