"""Socket.IO: a signed-in browser joins its user's room; anyone else is refused."""
from __future__ import annotations

from flask_login import current_user
from flask_socketio import SocketIO, join_room


def register(socketio: SocketIO) -> None:
    @socketio.on("connect")
    def connect(auth=None):
        if not current_user.is_authenticated:
            return False  # refuses the connection
        join_room(current_user.room)
        return True
