"""Passwords: Argon2id hashes, what makes a new password good enough, and the check
of the current password for actions that ask for it again."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from models import User
from services.core import ratelimit
from services.core.errors import ValidationError

hasher = PasswordHasher()  # argon2-cffi's defaults are Argon2id (RFC 9106 low-memory)
MIN_PASSWORD = 10
COMMON_PASSWORDS = Path(__file__).parent / "data" / "common_passwords.txt"


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


def check_password(user: User, password, field: str = "password") -> None:
    """For actions that need the password again (change it, delete the account, staff
    re-authentication). Wrong answers make the next check wait, longer each time (but
    never lock the owner out of signing in)."""
    ratelimit.password_check_allowed(user.uuid)
    try:
        if not isinstance(password, str) or not password:
            raise VerificationError()
        hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        ratelimit.password_check_failed(user.uuid)
        raise ValidationError(field, "is not your current password")
    ratelimit.password_check_succeeded(user.uuid)
