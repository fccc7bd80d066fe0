"""Register, sign in, sign out, and the first-run setup link (pages). The JSON
equivalents live in views/api/accounts.py."""
from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from services import accounts, setup
from services.errors import ServiceError, ValidationError
from services.ratelimit import RateLimited

bp = Blueprint("auth", __name__)


def note_activity() -> None:
    """Before each page: note that the user was here (the API does the same for its
    requests once it has authenticated them, views/api/__init__.py)."""
    if request.endpoint == "static" or request.path.startswith(("/api/", "/socket.io")):
        return
    if current_user.is_authenticated:
        accounts.touch(current_user)


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect to another site after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("studio.index")


def mark_recent_auth() -> None:
    """The password was just entered: staff actions that need a recent sign-in may go."""
    session["auth_at"] = time.time()


def _sign_in(user, remember: bool) -> None:
    session.clear()  # a fresh session: nothing carried over from before sign-in
    accounts.start_session(user)
    login_user(user, remember=remember)
    mark_recent_auth()


@bp.route("/register", methods=["GET", "POST"])
def register():
    if current_user.is_authenticated:
        return redirect(url_for("studio.index"))
    form, errors = {}, {}
    if request.method == "POST":
        form = {"username": request.form.get("username", ""), "email": request.form.get("email", "")}
        try:
            user = accounts.register_user(form["username"], form["email"], request.form.get("password", ""))
        except ValidationError as exc:
            errors = exc.fields
        except ServiceError as exc:
            errors = {exc.field or "_": exc.message.split(": ", 1)[-1]}
        else:
            _sign_in(user, remember=False)
            flash(f"Welcome, {user.username}! You have {user.tokens} tokens to start with.", "success")
            return redirect(url_for("studio.index"))
    return render_template("auth/register.html", form=form, errors=errors), 422 if errors else 200


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = request.values.get("next")
    if current_user.is_authenticated:
        return redirect(_safe_next(next_url))
    form, errors, status, headers = {}, {}, 200, {}
    if request.method == "POST":
        form = {"login": request.form.get("login", "")}
        try:
            user = accounts.authenticate(form["login"], request.form.get("password", ""),
                                         address=request.remote_addr)
        except RateLimited as exc:
            errors, status, headers = {"_": exc.message}, 429, exc.headers
        except ServiceError as exc:
            errors, status = {"_": exc.message}, 401
        else:
            _sign_in(user, remember=bool(request.form.get("remember")))
            return redirect(_safe_next(next_url))
    return (render_template("auth/login.html", form=form, errors=errors, next=next_url or ""),
            status, headers)


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("public.index"))


@bp.route("/setup/<token>", methods=["GET", "POST"])
def first_run(token: str):
    """The one-time link printed at first start: whoever opens it makes the first staff
    account (and is signed in as it)."""
    if not setup.token_valid(token):
        from views.errors import error_response

        return error_response(404, "setup_link_invalid", "This setup link was used already or "
                              "is not valid. On the server, run `flask --app app setup-link` "
                              "for a new one.")
    form, errors = {}, {}
    if request.method == "POST":
        form = {"username": request.form.get("username", ""), "email": request.form.get("email", "")}
        try:
            user = setup.create_first_staff(token, form["username"], form["email"],
                                            request.form.get("password", ""))
        except ValidationError as exc:
            errors = exc.fields
        except ServiceError as exc:
            errors = {exc.field or "_": exc.message}
        else:
            if current_user.is_authenticated:
                logout_user()
            _sign_in(user, remember=False)
            flash(f"Welcome, {user.username}: you are the first staff account.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/setup.html", form=form, errors=errors, token=token), \
        422 if errors else 200
