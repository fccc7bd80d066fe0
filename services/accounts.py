"""Accounts: registration, passwords (Argon2id), sign-in and personal API tokens."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

import shortuuid
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import ApiToken, User, UserSession, utcnow
from services import credits
from services.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationError

hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id (RFC 9106 low-memory)
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,40}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "dd_"
COMMON_PASSWORDS = Path(__file__).parent / "data" / "common_passwords.txt"
MOBILE_RE = re.compile(r"^\+?[0-9][0-9 ()./-]{5,30}$")


class BadCredentials(ServiceError):
    status = 401
    code = "bad_credentials"


def hash_password(password: str) -> str:
    return hasher.hash(password)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    lines = COMMON_PASSWORDS.read_text().splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def _is_sequence(text: str) -> bool:
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:])}
    return len(steps) == 1 and steps <= {-1, 0, 1}


def password_problem(password, username: str = "", email: str = "") -> str | None:
    """Why a new password is not good enough, or None. At least MIN_PASSWORD characters,
    not one of the well-known ones, not a run like aaaaaaaaaa or 0123456789, and not
    the username or email."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        return f"use at least {MIN_PASSWORD} characters"
    if len(password) > 1024:
        return "use at most 1024 characters"
    lowered = password.lower()
    names = {n.lower() for n in (username, email, (email or "").split("@")[0]) if n}
    if lowered in common_passwords() or _is_sequence(lowered) or len(set(lowered)) <= 2:
        return "this password is too common and easy to guess; pick another"
    if lowered in names:
        return "do not use your username or email as the password"
    return None


def _clean_registration(username, email, password) -> tuple[str, str, str]:
    errors = {}
    username = username.strip() if isinstance(username, str) else ""
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


def register_user(username, email, password, *, role: str = "user") -> User:
    if not current_app.config["REGISTRATION_OPEN"]:
        raise Forbidden("Registration is closed on this server; ask staff for an account.",
                        code="registration_closed")
    username, email, password = _clean_registration(username, email, password)
    taken = db.session.scalar(sa.select(User).where(
        (sa.func.lower(User.username) == username.lower()) | (sa.func.lower(User.email) == email.lower())))
    if taken is not None:
        field = "username" if taken.username.lower() == username.lower() else "email"
        raise Conflict(f"{field}: that {field} is already registered; sign in instead.",
                       code="already_registered", field=field)
    user = User(username=username, email=email, password_hash=hash_password(password), role=role,
                tokens=0, tier=current_app.config.get("DEFAULT_TIER") or "free")
    try:
        db.session.add(user)
        db.session.flush()
        credits.grant_starting_tokens(user, current_app.config["STARTING_TOKENS"])
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("That username or email is already registered; sign in instead.",
                       code="already_registered")
    return user


def find_by_login(login: str) -> User | None:
    if not isinstance(login, str) or not login.strip():
        return None
    login = login.strip().lower()
    return db.session.scalar(sa.select(User).where(
        (sa.func.lower(User.username) == login) | (sa.func.lower(User.email) == login)))


def _account_key(login, user: User | None) -> str | None:
    if user is not None:
        return user.uuid
    return "login:" + login.strip().lower()[:254] if isinstance(login, str) and login.strip() else None


def authenticate(login, password, address: str | None = None) -> User:
    """The user for these credentials, or BadCredentials (the same message whether the
    account exists or not). Failed attempts are counted per account and address: a
    pair that keeps failing waits longer and longer (RateLimited says until when), and
    an address or an account that fails very often is refused except where that account
    signed in before (services/ratelimit.py). Without the limit store, sign-in is
    refused (LimitsUnavailable, 503) rather than unlimited.
    Upgrades the hash when Argon2's parameters changed."""
    from services import ratelimit

    user = find_by_login(login)
    account_key = _account_key(login, user)
    ratelimit.signin_allowed(account_key, address)
    if user is None or not isinstance(password, str):
        hasher.hash("timing-equaliser")  # take as long as a real check
        ratelimit.signin_failed(account_key, address)
        raise BadCredentials("Wrong username/email or password.")
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        ratelimit.signin_failed(account_key, address)
        raise BadCredentials("Wrong username/email or password.")
    ratelimit.signin_succeeded(account_key, address)
    if not user.active:
        raise Forbidden("This account is deactivated; contact staff.", code="inactive")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
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
            taken = db.session.scalar(sa.select(User.id).where(
                sa.func.lower(User.email) == email.lower(), User.id != user.id))
            if taken is not None:
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
    not changed here: a confirmation link goes to it (services/account_links.py) and
    the email changes when it is followed."""
    from services import account_links, mail

    changes = _clean_profile(user, data)
    confirm = None
    if "email" in changes and link_base is not None and mail.configured():
        new_email = changes.pop("email")
        if new_email.lower() == (user.email or "").lower():
            account_links.void_links(user, "email")  # back to the current one: nothing pending
            changes["email"] = new_email
        else:
            confirm = new_email, account_links.start_email_change(user, new_email)
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
        account_links.send_email_confirmation(user, confirm[0], confirm[1], link_base)
    return user


def check_password(user: User, password, field: str = "password") -> None:
    """For actions that need the password again (change it, delete the account, staff
    re-authentication). Wrong answers make the next check wait, longer each time (but
    never lock the owner out of signing in)."""
    from services import ratelimit

    ratelimit.password_check_allowed(user.uuid)
    try:
        if not isinstance(password, str) or not password:
            raise VerificationError()
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        ratelimit.password_check_failed(user.uuid)
        raise ValidationError(field, "is not your current password")
    ratelimit.password_check_succeeded(user.uuid)


def change_password(user: User, current, new, *, keep_sessions: bool = False,
                    keep_token_id: str | None = None, keep_session_key: str | None = None) -> User:
    """Needs the current password. Unless asked to keep them, every other session is
    signed out (the auth epoch moves on, their rows are revoked) and API tokens are
    revoked, except the token or session making this request; the caller signs the
    current session in again (renewed_session_key)."""
    check_password(user, current, "current_password")
    problem = password_problem(new, user.username, user.email)
    if problem:
        raise ValidationError("new_password", problem)
    if new == current:
        raise ValidationError("new_password", "must differ from the current password")
    user.password_hash = hash_password(new)
    from services.account_links import void_links

    void_links(user, "reset")  # a reset link from before must not undo this
    if not keep_sessions:
        sign_out_elsewhere(user, keep_token_id=keep_token_id, keep_session_key=keep_session_key)
    db.session.commit()
    return user


def sign_out_elsewhere(user: User, *, keep_token_id: str | None = None,
                       keep_session_key: str | None = None) -> None:
    """Sign out every session (the auth epoch moves on, their rows are revoked) and
    revoke every API token of the user, except the ones named. Not committed."""
    user.auth_epoch = (user.auth_epoch or 0) + 1
    stmt = sa.delete(ApiToken).where(ApiToken.user_id == user.id)
    if keep_token_id:
        stmt = stmt.where(ApiToken.id != keep_token_id)
    db.session.execute(stmt)
    _revoke_sessions(user, keep_session_key)


def delete_user(user: User) -> None:
    """Delete an account with everything it owns: its unfinished tasks are canceled,
    its image files removed, then its rows (tasks, images, ledger, tokens cascade)."""
    from models import Image, Ledger, Task
    from services import storage, tasks

    tasks.cancel_unfinished(user)
    for image in db.session.scalars(sa.select(Image).where(Image.user_id == user.id)).all():
        storage.delete_files(image)
    db.session.execute(sa.delete(Image).where(Image.user_id == user.id))
    _delete_archive_files(user)
    db.session.execute(sa.delete(Task).where(Task.user_id == user.id))
    db.session.execute(sa.delete(Ledger).where(Ledger.user_id == user.id))
    db.session.execute(sa.delete(ApiToken).where(ApiToken.user_id == user.id))
    db.session.execute(sa.delete(UserSession).where(UserSession.user_id == user.id))
    db.session.delete(user)
    db.session.commit()


def _delete_archive_files(user: User) -> None:
    """ZIP archives the user asked for are files too (their rows go by cascade)."""
    try:
        from models import Archive
        from services import archives
    except ImportError:  # no archives in this build
        return
    for archive in db.session.scalars(sa.select(Archive).where(Archive.user_id == user.id)).all():
        if archive.filename:
            archives.path_of(archive).unlink(missing_ok=True)


def delete_own_account(user: User, password) -> None:
    check_password(user, password)
    if user.is_staff:
        from services.admin import ensure_not_last_staff

        ensure_not_last_staff(user, "delete")
    delete_user(user)


def touch(user: User) -> None:
    """Note that the user was here (at most once a minute) and grant their tier's
    allowance when a new period began."""
    now = utcnow()
    if user.last_seen_at is None or now - user.last_seen_at > timedelta(seconds=60):
        db.session.execute(sa.update(User).where(User.id == user.id).values(last_seen_at=now)
                           .execution_options(synchronize_session=False))
        db.session.commit()
    credits.grant_allowance_if_due(user)


def load_session_user(session_key: str) -> User | None:
    """Flask-Login's loader. The session (or remember-me cookie) carries the key that
    open_session made: the user's public id, the auth epoch it was made in and the
    sign-in's own secret. An old epoch (the password changed since), a deactivated
    account, or a sign-in that was ended (signed out, "sign out everywhere") or unused
    for longer than a remember-me cookie lasts, signs nobody in."""
    parts = _parse_session_key(session_key)
    if parts is None:
        return None  # includes keys made before sign-ins were kept on the server
    public_id, epoch, secret = parts
    row = db.session.execute(
        sa.select(User, UserSession).join(UserSession, UserSession.user_id == User.id)
        .where(User.uuid == public_id, UserSession.secret_hash == _digest(secret))).first()
    if row is None:
        return None
    user, signed_in = row
    if not user.active or str(user.auth_epoch or 0) != epoch or signed_in.revoked_at is not None:
        return None
    now = utcnow()
    if now - signed_in.last_seen_at > _session_lifetime():
        return None
    if now - signed_in.last_seen_at > timedelta(seconds=60):
        db.session.execute(sa.update(UserSession).where(UserSession.id == signed_in.id)
                           .values(last_seen_at=now).execution_options(synchronize_session=False))
        db.session.commit()
    return user


def create_staff(username: str, email: str, password: str) -> User:
    """For `flask create-staff`: registration rules apply, registration need not be open."""
    username, email, password = _clean_registration(username, email, password)
    if find_by_login(username) or find_by_login(email):
        raise Conflict("That username or email is already registered.", code="already_registered")
    user = User(username=username, email=email, password_hash=hash_password(password), role="staff",
                tokens=0)
    db.session.add(user)
    db.session.flush()
    credits.grant_starting_tokens(user, current_app.config["STARTING_TOKENS"])
    db.session.commit()
    return user


def start_session(user: User) -> None:
    """Each sign-in starts a new session: the studio timeline shows its tasks."""
    user.sessionid = shortuuid.uuid()
    db.session.commit()


# --- browser sign-ins (one UserSession row each) ---------------------------------------

# Revoked rows are kept this long (what ended when), then deleted with the unused ones.
REVOKED_KEPT = timedelta(days=30)


def _session_lifetime() -> timedelta:
    """A sign-in unused for this long is over: as long as a remember-me cookie lasts."""
    duration = current_app.config.get("REMEMBER_COOKIE_DURATION") or timedelta(days=365)
    return duration if isinstance(duration, timedelta) else timedelta(seconds=duration)


def _parse_session_key(session_key) -> tuple[str, str, str] | None:
    if not isinstance(session_key, str):
        return None
    parts = session_key.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1], parts[2]


def open_session(user: User, user_agent: str = "") -> str:
    """A new sign-in: a row on the server and the key the session and remember-me
    cookies carry (User.get_id(), then the sign-in's random secret)."""
    secret = secrets.token_urlsafe(24)
    now = utcnow()
    db.session.execute(sa.delete(UserSession).where(
        UserSession.user_id == user.id,
        (UserSession.revoked_at < now - REVOKED_KEPT) | (UserSession.last_seen_at < now - _session_lifetime())))
    db.session.add(UserSession(user_id=user.id, secret_hash=_digest(secret),
                               user_agent=(user_agent or "")[:255], created_at=now, last_seen_at=now))
    db.session.commit()
    return f"{user.get_id()}.{secret}"


def renewed_session_key(user: User, current_key) -> str | None:
    """The key of the same sign-in after the user's auth epoch moved on (a password
    change signs this session in again), or None when current_key is not a key."""
    parts = _parse_session_key(current_key)
    return f"{user.get_id()}.{parts[2]}" if parts else None


def end_session(session_key) -> bool:
    """Sign-out: this sign-in ends on the server (its cookies, copied or not, stop
    working). True when there was one to end."""
    parts = _parse_session_key(session_key)
    if parts is None:
        return False
    ended = db.session.execute(
        sa.update(UserSession).where(UserSession.secret_hash == _digest(parts[2]),
                                     UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return bool(ended)


def _revoke_sessions(user: User, keep_session_key=None) -> int:
    stmt = sa.update(UserSession).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    parts = _parse_session_key(keep_session_key)
    if parts:
        stmt = stmt.where(UserSession.secret_hash != _digest(parts[2]))
    return db.session.execute(stmt.values(revoked_at=utcnow())
                              .execution_options(synchronize_session=False)).rowcount


def end_all_sessions(user: User) -> int:
    """"Sign out everywhere": every sign-in of the user ends, remembered ones too (API
    tokens are not sessions: they stay). Returns how many ended."""
    ended = _revoke_sessions(user)
    db.session.commit()
    return ended


def count_sessions(user: User) -> int:
    """Sign-ins that are still open (this one included)."""
    return db.session.scalar(sa.select(sa.func.count()).select_from(UserSession).where(
        UserSession.user_id == user.id, UserSession.revoked_at.is_(None),
        UserSession.last_seen_at >= utcnow() - _session_lifetime())) or 0


# --- personal API tokens ----------------------------------------------------------

def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(user: User, name) -> tuple[ApiToken, str]:
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 80:
        raise ValidationError("name", "give the token a name of 1 to 80 characters")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=_digest(secret))
    db.session.add(token)
    db.session.commit()
    return token, secret


def list_api_tokens(user: User) -> list[ApiToken]:
    return list(db.session.scalars(sa.select(ApiToken).where(ApiToken.user_id == user.id)
                                   .order_by(ApiToken.created_at.desc())))


def revoke_api_token(user: User, token_id: str) -> None:
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.id == token_id,
                                                        ApiToken.user_id == user.id))
    if token is None:
        raise NotFound("No such API token.")
    db.session.delete(token)
    db.session.commit()


def api_token_for(secret: str) -> ApiToken | None:
    if not isinstance(secret, str) or not secret:
        return None
    return db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _digest(secret)))


def user_for_api_token(secret: str) -> User | None:
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if token is None or not token.user.active:
        return None
    now = utcnow()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
        db.session.commit()
    return token.user
