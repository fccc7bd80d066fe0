"""The JSON API, /api/v1 (API.md). Thin: parse, call one service, answer.

One module a feature: accounts, generation, images, admin. Each route is documented
in the module's OPENAPI dict (merged by services/openapi.py; a test checks that every
route is there)."""
from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from flask_login import current_user

from extensions import csrf
from services.accounts import touch, user_for_api_token
from services.errors import Forbidden, ServiceError, ValidationError
from services.validation import bool_arg

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC_ENDPOINTS = {"api.register", "api.create_token", "api.openapi"}


class NotSignedIn(ServiceError):
    status = 401
    code = "not_signed_in"


@bp.before_request
def authenticate():
    """Bearer tokens need no CSRF token; cookie-authenticated writes do."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        user = user_for_api_token(header[7:].strip())
        if user is None:
            raise NotSignedIn("The API token is unknown, revoked or its account is deactivated.")
        g._login_user = user  # Flask-Login's current_user for this request only
        g.auth_via = "bearer"
    elif not current_user.is_authenticated:
        if request.endpoint not in PUBLIC_ENDPOINTS:
            raise NotSignedIn("Sign in, or send Authorization: Bearer <api token>.")
    elif request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()  # a browser session: writes carry the X-CSRFToken header
    if current_user.is_authenticated:
        touch(current_user)  # last seen, and the tier's allowance when one is due
    return None


def body() -> dict:
    data = request.get_json(silent=True)
    if data is None:
        if request.get_data(cache=True):
            raise ServiceError("The body is not valid JSON.", code="bad_json")
        return {}
    if not isinstance(data, dict):
        raise ServiceError("Send a JSON object.", code="bad_json")
    return data


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



def staff_only() -> None:
    if not current_user.is_staff:
        raise Forbidden("This is for staff only.")


@bp.get("/openapi.json")
def openapi():
    from services.openapi import document

    return jsonify(document())


# The route modules register themselves on bp.
from views.api import accounts, admin, archives, gallery, generation, images, showcase  # noqa: E402,F401
