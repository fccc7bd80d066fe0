"""Reports of showcase pictures: a signed-in user reports an item the public showcase
shows (its showcase id: an image id or a folder file's key), with an optional reason;
the report waits in Admin → Moderation, where staff hide the item from the showcase
(services/library/showcase.set_hidden) or dismiss the report. Acting on a report acts
on every open report of the same item, so one click clears an item reported many times.

One open report per user and item: reporting it again answers the open report (200)
instead of adding another. New reports are rate-limited per user (REPORT_LIMIT)."""
from __future__ import annotations

import sqlalchemy as sa
from flask import current_app

from extensions import db
from models import Report, User, iso, utcnow
from services.core import audit, ratelimit
from services.core.errors import Conflict, NotFound, ServiceError, ValidationError
from services.library import showcase

MAX_REASON = 500
ACTIONS = ("hide", "dismiss")
STATES = ("open", "hidden", "dismissed")
DEFAULT_LIMIT = "20 per hour"


def _rules(user: User) -> list[tuple[str, str, str, str]]:
    return [(current_app.config.get("REPORT_LIMIT") or DEFAULT_LIMIT, "report", user.uuid, "reports")]


def _visible(item_id: str) -> None:
    """NotFound unless the public showcase shows the item (what visitors can see)."""
    if not isinstance(item_id, str) or not item_id or len(item_id) > 40:
        raise NotFound("No such showcase image.")
    showcase.file_of(item_id, "full", staff=False)


def _reason(data) -> str:
    if data is None:
        return ""
    if not isinstance(data, dict):
        raise ValidationError("body", "send a JSON object")
    reason = data.get("reason", "")
    if reason is None:
        return ""
    if not isinstance(reason, str):
        raise ValidationError("reason", "must be text")
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise ValidationError("reason", f"is {len(reason)} characters long; at most {MAX_REASON} are allowed")
    return reason


def report(user: User, item_id: str, data) -> tuple[dict, bool]:
    """(the report, whether it is new). The user's open report of the item if there is
    one already; else a new one (rate-limited)."""
    reason = _reason(data)
    _visible(item_id)
    existing = db.session.scalar(sa.select(Report).where(
        Report.item_id == item_id, Report.reporter_id == user.id, Report.state == "open"))
    if existing is not None:
        return report_dict(existing), False
    rules = _rules(user)
    ratelimit.check(rules)
    entry = Report(item_id=item_id, reporter_id=user.id, reason=reason, state="open")
    db.session.add(entry)
    db.session.commit()
    ratelimit.hit(rules)
    return report_dict(entry), True


def report_dict(entry: Report, item: dict | None = None, reporter: tuple | None = None) -> dict:
    body = {"id": entry.id, "item_id": entry.item_id, "reason": entry.reason or "", "state": entry.state,
            "created_at": iso(entry.created_at), "resolved_at": iso(entry.resolved_at)}
    if reporter is not None:
        body["reporter"] = {"id": reporter[0], "username": reporter[1]} if reporter[0] else None
    if item is not None or reporter is not None:
        body["item"] = item
    return body


def _items_by_id() -> dict[str, dict]:
    return {item["id"]: item for item in showcase.items(include_hidden=True)}


def list_reports(*, state: str = "open", offset: int = 0, limit: int = 50) -> tuple[list[dict], int]:
    """Reports in a state (open ones first by default), newest first, each with its item
    as the showcase lists it (null when the item is no longer in the showcase), its
    reporter, and how many open reports the item has."""
    if state not in STATES + ("all",):
        raise ValidationError("state", "must be open, hidden, dismissed or all")
    where = [] if state == "all" else [Report.state == state]
    total = db.session.scalar(sa.select(sa.func.count()).select_from(Report).where(*where))
    rows = db.session.execute(
        sa.select(Report, User.uuid, User.username).outerjoin(User, User.id == Report.reporter_id)
        .where(*where).order_by(Report.created_at.desc(), Report.id.desc()).offset(offset).limit(limit)).all()
    items = _items_by_id() if rows else {}
    open_counts = dict(db.session.execute(
        sa.select(Report.item_id, sa.func.count()).where(
            Report.state == "open", Report.item_id.in_({r.item_id for r, _u, _n in rows}))
        .group_by(Report.item_id)).all()) if rows else {}
    result = []
    for entry, uuid, username in rows:
        body = report_dict(entry, items.get(entry.item_id), (uuid, username))
        body["open_reports"] = open_counts.get(entry.item_id, 0)
        result.append(body)
    return result, total


def get_report(report_id) -> Report:
    try:
        entry = db.session.get(Report, int(report_id))
    except (TypeError, ValueError, OverflowError):
        entry = None
    if entry is None:
        raise NotFound("No such report.")
    return entry


def resolve(staff: User, report_id, data) -> dict:
    """Act on a report: {"action": "hide" | "dismiss", "reason"?}. Every open report of
    the same item is closed with it, and the decision is audited (one row)."""
    if not isinstance(data, dict):
        raise ValidationError("body", "send a JSON object")
    action = data.get("action")
    if action not in ACTIONS:
        raise ValidationError("action", "must be \"hide\" or \"dismiss\"")
    why = data.get("reason", "")
    if why is not None and not isinstance(why, str):
        raise ValidationError("reason", "must be text")
    why = (why or "").strip()[:MAX_REASON]
    entry = get_report(report_id)
    if entry.state != "open":
        raise Conflict(f"This report was {entry.state} already.")
    reports = list(db.session.scalars(sa.select(Report).where(
        Report.item_id == entry.item_id, Report.state == "open")))
    now = utcnow()
    for each in reports:
        each.state = "hidden" if action == "hide" else "dismissed"
        each.resolved_by_id, each.resolved_at = staff.id, now
    kind = "showcase_file" if entry.item_id.startswith(showcase.FILE_PREFIX) else "image"
    audit.record(f"moderation.report_{action}", target_type=kind, target_id=entry.item_id,
                 target_name=f"report #{entry.id}", reason=why or entry.reason or "",
                 details={"reports": sorted(r.id for r in reports), "reported_reason": entry.reason or ""},
                 actor=staff)
    if action == "hide":
        try:
            showcase.set_hidden(staff, entry.item_id, True)  # commits the reports and the audit row too
        except ServiceError as exc:
            db.session.rollback()
            if isinstance(exc, NotFound):
                raise NotFound("This picture is no longer in the showcase (its owner made it private, "
                               "or it was unfeatured); dismiss the report instead.")
            raise
    else:
        db.session.commit()
    return {"action": action, "item_id": entry.item_id, "resolved": len(reports),
            "report": report_dict(entry)}
