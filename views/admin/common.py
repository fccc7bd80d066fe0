"""The staff pages' blueprint ("admin", /admin) and what its modules share. Every route
on it is for staff only, checked once, here (as views/api/common.py does for the staff
API): a stranger is sent to sign in (app.py's unauthorized handler: /login?next=), a
signed-in user who is not staff gets 403, for every method, OPTIONS included."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, request
from flask_login import current_user

from extensions import login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def require_staff():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_staff:
        abort(403)
    return None


def offset_arg() -> int:
    """?offset= of a paged table: not a number, or below 0, is 0."""
    return max(0, request.args.get("offset", 0, type=int))


def recent_auth_minutes() -> int:
    """How recent a sign-in the pages' account-changing actions need (views/reauth.py), for their notes."""
    return current_app.config["RECENT_AUTH_SECONDS"] // 60
