"""Admin → Audit (/admin/audit): the staff audit trail (services/core/audit.py), filtered
and paged, with a one-click CSV download of the same filter (the staff API's
/api/v1/admin/audit.csv). The table is a server-rendered partial
(admin/_audit_rows.html), fetched again by site/static/js/pages/admin-audit.js after a
filter or a page."""
from __future__ import annotations

from flask import render_template, request, url_for

from services.core import audit as trail
from services.core.errors import ValidationError
from views.admin.common import bp, offset_arg

AUDIT_PAGE = 50


def audit_context(args) -> dict:
    """The table's context for the filter in `args`; a filter that does not parse shows
    its error above an empty table (the page still answers)."""
    offset = offset_arg()
    try:
        filters = trail.parse_filters(args)
    except ValidationError as exc:
        return {"entries": [], "audit_total": 0, "audit_offset": 0, "audit_limit": AUDIT_PAGE,
                "filters": {k: args.get(k, "") for k in trail.FILTERS}, "filter_error": exc.message,
                "csv_url": url_for("api.admin.admin_audit_csv")}
    entries, total = trail.page(filters, offset=offset, limit=AUDIT_PAGE)
    return {"entries": entries, "audit_total": total, "audit_offset": offset, "audit_limit": AUDIT_PAGE,
            "filters": {k: filters.raw.get(k, "") for k in trail.FILTERS}, "filter_error": "",
            "csv_url": url_for("api.admin.admin_audit_csv", **filters.raw)}


@bp.get("/audit")
def audit():
    return render_template("admin/audit.html", actions=trail.ACTIONS, areas=trail.AREAS,
                           **audit_context(request.args))


@bp.get("/audit/rows")
def audit_rows():
    """The audit table (admin/_audit_rows.html) for the filter (action, actor, target,
    since, until, q) and ?offset=."""
    return render_template("admin/_audit_rows.html", **audit_context(request.args))
