"""Staff pages: users (/admin), vouchers, the queue, models. Each page is filled by
site/static/js/admin.js (admin-models.js for models) from the staff API."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template
from flask_login import current_user, login_required

from services import tiers

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def staff_only():
    if not current_user.is_staff:
        abort(403)


@bp.get("")
@bp.get("/")
@bp.get("/users")
def users():
    return render_template("admin/users.html", tiers=tiers.tiers(),
                           recent_auth_minutes=current_app.config["RECENT_AUTH_SECONDS"] // 60)


@bp.get("/vouchers")
def vouchers():
    return render_template("admin/vouchers.html",
                           recent_auth_minutes=current_app.config["RECENT_AUTH_SECONDS"] // 60)


@bp.get("/queue")
def queue():
    return render_template("admin/queue.html")


@bp.get("/models")
def models():
    return render_template("admin/models.html")
