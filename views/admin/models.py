"""Admin → Models (/admin/models): a shell filled by site/static/js/pages/admin-models.js
from the staff API (GET /api/v1/admin/models, views/api/admin.py)."""
from __future__ import annotations

from flask import render_template

from views.admin.common import bp


@bp.get("/models")
def models():
    return render_template("admin/models.html")
