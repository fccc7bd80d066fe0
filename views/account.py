"""The account page (/account): overview, settings, tokens, API tokens. The page is
rendered here, the ledger, the API tokens and the ZIP archives as partials fetched again by
site/static/js/pages/account.js; its forms talk to the JSON API, except
"sign out everywhere", a plain form (it ends this session too)."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user

from extensions import db
from models import Image, Task
from services.accounts import credits, links, signin, tiers
from services.library import archives as archive_service
from services.core import mail
from views.access import require_sign_in
from views.auth import end_this_session

bp = Blueprint("account", __name__)
bp.before_request(require_sign_in)  # every page here is for a signed-in user (views/access.py)


@bp.get("/account")
def index():
    user = current_user
    count = lambda model: db.session.scalar(  # noqa: E731
        sa.select(sa.func.count()).select_from(model).where(model.user_id == user.id))
    return render_template(
        "account/index.html",
        user=user,
        tier=tiers.tier_for(user),
        tiers=tiers.tiers(),
        payment_configured=tiers.payment_configured(),
        image_count=count(Image),
        task_count=count(Task),
        **ledger_context(user, 0),
        **archives_context(user),
        api_tokens=signin.list_api_tokens(user),
        session_count=signin.count_sessions(user),
        pending_email=links.pending_email(user),
        email_confirmed_by_mail=mail.configured(),
    )


@bp.post("/account/sign-out-everywhere")
def sign_out_everywhere():
    """Every sign-in of this account ends: other browsers and devices, remembered ones,
    copied cookies, and this one. API tokens stay (the API tab revokes them)."""
    ended = signin.end_all_sessions(current_user._get_current_object())
    end_this_session()
    flash(f"You are signed out everywhere: {ended} {'session' if ended == 1 else 'sessions'} "
          "ended, this one included.", "info")
    return redirect(url_for("auth.login"))


# --- partials: the page renders them first, then pages/account.js fetches them as HTML ---

LEDGER_PAGE = 20


def ledger_context(user, offset: int) -> dict:
    rows, total = credits.ledger_page(user, offset, LEDGER_PAGE)
    return {"ledger": rows, "ledger_total": total, "ledger_offset": offset, "ledger_limit": LEDGER_PAGE}


@bp.get("/account/ledger")
def ledger():
    """The ledger card (account/_ledger.html) at ?offset=."""
    offset = max(0, request.args.get("offset", 0, type=int))
    return render_template("account/_ledger.html", **ledger_context(current_user, offset))


@bp.get("/account/api-tokens")
def api_tokens():
    """The personal API tokens table (account/_tokens.html)."""
    return render_template("account/_tokens.html", api_tokens=signin.list_api_tokens(current_user))


ARCHIVES_SHOWN = 10


def archives_context(user) -> dict:
    items, total = archive_service.list_archives(user, offset=0, limit=ARCHIVES_SHOWN)
    return {"archives": items, "archives_total": total}


@bp.get("/account/archives")
def archives():
    """The account's ZIP archives (account/_archives.html): ready, being made, failed and
    expired ones, newest first (the JSON list: GET /api/v1/archives)."""
    return render_template("account/_archives.html", **archives_context(current_user))
