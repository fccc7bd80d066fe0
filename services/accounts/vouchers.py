"""Vouchers: staff make batches of single-use codes worth some tokens; a user redeems
one to add its tokens (a ledger row of kind "voucher"). With DAYDREAM_REGISTRATION=invite
a code is also the invitation that registering needs (redeemed into the new account).

A code is 16 characters from a 32-letter alphabet without look-alikes (80 random bits,
from `secrets`), shown in groups of four: DD-XXXX-XXXX-XXXX-XXXX. Guessing is hopeless
and is rate-limited as well (services/core/ratelimit.py)."""
from __future__ import annotations

import csv
import io
import secrets

import shortuuid
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import LedgerKind, User, Voucher, utcnow
from services.accounts import credits
from services.core import audit, ratelimit
from services.core.errors import Conflict, NotFound, ValidationError

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I
GROUPS, GROUP = 4, 4
MAX_BATCH = 1000
MAX_VOUCHER_TOKENS = 100_000


def new_code() -> str:
    chars = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP))
    return "DD-" + "-".join(chars[i:i + GROUP] for i in range(0, len(chars), GROUP))


def normalize(code) -> str:
    """What people type: any case, spaces or dashes, with or without the DD- prefix;
    the letters O and I read as 0 and 1 would not exist, so they map to nothing."""
    if not isinstance(code, str):
        return ""
    letters = "".join(ch for ch in code.upper() if ch.isalnum())
    if letters.startswith("DD") and len(letters) == GROUPS * GROUP + 2:
        letters = letters[2:]
    if len(letters) != GROUPS * GROUP:
        return ""
    return "DD-" + "-".join(letters[i:i + GROUP] for i in range(0, len(letters), GROUP))


def _whole(value, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, "must be a whole number")
    if not low <= value <= high:
        raise ValidationError(field, f"must be between {low} and {high:,}")
    return value


def create_batch(staff: User, tokens, count, note=None, reason: str = "") -> list[Voucher]:
    tokens = _whole(tokens, "tokens", 1, MAX_VOUCHER_TOKENS)
    count = _whole(count, "count", 1, MAX_BATCH)
    note = note.strip()[:255] if isinstance(note, str) else ""
    batch = shortuuid.uuid()
    for _attempt in range(3):
        vouchers = [Voucher(code=new_code(), tokens=tokens, batch=batch, note=note,
                            created_by_id=staff.id) for _ in range(count)]
        db.session.add_all(vouchers)
        audit.record("vouchers.batch", target_type="voucher_batch", target_id=batch, target_name=note,
                     reason=reason or note, details={"tokens": tokens, "count": count}, actor=staff)
        try:
            db.session.commit()
            return vouchers
        except IntegrityError:  # a repeated code: astronomically unlikely; try again
            db.session.rollback()
    raise Conflict("Could not make unique codes; try again.")


def redeem(user: User, code) -> Voucher:
    """Add the voucher's tokens to the user's balance, once: marking the voucher
    redeemed is a conditional update in the same transaction as the ledger row."""
    normalized = normalize(code)
    if not normalized:
        raise ValidationError("code", "enter the code as printed, like DD-ABCD-EFGH-JKLM-NPQR")
    voucher = db.session.scalar(sa.select(Voucher).where(Voucher.code == normalized))
    if voucher is None:
        raise NotFound("No voucher has this code. Check it for typos.", code="unknown_voucher",
                       field="code")
    if not _claim(voucher, user):
        db.session.rollback()
        db.session.refresh(voucher)
        who = "you" if voucher.redeemed_by_id == user.id else "someone else"
        when = voucher.redeemed_at.strftime("%Y-%m-%d") if voucher.redeemed_at else "before"
        raise Conflict(f"This code was redeemed already (by {who}, on {when}); each code "
                       "works once.", code="voucher_used", field="code")
    credits.change_balance(user.id, voucher.tokens, LedgerKind.VOUCHER,
                           note=f"voucher {normalized[:7]}…")
    db.session.commit()
    db.session.refresh(voucher)
    return voucher


def _claim(voucher: Voucher, user: User) -> bool:
    """Mark the voucher redeemed by the user, if nobody did yet (a conditional update)."""
    claim = (sa.update(Voucher).where(Voucher.id == voucher.id, Voucher.redeemed_at.is_(None))
             .values(redeemed_at=utcnow(), redeemed_by_id=user.id)
             .execution_options(synchronize_session=False))
    return db.session.execute(claim).rowcount == 1


INVITE_INVALID = "this invite code is unknown or was used already; ask staff for another"


def redeem_invite(user: User, code: str) -> Voucher:
    """A new account's invite code (DAYDREAM_REGISTRATION=invite; code as normalize()
    gives it): claimed in the transaction that creates the account, its tokens added.
    Not committed; ValidationError on `invite` when unknown or used."""
    voucher = db.session.scalar(sa.select(Voucher).where(Voucher.code == code))
    if voucher is None or not _claim(voucher, user):
        raise ValidationError("invite", INVITE_INVALID)
    credits.change_balance(user.id, voucher.tokens, LedgerKind.VOUCHER,
                           note=f"invite {code[:7]}…")
    return voucher


def redeem_limited(user: User, code) -> Voucher:
    """redeem(), refusing a user who got too many codes wrong lately (guessing)."""
    rules = ratelimit.redeem_rules(user.uuid)
    ratelimit.check(rules)
    try:
        return redeem(user, code)
    except (NotFound, Conflict, ValidationError):
        ratelimit.hit(rules)
        raise


def list_vouchers(*, state: str | None, offset: int, limit: int) -> tuple[list[Voucher], int]:
    where = []
    if state == "redeemed":
        where.append(Voucher.redeemed_at.is_not(None))
    elif state == "unredeemed":
        where.append(Voucher.redeemed_at.is_(None))
    elif state not in (None, "", "all"):
        raise ValidationError("state", "must be redeemed, unredeemed or all")
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Voucher).where(*where))
    items = db.session.scalars(sa.select(Voucher).where(*where)
                               .order_by(Voucher.created_at.desc(), Voucher.id.desc())
                               .offset(offset).limit(limit)).all()
    return list(items), total


def _cell(text: str) -> str:
    """Spreadsheets run a cell that starts with = + - @ as a formula: quote it."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def unredeemed_csv() -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "tokens", "batch", "note", "created_at"])
    for v in db.session.scalars(sa.select(Voucher).where(Voucher.redeemed_at.is_(None))
                                .order_by(Voucher.created_at, Voucher.id)):
        writer.writerow([v.code, v.tokens, v.batch, _cell(v.note), v.to_dict()["created_at"]])
    return out.getvalue()
