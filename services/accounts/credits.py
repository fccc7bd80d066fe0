"""The one place that changes a balance. Every change is an append-only ledger row in
the same transaction as the balance update; callers commit.

Class budgets (issue 27) are balances too. A class pool (SchoolClass.pool_tokens) has
its own rows (Ledger.class_id set: delta and balance_after are the pool's, user_id the
member it was for); a user's balance is the sum of their rows without a class. A pupil
whose first class has a pool pays from it (Task.class_id names the pool, so the refund
goes back there); the pool is refilled to the class's budget_tokens at the start of each
period, lazily, in one row. A class with an allowance grants budget_tokens to each
pupil's own balance once a period (kind class_allowance)."""
from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import sqlalchemy as sa

from extensions import db
from models import ClassMember, Ledger, LedgerKind, Role, SchoolClass, Task, User, utcnow
from services.accounts import classes, periods
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


def hold_user(user_id: int) -> None:
    """Lock the user's row until commit (a write that changes nothing: a row lock on
    PostgreSQL, the write lock on SQLite), so that what is counted or claimed next (image
    caps, a class allowance) holds under parallel requests of the same user."""
    db.session.execute(sa.update(User).where(User.id == user_id).values(tokens=User.tokens)
                       .execution_options(synchronize_session=False))


def debit_task(task: Task) -> None:
    """Pay for a new task, in its transaction: a class allowance that is due is granted
    first, a pool that is due refilled; then the pool of the user's first class pays, when
    that class has one that can, else the user's own balance. A task neither can pay is
    NotEnoughTokens (402), saying what the pool has."""
    user = db.session.get(User, task.user_id)
    grant_class_allowances(user, commit=False)
    if not task.cost:
        return
    note = f"{task.samples} × {task.width}×{task.height}, {task.steps} steps"
    home = classes.home_class(user) if not user.is_staff else None
    if home is None or home.budget_mode != "pool":
        change_balance(task.user_id, -task.cost, LedgerKind.DEBIT, task_id=task.id, note=note)
        return
    refill_pool_if_due(home, user)
    if change_pool(home.id, -task.cost, LedgerKind.DEBIT, user_id=task.user_id, task_id=task.id,
                   note=note) is not None:
        task.class_id = home.id
        return
    try:  # the pool is short: the user's own tokens pay, if they can
        change_balance(task.user_id, -task.cost, LedgerKind.DEBIT, task_id=task.id, note=note)
    except NotEnoughTokens:
        pool = db.session.scalar(sa.select(SchoolClass.pool_tokens).where(SchoolClass.id == home.id))
        own = db.session.scalar(sa.select(User.tokens).where(User.id == user.id))
        refill = periods.next_start(home.budget_period)
        raise NotEnoughTokens(
            f"This needs {task.cost} tokens; your class's pool has {pool} and you have {own} of "
            f"your own. The pool is refilled on {periods.local(refill):%Y-%m-%d at %H:%M}; until then lower "
            "the steps, size or samples, or ask your teacher.")


def funds(user: User, now: datetime | None = None) -> dict:
    """What can pay this user's next task, as debit_task pays it: {"tokens": their own
    balance, "pool": what the pool of their first class has for it (the class's budget
    when the period's refill is due), or None when no pool pays for them, "class": that
    class's name or None}. A task is more than they can pay only when it is more than
    the pool and more than their own tokens. Reads only."""
    home = classes.home_class(user) if user is not None and not user.is_staff else None
    if home is None or home.budget_mode != "pool":
        return {"tokens": user.tokens if user is not None else 0, "pool": None, "class": None}
    start = periods.start_of(home.budget_period, now)
    due = home.budget_at is None or home.budget_at < start
    return {"tokens": user.tokens, "pool": home.budget_tokens if due else home.pool_tokens, "class": home.name}


def refund_task(task: Task) -> None:
    """Call only from the state transition that ends a task as failed or canceled:
    that transition happens once, so the refund does too (and the ledger's unique
    (task_id, kind) constraint backs it up). A task a class pool paid is refunded to
    that pool."""
    if task.cost and not task.refunded:
        _refund(task, task.cost, f"task {task.state}")
        task.refunded = True


def _refund(task: Task, amount: int, note: str) -> Ledger:
    if task.class_id is not None:
        row = change_pool(task.class_id, amount, LedgerKind.REFUND, user_id=task.user_id, task_id=task.id,
                          note=note)
        if row is not None:
            return row
        # (the class is gone: deleting one waits for its pool's tasks, so only by hand)
    return change_balance(task.user_id, amount, LedgerKind.REFUND, task_id=task.id, note=note)


def refund_partly(task: Task, amount: int, note: str) -> Ledger | None:
    """Refund `amount` tokens (the share of the images a task did not deliver, never more
    than it cost). Call only from the state transition that ends a task as done with
    some images missing (services/generation/tasks.py): that transition happens once, so
    the refund does too, and the ledger's unique (task_id, kind) constraint backs it up
    (a task has one refund row: this one, or refund_task's). The task stays "not
    refunded": it delivered images and paid for them."""
    if amount <= 0 or task.refunded:
        return None
    return _refund(task, min(amount, task.cost), note)


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
    """The sum of the user's own rows (a class pool's rows are the pool's)."""
    return db.session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(Ledger.delta), 0))
        .where(Ledger.user_id == user_id, Ledger.class_id.is_(None))
    )


# --- class pools and allowances (issue 27) -------------------------------------------

def change_pool(class_id: str, delta: int, kind: LedgerKind, *, user_id: int, task_id: str | None = None,
                note: str = "") -> Ledger | None:
    """Add delta to a class's pool, with its ledger row (class_id set, balance_after the
    pool's). A conditional update: a debit the pool cannot cover, or a class that is
    gone, changes nothing and answers None."""
    stmt = (sa.update(SchoolClass).where(SchoolClass.id == class_id)
            .values(pool_tokens=SchoolClass.pool_tokens + delta))
    if delta < 0:
        stmt = stmt.where(SchoolClass.pool_tokens >= -delta)
    if db.session.execute(stmt.execution_options(synchronize_session=False)).rowcount != 1:
        return None
    pool = db.session.scalar(sa.select(SchoolClass.pool_tokens).where(SchoolClass.id == class_id))
    row = Ledger(user_id=user_id, class_id=class_id, kind=kind.value, delta=delta, balance_after=pool,
                 task_id=task_id, note=note[:255])
    db.session.add(row)
    school_class = db.session.get(SchoolClass, class_id)
    if school_class is not None:
        db.session.refresh(school_class, ["pool_tokens"])
    return row


def refill_pool_if_due(school_class: SchoolClass, user: User, now: datetime | None = None) -> Ledger | None:
    """At the first use in a new period (day, week or month on the local clock) the pool
    is set to the class's budget_tokens, in one ledger row for `user` (the member whose
    use found it due). The period is claimed with a conditional update, which also holds
    the class's row, so two requests at once refill it once. Callers commit."""
    if school_class.budget_mode != "pool":
        return None
    start = periods.start_of(school_class.budget_period, now)
    claim = (sa.update(SchoolClass).where(SchoolClass.id == school_class.id,
                                          sa.or_(SchoolClass.budget_at.is_(None), SchoolClass.budget_at < start))
             .values(budget_at=start).execution_options(synchronize_session=False))
    if db.session.execute(claim).rowcount != 1:
        return None
    pool, budget = db.session.execute(sa.select(SchoolClass.pool_tokens, SchoolClass.budget_tokens)
                                      .where(SchoolClass.id == school_class.id)).one()
    db.session.refresh(school_class, ["budget_at"])
    if budget == pool:
        return None
    return change_pool(school_class.id, budget - pool, LedgerKind.POOL_REFILL, user_id=user.id,
                       note=f"{school_class.name}: the pool for the {school_class.budget_period} from "
                            f"{periods.local(start):%Y-%m-%d}")


def allowance_key(class_id: str, user_id: int, start: datetime) -> str:
    """The ledger's task_id of a class allowance: one per class, member and period, so the
    ledger's unique (task_id, kind) makes the grant once."""
    digest = hashlib.sha256(f"{class_id}:{user_id}:{start:%Y-%m-%dT%H:%M}".encode()).hexdigest()
    return "allow-" + digest[:16]


def grant_class_allowances(user: User, now: datetime | None = None, *, commit: bool = True) -> list[Ledger]:
    """Grant each due allowance of the user's classes (those with budget mode
    "allowance", where they are a pupil): budget_tokens to their own balance, once per
    class and period. The user's row is held first, so two requests at once grant once
    (and the ledger's unique (task_id, kind) backs it up)."""
    if user is None or user.is_staff:
        return []
    due = []
    for school_class in classes.pupil_classes(user):
        if school_class.budget_mode != "allowance" or school_class.budget_tokens <= 0:
            continue
        start = periods.start_of(school_class.budget_period, now)
        due.append((school_class, start, allowance_key(school_class.id, user.id, start)))
    if not due:
        return []
    granted_already = lambda key: db.session.scalar(  # noqa: E731
        sa.select(sa.func.count()).select_from(Ledger)
        .where(Ledger.task_id == key, Ledger.kind == LedgerKind.CLASS_ALLOWANCE.value)) > 0
    due = [item for item in due if not granted_already(item[2])]
    if not due:
        return []
    hold_user(user.id)
    rows = []
    for school_class, start, key in due:
        if granted_already(key):  # (another request granted it while this one waited)
            continue
        rows.append(change_balance(
            user.id, school_class.budget_tokens, LedgerKind.CLASS_ALLOWANCE, task_id=key,
            note=f"{school_class.name}: the allowance for the {school_class.budget_period} from "
                 f"{periods.local(start):%Y-%m-%d}"))
    if commit:
        db.session.commit()
    return rows


def keep_pool_rows(user: User) -> None:
    """Before an account is deleted (its ledger rows go with it): its rows of class pools
    are handed to another account (a teacher of the class, its creator, or staff), so
    each pool still equals the sum of its rows."""
    class_ids = set(db.session.scalars(sa.select(Ledger.class_id).where(
        Ledger.user_id == user.id, Ledger.class_id.is_not(None))))
    for class_id in class_ids:
        heir = (db.session.scalar(sa.select(ClassMember.user_id).where(
                    ClassMember.class_id == class_id, ClassMember.role == classes.TEACHER,
                    ClassMember.user_id != user.id).order_by(ClassMember.id).limit(1))
                or db.session.scalar(sa.select(SchoolClass.created_by_id).where(
                    SchoolClass.id == class_id, SchoolClass.created_by_id != user.id))
                or db.session.scalar(sa.select(User.id).where(User.role == Role.STAFF.value, User.id != user.id)
                                     .order_by(User.id).limit(1)))
        if heir is None:
            continue
        db.session.execute(sa.update(Ledger).where(Ledger.user_id == user.id, Ledger.class_id == class_id)
                           .values(user_id=heir).execution_options(synchronize_session=False))


def pool_balance(class_id: str) -> int:
    """The sum of a class pool's ledger rows."""
    return db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(Ledger.delta), 0))
                             .where(Ledger.class_id == class_id))


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
    """The user's ledger (their own balance's rows, not a class pool's), newest first."""
    where = (Ledger.user_id == user.id, Ledger.class_id.is_(None))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Ledger).where(*where))
    rows = db.session.scalars(sa.select(Ledger).where(*where)
                              .order_by(Ledger.id.desc()).offset(offset).limit(limit)).all()
    return list(rows), total


def check_ledger() -> list[dict]:
    """Every user whose balance differs from the sum of their ledger (or is negative),
    then every class pool likewise (user_id None, class_id set, username naming the
    pool): empty when the books are right."""
    sums = (sa.select(Ledger.user_id, sa.func.sum(Ledger.delta).label("total"))
            .where(Ledger.class_id.is_(None)).group_by(Ledger.user_id).subquery())
    rows = db.session.execute(
        sa.select(User.id, User.username, User.tokens, sa.func.coalesce(sums.c.total, 0))
        .outerjoin(sums, sums.c.user_id == User.id)
        .where(sa.or_(User.tokens != sa.func.coalesce(sums.c.total, 0), User.tokens < 0))
        .order_by(User.id)).all()
    wrong = [{"user_id": uid, "username": name, "balance": tokens, "ledger_sum": int(total)}
             for uid, name, tokens, total in rows]
    pools = (sa.select(Ledger.class_id, sa.func.sum(Ledger.delta).label("total"))
             .where(Ledger.class_id.is_not(None)).group_by(Ledger.class_id).subquery())
    rows = db.session.execute(
        sa.select(SchoolClass.id, SchoolClass.name, SchoolClass.pool_tokens, sa.func.coalesce(pools.c.total, 0))
        .outerjoin(pools, pools.c.class_id == SchoolClass.id)
        .where(sa.or_(SchoolClass.pool_tokens != sa.func.coalesce(pools.c.total, 0), SchoolClass.pool_tokens < 0))
        .order_by(SchoolClass.id)).all()
    wrong += [{"user_id": None, "class_id": cid, "username": f"the pool of class {name}", "balance": tokens,
               "ledger_sum": int(total)} for cid, name, tokens, total in rows]
    return wrong
