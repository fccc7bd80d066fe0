"""Socket.IO: a signed-in browser joins its user's room and its sign-in's room; anyone
else is refused. Ending the sign-in, or deactivating or deleting the account, ends the
connection (services/core/events.py disconnect_after_commit).

Open studio pages are counted per user, so that a user who asked for it has their
unfinished tasks canceled once the last studio page has been gone for a short grace
(a reload reconnects within it)."""
from __future__ import annotations

import errno
import logging
import threading
import time

import sqlalchemy as sa
from flask import current_app, request, session
from flask_login import current_user
from flask_socketio import SocketIO, join_room

from extensions import db
from models import User
from services.accounts.signin import open_session_id
from services.core.events import session_room
from services.core import keys
from services.core.redis_client import connection
from services.generation.tasks import cancel_unfinished

log = logging.getLogger(__name__)
# What a websocket's writer thread meets when the server ends a connection whose socket the
# client (or the server's own close) has already shut: nothing is lost, the connection is gone.
CLOSED_SOCKET_ERRORS = {errno.EBADF, errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN}

# Whose each connection of this process is (sid -> user's public id): a connection ended
# because its sign-in ended has no signed-in user any more when it goes.
_owners: dict[str, str] = {}


def _counter(user_uuid: str) -> str:
    return keys.sockets(user_uuid)


def closed_socket_race(args) -> bool:
    """Is this thread's exception engine.io's writer closing a websocket that was closed
    already (simple_websocket's close sending on a shut socket)? It races the server's own
    disconnect; the connection is over either way."""
    exc = args.exc_value
    if not isinstance(exc, OSError) or exc.errno not in CLOSED_SOCKET_ERRORS:
        return False
    frames = []
    tb = args.exc_traceback
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename.replace("\\", "/"))
        tb = tb.tb_next
    return any(name.endswith("engineio/socket.py") for name in frames)


def quiet_closed_socket_races() -> None:
    """Log closed_socket_race() in one line instead of a thread's traceback (once a process)."""
    previous = threading.excepthook
    if getattr(previous, "daydream_quiet", False):
        return

    def hook(args):
        if closed_socket_race(args):
            log.debug("websocket already closed when its writer ended it: %s", args.exc_value)
            return
        previous(args)

    hook.daydream_quiet = True
    threading.excepthook = hook


def register(socketio: SocketIO) -> None:
    quiet_closed_socket_races()

    @socketio.on("connect")
    def connect(auth=None):
        if not current_user.is_authenticated:
            return False  # refuses the connection
        session_id = open_session_id(session.get("_user_id"))
        if session_id is None:
            return False
        join_room(current_user.room)
        join_room(session_room(session_id))
        _owners[request.sid] = current_user.uuid
        conn = connection()
        conn.incr(_counter(current_user.uuid))
        conn.expire(_counter(current_user.uuid), 24 * 3600)
        return True

    @socketio.on("disconnect")
    def disconnect(*_args):
        user_uuid = _owners.pop(request.sid, None)
        if user_uuid is None:
            return
        connection().decr(_counter(user_uuid))
        # From the database, not current_user: the sign-in may have just ended.
        if db.session.scalar(sa.select(User.cancel_on_leave).where(User.uuid == user_uuid)):
            socketio.start_background_task(_cancel_if_gone, current_app._get_current_object(), user_uuid)


def _cancel_if_gone(app, user_uuid: str) -> None:
    with app.app_context():
        time.sleep(app.config["CANCEL_ON_LEAVE_GRACE"])
        if int(connection().get(_counter(user_uuid)) or 0) > 0:
            return  # a studio page is open again
        user = db.session.scalar(sa.select(User).where(User.uuid == user_uuid))
        if user is not None and user.cancel_on_leave:
            cancel_unfinished(user)
        db.session.remove()
