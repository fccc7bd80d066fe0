"""The one place that emits Socket.IO events. In the web process the bound SocketIO
server publishes them; the worker (no Socket.IO server of its own) publishes through
a write-only client of the same Redis message queue."""
from __future__ import annotations

import redis
import socketio as socketio_lib
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry

from extensions import socketio

CHANNEL = "flask-socketio"


class RedisManager(socketio_lib.RedisManager):
    """Socket.IO over Redis pub/sub that publishes with a timeout and no retry loop, so a
    hung Redis cannot hold a web thread or a worker's step; it listens without one (a
    quiet channel is not an error)."""

    def __init__(self, url: str, *, publish_timeout: float, **kwargs):
        super().__init__(url, **kwargs)
        self.publish_timeout = publish_timeout
        self._publisher = None

    def _publish(self, data):
        try:
            if self._publisher is None:
                self._publisher = redis.Redis.from_url(
                    self.redis_url, socket_timeout=self.publish_timeout,
                    socket_connect_timeout=self.publish_timeout, retry=Retry(NoBackoff(), 0))
            return self._publisher.publish(self.channel, self.json.dumps(data))
        except (redis.RedisError, OSError) as exc:
            self._get_logger().warning("could not publish a Socket.IO event: %s", exc)
            return None


def client_manager(redis_url: str, *, write_only: bool = False,
                   publish_timeout: float = 2.0) -> RedisManager:
    """Socket.IO over Redis pub/sub. Built here rather than from a message_queue URL
    because Flask-SocketIO only recognises redis:// URLs, and the embedded Redis
    listens on a unix:// socket."""
    return RedisManager(redis_url, channel=CHANNEL, write_only=write_only,
                        publish_timeout=publish_timeout)


def _emit(event: str, payload: dict, room: str | None) -> None:
    ext = current_app.extensions
    if "socketio" in ext:  # the web process: socketio.init_app() ran
        socketio.emit(event, payload, to=room)
        return
    if "daydream_emitter" not in ext:
        ext["daydream_emitter"] = client_manager(current_app.config["REDIS_URL"], write_only=True,
                                                   publish_timeout=current_app.config["REDIS_TIMEOUT"])
    ext["daydream_emitter"].emit(event, payload, namespace="/", room=room)


def emit_task(room: str, payload: dict) -> None:
    """Send a `task` event (API.md) to one user's room."""
    _emit("task", payload, room)


def emit_queue(payload: dict) -> None:
    _emit("queue", payload, None)


def emit_archive(room: str, payload: dict) -> None:
    """Send an `archive` event (an archive's state and progress, API.md) to one user's room."""
    _emit("archive", payload, room)
