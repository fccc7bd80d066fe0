"""The studio page: the side panel and the session timeline (filled by studio.js)."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

from services import catalog, tasks
from services.validation import DEFAULTS

bp = Blueprint("studio", __name__)


@bp.get("/studio")
@login_required
def index():
    from flask_login import current_user

    return render_template(
        "studio/index.html",
        limits=tasks.limits_for(current_user),
        schedulers=catalog.schedulers(),
        default_scheduler=catalog.DEFAULT_SCHEDULER,
        models=catalog.models(),
        demo_model=catalog.is_demo_default(),
        defaults={k: DEFAULTS[k] for k in ("prompt", "negative_prompt", "steps", "guidance",
                                           "width", "height", "samples", "seed")},
        cost_formula="samples × ceil(steps × width × height / (50 × 512 × 512))",
    )
