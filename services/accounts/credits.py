"""The one place that changes a balance. Every change is an append-only ledger row in
the same transaction as the balance update; callers commit."""
from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from extensions import db
from models import Ledger, LedgerKind, Task, User, utcnow
from services.accounts.tiers import tier_for
from services.core.errors import NotEnoughTokens, ValidationError


def _record(user_id: int, kind: LedgerKind, delta: int, task_id: str | None, note: str) -> Ledger:
    balance = db.session.scalar(sa.select(User.tokens).where(User.id == user_id))
    row = Ledger(user_id=user_id, kind=kind.value, delta=delta, balance_after=balance,
                 task_id=task_id, note=note)
    db.session.add(row)
    return row


def change_balance(user_id: int, delta: int, kind: LedgerKind, *, task_id: str | None = None,
                   note: str = "") -> Ledger:
    """Add delta (may be negative) to the balance. A conditional update: a debit that
    would take the balance below zero changes nothing and raises NotEnoughTokens."""
    stmt = sa.update(User).where(User.id == user_id).values(tokens=User.tokens + delta)
    if delta < 0:
        stmt = stmt.where(User.tokens >= -delta)
    if db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount != 1:
        balance = db.session.scalar(sa.select(User.tokens).where(User.id == user_id))
        raise NotEnoughTokens(
            f"This needs {-delta} tokens and you have {balance}. Lower the steps, size or "
            "samples, or ask staff for more tokens."
        )
    row = _record(user_id, kind, delta, task_id, note)
    user = db.session.get(User, user_id)
    if user is not None:
        db.session.refresh(user, ["tokens"])
    return row


def debit_task(task: Task) -> None:
    if task.cost:
        change_balance(task.user_id, -task.cost, LedgerKind.DEBIT, task_id=task.id,
                       note=f"{task.samples} × {task.width}×{task.height}, {task.steps} steps")


def refund_task(task: Task) -> None:
    """Call only from the state transition that ends a task as failed or canceled:
    that transition happens once, so the refund does too (and the ledger's unique
    (task_id, kind) constraint backs it up)."""
    if task.cost and not task.refunded:
        change_balance(task.user_id, task.cost, LedgerKind.REFUND, task_id=task.id,
                       note=f"task {task.state}")
        task.refunded = True


def refund_partly(task: Task, amount: int, note: str) -> Ledger | None:
    """Refund `amount` tokens (the share of the images a task did not deliver, never more
    than it cost). Call only from the state transition that ends a task as done with
    some images missing (services/generation/tasks.py): that transition happens once, so
    the refund does too, and the ledger's unique (task_id, kind) constraint backs it up
    (a task has one refund row: this one, or refund_task's). The task stays "not
    refunded": it delivered images and paid for them."""
    if amount <= 0 or task.refunded:
        return None
    return change_balance(task.user_id, min(amount, task.cost), LedgerKind.REFUND, task_id=task.id, note=note)


def grant_starting_tokens(user: User, amount: int) -> None:
    if amount > 0:
        change_balance(user.id, amount, LedgerKind.STARTING_GRANT, note="welcome")


def grant_held_starting_tokens(user: User) -> Ledger | None:
    """The starting tokens held back at registration until the email was confirmed
    (User.held_tokens), granted once: the claim sets them back to 0 with a conditional
    update in the ledger row's transaction, so a second confirmation, or two at once,
    grants nothing. Callers commit."""
    amount = db.session.scalar(sa.select(User.held_tokens).where(User.id == user.id))
    if not amount or amount <= 0:
        return None
    claim = (sa.update(User).where(User.id == user.id, User.held_tokens == amount)
             .values(held_tokens=0).execution_options(synchronize_session=False))
    if db.session.execute(claim).rowcount != 1:
        return None
    row = change_balance(user.id, amount, LedgerKind.STARTING_GRANT, note="welcome (email confirmed)")
    db.session.refresh(user, ["held_tokens"])
    return row


def ledger_balance(user_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Ledger.delta), 0)).where(Ledger.user_id == user_id)
    )


# --- staff grants, allowances, the ledger's pages and its check --------------------

MAX_STAFF_DELTA = 1_000_000


def staff_adjust(user: User, delta, reason, *, staff: User | None = None) -> Ledger:
    """Staff grant (delta > 0) or revoke (delta < 0) tokens, with a reason that the
    ledger keeps. A revoke larger than the balance is refused (never below zero)."""
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise ValidationError("tokens_delta", "must be a whole number other than 0")
    if abs(delta) > MAX_STAFF_DELTA:
        raise ValidationError("tokens_delta", f"must be at most {MAX_STAFF_DELTA:,} either way")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise ValidationError("reason", "say why (the user sees it in their ledger)")
    if len(reason) > 200:
        raise ValidationError("reason", "use at most 200 characters")
    kind = LedgerKind.STAFF_GRANT if delta > 0 else LedgerKind.STAFF_REVOKE
    note = f"{reason} (by {staff.username})" if staff is not None else reason
    try:
        return change_balance(user.id, delta, kind, note=note[:255])
    except NotEnoughTokens:
        balance = db.session.scalar(sa.select(User.tokens).where(User.id == user.id))
        raise ValidationError("tokens_delta", f"{user.username} has {balance} tokens; "
                                              f"revoke at most {balance}")


def grant_allowance_if_due(user: User, now=None) -> Ledger | None:
    """Grant the tier's allowance once per period (the period starts at sign-up, then
    at each grant). Claimed with a conditional update, so two requests at once grant it
    once. Commits when it grants."""
    tier = tier_for(user)
    if tier["allowance"] <= 0 or tier["period_days"] <= 0:
        return None
    now = now or utcnow()
    due = now - timedelta(days=tier["period_days"])
    start = user.allowance_at or user.created_at
    if start is None or start > due:
        return None
    claim = (sa.update(User).where(User.id == user.id,
                                   sa.or_(User.allowance_at.is_(None), User.allowance_at <= due))
             .values(allowance_at=now).execution_options(synchronize_session=False))
    if db.session.execute(claim).rowcount != 1:
        db.session.rollback()
        return None
    row = change_balance(user.id, tier["allowance"], LedgerKind.ALLOWANCE,
                         note=f"{tier['name']} allowance ({tier['period_days']} days)")
    db.session.commit()
    return row


def ledger_page(user: User, offset: int, limit: int) -> tuple[list[Ledger], int]:
    """The user's ledger, newest first."""
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Ledger)
                              .where(Ledger.user_id == user.id))
    rows = db.session.scalars(sa.select(Ledger).where(Ledger.user_id == user.id)
                              .order_by(Ledger.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), total


def check_ledger() -> list[dict]:
    """Every user whose balance differs from the sum of their ledger (or is negative):
    empty when the books are right."""
    sums = (sa.select(Ledger.user_id, sa.func.sum(Ledger.delta).label("total"))
            .group_by(Ledger.user_id).subquery())
    rows = db.session.execute(
        sa.select(User.id, User.username, User.tokens, sa.func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.user_id == User.id)
        .where(sa.or_(User.tokens != sa.func.coalesce(sums.c.total, 0), User.tokens < 0))
        .order_by(User.id)).all()
    return [{"user_id": uid, "username": name, "balance": tokens, "ledger_sum": int(total)}
            for uid, name, tokens, total in rows]
