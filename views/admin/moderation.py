"""Admin → Moderation (/admin/moderation): the server's moderation preset, prompt rules,
blocked attempts, showcase reports and images held by the image check: a shell filled by
site/static/js/pages/admin-moderation*.js from the staff API (views/api/moderation.py,
views/api/safety_review.py)."""
from __future__ import annotations

from flask import render_template

from services.moderation import presets
from views.admin.common import bp


@bp.get("/moderation")
def moderation():
    return render_template("admin/moderation.html", moderation=presets.summary())
