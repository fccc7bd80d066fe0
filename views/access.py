"""Who may open a page, checked once at each page blueprint (as views/api/common.py
does for the JSON API) rather than by a decorator on every route.

- `require_sign_in`: the studio, gallery and account blueprints register it with
  `bp.before_request(require_sign_in)`. A visitor who is not signed in gets app.py's
  unauthorized handler: sent to /login?next=<this path and query> (a path that wants
  JSON, views/errors.py's wants_json, would be answered 401 not_signed_in). OPTIONS
  passes, as with Flask-Login's login_required (it runs no view, it lists the methods).
- The staff pages (views/admin/common.py) have a stricter check of their own.
- The public pages (views/public.py, views/auth.py) register none."""
from __future__ import annotations

from flask import request
from flask_login import current_user
from flask_login.config import EXEMPT_METHODS

from extensions import login_manager


def require_sign_in():
    """A before_request hook: None lets the request through; otherwise the answer."""
    if request.method in EXEMPT_METHODS or current_user.is_authenticated:
        return None
    return login_manager.unauthorized()
