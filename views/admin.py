"""Staff pages: users (/admin), vouchers, the queue, models. The users and vouchers
tables are server-rendered partials (below), fetched again by their page scripts
(site/static/js/pages/admin-*.js); the rest is filled from the staff API."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, render_template, request
from flask_login import current_user, login_required

from services.accounts import tiers
from services.accounts.staff import list_users
from services.accounts.vouchers import list_vouchers

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def staff_only():
    if not current_user.is_staff:
        abort(403)


@bp.get("/users")  # decorators apply bottom-up: url_for builds the first, "/admin"
@bp.get("/")
@bp.get("")
def users():
    return render_template("admin/users.html", tiers=tiers.tiers(),
                           **users_context("", 0, request.args.get("pending") == "1"),
                           recent_auth_minutes=current_app.config["RECENT_AUTH_SECONDS"] // 60)


@bp.get("/vouchers")
def vouchers():
    return render_template("admin/vouchers.html", **vouchers_context("all", 0),
                           recent_auth_minutes=current_app.config["RECENT_AUTH_SECONDS"] // 60)


@bp.get("/queue")
def queue():
    return render_template("admin/queue.html")


@bp.get("/models")
def models():
    return render_template("admin/models.html")


# --- the tables as server-rendered partials: the page renders them first, then
# site/static/js/pages/admin-users.js / admin-vouchers.js fetch them again as HTML ---

USERS_PAGE, VOUCHERS_PAGE = 25, 50
VOUCHER_STATES = ("all", "unredeemed", "redeemed")


def _offset() -> int:
    return max(0, request.args.get("offset", 0, type=int))  # not a number: 0


def users_context(q: str, offset: int, pending: bool = False) -> dict:
    """The table's rows; with pending, only accounts waiting for approval. waiting: how
    many wait (DAYDREAM_REGISTRATION=approval), for the filter's label."""
    items, total = list_users(q, offset=offset, limit=USERS_PAGE, pending=pending)
    waiting = total if pending and not q else list_users("", offset=0, limit=0, pending=True)[1]
    return {"users": items, "users_total": total, "users_offset": offset, "users_limit": USERS_PAGE, "q": q,
            "pending": pending, "waiting": waiting}


def vouchers_context(state: str, offset: int) -> dict:
    state = state if state in VOUCHER_STATES else "all"
    items, total = list_vouchers(state=state, offset=offset, limit=VOUCHERS_PAGE)
    return {"vouchers": items, "vouchers_total": total, "vouchers_offset": offset,
            "vouchers_limit": VOUCHERS_PAGE, "state": state}


@bp.get("/users/rows")
def users_rows():
    """The users table (admin/_users_rows.html) for ?q=, ?offset= and ?pending=1."""
    return render_template("admin/_users_rows.html", **users_context(request.args.get("q", "").strip(), _offset(),
                                                                     request.args.get("pending") == "1"))


@bp.get("/vouchers/rows")
def vouchers_rows():
    """The vouchers table (admin/_vouchers_rows.html) for ?state= and ?offset=."""
    return render_template("admin/_vouchers_rows.html", **vouchers_context(request.args.get("state", "all"), _offset()))
