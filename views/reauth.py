"""Recent sign-in: staff actions that change an account or mint tokens need the
password entered within RECENT_AUTH_SECONDS when they come from a browser session
(signing in counts; so does POST /api/v1/auth/reauth). An API token is a credential
of its own and is not asked again. Every check of it is here."""
from __future__ import annotations

import time

from flask import current_app, g, session

from services.core.errors import ServiceError


class ReauthRequired(ServiceError):
    status = 403
    code = "reauth_required"


def mark_recent_auth() -> None:
    """The password was just entered: staff actions that need a recent sign-in may go."""
    session["auth_at"] = time.time()


def recent_auth_ok(auth_at: float | None, window_s: int, now: float | None = None) -> bool:
    return bool(auth_at) and (now or time.time()) - float(auth_at) <= window_s


def require_recent_sign_in() -> None:
    """ReauthRequired (403) unless this request comes with an API token or from a
    browser session whose password was entered recently enough."""
    if getattr(g, "auth_via", None) == "bearer":
        return
    window_s = current_app.config["RECENT_AUTH_SECONDS"]
    if not recent_auth_ok(session.get("auth_at"), window_s):
        minutes = max(1, window_s // 60)
        raise ReauthRequired(f"Enter your password again: this needs a sign-in from the last "
                             f"{minutes} minutes.")


def require_for_new_token(user) -> None:
    """A staff account minting an API token for itself must not side-step the rule."""
    if user.is_staff:
        require_recent_sign_in()
