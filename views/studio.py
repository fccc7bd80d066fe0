"""The studio page: the side panel and the session timeline (filled by site/static/js/pages/studio/main.js)."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from services.generation import catalog, params, tasks

bp = Blueprint("studio", __name__)


@bp.get("/studio")
@login_required
def index():
    limits = tasks.limits_for(current_user)
    models = catalog.models()
    default_model = catalog.default_model()
    return render_template(
        "studio/index.html",
        limits=limits,
        schedulers=catalog.schedulers(),
        default_scheduler=catalog.DEFAULT_SCHEDULER,
        models=models,
        demo_model=catalog.is_demo_default(),
        # The panel's starting values: the table's, or the default model's own (the demo
        # model's are small and quick); the panel follows the model chosen (model_defaults).
        defaults=params.studio_defaults(default_model),
        model_defaults={m["id"]: params.studio_defaults(m["id"]) for m in models},
        cost_formula=params.COST_FORMULA,
        # The rules table (services/generation/params.py), maxima narrowed by this
        # user's limits: {field: {min, max, step, default}}; and the cost formula's units.
        rules=params.rules(limits),
        choice_rules=params.choice_rules(),
        text_rules=params.text_rules(),
        cost=params.COST,
    )
