"""Single sign-on pages (services/accounts/sso.py): /auth/sso/start sends the browser to
the provider, /auth/sso/callback signs in with its answer (a sign-in like a password's:
views/auth.py sign_in), and /auth/sso/signed-out offers the provider's own sign-out
after a sign-out here."""
from __future__ import annotations

import secrets
import time

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user

from services.accounts import sso
from services.core.errors import ServiceError
from views.auth import SSO_END_URL, SSO_ID_TOKEN, end_this_session, safe_next, sign_in
from views.errors import error_response

bp = Blueprint("sso", __name__, url_prefix="/auth/sso")

PENDING = "sso_pending"  # the session's sign-ins on their way through the provider
PENDING_KEPT = 3  # a few tabs may start one at once
ID_TOKEN_KEPT = 2500  # longer ID tokens are not kept in the session cookie (no hint at sign-out then)


@bp.app_context_processor
def single_sign_on() -> dict:
    """The sign-in page's "Sign in with <name>" (None: no provider) and whether
    passwords are off for all but break-glass staff."""
    return {"sso_name": sso.provider_name() if sso.configured() else None,
            "sso_only": bool(current_app.config.get("SSO_ONLY"))}


def callback_url() -> str:
    """The redirect URI registered at the provider: DAYDREAM_PUBLIC_URL's, else this
    request's address."""
    base = current_app.config.get("PUBLIC_URL")
    path = url_for("sso.callback")
    return base.rstrip("/") + path if base else url_for("sso.callback", _external=True)


def _take_pending(state) -> dict | None:
    """The pending sign-in of this state, removed from the session (each is used once)."""
    kept = session.get(PENDING) or []
    found = next((p for p in kept if isinstance(state, str)
                  and secrets.compare_digest(str(p.get("state", "")).encode(), state.encode())), None)
    if found is not None:
        session[PENDING] = [p for p in kept if p is not found]
    return found


def _problem(exc: ServiceError):
    return render_template("auth/sso_problem.html", message=exc.message, code=exc.code), exc.status


@bp.get("/start")
def start():
    if not sso.configured():
        return error_response(404, "not_found", "Single sign-on is not set up on this server.")
    next_url = request.args.get("next")
    try:
        url, pending = sso.start(callback_url(), safe_next(next_url) if next_url else None)
    except ServiceError as exc:
        return _problem(exc)
    fresh = [p for p in session.get(PENDING) or [] if time.time() - p.get("at", 0) < sso.PENDING_TTL]
    session[PENDING] = fresh[-(PENDING_KEPT - 1):] + [pending]
    return redirect(url)


@bp.get("/callback")
def callback():
    if not sso.configured():
        return error_response(404, "not_found", "Single sign-on is not set up on this server.")
    answer = request.args.to_dict()
    try:
        signed = sso.finish(_take_pending(answer.get("state")), answer, callback_url())
    except ServiceError as exc:
        return _problem(exc)
    if current_user.is_authenticated:  # signing in again (a recent sign-in for staff actions)
        end_this_session()
    sign_in(signed.user, remember=False)
    session[SSO_ID_TOKEN] = signed.id_token if len(signed.id_token) <= ID_TOKEN_KEPT else ""
    return redirect(safe_next(signed.next_url))


@bp.get("/signed-out")
def signed_out():
    """After signing out of a single sign-on: the provider's sign-out, offered (one
    visit: the link is taken from the session)."""
    end_url = session.pop(SSO_END_URL, None)
    if not end_url:
        return redirect(url_for("public.index"))
    return render_template("auth/sso_signed_out.html", end_url=end_url)
