"""Admin → Moderation (/admin/moderation): prompt rules, blocked attempts, showcase
reports and images held by the image check. Routes on the admin blueprint."""
from __future__ import annotations

from flask import render_template

from views.admin import bp


@bp.get("/moderation")
def moderation():
    return render_template("admin/moderation.html")
