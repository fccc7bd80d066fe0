"""Register, sign in, sign out (pages). The JSON equivalents live in views/api.py."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user

from services import accounts
from services.errors import ServiceError, ValidationError

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect to another site after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("studio.index")


def _sign_in(user, remember: bool) -> None:
    session.clear()  # a fresh session: nothing carried over from before sign-in
    accounts.start_session(user)
    login_user(user, remember=remember)


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
    form, errors = {}, {}
    if request.method == "POST":
        form = {"login": request.form.get("login", "")}
        try:
            user = accounts.authenticate(form["login"], request.form.get("password", ""))
        except ServiceError as exc:
            errors = {"_": exc.message}
        else:
            _sign_in(user, remember=bool(request.form.get("remember")))
            return redirect(_safe_next(next_url))
    return (render_template("auth/login.html", form=form, errors=errors, next=next_url or ""),
            401 if errors else 200)


@bp.post("/logout")
def logout():
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("public.index"))
