"""Users: registration (open, by invite, with approval, or closed), the profile a user
may change, the password change, deletion (with everything the account owns), the
last-staff rule, and `flask create-staff`."""
from __future__ import annotations

import re
import unicodedata
from datetime import timedelta

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import ApiToken, Archive, Image, Ledger, Role, Task, User, UserSession, utcnow
from services.accounts import credits, links, names, signin, vouchers
from services.accounts.passwords import check_password, hash_password, password_problem
from services.core import audit, events, mail, ratelimit
from services.core.errors import Conflict, Forbidden, ValidationError
from services.generation import tasks
from services.library import archives, storage

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,40}$")
MOBILE_RE = re.compile(r"^\+?[0-9][0-9 ()./-]{5,30}$")


def _clean_registration(username, email, password) -> tuple[str, str, str]:
    errors = {}
    # NFKC: a full-width or otherwise compatible spelling is the plain name.
    username = unicodedata.normalize("NFKC", username.strip()) if isinstance(username, str) else ""
    email = email.strip() if isinstance(email, str) else ""
    if not USERNAME_RE.match(username):
        errors["username"] = "use 3 to 40 letters, digits, dots, dashes or underscores"
    try:
        email = validate_email(email, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        errors["email"] = str(exc)
    problem = password_problem(password, username, email)
    if problem:
        errors["password"] = problem
    if errors:
        field = next(iter(errors))
        raise ValidationError(field, errors[field], fields=errors)
    return username, email, password


REGISTRATION_CLOSED = "Registration is closed on this server; ask staff for an account."
WAITING_FOR_APPROVAL = signin.WAITING_FOR_APPROVAL


def registration_mode() -> str:
    """DAYDREAM_REGISTRATION: open, invite, approval or closed (config.py); closed under
    DAYDREAM_SSO_ONLY (accounts are made by signing in with the provider, sso.py)."""
    if current_app.config.get("SSO_ONLY"):
        return "closed"
    return current_app.config.get("REGISTRATION") or "open"


def register_user(username, email, password, *, invite=None, address: str | None = None,
                  link_base: str | None = None, role: str = "user") -> User:
    """A new account, as DAYDREAM_REGISTRATION allows: "closed" refuses (Forbidden);
    "invite" needs an unredeemed voucher code (`invite`), redeemed into the account;
    "approval" makes the account pending: inactive until staff approve it (approve_user).

    Each registration that passes the form's checks counts against its address's and
    network's limits (RateLimited, 429; LimitsUnavailable, 503), wrong invite codes too.
    With mail configured and link_base (the site's address), the starting tokens (if
    any) are held until the email is confirmed by the link mailed to it
    (links.confirm_email)."""
    mode = registration_mode()
    if mode == "closed":
        raise Forbidden(REGISTRATION_CLOSED, code="registration_closed")
    username, email, password = _clean_registration(username, email, password)
    code = None
    if mode == "invite":
        code = vouchers.normalize(invite)
        if not code:
            raise ValidationError("invite", "enter the invite code staff gave you, like "
                                            "DD-ABCD-EFGH-JKLM-NPQR")
    # Compared case folded and NFKC (services/accounts/names.py): "Bob" and "BOB" are one name.
    for field, taken in (("username", names.find_by_username(username)), ("email", names.find_by_email(email))):
        if taken is not None:
            raise Conflict(f"{field}: that {field} is already registered; sign in instead.",
                           code="already_registered", field=field)
    ratelimit.take(ratelimit.register_rules(address), "Registration")
    starting = max(0, int(current_app.config["STARTING_TOKENS"]))
    confirm = starting > 0 and link_base is not None and mail.configured()
    pending = mode == "approval"
    user = User(username=username, email=email, password_hash=hash_password(password), role=role,
                tokens=0, tier=current_app.config.get("DEFAULT_TIER") or "free",
                active=not pending, pending=pending, held_tokens=starting if confirm else 0)
    secret = None
    try:
        db.session.add(user)
        db.session.flush()
        if code:
            vouchers.redeem_invite(user, code)
        if confirm:
            secret = links.start_registration_confirmation(user)
        else:
            credits.grant_starting_tokens(user, starting)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("That username or email is already registered; sign in instead.",
                       code="already_registered")
    except ValidationError:
        db.session.rollback()
        raise
    if secret:
        links.send_registration_confirmation(user, secret, link_base)
    return user


def approve_user(staff: User, user: User, reason: str = "") -> User:
    """Staff let in an account registered under approval: it becomes active and can sign
    in. Claimed with a conditional update (two staff at once approve it once)."""
    claim = (sa.update(User).where(User.id == user.id, User.pending.is_(True))
             .values(pending=False, active=True).execution_options(synchronize_session=False))
    if db.session.execute(claim).rowcount != 1:
        db.session.rollback()
        raise Conflict(f"{user.username} is not waiting for approval.", code="not_pending")
    audit.record("users.approve", target=user, reason=reason, actor=staff)
    db.session.commit()
    db.session.refresh(user)
    return user


def create_staff(username: str, email: str, password: str) -> User:
    """For `flask create-staff`: registration rules apply, registration need not be open."""
    username, email, password = _clean_registration(username, email, password)
    if names.find_by_username(username) or names.find_by_email(email):
        raise Conflict("That username or email is already registered.", code="already_registered")
    user = User(username=username, email=email, password_hash=hash_password(password), role="staff",
                tokens=0)
    db.session.add(user)
    db.session.flush()
    credits.grant_starting_tokens(user, current_app.config["STARTING_TOKENS"])
    db.session.commit()
    return user


def _clean_profile(user: User, data: dict) -> dict:
    changes, errors = {}, {}
    for name, limit in (("first_name", 80), ("last_name", 80)):
        if name in data:
            value = data[name]
            if value is None:
                value = ""
            if not isinstance(value, str):
                errors[name] = "must be text"
            elif len(value.strip()) > limit:
                errors[name] = f"use at most {limit} characters"
            elif any(ord(ch) < 32 for ch in value):
                errors[name] = "must not contain control characters"
            else:
                changes[name] = value.strip()
    if "mobile" in data:
        value = data["mobile"] if data["mobile"] is not None else ""
        if not isinstance(value, str):
            errors["mobile"] = "must be text"
        elif value.strip() and not MOBILE_RE.match(value.strip()):
            errors["mobile"] = "use digits, spaces and an optional leading +, like +44 20 7946 0958"
        else:
            changes["mobile"] = value.strip()
    if "email" in data:
        try:
            if not isinstance(data["email"], str):
                raise EmailNotValidError("must be text")
            email = validate_email(data["email"].strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            errors["email"] = str(exc)
        else:
            if names.find_by_email(email, other_than=user.id) is not None:
                errors["email"] = "that email is already used by another account"
            else:
                changes["email"] = email
    if errors:
        field = next(iter(errors))
        raise ValidationError(field, errors[field], fields=errors)
    return changes


def update_profile(user: User, data: dict, *, link_base: str | None = None) -> User:
    """What a user may change about themselves: email, names, mobile, studio settings.
    With link_base (the site's address) and mail configured, a new email address is
    not changed here: a confirmation link goes to it (services/accounts/links.py) and
    the email changes when it is followed."""
    changes = _clean_profile(user, data)
    confirm = None
    if "email" in changes and link_base is not None and mail.configured():
        new_email = changes.pop("email")
        if names.same(new_email, user.email) and user.held_tokens:
            # a new account not confirmed yet: its address again mails a fresh link
            confirm = new_email, links.start_email_change(user, new_email)
        elif names.same(new_email, user.email):
            links.void_links(user, "email")  # back to the current one: nothing pending
            changes["email"] = new_email
        else:
            confirm = new_email, links.start_email_change(user, new_email)
    settings = data.get("settings", {})
    if not isinstance(settings, dict):
        raise ValidationError("settings", "must be an object")
    for name in ("cancel_on_leave", "previews"):
        if name in settings:
            if not isinstance(settings[name], bool):
                raise ValidationError(f"settings.{name}", "must be true or false")
            setattr(user, name, settings[name])
    unknown = set(settings) - {"cancel_on_leave", "previews"}
    if unknown:
        raise ValidationError(f"settings.{sorted(unknown)[0]}", "is not a setting")
    for name, value in changes.items():
        setattr(user, name, value)
    try:
        db.session.commit()
    except IntegrityError:  # the same email, registered a moment ago
        db.session.rollback()
        raise ValidationError("email", "that email is already used by another account")
    if confirm:
        links.send_email_confirmation(user, confirm[0], confirm[1], link_base)
    return user


def change_password(user: User, current, new, *, keep_sessions: bool = False,
                    keep_token_id: str | None = None, keep_session_key: str | None = None) -> User:
    """Needs the current password. Unless asked to keep them, every other session is
    signed out (the auth epoch moves on, their rows are revoked) and API tokens are
    revoked, except the token or session making this request; the caller signs the
    current session in again (signin.renewed_session_key)."""
    check_password(user, current, "current_password")
    problem = password_problem(new, user.username, user.email)
    if problem:
        raise ValidationError("new_password", problem)
    if new == current:
        raise ValidationError("new_password", "must differ from the current password")
    user.password_hash = hash_password(new)
    links.void_links(user, "reset")  # a reset link from before must not undo this
    if not keep_sessions:
        signin.sign_out_elsewhere(user, keep_token_id=keep_token_id, keep_session_key=keep_session_key)
    db.session.commit()
    return user


def delete_user(user: User) -> None:
    """Delete an account with everything it owns: its unfinished tasks are canceled,
    its image files removed, then its rows (tasks, images, ledger, tokens cascade)."""
    tasks.cancel_unfinished(user)
    for image in db.session.scalars(sa.select(Image).where(Image.user_id == user.id)).all():
        storage.delete_files(image)
    db.session.execute(sa.delete(Image).where(Image.user_id == user.id))
    _delete_archive_files(user)
    db.session.execute(sa.delete(Task).where(Task.user_id == user.id))
    credits.keep_pool_rows(user)  # (a class pool's rows stay the pool's)
    db.session.execute(sa.delete(Ledger).where(Ledger.user_id == user.id))
    db.session.execute(sa.delete(ApiToken).where(ApiToken.user_id == user.id))
    db.session.execute(sa.delete(UserSession).where(UserSession.user_id == user.id))
    events.disconnect_after_commit([user.room])  # its open pages lose their connections
    db.session.delete(user)
    db.session.commit()


def _delete_archive_files(user: User) -> None:
    """ZIP archives the user asked for are files too (their rows go by cascade)."""
    for archive in db.session.scalars(sa.select(Archive).where(Archive.user_id == user.id)).all():
        if archive.filename:
            archives.path_of(archive).unlink(missing_ok=True)


def delete_own_account(user: User, password) -> None:
    check_password(user, password)
    if user.is_staff:
        ensure_not_last_staff(user, "delete")
    delete_user(user)


def ensure_not_last_staff(user: User, action: str) -> None:
    """Refuse to leave the service without an active staff account."""
    if not user.is_staff or not user.active:
        return
    others = db.session.scalar(sa.select(sa.func.count()).select_from(User).where(
        User.role == Role.STAFF.value, User.active.is_(True), User.id != user.id))
    if not others:
        raise Conflict(f"{user.username} is the last staff account; make someone else staff "
                       f"before you {action} it.", code="last_staff")


def touch(user: User) -> None:
    """Note that the user was here (at most once a minute) and grant their tier's
    allowance when a new period began (their classes' allowances: at most once a minute
    too, and at every submit)."""
    now = utcnow()
    if user.last_seen_at is None or now - user.last_seen_at > timedelta(seconds=60):
        db.session.execute(sa.update(User).where(User.id == user.id).values(last_seen_at=now)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        credits.grant_class_allowances(user)
    credits.grant_allowance_if_due(user)
