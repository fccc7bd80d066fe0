"""Staff work on accounts and the queue: the users table, grants and revokes, tiers,
roles, deactivation and deletion; the live queue and the workers.

Sensitive actions need a recent sign-in (the views check it with recent_auth_ok); the
last active staff account can be neither demoted, deactivated nor deleted."""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone

import redis
import sqlalchemy as sa

from extensions import db
from models import Image, LedgerKind, Role, Task, TaskState, User, iso, utcnow
from services import accounts, credits, dispatch, queue, tasks, tiers
from services.errors import Conflict, NotFound, ServiceError, ValidationError

log = logging.getLogger(__name__)


class ReauthRequired(ServiceError):
    status = 403
    code = "reauth_required"


def recent_auth_ok(auth_at: float | None, window_s: int, now: float | None = None) -> bool:
    return bool(auth_at) and (now or time.time()) - float(auth_at) <= window_s


def require_recent_auth(auth_at: float | None, window_s: int) -> None:
    if not recent_auth_ok(auth_at, window_s):
        minutes = max(1, window_s // 60)
        raise ReauthRequired(f"Enter your password again: this needs a sign-in from the last "
                             f"{minutes} minutes.")


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


def list_users(q: str | None, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """Search by username, email, public id, name or mobile (case-insensitive)."""
    where = []
    q = (q or "").strip()
    if q:
        like = f"%{q.lower().replace('%', '').replace('_', '')}%"
        where.append(sa.or_(sa.func.lower(User.username).like(like), sa.func.lower(User.email).like(like),
                            User.uuid == q, sa.func.lower(User.first_name).like(like),
                            sa.func.lower(User.last_name).like(like), User.mobile.like(like)))
    total = db.session.scalar(sa.select(sa.func.count()).select_from(User).where(*where))
    users = db.session.scalars(sa.select(User).where(*where).order_by(User.created_at.desc(), User.id.desc())
                               .offset(offset).limit(limit)).all()
    ids = [u.id for u in users]
    task_counts, image_counts = _counts(Task, ids), _counts(Image, ids)
    return [user_row(u, task_counts, image_counts) for u in users], total


def get_user(public_id: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.uuid == public_id))
    if user is None:
        raise NotFound("No such user.")
    return user


def ensure_not_last_staff(user: User, action: str) -> None:
    """Refuse to leave the service without an active staff account."""
    if not user.is_staff or not user.active:
        return
    others = db.session.scalar(sa.select(sa.func.count()).select_from(User).where(
        User.role == Role.STAFF.value, User.active.is_(True), User.id != user.id))
    if not others:
        raise Conflict(f"{user.username} is the last staff account; make someone else staff "
                       f"before you {action} it.", code="last_staff")


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
    if data.get("role") == Role.USER.value and user.is_staff:
        ensure_not_last_staff(user, "demote")
    if data.get("active") is False:
        ensure_not_last_staff(user, "deactivate")

    if data.get("tokens_delta"):
        credits.staff_adjust(user, data["tokens_delta"], data.get("reason"), staff=staff)
    elif "tokens_delta" in data:
        raise ValidationError("tokens_delta", "must be a whole number other than 0")
    if "tier" in data and data["tier"] != user.tier:
        move_to_tier(user, data["tier"])
    if "role" in data:
        user.role = data["role"]
    deactivating = data.get("active") is False and user.active
    if "active" in data:
        user.active = data["active"]
        if deactivating:
            user.auth_epoch = (user.auth_epoch or 0) + 1  # signs out their sessions
    db.session.commit()
    if deactivating:
        canceled = tasks.cancel_unfinished(user)
        log.info("deactivated %s; canceled %d tasks", user.username, canceled)
    db.session.refresh(user)
    return user


def move_to_tier(user: User, tier_id: str) -> None:
    """A plan change grants the new plan's allowance at once (a ledger row saying so) and
    starts its period now; moving down takes no tokens away."""
    old = tiers.tier_for(user)
    user.tier = tier_id
    user.allowance_at = utcnow()
    new = tiers.tier_for(user)
    if new["allowance"] > 0:
        credits.change_balance(user.id, new["allowance"], LedgerKind.ALLOWANCE,
                               note=f"{new['name']} allowance on moving from {old['name']} to "
                                    f"{new['name']} (the next one in {new['period_days']} days)")


def delete_user(staff: User, user: User) -> None:
    ensure_not_last_staff(user, "delete")
    accounts.delete_user(user)


# --- the queue and the workers ----------------------------------------------------------

def _worker_state(name: str) -> dict:
    try:
        raw = queue.connection().hgetall(queue.key("workers", name))
    except redis.RedisError:
        return {}
    return {k.decode(): v.decode() for k, v in raw.items()}


def workers() -> list[dict]:
    """The live workers, by their heartbeat (services/liveness.py): a dead one drops out
    within HEARTBEAT_TTL seconds, and its task is settled by the reconciler."""
    running = {t.worker: t for t in db.session.scalars(
        sa.select(Task).where(Task.state == TaskState.RUNNING.value)).all()}
    try:
        found = queue.workers()
    except redis.RedisError:
        found = {}
    now = time.time()
    result = []
    for name, info in sorted(found.items()):
        state = _worker_state(name)
        task = running.get(name)
        beat = info.get("at")
        result.append({
            "name": name,
            "hostname": (info.get("machine") or "").split("|")[0],
            "pid": info.get("pid"),
            "state": "busy" if task else "idle",
            "alive": True,
            "current_task": task.id if task else None,
            "current_user": task.user.username if task else None,
            "model": state.get("model") or info.get("model") or None,
            "jobs_done": int(state.get("jobs") or 0),
            "loads": int(state.get("loads") or 0),
            "last_heartbeat": iso(datetime.fromtimestamp(beat, timezone.utc).replace(tzinfo=None)) if beat else None,
            "last_heartbeat_age_s": round(max(now - beat, 0), 1) if beat else None,
        })
    return result


def queue_view() -> dict:
    """Every queued and running task with its owner, position and progress."""
    positions = dispatch.positions()
    items = db.session.scalars(sa.select(Task).where(Task.state.in_(TaskState.unfinished()))
                               .order_by(Task.created_at, Task.id)).all()
    rows = []
    for task in items:
        data = tasks.task_to_dict(task, positions)
        data.pop("images", None)
        data["owner"] = {"id": task.user.uuid, "username": task.user.username}
        rows.append(data)
    rows.sort(key=lambda t: (t["state"] != TaskState.RUNNING.value, t["position"] or 0))
    return {"items": rows, "total": len(rows), **tasks.queue_stats(), "workers": workers()}
