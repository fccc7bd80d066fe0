"""How usernames and emails are compared: case-insensitively under Unicode case folding
and NFKC (name_key), the same way at registration, sign-in, email changes and in the
uniqueness checks. "STRASSE", "Straße" and "strasse" are one name, as are
"ÉLODIE@example.com" and "élodie@example.com", and a full-width "ＢＯＢ" is "bob".

The database's own lower() is no help here (SQLite's lowers ASCII only, and no
database's folds "ß"), so the query is narrowed in SQL and the key compared in Python:
- usernames are ASCII (users.USERNAME_RE), so lower() in SQL is their key exactly;
- an ASCII email's key is its lower(); an email with other characters is found among
  the same domain's non-ASCII addresses and compared by key here (few rows).
Names are stored as typed."""
from __future__ import annotations

import unicodedata

import sqlalchemy as sa

from extensions import db
from models import User


def name_key(text: str) -> str:
    """The form two usernames or emails are compared in: NFKC, case folded, NFKC again
    (case folding may leave a character that NFKC composes)."""
    text = unicodedata.normalize("NFKC", (text or "").strip())
    return unicodedata.normalize("NFKC", text.casefold())


def _non_ascii(column):
    """SQL: the column holds a character outside ASCII (all rows where the database has
    no such test: the key comparison after it decides)."""
    dialect = db.session.get_bind().dialect.name
    if dialect == "sqlite":
        return column.op("GLOB")("*[^\x01-\x7f]*")
    if dialect == "postgresql":
        return column.op("~")(r"[^\x01-\x7f]")
    return sa.true()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_by_username(name: str, *, other_than: int | None = None) -> User | None:
    key = name_key(name)
    if not key or not key.isascii():
        return None  # no username has other characters
    where = [sa.func.lower(User.username) == key]
    if other_than is not None:
        where.append(User.id != other_than)
    return db.session.scalar(sa.select(User).where(*where).limit(1))


def find_by_email(email: str, *, other_than: int | None = None) -> User | None:
    key = name_key(email)
    if "@" not in key:
        return None
    others = [User.id != other_than] if other_than is not None else []
    found = db.session.scalar(sa.select(User).where(sa.func.lower(User.email) == key, *others).limit(1))
    if found is not None:
        return found
    domain = key.rpartition("@")[2]
    candidates = db.session.scalars(sa.select(User).where(
        sa.func.lower(User.email).like("%@" + _escape_like(domain), escape="\\"), _non_ascii(User.email), *others))
    return next((user for user in candidates if name_key(user.email) == key), None)


def find_by_login(login: str) -> User | None:
    """The account a sign-in name belongs to: a username, else an email."""
    if not isinstance(login, str) or not login.strip():
        return None
    return find_by_username(login) or find_by_email(login)


def same(one: str | None, other: str | None) -> bool:
    return name_key(one or "") == name_key(other or "")
