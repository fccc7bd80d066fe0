"""The one place that emits Socket.IO events. In the web process the bound SocketIO
server publishes them; the worker (no Socket.IO server of its own) publishes through
a write-only client of the same Redis message queue.

It also ends connections: when a sign-in ends (sign-out, sign out everywhere, a
password change) or an account is deactivated or deleted, disconnect_after_commit()
names the rooms whose connections must go, and once the change is committed every web
process disconnects its own members of them (an internal message on the same queue)."""
from __future__ import annotations

import redis
import socketio as socketio_lib
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from extensions import db, socketio
from services.core import keys

CHANNEL = keys.SOCKETIO_CHANNEL
# Published like an event to the rooms to empty; every web process's manager handles it
# itself (RedisManager._handle_emit) and no client ever receives it.
DISCONNECT_EVENT = "daydream:disconnect"
_PENDING = "daydream.disconnect_rooms"


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

    def _handle_emit(self, message):
        """An event from this process or another: the internal disconnect message ends
        this process's connections in its rooms; everything else is sent on as usual."""
        if message.get("event") == DISCONNECT_EVENT:
            rooms, namespace = message.get("room"), message.get("namespace") or "/"
            if message.get("host_id") == self.host_id and self.server is not None:
                # Sent by this process, from inside a database commit: a disconnect handler
                # must not run in that thread (its database session is mid-commit).
                self.server.start_background_task(self._disconnect_members, rooms, namespace)
            else:  # from the queue: in order with the events that follow it
                self._disconnect_members(rooms, namespace)
            return
        super()._handle_emit(message)

    def _disconnect_members(self, rooms, namespace: str) -> None:
        if self.server is None or not rooms:  # a write-only client holds no connections
            return
        for sid, _eio_sid in list(self.get_participants(namespace, rooms)):
            try:
                self.server.disconnect(sid, namespace=namespace, ignore_queue=True)
            except Exception:  # one connection's trouble must not keep the others open
                self._get_logger().exception("could not disconnect %s", sid)


def client_manager(redis_url: str, *, write_only: bool = False,
                   publish_timeout: float = 2.0) -> RedisManager:
    """Socket.IO over Redis pub/sub. Built here rather than from a message_queue URL
    because Flask-SocketIO only recognises redis:// URLs, and the embedded Redis
    listens on a unix:// socket."""
    return RedisManager(redis_url, channel=CHANNEL, write_only=write_only,
                        publish_timeout=publish_timeout)


def _emit(event: str, payload: dict, room: str | list[str] | None) -> None:
    ext = current_app.extensions
    if "socketio" in ext:  # the web process: socketio.init_app() ran
        socketio.emit(event, payload, to=room)
        return
    if "daydream_emitter" not in ext:
        ext["daydream_emitter"] = client_manager(current_app.config["REDIS_URL"], write_only=True,
                                                   publish_timeout=current_app.config["REDIS_TIMEOUT"])
    ext["daydream_emitter"].emit(event, payload, namespace="/", room=room)


def session_room(session_id: str) -> str:
    """The room of one sign-in's connections (UserSession.id); each connection is in its
    user's room (User.room) too."""
    return f"session:{session_id}"


def disconnect_rooms(rooms) -> None:
    """Disconnect every Socket.IO connection in these rooms, in every web process."""
    rooms = sorted(set(rooms))
    if rooms:
        _emit(DISCONNECT_EVENT, {}, rooms)


def disconnect_after_commit(rooms) -> None:
    """Disconnect the connections in these rooms once the current database transaction
    commits (nothing if it rolls back): a connection refused afterwards must find the
    change already in the database, or a quick reconnect would be let in again."""
    db.session.info.setdefault(_PENDING, set()).update(rooms)


@sa_event.listens_for(Session, "after_commit")
def _disconnect_committed(session) -> None:
    rooms = session.info.pop(_PENDING, None)
    if rooms:
        disconnect_rooms(rooms)


@sa_event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session) -> None:
    session.info.pop(_PENDING, None)


def emit_task(room: str, payload: dict) -> None:
    """Send a `task` event (API.md) to one user's room."""
    _emit("task", payload, room)


def emit_queue(payload: dict) -> None:
    _emit("queue", payload, None)


def emit_archive(room: str, payload: dict) -> None:
    """Send an `archive` event (an archive's state and progress, API.md) to one user's room."""
    _emit("archive", payload, room)


def emit_model_job(rooms: list[str], payload: dict) -> None:
    """Send a `model_job` event (a model install, convert or merge: its state and progress,
    API.md) to these rooms (the staff's own rooms)."""
    if rooms:
        _emit("model_job", payload, rooms)
