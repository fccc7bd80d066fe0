"""The one place that emits Socket.IO events. In the web process the bound SocketIO
server publishes them; the worker (no Socket.IO server of its own) publishes through
a write-only client of the same Redis message queue."""
from __future__ import annotations

from flask import current_app
from flask_socketio import SocketIO

from extensions import socketio


def _emitter() -> SocketIO:
    ext = current_app.extensions
    if "socketio" in ext:  # the web process: socketio.init_app() ran
        return socketio
    if "daydream_emitter" not in ext:
        ext["daydream_emitter"] = SocketIO(message_queue=current_app.config["REDIS_URL"])
    return ext["daydream_emitter"]


def emit_task(room: str, payload: dict) -> None:
    """Send a `task` event (API.md) to one user's room."""
    _emitter().emit("task", payload, to=room)


def emit_queue(payload: dict) -> None:
    _emitter().emit("queue", payload)
