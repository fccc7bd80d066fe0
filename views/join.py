"""Joining a class (/join, /join/<code>): the code or link a teacher shared. A signed-in
user joins with one click; someone without an account picks a username and password
here, whatever DAYDREAM_REGISTRATION says (services/accounts/join_codes.py). A code that
expired, was withdrawn or is used up is refused, saying which."""
from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from services.accounts import join_codes
from services.core.errors import NotFound, ServiceError, ValidationError
from views import auth

bp = Blueprint("join", __name__)


@bp.get("/join")
def enter_code():
    """Type a code (the form sends it here as ?code=, then on to its link)."""
    code = join_codes.normalize(request.args.get("code", ""))
    if code:
        return redirect(url_for("join.join", code=code))
    return render_template("classes/join.html", school_class=None, code="", form={}, errors={})


def _refused(exc: ServiceError):
    return render_template("classes/join.html", school_class=None, code="", form={}, errors={},
                           refused=exc.message), exc.status


@bp.route("/join/<code>", methods=["GET", "POST"])
def join(code: str):
    try:
        _row, school_class = join_codes.find(code)
    except (NotFound, join_codes.CodeGone) as exc:
        return _refused(exc)
    form, errors, status, headers = {}, {}, 200, {}
    if request.method == "POST":
        try:
            if current_user.is_authenticated:
                school_class, joined = join_codes.join(current_user._get_current_object(), code)
                flash(f"You joined {school_class.name}." if joined else f"You are in {school_class.name} already.",
                      "success" if joined else "info")
                return redirect(url_for("classes.page", class_id=school_class.id), 303)
            form = {"username": request.form.get("username", ""), "email": request.form.get("email", "")}
            user, school_class = join_codes.join_new_account(
                code, form["username"], request.form.get("password", ""), form["email"], address=request.remote_addr)
        except (NotFound, join_codes.CodeGone) as exc:
            return _refused(exc)
        except ValidationError as exc:
            errors, status = exc.fields, 422
        except ServiceError as exc:
            errors = {exc.field or "_": exc.message.split(": ", 1)[-1] if exc.field else exc.message}
            status, headers = (422 if exc.status == 409 else exc.status), exc.headers
        else:
            auth.sign_in(user, remember=False)
            flash(f"Welcome, {user.username}! You are in {school_class.name}.", "success")
            return redirect(url_for("classes.page", class_id=school_class.id), 303)
    return render_template("classes/join.html", school_class=school_class, code=join_codes.normalize(code),
                           form=form, errors=errors), status, headers
