"""Accounts: registration, passwords (Argon2id), sign-in and personal API tokens."""
from __future__ import annotations

import hashlib
import re
import secrets

import shortuuid
import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import ApiToken, User, utcnow
from services import credits
from services.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationError

hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id (RFC 9106 low-memory)
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,40}$")
MIN_PASSWORD = 10
TOKEN_PREFIX = "dd_"


class BadCredentials(ServiceError):
    status = 401
    code = "bad_credentials"


def hash_password(password: str) -> str:
    return hasher.hash(password)


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
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        errors["password"] = f"use at least {MIN_PASSWORD} characters"
    elif len(password) > 1024:
        errors["password"] = "use at most 1024 characters"
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
                tokens=0)
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


def authenticate(login, password) -> User:
    """The user for these credentials, or BadCredentials (the same message whether the
    account exists or not). Upgrades the hash when Argon2's parameters changed."""
    user = find_by_login(login)
    if user is None or not isinstance(password, str):
        hasher.hash("timing-equaliser")  # take as long as a real check
        raise BadCredentials("Wrong username/email or password.")
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        raise BadCredentials("Wrong username/email or password.")
    if not user.active:
        raise Forbidden("This account is deactivated; contact staff.", code="inactive")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.session.commit()
    return user


def update_profile(user: User, data: dict) -> User:
    """What a user may change about themselves (for now: studio settings)."""
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


def user_for_api_token(secret: str) -> User | None:
    token = db.session.scalar(sa.select(ApiToken).where(ApiToken.token_hash == _digest(secret)))
    if token is None or not token.user.active:
        return None
    now = utcnow()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        token.last_used_at = now
        db.session.commit()
    return token.user
