"""The staff audit trail: one append-only AuditEntry per staff action (who, what, whom,
when, why). `record` adds the row to the caller's session, so it commits (or rolls
back) with the action itself; nothing updates or deletes a row."""
from __future__ import annotations

from flask import has_request_context, request
from flask_login import current_user

from extensions import db
from models import AuditEntry, User


def _target_fields(target) -> tuple[str, str, str]:
    """(type, public id, name) of what an action was done to."""
    if target is None:
        return "", "", ""
    if isinstance(target, User):
        return "user", target.uuid, target.username
    kind = type(target).__name__.lower()
    ident = getattr(target, "id", "")
    name = getattr(target, "name", "") or ""
    return {"aimodel": "model"}.get(kind, kind), str(ident), str(name)


def record(action: str, *, target=None, target_type: str | None = None, target_id: str | None = None,
           target_name: str | None = None, reason: str = "", details: dict | None = None,
           actor: User | None = None) -> AuditEntry:
    """Add the audit row of a staff action to the session (the caller commits)."""
    if actor is None and has_request_context() and getattr(current_user, "is_authenticated", False):
        actor = current_user._get_current_object() if hasattr(current_user, "_get_current_object") else current_user
    kind, ident, name = _target_fields(target)
    entry = AuditEntry(
        actor_id=actor.id if actor is not None else None,
        actor_name=actor.username if actor is not None else "",
        action=action,
        target_type=target_type if target_type is not None else kind,
        target_id=target_id if target_id is not None else ident,
        target_name=(target_name if target_name is not None else name)[:255],
        reason=(reason or "").strip(),
        details=details or None,
        address=(request.remote_addr or "")[:64] if has_request_context() else "",
    )
    db.session.add(entry)
    return entry
