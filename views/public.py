"""Public pages, seen without signing in: the landing page (/), the documentation
(/docs), the showcase (/gallery), the terms of use (/terms); and the health check."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify, render_template, request
from flask_login import current_user

from extensions import db
from services.accounts import tiers
from services.accounts.passwords import MIN_PASSWORD
from services.core import liveness, redis_client
from services.generation import catalog, families, params
from services.library import showcase

bp = Blueprint("public", __name__)
SHOWCASE_PAGE = 48


def duration(seconds: int) -> str:
    """'24 hours', '3 days', '30 minutes': how long something is kept, in words."""
    def plural(count: int, unit: str) -> str:
        return f"{count} {unit}{'' if count == 1 else 's'}"

    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return plural(seconds // 86400, "day")
    if seconds >= 3600 and seconds % 3600 == 0:
        return plural(seconds // 3600, "hour")
    if seconds >= 60:
        return plural(round(seconds / 60), "minute")
    return plural(seconds, "second")


def _is_staff() -> bool:
    return bool(current_user.is_authenticated and current_user.is_staff)


@bp.get("/")
def index():
    return render_template("public/index.html", artwork=showcase.items()[:6], tiers=tiers.tiers(),
                           payment_configured=tiers.payment_configured())


def docs_models(user_limits: dict) -> tuple[list[dict], dict]:
    """The enabled models as /docs lists them (name, family, and the values a task starts
    from: each model's card, fitted to a plain user's limits), and the default model's
    panel defaults: the same numbers the studio and the API use."""
    cards = catalog.cards()
    default_id = catalog.default_model()
    models = []
    for model in catalog.models():
        card = cards.get(model["id"])
        if card is None:
            continue
        models.append({"id": model["id"], "name": model["name"], "family": card.label,
                       "default": model["id"] == default_id, "uses_guidance": card.uses_guidance,
                       "uses_negative_prompt": card.uses_negative_prompt,
                       **params.card_defaults(card, user_limits)})
    card = cards.get(default_id) or catalog.card_for(default_id)
    return models, params.studio_defaults(card, user_limits)


@bp.get("/docs")
def docs():
    config = current_app.config
    user_limits = config["LIMITS"]["user"]
    models, defaults = docs_models(user_limits)
    return render_template("public/docs.html", limits=config["LIMITS"], defaults=defaults, models=models,
                           default_model=next((m for m in models if m["default"]), None),
                           families=families.FAMILIES.values(), max_loras=config["MAX_LORAS"],
                           loras=catalog.loras(), rules=params.rules(user_limits), cost=params.COST,
                           schedulers=catalog.schedulers(), archive_ttl=duration(config["ARCHIVE_TTL"]),
                           min_password=MIN_PASSWORD)


@bp.get("/gallery")
def gallery():
    staff = _is_staff()
    items, total = showcase.page(offset=0, limit=SHOWCASE_PAGE, include_hidden=staff)
    candidates = showcase.candidates(offset=0, limit=SHOWCASE_PAGE)[0] if staff else []
    return render_template("public/gallery.html", items=items, total=total, page_size=SHOWCASE_PAGE,
                           staff=staff, candidates=candidates)


@bp.get("/gallery/items")
def showcase_items():
    """A page of the showcase as HTML (public/_showcase_page.html), for its "Show more"."""
    offset = max(0, request.args.get("offset", 0, type=int))
    limit = min(max(1, request.args.get("limit", SHOWCASE_PAGE, type=int)), 100)
    staff = _is_staff()
    items, total = showcase.page(offset=offset, limit=limit, include_hidden=staff)
    return render_template("public/_showcase_page.html", items=items, total=total, offset=offset, staff=staff)


@bp.get("/terms")
def terms():
    return render_template("public/terms.html", archive_ttl=duration(current_app.config["ARCHIVE_TTL"]))


@bp.get("/healthz")
def healthz():
    body, ok = {}, True
    try:
        db.session.execute(sa.text("SELECT 1"))
        body["db"] = "ok"
    except Exception as exc:
        db.session.rollback()
        body["db"], ok = f"down: {exc.__class__.__name__}", False
    try:  # short timeouts: /healthz answers within 2 s whatever Redis does
        probe = redis_client.probe_connection()
        probe.ping()
        body["redis"] = "ok"
        found = liveness.alive_workers(probe)
        body["workers"] = len(found)
        # The image check (DAYDREAM_SAFETY): a worker that cannot run it takes no tasks.
        # The web is healthy still (200); workers_ready counts the workers serving.
        problems = [w["safety"] for w in found.values() if w.get("safety") not in (None, "off", "ok")]
        # The images folder's disk (DAYDREAM_MIN_FREE_MB): an almost full one, no tasks either.
        full = [w["disk"] for w in found.values() if w.get("disk") not in (None, "ok")]
        body["workers_ready"] = sum(1 for w in found.values() if w.get("safety") in (None, "off", "ok")
                                    and w.get("disk") in (None, "ok"))
        body["safety"] = problems[0] if problems else current_app.config["SAFETY"]
        body["disk"] = full[0] if full else "ok"
        body["archive_workers"] = len(liveness.alive(liveness.archive_pool(), probe))
    except Exception as exc:
        body["redis"], ok = f"down: {exc.__class__.__name__}", False
        body["workers"] = body["workers_ready"] = 0
        body["archive_workers"] = 0
    return (jsonify(body), 200) if ok else (jsonify(body), 503, {"Retry-After": "5"})
