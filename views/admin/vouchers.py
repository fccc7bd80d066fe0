"""Admin → Vouchers (/admin/vouchers): the vouchers made, by state. The table is a
server-rendered partial (admin/_vouchers_rows.html), fetched again by
site/static/js/pages/admin-vouchers.js after a filter or a page; making vouchers and
their CSV go to the staff API (views/api/admin.py)."""
from __future__ import annotations

from flask import render_template, request

from services.accounts.vouchers import list_vouchers
from views.admin.common import bp, offset_arg, recent_auth_minutes

VOUCHERS_PAGE = 50
VOUCHER_STATES = ("all", "unredeemed", "redeemed")


@bp.get("/vouchers")
def vouchers():
    return render_template("admin/vouchers.html", **vouchers_context("all", 0),
                           recent_auth_minutes=recent_auth_minutes())


def vouchers_context(state: str, offset: int) -> dict:
    state = state if state in VOUCHER_STATES else "all"
    items, total = list_vouchers(state=state, offset=offset, limit=VOUCHERS_PAGE)
    return {"vouchers": items, "vouchers_total": total, "vouchers_offset": offset,
            "vouchers_limit": VOUCHERS_PAGE, "state": state}


@bp.get("/vouchers/rows")
def vouchers_rows():
    """The vouchers table (admin/_vouchers_rows.html) for ?state= and ?offset=."""
    return render_template("admin/_vouchers_rows.html", **vouchers_context(request.args.get("state", "all"), offset_arg()))
