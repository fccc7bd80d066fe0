"""Staff pages."""
from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_login import current_user, login_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def staff_only():
    if not current_user.is_staff:
        abort(403)


@bp.get("/models")
def models():
    return render_template("admin/models.html")
