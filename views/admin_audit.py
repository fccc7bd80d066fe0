"""Admin → Audit (/admin/audit): the staff audit trail. Routes on the admin blueprint."""
from __future__ import annotations

from flask import render_template

from views.admin import bp


@bp.get("/audit")
def audit():
    return render_template("admin/audit.html")
