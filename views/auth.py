"""Register, sign in, sign out, and the first-run setup link (pages). The JSON
equivalents live in views/api/accounts.py."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import (Blueprint, after_this_request, current_app, flash, g, make_response, redirect,
                   render_template, request, session, url_for)
from flask.sessions import SecureCookieSessionInterface
from flask_login import current_user, login_user, logout_user

from services.accounts import links, signin, sso, users
from services.accounts.first_run import create_first_staff, token_valid
from services.accounts.passwords import MIN_PASSWORD
from services.core import mail
from services.core.errors import Conflict, ServiceError, ValidationError
from services.core.ratelimit import KNOWN_FOR, LimitsUnavailable, RateLimited
from services.moderation import presets
from views.errors import error_response
from views.reauth import mark_recent_auth

bp = Blueprint("auth", __name__)


class SessionCookies(SecureCookieSessionInterface):
    """Flask's signed session cookie, left alone by an API call whose sign-in had ended
    when it arrived (g.signin_ended, set by note_activity). Such a call was sent before
    the browser signed out and answered after: writing its stale session would overwrite
    the one sign-out had just set, and with it the "You are signed out" message."""

    def save_session(self, app, session, response):
        if g.get("signin_ended"):
            return
        super().save_session(app, session, response)


def note_activity() -> None:
    """Before each page: note that the user was here (the API does the same for its
    requests once it has authenticated them, views/api/__init__.py). A remember-me
    cookie that no longer signs anybody in (its sign-in ended) is deleted."""
    if request.endpoint == "static" or request.path.startswith("/socket.io"):
        return
    signed_in_before = "_user_id" in session
    remember_cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
    if request.path.startswith("/api/") and signed_in_before and not current_user.is_authenticated:
        g.signin_ended = True
    if remember_cookie in request.cookies and not current_user.is_authenticated:
        session["_remember"] = "clear"  # Flask-Login deletes the cookie on the way out
    if request.path.startswith("/api/"):
        return
    if current_user.is_authenticated:
        users.touch(current_user)


@bp.app_context_processor
def password_rule() -> dict:
    """The rule for a new password, shown before it is typed (register, reset, first-run
    setup, the account page): the numbers come from services/accounts/passwords.py, the
    code that enforces it."""
    return {"password_rule": f"At least {MIN_PASSWORD} characters, and not a common password "
                             "(nor your username or email).",
            "password_min": MIN_PASSWORD}


# Why the sign-in page was shown: the first part of the path the visitor was sent from.
SIGN_IN_REASONS = {
    "studio": "Sign in to use the studio.",
    "images": "Sign in to see your images.",
    "account": "Sign in to open your account.",
    "classes": "Sign in to open your class.",
    "admin": "Sign in with a staff account to open the staff pages.",
}


def sign_in_reason(next_url: str | None) -> str | None:
    """The line the sign-in page shows when a page sent the visitor there (?next=), or
    None when they came by themselves."""
    if not next_url or safe_next(next_url) != next_url:
        return None
    first = urlsplit(next_url).path.strip("/").split("/", 1)[0]
    return SIGN_IN_REASONS.get(first, "Sign in to open that page.")


def safe_next(target: str | None) -> str:
    """Only local paths: never redirect to another site after sign-in."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("studio.index")


def log_in(user, session_key: str, remember: bool) -> None:
    """Flask-Login's login_user, with the sign-in's own key (signin.open_session) in
    the session: Flask-Login builds the remember-me cookie from session["_user_id"]."""
    login_user(user, remember=remember)
    session["_user_id"] = session_key


def sign_in(user, remember: bool) -> None:
    session.clear()  # a fresh session: nothing carried over from before sign-in
    signin.start_session(user)
    log_in(user, signin.open_session(user, request.user_agent.string), remember)
    mark_recent_auth()
    _remember_device(user)


def _remember_device(user) -> None:
    """This browser becomes a known device of the user (signin.device_cookie_for): its
    next sign-ins to the account pass a lock on a shared address."""
    value = signin.device_cookie_for(user, request.cookies.get(signin.DEVICE_COOKIE))

    @after_this_request
    def set_device_cookie(response):
        response.set_cookie(signin.DEVICE_COOKIE, value, max_age=KNOWN_FOR, httponly=True, samesite="Lax",
                            secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
        return response


def end_this_session() -> None:
    """Sign this browser out: its sign-in ends on the server (copies of its cookies stop
    working), the session is emptied, and the remember-me cookie is deleted.
    logout_user() comes after session.clear(): it leaves the mark that has Flask-Login
    delete the remember-me cookie, which clearing afterwards would wipe."""
    signin.end_session(session.get("_user_id"))
    session.clear()
    logout_user()


@bp.app_context_processor
def registration() -> dict:
    """Who may register (DAYDREAM_REGISTRATION): the register page, the landing page and
    the navigation say so."""
    return {"registration": users.registration_mode()}


def _welcome(user) -> str:
    if user.held_tokens:
        return (f"Welcome, {user.username}! Confirm your email to get your {user.held_tokens} "
                f"starting tokens: we sent a link to {user.email}.")
    return f"Welcome, {user.username}! You have {user.tokens} tokens to start with."


@bp.route("/register", methods=["GET", "POST"])
def register():
    """Registration as DAYDREAM_REGISTRATION allows (services/accounts/users.py): closed
    refuses (403), invite asks for a code, approval ends at "waiting for approval"."""
    if current_user.is_authenticated:
        return redirect(url_for("studio.index"))
    if current_app.config.get("SSO_ONLY") and request.method == "GET":
        return redirect(url_for("auth.login"))  # accounts come from the single sign-on
    form, errors, status, headers = {}, {}, 200, {}
    if request.method == "POST":
        form = {"username": request.form.get("username", ""), "email": request.form.get("email", ""),
                "invite": request.form.get("invite", "")}
        try:
            user = users.register_user(form["username"], form["email"], request.form.get("password", ""),
                                       invite=form["invite"], address=request.remote_addr,
                                       link_base=link_base())
        except ValidationError as exc:
            errors, status = exc.fields, 422
        except ServiceError as exc:
            errors = {exc.field or "_": exc.message.split(": ", 1)[-1]}
            status, headers = (422 if exc.status == 409 else exc.status), exc.headers
        else:
            if user.pending:
                flash(f"Your account {user.username} is made. {users.WAITING_FOR_APPROVAL}"
                      + (f" Meanwhile, confirm your email: we sent a link to {user.email}."
                         if user.held_tokens else ""), "info")
                return redirect(url_for("auth.login"), 303)
            sign_in(user, remember=False)
            flash(_welcome(user), "success")
            return redirect(url_for("studio.index"))
    return render_template("auth/register.html", form=form, errors=errors), status, headers


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = request.values.get("next")
    if current_user.is_authenticated:
        return redirect(safe_next(next_url))
    form, errors, status, headers = {}, {}, 200, {}
    if request.method == "POST":
        form = {"login": request.form.get("login", "")}
        try:
            user = signin.authenticate(form["login"], request.form.get("password", ""),
                                       address=request.remote_addr,
                                       device_cookie=request.cookies.get(signin.DEVICE_COOKIE))
        except (RateLimited, LimitsUnavailable) as exc:
            errors, status, headers = {"_": exc.message}, exc.status, exc.headers
        except ServiceError as exc:
            errors, status = {"_": exc.message}, 401
        else:
            sign_in(user, remember=bool(request.form.get("remember")))
            return redirect(safe_next(next_url))
    return (render_template("auth/login.html", form=form, errors=errors, next=next_url or "",
                            reason=sign_in_reason(next_url), can_reset=mail.configured()),
            status, headers)


# A single sign-on (views/sso.py) keeps its ID token in the session: signing out offers
# the provider's sign-out with it (SSO_END_URL, read once by /auth/sso/signed-out).
SSO_ID_TOKEN = "sso_id_token"
SSO_END_URL = "sso_end_url"


@bp.post("/logout")
def logout():
    provider_sign_out = (sso.end_session_url(session.get(SSO_ID_TOKEN) or None, link_base())
                         if SSO_ID_TOKEN in session else None)
    end_this_session()
    flash("You are signed out.", "info")
    if provider_sign_out:
        session[SSO_END_URL] = provider_sign_out
        return redirect(url_for("sso.signed_out"))
    return redirect(url_for("public.index"))


@bp.route("/setup/<token>", methods=["GET", "POST"])
def first_run(token: str):
    """The one-time link printed at first start: whoever opens it makes the first staff
    account (and is signed in as it), and says whether Daydream is for a school (yes:
    the strict moderation preset)."""
    if not token_valid(token):
        return error_response(404, "setup_link_invalid", "This setup link was used already or "
                              "is not valid. On the server, run `flask --app app setup-link` "
                              "for a new one.")
    form, errors = {"school": "yes" if presets.server_preset() == "strict" else "no"}, {}
    if request.method == "POST":
        form = {"username": request.form.get("username", ""), "email": request.form.get("email", ""),
                "school": request.form.get("school", form["school"])}
        try:
            user = create_first_staff(token, form["username"], form["email"],
                                      request.form.get("password", ""))
        except ValidationError as exc:
            errors = exc.fields
        except ServiceError as exc:
            errors = {exc.field or "_": exc.message}
        else:
            presets.set_at_setup(user, {"yes": True, "no": False}.get(request.form.get("school")))
            if current_user.is_authenticated:
                end_this_session()
            sign_in(user, remember=False)
            flash(f"Welcome, {user.username}: you are the first staff account.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/setup.html", form=form, errors=errors, token=token), \
        422 if errors else 200


# --- one-time links: password reset, forgot password, email confirmation ----------------
# The links carry their secret in the path: their pages are not cached and send no
# Referer. A used, expired or unknown link is a 404 page that says what to do.

def link_base() -> str:
    """The site's address for links that leave it (mail, staff reset links):
    DAYDREAM_PUBLIC_URL, else the address this request came to."""
    return current_app.config.get("PUBLIC_URL") or request.url_root


def _private(response, status: int | None = None):
    response = make_response(response) if status is None else make_response(response, status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _link_gone(code: str, message: str):
    return _private(error_response(404, code, message))


@bp.route("/forgot", methods=["GET", "POST"])
def forgot():
    """"Forgot password?": a reset link by mail (when mail is configured). The answer
    is the same whatever was entered (services/accounts/links.py)."""
    configured = mail.configured()
    form, errors, status, headers = {}, {}, 200, {}
    if request.method == "POST" and configured:
        form = {"login": request.form.get("login", "")}
        if not form["login"].strip():
            errors, status = {"login": "enter the email or username of your account"}, 422
        else:
            try:
                links.request_reset_mail(form["login"], request.remote_addr, link_base())
            except (RateLimited, LimitsUnavailable) as exc:
                errors, status, headers = {"_": exc.message}, exc.status, exc.headers
            else:
                return redirect(url_for("auth.forgot", sent=1), 303)
    sent = configured and request.method == "GET" and request.args.get("sent") == "1"
    return (render_template("auth/forgot.html", configured=configured, sent=sent, form=form,
                            errors=errors), status, headers)


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """Set a new password with a one-time link (from staff, or mailed by /forgot)."""
    link = links.valid_link(token, links.RESET)
    if link is None:
        return _link_gone("reset_link_invalid", links.RESET_LINK_GONE)
    user, errors = link.user, {}
    if request.method == "POST":
        try:
            links.reset_password(token, request.form.get("password", ""))
        except ValidationError as exc:
            errors = exc.fields
        except links.LinkInvalid as exc:
            return _link_gone("reset_link_invalid", exc.message)
        else:
            if current_user.is_authenticated and current_user.id == user.id:
                end_this_session()  # it was signed out with the others
            flash("Your new password is set: sign in with it. Every session of your account "
                  "was signed out and its API tokens were revoked.", "success")
            return redirect(url_for("auth.login"))
    return _private(render_template("auth/reset.html", username=user.username, token=token,
                                    errors=errors), 422 if errors else 200)


@bp.route("/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str):
    """Confirm a new email address: the link was mailed to it (the account page's
    email change, or registration, when mail is configured; a new account's held
    starting tokens are granted then, once). Opening the page changes nothing; its
    button does, so a mail scanner that fetches links confirms nothing."""
    link = links.valid_link(token, links.EMAIL)
    if link is None:
        return _link_gone("email_link_invalid", links.EMAIL_LINK_GONE)
    error, held = None, link.user.held_tokens or 0
    if request.method == "POST":
        try:
            user = links.confirm_email(token)
        except links.LinkInvalid as exc:
            return _link_gone("email_link_invalid", exc.message)
        except Conflict as exc:
            error = exc.message
        else:
            granted = held and not user.held_tokens
            flash(f"Your email {user.email} is confirmed: your {held} starting tokens are yours."
                  if granted else f"Your email is now {user.email}.", "success")
            signed_in = current_user.is_authenticated and current_user.id == user.id
            return redirect(url_for("account.index") + "#settings" if signed_in else url_for("auth.login"))
    return _private(render_template("auth/confirm_email.html", username=link.user.username,
                                    new_email=link.new_email, token=token, error=error, held=held,
                                    first=link.new_email == link.user.email),
                    409 if error else 200)
