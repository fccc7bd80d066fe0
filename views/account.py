"""The account page (/account): overview, settings, tokens, API tokens. The page is
rendered here; its forms talk to the JSON API (site/static/js/account.js), except
"sign out everywhere", a plain form (it ends this session too)."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user, login_required

from extensions import db
from models import Image, Task
from services import account_links, accounts, credits, mail, tiers

bp = Blueprint("account", __name__)


@bp.get("/account")
@login_required
def index():
    user = current_user
    count = lambda model: db.session.scalar(  # noqa: E731
        sa.select(sa.func.count()).select_from(model).where(model.user_id == user.id))
    rows, ledger_total = credits.ledger_page(user, 0, 20)
    return render_template(
        "account/index.html",
        user=user,
        tier=tiers.tier_for(user),
        tiers=tiers.tiers(),
        payment_configured=tiers.payment_configured(),
        image_count=count(Image),
        task_count=count(Task),
        ledger=rows,
        ledger_total=ledger_total,
        session_count=accounts.count_sessions(user),
        pending_email=account_links.pending_email(user),
        email_confirmed_by_mail=mail.configured(),
    )


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere():
    """Every sign-in of this account ends: other browsers and devices, remembered ones,
    copied cookies, and this one. API tokens stay (the API tab revokes them)."""
    from views.auth import end_this_session

    ended = accounts.end_all_sessions(current_user._get_current_object())
    end_this_session()
    flash(f"You are signed out everywhere: {ended} {'session' if ended == 1 else 'sessions'} "
          "ended, this one included.", "info")
    return redirect(url_for("auth.login"))
