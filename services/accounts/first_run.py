"""First run: a one-time link that creates the first staff account.

`flask --app app setup-link` (serve.py runs it after the migrations) prints the link
when no staff account exists. Only a hash of the link's token is stored; the link works
once, and only while there is still no staff account. There is no default password."""
from __future__ import annotations

import hashlib
import os
import secrets

import click
import sqlalchemy as sa

from extensions import db
from models import Role, SetupToken, User, utcnow
from services.accounts.users import create_staff
from services.core.errors import Conflict, NotFound


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def staff_exists() -> bool:
    return db.session.scalar(sa.select(sa.func.count()).select_from(User).where(
        User.role == Role.STAFF.value)) > 0


def public_url() -> str:
    return (os.environ.get("DAYDREAM_PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/")


def new_setup_link() -> str | None:
    """A fresh one-time link (earlier unused ones stop working), or None when a staff
    account exists already."""
    if staff_exists():
        return None
    token = secrets.token_urlsafe(32)
    db.session.execute(sa.delete(SetupToken).where(SetupToken.used_at.is_(None)))
    db.session.add(SetupToken(token_hash=_digest(token)))
    db.session.commit()
    return f"{public_url()}/setup/{token}"


def print_setup_link() -> None:
    link = new_setup_link()
    if link is None:
        return
    bar = "=" * 72
    click.echo(f"\n{bar}\n  No staff account yet. Open this link once to create the first one:\n\n"
               f"    {link}\n\n  (It works once. Or run: flask --app app create-staff "
               f"--username NAME --email EMAIL)\n{bar}\n")


def token_valid(token: str) -> bool:
    if not isinstance(token, str) or not token or staff_exists():
        return False
    return db.session.scalar(sa.select(SetupToken.id).where(
        SetupToken.token_hash == _digest(token), SetupToken.used_at.is_(None))) is not None


def create_first_staff(token: str, username, email, password) -> User:
    """Use the link: claim the token (a conditional update, so it works once) and make
    the staff account in the same transaction."""
    if not token_valid(token):
        raise NotFound("This setup link was used already or is not valid. Run "
                       "`flask --app app setup-link` for a new one, or create-staff.",
                       code="setup_link_invalid")
    claim = (sa.update(SetupToken).where(SetupToken.token_hash == _digest(token),
                                         SetupToken.used_at.is_(None))
             .values(used_at=utcnow()).execution_options(synchronize_session=False))
    if db.session.execute(claim).rowcount != 1:
        db.session.rollback()
        raise Conflict("This setup link was used a moment ago.", code="setup_link_used")
    try:
        return create_staff(username, email, password)  # commits with the claim
    except Exception:
        db.session.rollback()
        raise
