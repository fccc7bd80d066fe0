"""Admin → Queue (/admin/queue): a shell filled by site/static/js/pages/admin-queue.js
from the staff API (GET /api/v1/admin/queue, views/api/admin.py)."""
from __future__ import annotations

from flask import render_template

from views.admin.common import bp


@bp.get("/queue")
def queue():
    return render_template("admin/queue.html")
