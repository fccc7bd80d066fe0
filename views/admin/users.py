"""Admin → Users (/admin, /admin/users): every account, searchable, and the accounts
waiting for approval. The table is a server-rendered partial (admin/_users_rows.html),
fetched again by site/static/js/pages/admin-users.js after a search or a page; the
actions on a row go to the staff API (views/api/admin.py)."""
from __future__ import annotations

from flask import render_template, request

from services.accounts import tiers
from services.accounts.staff import list_users
from views.admin.common import bp, offset_arg, recent_auth_minutes

USERS_PAGE = 25


@bp.get("/users")  # decorators apply bottom-up: url_for builds the first, "/admin"
@bp.get("/")
@bp.get("")
def users():
    return render_template("admin/users.html", tiers=tiers.tiers(),
                           **users_context("", 0, request.args.get("pending") == "1"),
                           recent_auth_minutes=recent_auth_minutes())


def users_context(q: str, offset: int, pending: bool = False) -> dict:
    """The table's rows; with pending, only accounts waiting for approval. waiting: how
    many wait (DAYDREAM_REGISTRATION=approval), for the filter's label."""
    items, total = list_users(q, offset=offset, limit=USERS_PAGE, pending=pending)
    waiting = total if pending and not q else list_users("", offset=0, limit=0, pending=True)[1]
    return {"users": items, "users_total": total, "users_offset": offset, "users_limit": USERS_PAGE, "q": q,
            "pending": pending, "waiting": waiting}


@bp.get("/users/rows")
def users_rows():
    """The users table (admin/_users_rows.html) for ?q=, ?offset= and ?pending=1."""
    return render_template("admin/_users_rows.html", **users_context(request.args.get("q", "").strip(), offset_arg(),
                                                                     request.args.get("pending") == "1"))
