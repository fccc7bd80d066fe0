"""What staff do to accounts: the users table, grants and revokes, tiers, roles,
deactivation and deletion. (The live queue and the workers, as staff see them:
services/generation/monitor.py.)

Sensitive actions need a recent sign-in (the views check it, views/reauth.py); the
last active staff account can be neither demoted, deactivated nor deleted
(users.ensure_not_last_staff)."""
from __future__ import annotations

import logging

import sqlalchemy as sa

from extensions import db
from models import Image, LedgerKind, Role, Task, User, iso, utcnow
from services.accounts import credits, tiers, users
from services.core import audit, events
from services.core.errors import NotFound, ValidationError
from services.generation import tasks

log = logging.getLogger(__name__)


# --- the users table -----------------------------------------------------------------

def _counts(model, user_ids: list[int]) -> dict[int, int]:
    if not user_ids:
        return {}
    rows = db.session.execute(sa.select(model.user_id, sa.func.count())
                              .where(model.user_id.in_(user_ids)).group_by(model.user_id))
    return dict(rows.all())


def user_row(user: User, task_counts: dict | None = None, image_counts: dict | None = None) -> dict:
    task_counts = _counts(Task, [user.id]) if task_counts is None else task_counts
    image_counts = _counts(Image, [user.id]) if image_counts is None else image_counts
    tier = tiers.tier_for(user)
    return {**user.to_dict(), "tier": tier["id"], "tier_name": tier["name"],
            "tasks": task_counts.get(user.id, 0), "images": image_counts.get(user.id, 0),
            "last_seen_at": iso(user.last_seen_at)}


def list_users(q: str | None, *, offset: int, limit: int, pending: bool = False) -> tuple[list[dict], int]:
    """Search by username, email, public id, name or mobile (case-insensitive); with
    pending, only accounts waiting for approval."""
    where = [User.pending.is_(True)] if pending else []
    q = (q or "").strip()
    if q:
        like = f"%{q.lower().replace('%', '').replace('_', '')}%"
        where.append(sa.or_(sa.func.lower(User.username).like(like), sa.func.lower(User.email).like(like),
                            User.uuid == q, sa.func.lower(User.first_name).like(like),
                            sa.func.lower(User.last_name).like(like), User.mobile.like(like)))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(User).where(*where))
    found = db.session.scalars(sa.select(User).where(*where).order_by(User.created_at.desc(), User.id.desc())
                               .offset(offset).limit(limit)).all()
    ids = [u.id for u in found]
    task_counts, image_counts = _counts(Task, ids), _counts(Image, ids)
    return [user_row(u, task_counts, image_counts) for u in found], total


def get_user(public_id: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.uuid == public_id))
    if user is None:
        raise NotFound("No such user.")
    return user


SENSITIVE = ("tokens_delta", "role", "active", "tier")


def update_user(staff: User, user: User, data: dict) -> User:
    """{tokens_delta, reason} grants or revokes tokens (a ledger row with the reason);
    {tier}; {role: "user"|"staff"}; {active: false} deactivates: they cannot sign in,
    their API tokens stop working and their queued or running tasks are canceled and
    refunded."""
    unknown = set(data) - set(SENSITIVE) - {"reason"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "cannot be changed here")
    if "role" in data and data["role"] not in (Role.USER.value, Role.STAFF.value):
        raise ValidationError("role", "must be user or staff")
    if "active" in data and not isinstance(data["active"], bool):
        raise ValidationError("active", "must be true or false")
    if "tier" in data:
        tiers.check_tier_id(data["tier"])
    if "tokens_delta" in data and not isinstance(data["tokens_delta"], int):
        raise ValidationError("tokens_delta", "must be a whole number other than 0")
    reason = audit.reason_of(data.get("reason"))
    if data.get("role") == Role.USER.value and user.is_staff:
        users.ensure_not_last_staff(user, "demote")
    if data.get("active") is False:
        users.ensure_not_last_staff(user, "deactivate")

    if data.get("tokens_delta"):
        credits.staff_adjust(user, data["tokens_delta"], data.get("reason"), staff=staff)
        audit.record("tokens.grant" if data["tokens_delta"] > 0 else "tokens.revoke", target=user,
                     reason=reason, details={"tokens": data["tokens_delta"]}, actor=staff)
    elif "tokens_delta" in data:
        raise ValidationError("tokens_delta", "must be a whole number other than 0")
    if "tier" in data and data["tier"] != user.tier:
        old_tier = user.tier
        granted = move_to_tier(user, data["tier"])
        audit.record("users.tier", target=user, reason=reason,  # (the tokens the new plan granted)
                     details={"from": old_tier, "to": data["tier"], "tokens": granted}, actor=staff)
    if "role" in data:
        if data["role"] != user.role:
            audit.record("users.role", target=user, reason=reason, details={"from": user.role, "to": data["role"]},
                         actor=staff)
        user.role = data["role"]
    deactivating = data.get("active") is False and user.active
    if "active" in data:
        if data["active"] != user.active:
            audit.record("users.reactivate" if data["active"] else "users.deactivate", target=user,
                         reason=reason, actor=staff)
        user.active = data["active"]
        if data["active"]:
            user.pending = False  # activating an account waiting for approval approves it
        if deactivating:
            user.auth_epoch = (user.auth_epoch or 0) + 1  # signs out their sessions
            events.disconnect_after_commit([user.room])  # and ends their connections
    db.session.commit()
    if deactivating:
        canceled = tasks.cancel_unfinished(user)
        log.info("deactivated %s; canceled %d tasks", user.username, canceled)
    db.session.refresh(user)
    return user


def move_to_tier(user: User, tier_id: str) -> int:
    """A plan change grants the new plan's allowance at once (a ledger row saying so) and
    starts its period now; moving down takes no tokens away. The tokens granted."""
    old = tiers.tier_for(user)
    user.tier = tier_id
    user.allowance_at = utcnow()
    new = tiers.tier_for(user)
    if new["allowance"] > 0:
        credits.change_balance(user.id, new["allowance"], LedgerKind.ALLOWANCE,
                               note=f"{new['name']} allowance on moving from {old['name']} to "
                                    f"{new['name']} (the next one in {new['period_days']} days)")
    return max(new["allowance"], 0)


def delete_user(staff: User, user: User, reason: str = "") -> None:
    users.ensure_not_last_staff(user, "delete")
    tasks.cancel_unfinished(user)  # commits; then the row below commits with the deletion
    audit.record("users.delete", target=user, reason=reason, actor=staff)
    users.delete_user(user)
