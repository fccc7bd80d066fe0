"""The staff audit trail (services/core/audit.py): list and filter it, or download the
same filter as CSV. Read-only: no route changes or deletes a row. On staff_bp (staff
only: 401 for strangers, 403 for everyone else)."""
from __future__ import annotations

from datetime import datetime, timezone

from flask import Response, request, stream_with_context

from services.core import audit
from views.api.common import listing, paging, staff_bp
from views.api.openapi import PAGING, answer, list_of, op


@staff_bp.get("/admin/audit")
def admin_audit():
    filters = audit.parse_filters(request.args)
    offset, limit = paging()
    items, total = audit.page(filters, offset=offset, limit=limit)
    return listing(items, total, offset, limit)


@staff_bp.get("/admin/audit.csv")
def admin_audit_csv():
    filters = audit.parse_filters(request.args)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    response = Response(stream_with_context(audit.csv_rows(filters)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="daydream-audit-{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


_STR = {"type": "string"}
FILTER_PARAMS = [
    {"name": "action", "in": "query", "schema": _STR,
     "description": "an action (tokens.grant) or an area (tokens, or tokens.*) for all of its actions"},
    {"name": "actor", "in": "query", "schema": _STR, "description": "who did it: a username or a public user id"},
    {"name": "target", "in": "query", "schema": _STR, "description": "what it was done to: its id or name"},
    {"name": "since", "in": "query", "schema": _STR, "description": "YYYY-MM-DD or an ISO date and time (UTC)"},
    {"name": "until", "in": "query", "schema": _STR, "description": "YYYY-MM-DD (that day included) or an ISO time"},
    {"name": "q", "in": "query", "schema": _STR,
     "description": "free text in the action, names, ids, reason and address"},
]
OPENAPI_SCHEMAS = {
    "AuditEntry": {"type": "object", "properties": {
        "id": {"type": "integer"}, "created_at": _STR,
        "actor": {"type": "object", "properties": {"id": {"type": ["string", "null"]}, "username": _STR}},
        "action": _STR,
        "target": {"type": "object", "properties": {"type": _STR, "id": _STR, "name": _STR}},
        "reason": _STR, "details": {"type": "object"}, "address": _STR}},
}
OPENAPI = {
    "/admin/audit": {"get": op(
        "The audit trail of staff actions, newest first, filtered (staff)",
        answer("Audit rows", list_of("AuditEntry")), params=PAGING + FILTER_PARAMS,
        error_codes=(401, 403, 422))},
    "/admin/audit.csv": {"get": op(
        "The audit rows of the same filter as CSV, as a download (staff)",
        {"200": {"description": "CSV", "content": {"text/csv": {}}}}, params=FILTER_PARAMS,
        error_codes=(401, 403, 422))},
}
