"""Joining a class with a code or link (/join/<code>): teachers make codes that may
expire, be withdrawn, or allow a number of uses; a signed-in user joins with one click,
and someone without an account picks a username and password on the join page (an
account made whatever DAYDREAM_REGISTRATION says, with the starting tokens registration
gives, counted against the same limits as registration; under DAYDREAM_SSO_ONLY they
sign in with the provider first)."""
from __future__ import annotations

import secrets
import unicodedata
from datetime import timedelta

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import ClassMember, JoinCode, SchoolClass, User, iso, new_id, utcnow
from services.accounts import classes, credits, names, users
from services.accounts.passwords import hash_password, password_problem
from services.core import ratelimit
from services.core.errors import Conflict, Forbidden, NotFound, ServiceError, ValidationError

# No look-alikes (0/O, 1/I/L): a code read aloud or copied from a board is typed right.
ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
MAX_DAYS = 365
MAX_USES = 10_000
# A pupil who joins without an email gets an address that can receive nothing (RFC 2606).
NO_EMAIL_DOMAIN = "pupils.invalid"


class CodeGone(ServiceError):
    """A code that was real but can no longer be used: expired, withdrawn or used up."""
    status = 410
    code = "join_code_gone"


UNKNOWN = "No class has that code. Check it with your teacher: codes are 8 letters and digits."


def normalize(code) -> str:
    """What was typed, as stored: upper case, no spaces or dashes."""
    if not isinstance(code, str):
        return ""
    return "".join(ch for ch in unicodedata.normalize("NFKC", code).upper() if ch not in " -\t")


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def state_of(row: JoinCode, now=None) -> str:
    now = now or utcnow()
    if row.revoked_at is not None:
        return "revoked"
    if row.expires_at is not None and row.expires_at <= now:
        return "expired"
    if row.max_uses is not None and row.uses >= row.max_uses:
        return "used_up"
    return "active"


def code_dict(row: JoinCode) -> dict:
    return {"id": row.id, "code": row.code, "link": f"/join/{row.code}", "state": state_of(row),
            "created_at": iso(row.created_at), "expires_at": iso(row.expires_at),
            "revoked_at": iso(row.revoked_at), "max_uses": row.max_uses, "uses": row.uses}


def list_codes(school_class: SchoolClass) -> list[dict]:
    rows = db.session.scalars(sa.select(JoinCode).where(JoinCode.class_id == school_class.id)
                              .order_by(JoinCode.created_at.desc(), JoinCode.id)).all()
    return [code_dict(row) for row in rows]


def _optional_whole(field: str, value, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ValidationError(field, f"must be a whole number from 1 to {high}, or null for no limit")
    return value


def make_code(teacher: User, school_class: SchoolClass, *, expires_in_days=7, max_uses=None) -> JoinCode:
    """A new code: valid for expires_in_days days (None: until withdrawn), for max_uses
    joins (None: any number)."""
    days = _optional_whole("expires_in_days", expires_in_days, MAX_DAYS)
    uses = _optional_whole("max_uses", max_uses, MAX_USES)
    row = JoinCode(id=new_id(), class_id=school_class.id, code=_new_code(), created_by_id=teacher.id,
                   expires_at=utcnow() + timedelta(days=days) if days else None, max_uses=uses)
    db.session.add(row)
    classes.record("code_make", school_class, actor=teacher, target_type="join_code", target_id=row.id,
                   target_name=row.code, details={"expires_at": iso(row.expires_at), "max_uses": uses})
    db.session.commit()
    return row


def revoke_code(teacher: User, school_class: SchoolClass, code_id) -> JoinCode:
    row = db.session.scalar(sa.select(JoinCode).where(JoinCode.id == str(code_id),
                                                      JoinCode.class_id == school_class.id))
    if row is None:
        raise NotFound("No such join code in this class.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        classes.record("code_revoke", school_class, actor=teacher, target_type="join_code", target_id=row.id,
                       target_name=row.code)
        db.session.commit()
    return row


def _refusal(row: JoinCode) -> CodeGone | None:
    state = state_of(row)
    if state == "expired":
        return CodeGone(f"This join code expired on {row.expires_at:%Y-%m-%d at %H:%M} UTC. "
                        "Ask your teacher for a new one.")
    if state == "revoked":
        return CodeGone("This join code was withdrawn by the class's teacher. Ask them for a new one.")
    if state == "used_up":
        return CodeGone(f"This join code has been used {row.uses} times, as many as it allows. "
                        "Ask your teacher for a new one.")
    return None


def find(code) -> tuple[JoinCode, SchoolClass]:
    """A usable code and its class: NotFound for a code that never was, CodeGone (410)
    saying why for one that was."""
    text = normalize(code)
    row = db.session.scalar(sa.select(JoinCode).where(JoinCode.code == text)) \
        if text and len(text) <= 40 else None
    if row is None:
        raise NotFound(UNKNOWN, code="join_code_unknown")
    refusal = _refusal(row)
    if refusal is not None:
        raise refusal
    return row, db.session.get(SchoolClass, row.class_id)


def _claim(row: JoinCode) -> None:
    """Count one use, if the code still allows it (a conditional update: the last use of
    a code taken by two at once goes to one of them)."""
    now = utcnow()
    claimed = db.session.execute(
        sa.update(JoinCode).where(
            JoinCode.id == row.id, JoinCode.revoked_at.is_(None),
            sa.or_(JoinCode.expires_at.is_(None), JoinCode.expires_at > now),
            sa.or_(JoinCode.max_uses.is_(None), JoinCode.uses < JoinCode.max_uses))
        .values(uses=JoinCode.uses + 1).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        db.session.rollback()
        db.session.refresh(row)
        raise _refusal(row) or CodeGone("This join code can no longer be used.")


def join(user: User, code) -> tuple[SchoolClass, bool]:
    """A signed-in user joins the code's class as a pupil: (class, True), or (class,
    False) when they were in it already (nothing counted)."""
    row, school_class = find(code)
    if classes.membership(user, school_class) is not None:
        return school_class, False
    _claim(row)
    db.session.add(ClassMember(class_id=school_class.id, user_id=user.id, role=classes.PUPIL, via="code"))
    classes.record("join", school_class, actor=user, target=user, details={"code": row.code})
    try:
        db.session.commit()
    except IntegrityError:  # the same user joined a moment ago, in another tab
        db.session.rollback()
        return school_class, False
    return school_class, True


def _clean_account(username, password, email) -> tuple[str, str]:
    errors = {}
    username = unicodedata.normalize("NFKC", username.strip()) if isinstance(username, str) else ""
    if not users.USERNAME_RE.match(username):
        errors["username"] = "use 3 to 40 letters, digits, dots, dashes or underscores"
    elif names.find_by_username(username) is not None:
        errors["username"] = "that username is taken; pick another, or sign in if it is yours"
    email = email.strip() if isinstance(email, str) else ""
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            errors["email"] = str(exc)
        else:
            if names.find_by_email(email) is not None:
                errors["email"] = "that email is already registered; sign in instead"
    problem = password_problem(password, username, email)
    if problem:
        errors["password"] = problem
    if errors:
        field = next(iter(errors))
        raise ValidationError(field, errors[field], fields=errors)
    return username, email


def join_new_account(code, username, password, email=None, *, address: str | None = None) -> tuple[User, SchoolClass]:
    """A new account that joins the code's class: username and password (an email is
    optional: without one the account gets an address that receives nothing, and the
    teacher resets a forgotten password). Not under DAYDREAM_SSO_ONLY: there everyone
    signs in with the provider first, then joins with one click."""
    if current_app.config.get("SSO_ONLY"):
        raise Forbidden("This server signs in with single sign-on only: sign in with your school account, "
                        "then open this link again.", code="passwords_off")
    row, school_class = find(code)
    username, email = _clean_account(username, password, email)
    ratelimit.take(ratelimit.register_rules(address), "Registration")
    user = User(username=username, email=email or f"{new_id()}@{NO_EMAIL_DOMAIN}",
                password_hash=hash_password(password), tokens=0,
                tier=current_app.config.get("DEFAULT_TIER") or "free", active=True, pending=False)
    try:
        db.session.add(user)
        db.session.flush()
        _claim(row)
        db.session.add(ClassMember(class_id=school_class.id, user_id=user.id, role=classes.PUPIL, via="code"))
        credits.grant_starting_tokens(user, max(0, int(current_app.config["STARTING_TOKENS"])))
        classes.record("join", school_class, actor=user, target=user, details={"code": row.code, "new_account": True})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict("username: that username or email was registered a moment ago; pick another.",
                       code="already_registered", field="username")
    return user, school_class
