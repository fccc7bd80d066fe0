"""Signing in and out: credentials checked under rate limits, browser sign-ins (one
UserSession row each, named by the key the session cookie carries), personal API
tokens, and signing a user out everywhere else."""
from __future__ import annotations

import hashlib
import secrets
import time
from datetime import timedelta

import shortuuid
import sqlalchemy as sa
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer

from extensions import db
from models import ApiToken, User, UserSession, utcnow
from services.accounts import names
from services.accounts.passwords import hash_password, hasher
from services.core import metrics, ratelimit
from services.core.events import disconnect_after_commit, session_room
from services.core.errors import Forbidden, NotFound, ServiceError, ValidationError

TOKEN_PREFIX = "dd_"


WAITING_FOR_APPROVAL = ("Your account is waiting for staff approval: you can sign in once "
                        "staff approve it.")


class BadCredentials(ServiceError):
    status = 401
    code = "bad_credentials"


def find_by_login(login: str) -> User | None:
    """A username, else an email, compared as services/accounts/names.py says (case
    folded, NFKC)."""
    return names.find_by_login(login)


def _account_key(login, user: User | None) -> str | None:
    if user is not None:
        return user.uuid
    return "login:" + names.name_key(login)[:254] if isinstance(login, str) and login.strip() else None


PASSWORDS_OFF = "Passwords are turned off on this server: use the single sign-on button instead."


def passwords_off_for(user: User | None) -> bool:
    """Under DAYDREAM_SSO_ONLY (single sign-on only, services/accounts/sso.py), whether
    passwords are off for this account: for every one but the staff accounts named in
    DAYDREAM_SSO_BREAK_GLASS, kept for when the provider is down."""
    config = current_app.config
    if not config.get("SSO_ONLY"):
        return False
    return not (user is not None and user.is_staff
                and any(names.same(user.username, name) for name in config.get("SSO_BREAK_GLASS") or ()))


def authenticate(login, password, address: str | None = None, device_cookie: str | None = None) -> User:
    """The user for these credentials, or BadCredentials (the same message whether the
    account exists or not). Failed attempts are counted per account and address: a
    pair that keeps failing waits longer and longer (RateLimited says until when), and
    an address or an account that fails very often is refused except where that account
    signed in before (services/core/ratelimit.py), or the browser carries that account's
    device cookie (device_cookie: its value; the device's failures are its own). Without
    the limit store, sign-in is refused (LimitsUnavailable, 503) rather than unlimited.
    Under DAYDREAM_SSO_ONLY, passwords are refused (Forbidden, passwords_off) except for
    the break-glass staff accounts. Upgrades the hash when Argon2's parameters changed."""
    user = find_by_login(login)
    if passwords_off_for(user):  # before any check: the answer says nothing of the password
        raise Forbidden(PASSWORDS_OFF, code="passwords_off")
    account_key = _account_key(login, user)
    device = known_devices(device_cookie).get(user.uuid) if user is not None else None
    ratelimit.signin_allowed(account_key, address, device)
    if user is None or not isinstance(password, str):
        hasher.hash("timing-equaliser")  # take as long as a real check
        ratelimit.signin_failed(account_key, address)
        metrics.count_signin_failure()
        raise BadCredentials("Wrong username/email or password.")
    try:
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        ratelimit.signin_failed(account_key, address, device)
        metrics.count_signin_failure()
        raise BadCredentials("Wrong username/email or password.")
    ratelimit.signin_succeeded(account_key, address, device)
    if user.pending:  # registered under DAYDREAM_REGISTRATION=approval
        raise Forbidden(WAITING_FOR_APPROVAL, code="pending_approval")
    if not user.active:
        raise Forbidden("This account is deactivated; contact staff.", code="inactive")
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
        db.session.commit()
    return user


# --- device cookies (OWASP's "device cookies" against lockout) -------------------------
# A browser that signed in to an account carries a signed cookie naming the account and a
# random nonce of this sign-in; with it, that account's sign-ins from this browser are not
# capped by the address or the account (ratelimit.signin_allowed), only by this device's
# own failures. One cookie holds the last few accounts of a shared computer.

DEVICE_COOKIE = "daydream_device"
DEVICES_KEPT = 8
DEVICE_SALT = "daydream.device-cookie"


def _device_serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=DEVICE_SALT)


def _device_entries(cookie) -> list[list]:
    """[[user public id, nonce, issued at (Unix seconds)], ...] of a valid cookie, newest
    first; entries older than ratelimit.KNOWN_FOR are dropped."""
    if not isinstance(cookie, str) or not cookie or len(cookie) > 4096:
        return []
    try:
        entries = _device_serializer().loads(cookie)
    except BadSignature:
        return []
    if not isinstance(entries, list):
        return []
    oldest = time.time() - ratelimit.KNOWN_FOR
    return [e for e in entries if isinstance(e, list) and len(e) == 3 and all(isinstance(v, str) for v in e[:2])
            and isinstance(e[2], int) and e[2] >= oldest][:DEVICES_KEPT]


def known_devices(cookie) -> dict[str, str]:
    """The accounts (public id -> nonce) a device cookie vouches for; empty when there is
    none, or it is forged, malformed or too old."""
    return {entry[0]: entry[1] for entry in reversed(_device_entries(cookie))}


def device_cookie_for(user: User, cookie=None) -> str:
    """The device cookie after `user` signed in on this browser: a new nonce for them,
    first, and the other accounts the cookie already named."""
    entries = [e for e in _device_entries(cookie) if e[0] != user.uuid]
    entries.insert(0, [user.uuid, secrets.token_urlsafe(16), int(time.time())])
    return _device_serializer().dumps(entries[:DEVICES_KEPT])


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
    ended = _revoke(sa.select(UserSession.id).where(UserSession.secret_hash == _digest(parts[2]),
                                                    UserSession.revoked_at.is_(None)))
    db.session.commit()
    return bool(ended)


def _revoke(open_rows) -> int:
    """End the sign-ins the query selects (ids of open UserSession rows): their rows are
    revoked and, once that is committed, their Socket.IO connections are disconnected in
    every web process. Returns how many ended."""
    ids = list(db.session.scalars(open_rows))
    if not ids:
        return 0
    ended = db.session.execute(
        sa.update(UserSession).where(UserSession.id.in_(ids), UserSession.revoked_at.is_(None))
        .values(revoked_at=utcnow()).execution_options(synchronize_session=False)).rowcount
    disconnect_after_commit(session_room(session_id) for session_id in ids)
    return ended


def _revoke_sessions(user: User, keep_session_key=None) -> int:
    stmt = sa.select(UserSession.id).where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
    parts = _parse_session_key(keep_session_key)
    if parts:
        stmt = stmt.where(UserSession.secret_hash != _digest(parts[2]))
    return _revoke(stmt)


def open_session_id(session_key) -> str | None:
    """The id of the open sign-in (UserSession row) this key names, read afresh: None
    once it ended or its user was deactivated."""
    parts = _parse_session_key(session_key)
    if parts is None:
        return None
    return db.session.scalar(
        sa.select(UserSession.id).join(User, UserSession.user_id == User.id)
        .where(User.uuid == parts[0], User.active.is_(True),
               UserSession.secret_hash == _digest(parts[2]), UserSession.revoked_at.is_(None)))


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
