"""What both compatibility APIs share: authentication by API token alone, and
watching the client's connection while a request is held."""
from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable

from flask import g, request

from models import User
from services.accounts.signin import user_for_api_token
from services.accounts.users import touch
from services.core.errors import ServiceError

CHALLENGE = 'Bearer realm="Daydream", Basic realm="Daydream", charset="UTF-8"'


class NotSignedIn(ServiceError):
    status = 401
    code = "not_signed_in"


def authenticate() -> User:
    """The caller by `Authorization: Bearer <api token>`, or HTTP Basic
    `username:<api token>` (the name must be the token's account, or empty).
    Cookies are not looked at: these routes take no CSRF token."""
    header = request.headers.get("Authorization", "")
    secret, username = None, None
    if header[:7].lower() == "bearer ":
        secret = header[7:].strip()
    elif header[:6].lower() == "basic ":
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            username, secret = auth.username, auth.password
    if not secret:
        raise NotSignedIn("Send your Daydream API token: Authorization: Bearer <token>, "
                          "or HTTP Basic with your username and the token as the password.",
                          headers={"WWW-Authenticate": CHALLENGE})
    user = user_for_api_token(secret)
    if user is None or (username and username.strip().lower() not in (user.username.lower(), user.email.lower())):
        raise NotSignedIn("The API token is unknown, revoked or its account is deactivated "
                          "(with HTTP Basic, the user name must be the token's account).",
                          headers={"WWW-Authenticate": CHALLENGE})
    g._login_user = user  # Flask-Login's current_user for this request only
    g.auth_via = "bearer"
    touch(user)
    return user


def client_watch() -> Callable[[float], bool]:
    """pause(seconds): wait up to that long; True when the client closed its connection.
    Reads the request's socket (gunicorn puts it in the environ) for EOF without
    consuming anything; without one (the test client) it only sleeps."""
    sock = request.environ.get("gunicorn.socket")
    if not isinstance(sock, socket.socket):
        return lambda seconds: bool(time.sleep(seconds))
    watching = {"on": True}

    def pause(seconds: float) -> bool:
        if not watching["on"]:
            time.sleep(seconds)
            return False
        try:
            readable, _, _ = select.select([sock], [], [], seconds)
        except (OSError, ValueError):
            return True  # the socket is closed already
        if not readable:
            return False
        try:
            data = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return False
        except (ConnectionError, OSError):
            return True
        except (ValueError, TypeError):  # a TLS socket: cannot peek; stop watching
            watching["on"] = False
            return False
        if data == b"":
            return True
        watching["on"] = False  # the client sent more (a pipelined request): it is still there
        return False

    return pause

