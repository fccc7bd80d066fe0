"""One-time links for accounts (AccountToken rows): password resets and email
confirmations.

- Staff make a reset link for a user (shown to them once, valid RESET_TTL seconds).
- "Forgot password?" mails one (valid RESET_MAIL_TTL) when mail is configured. The
  answer is the same whether an account matched or not: the request is counted per
  address (429 when used up; 503 without the limit store), and the look-up, the
  per-account limit and the mail all happen on a mail thread, so neither the answer
  nor its timing says whether an account exists.
- A new email address (with mail configured) gets a link; the email changes when it
  is followed (valid EMAIL_CONFIRM_TTL). So does a new account's address: following
  it grants the starting tokens held back until then, once.

Only a hash of a link's secret is stored. Using a link is a conditional update of
its row (unused, unexpired), in the transaction that does what it is for, so it works
once. Setting a password by a link signs every session of the user out and revokes
their API tokens, as a password change does; other reset links of the user stop
working then, and when the password is changed or the email confirmed. Neither the
links nor the addresses they went to are logged."""
from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import AccountToken, User, iso, utcnow
from services.accounts import credits, names, passwords, signin
from services.core import audit, mail, ratelimit
from services.core.errors import Conflict, NotFound, ValidationError
from services.core.ratelimit import LimitsUnavailable, RateLimited

log = logging.getLogger(__name__)

RESET, EMAIL = "reset", "email"
# Used and expired rows are deleted this long after they expired.
KEPT = timedelta(days=7)


class LinkInvalid(NotFound):
    code = "link_invalid"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _add(user: User, purpose: str, ttl_s: int, *, new_email: str | None = None,
         staff: User | None = None) -> tuple[AccountToken, str]:
    """A new link's row (not committed) and its secret."""
    now = utcnow()
    db.session.execute(sa.delete(AccountToken).where(AccountToken.user_id == user.id,
                                                     AccountToken.expires_at < now - KEPT))
    secret = secrets.token_urlsafe(32)
    row = AccountToken(user_id=user.id, purpose=purpose, token_hash=_digest(secret), new_email=new_email,
                       created_at=now, expires_at=now + timedelta(seconds=int(ttl_s)),
                       created_by_id=staff.id if staff else None)
    db.session.add(row)
    return row, secret


def _url(base: str, path: str, secret: str) -> str:
    return f"{base.rstrip('/')}/{path}/{secret}"


def valid_link(secret, purpose: str) -> AccountToken | None:
    """The unused, unexpired link of this purpose with this secret, or None."""
    if not isinstance(secret, str) or not secret or len(secret) > 128:
        return None
    return db.session.scalar(sa.select(AccountToken).where(
        AccountToken.token_hash == _digest(secret), AccountToken.purpose == purpose,
        AccountToken.used_at.is_(None), AccountToken.expires_at > utcnow()))


def _claim(link: AccountToken) -> bool:
    """Use the link: only one request can (its row is still unused and unexpired)."""
    now = utcnow()
    return db.session.execute(
        sa.update(AccountToken).where(AccountToken.id == link.id, AccountToken.used_at.is_(None),
                                      AccountToken.expires_at > now)
        .values(used_at=now).execution_options(synchronize_session=False)).rowcount == 1


def void_links(user: User, purpose: str) -> None:
    """The user's unused links of this purpose stop working (not committed)."""
    db.session.execute(sa.update(AccountToken).where(
        AccountToken.user_id == user.id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
        .values(used_at=utcnow()).execution_options(synchronize_session=False))


# --- password reset -----------------------------------------------------------------

def staff_reset_link(staff: User, user: User, base: str, reason: str = "") -> dict:
    """A reset link staff hand to the user themselves: {url, expires_at}."""
    row, secret = _add(user, RESET, current_app.config["RESET_TTL"], staff=staff)
    audit.record("users.reset_link", target=user, reason=reason, actor=staff)  # never the link itself
    db.session.commit()
    log.info("staff %s made a password reset link for user %s", staff.uuid, user.uuid)
    return {"url": _url(base, "reset", secret), "expires_at": iso(row.expires_at)}


def reset_password(secret, new_password) -> User:
    """Set a new password with a reset link; every session and API token of the user
    is signed out."""
    link = valid_link(secret, RESET)
    if link is None:
        raise LinkInvalid(RESET_LINK_GONE)
    user = link.user
    problem = passwords.password_problem(new_password, user.username, user.email)
    if problem:
        raise ValidationError("password", problem)
    if not _claim(link):
        db.session.rollback()
        raise LinkInvalid(RESET_LINK_GONE)
    user.password_hash = passwords.hash_password(new_password)
    void_links(user, RESET)
    signin.sign_out_elsewhere(user)
    db.session.commit()
    log.info("password of user %s set by a reset link", user.uuid)
    return user


RESET_LINK_GONE = ("This password reset link was used already, has expired or is not valid. "
                   "Ask for a new one (Forgot password? on the sign-in page) or ask staff.")
EMAIL_LINK_GONE = ("This confirmation link was used already, has expired or is not valid. "
                   "Change your email on your account page again for a new one.")


def request_reset_mail(login, address: str | None, base: str) -> None:
    """"Forgot password?": counted per address (RateLimited, 429; LimitsUnavailable,
    503), then everything else happens on a mail thread. Says nothing either way."""
    rules = ratelimit.reset_ip_rules(address)
    try:
        ratelimit.check(rules, strict=True)
        ratelimit.hit(rules, strict=True)
    except LimitsUnavailable:
        raise ratelimit.unavailable("Password reset")
    login = login.strip()[:254] if isinstance(login, str) else ""
    mail.in_background(_mail_reset_link, login, base)


def _mail_reset_link(login: str, base: str) -> None:
    user = signin.find_by_login(login)
    if user is None or not user.active:
        return
    rules = ratelimit.reset_account_rules(user.uuid)
    try:
        ratelimit.check(rules, strict=True)
        ratelimit.hit(rules, strict=True)
    except (RateLimited, LimitsUnavailable) as exc:
        log.info("no reset mail for user %s: %s", user.uuid, exc.code)
        return
    ttl = int(current_app.config["RESET_MAIL_TTL"])
    _row, secret = _add(user, RESET, ttl)
    db.session.commit()
    minutes = max(1, ttl // 60)
    text = (f"Hello {user.username},\n\n"
            f"someone (we hope you) asked to reset the password of your Daydream account.\n"
            f"Open this link to set a new one. It works once, within {_duration(minutes)}:\n\n"
            f"    {_url(base, 'reset', secret)}\n\n"
            "If you did not ask for this, ignore this message: your password stays as it is.\n")
    mail.send(mail.message(user.email, "Reset your Daydream password", text))
    log.info("reset mail sent for user %s", user.uuid)


def _duration(minutes: int) -> str:
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


# --- email confirmation -----------------------------------------------------------------

def start_email_change(user: User, new_email: str) -> str:
    """A confirmation link for the new address (not committed; the caller commits,
    then send_email_confirmation). Earlier pending changes are replaced. Counted per
    user: RateLimited (429), or LimitsUnavailable (503) without the limit store."""
    rules = ratelimit.reset_account_rules(user.uuid, EMAIL)
    try:
        ratelimit.check(rules, strict=True)
        ratelimit.hit(rules, strict=True)
    except LimitsUnavailable:
        raise ratelimit.unavailable("Changing your email")
    void_links(user, EMAIL)
    _row, secret = _add(user, EMAIL, current_app.config["EMAIL_CONFIRM_TTL"], new_email=new_email)
    return secret


def send_email_confirmation(user: User, new_email: str, secret: str, base: str) -> None:
    minutes = max(1, int(current_app.config["EMAIL_CONFIRM_TTL"]) // 60)
    text = (f"Hello {user.username},\n\n"
            f"to make this address the email of your Daydream account, open this link "
            f"(it works once, within {_duration(minutes)}):\n\n"
            f"    {_url(base, 'email/confirm', secret)}\n\n"
            "If you did not ask for this, ignore this message: nothing changes.\n")
    mail.in_background(mail.send, mail.message(new_email, "Confirm your new Daydream email", text))


def start_registration_confirmation(user: User) -> str:
    """A new account's link to confirm the address it registered with (not committed;
    the caller commits, then send_registration_confirmation)."""
    _row, secret = _add(user, EMAIL, current_app.config["EMAIL_CONFIRM_TTL"], new_email=user.email)
    return secret


def send_registration_confirmation(user: User, secret: str, base: str) -> None:
    minutes = max(1, int(current_app.config["EMAIL_CONFIRM_TTL"]) // 60)
    held = user.held_tokens or 0
    tokens = f" and get your {held} starting tokens" if held else ""
    text = (f"Hello {user.username},\n\n"
            f"welcome to Daydream. Open this link to confirm your email{tokens} "
            f"(it works once, within {_duration(minutes)}):\n\n"
            f"    {_url(base, 'email/confirm', secret)}\n\n"
            "If you did not register, ignore this message.\n")
    mail.in_background(mail.send, mail.message(user.email, "Confirm your Daydream email", text))


def pending_email(user: User) -> str | None:
    """The new address waiting for its confirmation, if any."""
    return db.session.scalar(sa.select(AccountToken.new_email).where(
        AccountToken.user_id == user.id, AccountToken.purpose == EMAIL, AccountToken.used_at.is_(None),
        AccountToken.expires_at > utcnow()).order_by(AccountToken.created_at.desc()).limit(1))


def confirm_email(secret) -> User:
    """Follow the confirmation link: the account's email becomes the new address (once;
    refused if another account took the address meanwhile). Reset links sent to the
    old address stop working."""
    link = valid_link(secret, EMAIL)
    if link is None:
        raise LinkInvalid(EMAIL_LINK_GONE)
    user, new_email = link.user, link.new_email
    if names.find_by_email(new_email, other_than=user.id) is not None:
        raise Conflict("That email is now used by another account; pick another on your account page.",
                       code="email_taken")
    if not _claim(link):
        db.session.rollback()
        raise LinkInvalid(EMAIL_LINK_GONE)
    user.email = new_email
    void_links(user, EMAIL)
    void_links(user, RESET)
    credits.grant_held_starting_tokens(user)  # a new account's, the first time only
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("That email is now used by another account; pick another on your account page.",
                       code="email_taken")
    log.info("user %s confirmed a new email", user.uuid)
    return user
