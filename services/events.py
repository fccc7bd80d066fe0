"""The one place that emits Socket.IO events. In the web process the bound SocketIO
server publishes them; the worker (no Socket.IO server of its own) publishes through
a write-only client of the same Redis message queue."""
from __future__ import annotations

import socketio as socketio_lib
from flask import current_app

from extensions import socketio

CHANNEL = "flask-socketio"


def client_manager(redis_url: str, *, write_only: bool = False) -> socketio_lib.RedisManager:
    """Socket.IO over Redis pub/sub. Built here rather than from a message_queue URL
    because Flask-SocketIO only recognises redis:// URLs, and the embedded Redis
    listens on a unix:// socket."""
    return socketio_lib.RedisManager(redis_url, channel=CHANNEL, write_only=write_only)


def _emit(event: str, payload: dict, room: str | None) -> None:
    ext = current_app.extensions
    if "socketio" in ext:  # the web process: socketio.init_app() ran
        socketio.emit(event, payload, to=room)
        return
    if "daydream_emitter" not in ext:
        ext["daydream_emitter"] = client_manager(current_app.config["REDIS_URL"], write_only=True)
    ext["daydream_emitter"].emit(event, payload, namespace="/", room=room)


def emit_task(room: str, payload: dict) -> None:
    """Send a `task` event (API.md) to one user's room."""
    _emit("task", payload, room)


def emit_queue(payload: dict) -> None:
    _emit("queue", payload, None)


def emit_archive(room: str, payload: dict) -> None:
    """Send an `archive` event (an archive's state and progress, API.md) to one user's room."""
    _emit("archive", payload, room)
