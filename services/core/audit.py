"""The staff audit trail: one append-only AuditEntry per staff action (who, what, whom,
when, why). `record` adds the row to the caller's session, so it commits (or rolls
back) with the action itself; nothing updates or deletes a row."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from flask import has_request_context, request
from flask_login import current_user
from sqlalchemy.orm import Session

from extensions import db
from models import AuditEntry, User, iso
from services.core.errors import ValidationError


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


MAX_REASON = 500


def reason_of(value) -> str:
    """The optional `reason` of a staff request body: text, at most MAX_REASON characters."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError("reason", "must be text")
    if len(value.strip()) > MAX_REASON:
        raise ValidationError("reason", f"use at most {MAX_REASON} characters")
    return value.strip()


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


# --- append-only -----------------------------------------------------------------------

@sa.event.listens_for(Session, "before_flush")
def _append_only(session, _context, _instances) -> None:
    """A row of the trail is never changed or deleted through the ORM (a deleted actor's
    id is set to NULL by the database itself: ON DELETE SET NULL)."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, AuditEntry) and (obj in session.deleted or session.is_modified(obj)):
            raise RuntimeError("audit rows are append-only")


# --- listing, filtering, CSV -------------------------------------------------------------

# The actions the service records (the Audit page's filter offers them; a filter may name
# any action or prefix, not only these).
ACTIONS = (
    "tokens.grant", "tokens.revoke", "users.tier", "users.role", "users.deactivate",
    "users.reactivate", "users.approve", "users.delete", "users.reset_link", "vouchers.batch",
    "models.scan", "models.enable", "models.disable", "models.default", "models.update",
    "models.convert", "models.convert_end", "models.merge", "models.merge_end",
    "models.install", "models.install_end", "models.job_cancel",
    "showcase.feature", "showcase.unfeature", "showcase.hide", "showcase.show",
    "moderation.rule_add", "moderation.rule_edit", "moderation.rule_delete",
    "moderation.report_hide", "moderation.report_dismiss", "moderation.release", "moderation.delete",
    "moderation.preset",
)
AREAS = tuple(dict.fromkeys(a.split(".")[0] for a in ACTIONS))
FILTERS = ("action", "actor", "target", "since", "until", "q")
MAX_FILTER = 200
CSV_COLUMNS = ("id", "when", "actor", "actor_id", "action", "target_type", "target_id", "target_name",
               "reason", "address", "details")


@dataclass(frozen=True)
class Filters:
    action: str = ""
    actor: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    q: str = ""
    raw: dict = field(default_factory=dict)  # the arguments as given (for links)


def _when(name: str, value: str, *, end: bool) -> datetime:
    """A date (YYYY-MM-DD: the whole day, so `until` includes it) or an ISO date and time
    (naive: UTC), as a naive UTC datetime."""
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d")
            return day + timedelta(days=1) if end else day
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(name, "must be a date (YYYY-MM-DD) or an ISO date and time")
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def parse_filters(args) -> Filters:
    """Filters from query arguments: action (an action, "tokens.grant", or an area,
    "tokens" or "tokens.*", for all of its actions), actor and target (a username or
    name, or a public id), since and until (dates or ISO times; until's day is included),
    q (free text in the action, names, ids, reason and address)."""
    raw = {}
    for name in FILTERS:
        value = args.get(name, "")
        if not isinstance(value, str):
            raise ValidationError(name, "must be text")
        value = value.strip()
        if len(value) > MAX_FILTER:
            raise ValidationError(name, f"use at most {MAX_FILTER} characters")
        if value:
            raw[name] = value
    since = _when("since", raw["since"], end=False) if "since" in raw else None
    until = _when("until", raw["until"], end=True) if "until" in raw else None
    if since and until and until <= since:
        raise ValidationError("until", "must be after since")
    return Filters(action=raw.get("action", ""), actor=raw.get("actor", ""), target=raw.get("target", ""),
                   since=since, until=until, q=raw.get("q", ""), raw=raw)


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _where(f: Filters) -> list:
    where = []
    if f.action:
        if f.action.endswith(".*") or "." not in f.action:
            prefix = f.action[:-2] if f.action.endswith(".*") else f.action
            where.append(sa.or_(AuditEntry.action == prefix,
                                AuditEntry.action.like(prefix.replace("%", "").replace("_", "\\_") + ".%",
                                                       escape="\\")))
        else:
            where.append(AuditEntry.action == f.action)
    if f.actor:
        where.append(sa.or_(sa.func.lower(AuditEntry.actor_name) == f.actor.lower(),
                            AuditEntry.actor_id.in_(sa.select(User.id).where(User.uuid == f.actor))))
    if f.target:
        where.append(sa.or_(AuditEntry.target_id == f.target,
                            sa.func.lower(AuditEntry.target_name) == f.target.lower()))
    if f.since:
        where.append(AuditEntry.created_at >= f.since)
    if f.until:
        where.append(AuditEntry.created_at < f.until)
    if f.q:
        like = _like(f.q)
        where.append(sa.or_(*(sa.func.lower(column).like(like, escape="\\") for column in (
            AuditEntry.action, AuditEntry.actor_name, AuditEntry.target_type, AuditEntry.target_id,
            AuditEntry.target_name, AuditEntry.reason, AuditEntry.address))))
    return where


def _select(f: Filters):
    return (sa.select(AuditEntry, User.uuid).outerjoin(User, User.id == AuditEntry.actor_id)
            .where(*_where(f)).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc()))


def entry_dict(entry: AuditEntry, actor_uuid: str | None = None) -> dict:
    return {"id": entry.id, "created_at": iso(entry.created_at),
            "actor": {"id": actor_uuid, "username": entry.actor_name},
            "action": entry.action,
            "target": {"type": entry.target_type, "id": entry.target_id, "name": entry.target_name},
            "reason": entry.reason or "", "details": entry.details or {}, "address": entry.address or ""}


def page(f: Filters, *, offset: int, limit: int) -> tuple[list[dict], int]:
    """The rows that match, newest first, as dicts; and how many match."""
    total = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry).where(*_where(f)))
    rows = db.session.execute(_select(f).offset(offset).limit(limit)).all()
    return [entry_dict(entry, uuid) for entry, uuid in rows], total


def _cell(value) -> str:
    """Spreadsheets run a cell that starts with = + - @ (or a tab or CR) as a formula: quote it."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_rows(f: Filters) -> Iterator[str]:
    """The matching rows as CSV text, header first, newest first, a few rows at a time."""
    out = io.StringIO()
    writer = csv.writer(out)

    def flush() -> str:
        text = out.getvalue()
        out.seek(0)
        out.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for n, (entry, uuid) in enumerate(db.session.execute(_select(f).execution_options(yield_per=500))):
        writer.writerow([entry.id, iso(entry.created_at), _cell(entry.actor_name), uuid or "", entry.action,
                         entry.target_type, _cell(entry.target_id), _cell(entry.target_name),
                         _cell(entry.reason), entry.address,
                         _cell(json.dumps(entry.details, sort_keys=True)) if entry.details else ""])
        if n % 200 == 199:
            yield flush()
    yield flush()
