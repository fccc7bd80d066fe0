"""What every route of the JSON API shares: the blueprints, authentication, and the
helpers that parse a request (body, paging, flags) and answer a listing.

- `bp` ("api", /api/v1): every route needs a signed-in user (a session, or a bearer
  API token) unless it is marked @public where it is defined.
- `staff_bp` ("api.admin", nested in bp, so under /api/v1 too): every route is for
  staff only (401 for strangers, 403 for everyone else), checked once, here.

Bearer tokens need no CSRF token; cookie-authenticated writes do (the same for both
blueprints: the app exempts them from Flask-WTF's own check)."""
from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request
from flask_login import current_user

from extensions import csrf
from services.accounts.signin import user_for_api_token
from services.accounts.users import touch
from services.core.args import bool_arg
from services.core.errors import Forbidden, ServiceError, ValidationError

bp = Blueprint("api", __name__, url_prefix="/api/v1")
staff_bp = Blueprint("admin", __name__)
bp.register_blueprint(staff_bp)


class NotSignedIn(ServiceError):
    status = 401
    code = "not_signed_in"


def public(view):
    """Mark an API route as open to visitors who are not signed in."""
    view.public = True
    return view


def _is_public() -> bool:
    return bool(getattr(current_app.view_functions.get(request.endpoint), "public", False))


@bp.before_request
def authenticate():
    """Bearer tokens need no CSRF token; cookie-authenticated writes do. Runs before
    the staff check of staff_bp (a parent blueprint's hooks run first)."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        user = user_for_api_token(header[7:].strip())
        if user is None:
            raise NotSignedIn("The API token is unknown, revoked or its account is deactivated.")
        g._login_user = user  # Flask-Login's current_user for this request only
        g.auth_via = "bearer"
    elif not current_user.is_authenticated:
        if not _is_public():
            raise NotSignedIn("Sign in, or send Authorization: Bearer <api token>.")
    elif request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()  # a browser session: writes carry the X-CSRFToken header
    if current_user.is_authenticated:
        touch(current_user)  # last seen, and the tier's allowance when one is due
    return None


@staff_bp.before_request
def require_staff():
    if not current_user.is_authenticated:
        raise NotSignedIn("Sign in, or send Authorization: Bearer <api token>.")
    if not current_user.is_staff:
        raise Forbidden("This is for staff only.")


def body() -> dict:
    """The request's JSON object (app.py's Request.json_object, the one body parser)."""
    return request.json_object()


def paging() -> tuple[int, int]:
    values = {}
    for name, default, high in (("offset", 0, 10**9), ("limit", 50, 200)):
        raw = request.args.get(name, default)
        try:
            values[name] = int(raw)
        except (TypeError, ValueError):
            raise ValidationError(name, "must be a whole number")
        if not (0 if name == "offset" else 1) <= values[name] <= high:
            raise ValidationError(name, f"must be between {0 if name == 'offset' else 1} and {high}")
    return values["offset"], values["limit"]


def flag(name: str) -> bool:
    """A true/false query argument (absent: false); anything else is a 422."""
    raw = request.args.get(name)
    return False if raw is None else bool_arg(name, raw)


def listing(items: list, total: int, offset: int, limit: int):
    return jsonify({"items": items, "total": total, "offset": offset, "limit": limit})
