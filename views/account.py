"""The account page (/account): overview, settings, tokens, API tokens. The page is
rendered here; its forms talk to the JSON API (site/static/js/account.js)."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, render_template
from flask_login import current_user, login_required

from extensions import db
from models import Image, Task
from services import credits, tiers

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
    )
