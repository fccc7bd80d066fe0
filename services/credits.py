"""The one place that changes a balance. Every change is an append-only ledger row in
the same transaction as the balance update; callers commit."""
from __future__ import annotations

import sqlalchemy as sa

from extensions import db
from models import Ledger, LedgerKind, Task, User
from services.errors import NotEnoughTokens


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


def grant_starting_tokens(user: User, amount: int) -> None:
    if amount > 0:
        change_balance(user.id, amount, LedgerKind.STARTING_GRANT, note="welcome")


def ledger_balance(user_id: int) -> int:
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Ledger.delta), 0)).where(Ledger.user_id == user_id)
    )
