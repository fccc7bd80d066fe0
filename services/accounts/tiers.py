"""Subscription tiers: a token allowance granted every period and per-tier limits
(largest side, pixels, samples per task, queued tasks, images per hour and per day).
Configured with DAYDREAM_TIERS (a JSON list of tiers, replacing the defaults below); the
free tier's limits default to DAYDREAM_MAX_SIDE / _MAX_PIXELS / _MAX_SAMPLES and
DAYDREAM_USER_QUEUE_LIMIT; no tier caps images unless it says so.

Nobody can pay yet: subscribing needs a payment provider (DAYDREAM_PAYMENT_PROVIDER),
and until one is configured staff move people between tiers by hand."""
from __future__ import annotations

import json
import logging

from flask import current_app

from services.core.errors import ValidationError

log = logging.getLogger(__name__)

FIELDS = ("id", "name", "price_label", "allowance", "period_days", "max_side", "max_pixels",
          "max_samples", "queue_share", "max_upscale_pixels", "images_per_hour", "images_per_day")
INT_FIELDS = ("allowance", "period_days", "max_side", "max_pixels", "max_samples", "queue_share",
              "max_upscale_pixels")
# Image caps (services/accounts/caps.py): a whole number of at least 1, or None (no cap,
# every tier's default).
CAP_FIELDS = ("images_per_hour", "images_per_day")
# The largest output of an upscale task (services/generation/upscales.py), every tier's default.
MAX_UPSCALE_PIXELS = 4096 * 4096


def _defaults(config) -> list[dict]:
    user = config["LIMITS"]["user"]
    share = config["USER_QUEUE_LIMIT"]
    return [
        {"id": "free", "name": "Free", "price_label": "Free", "allowance": 20, "period_days": 30,
         "max_side": user["max_side"], "max_pixels": user["max_pixels"],
         "max_samples": user["max_samples"], "queue_share": share,
         "max_upscale_pixels": MAX_UPSCALE_PIXELS, "images_per_hour": None, "images_per_day": None},
        {"id": "plus", "name": "Plus", "price_label": "$8 a month", "allowance": 400,
         "period_days": 30, "max_side": max(user["max_side"], 1024),
         "max_pixels": max(user["max_pixels"], 1024 * 1024),
         "max_samples": max(user["max_samples"], 6), "queue_share": max(share, 5),
         "max_upscale_pixels": MAX_UPSCALE_PIXELS, "images_per_hour": None, "images_per_day": None},
        {"id": "pro", "name": "Pro", "price_label": "$20 a month", "allowance": 1500,
         "period_days": 30, "max_side": max(user["max_side"], 1024),
         "max_pixels": max(user["max_pixels"], 1024 * 1024),
         "max_samples": max(user["max_samples"], 8), "queue_share": max(share, 10),
         "max_upscale_pixels": MAX_UPSCALE_PIXELS, "images_per_hour": None, "images_per_day": None},
    ]


def _parse(raw: str, defaults: list[dict]) -> list[dict]:
    """DAYDREAM_TIERS: a JSON list of objects with FIELDS; a missing field takes the
    free tier's value (the caps: None, no cap). A broken setting is logged and the
    defaults are used."""
    try:
        items = json.loads(raw)
        if not isinstance(items, list) or not items:
            raise ValueError("DAYDREAM_TIERS must be a non-empty JSON list")
        base = defaults[0]
        tiers = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                raise ValueError("each tier needs an \"id\"")
            tier = {**base, "name": item["id"].capitalize(), "price_label": "", **item}
            for name in INT_FIELDS:
                tier[name] = int(tier[name])
            for name in CAP_FIELDS:
                if tier[name] is not None:
                    tier[name] = int(tier[name])
                    if tier[name] < 1:
                        raise ValueError(f"{name} must be at least 1, or null for no cap")
            tiers.append({k: tier[k] for k in FIELDS})
        return tiers
    except (ValueError, TypeError) as exc:
        log.error("ignoring DAYDREAM_TIERS (%s); using the default tiers", exc)
        return defaults


def tiers() -> list[dict]:
    """Every tier, cheapest first: {id, name, price_label, allowance, period_days,
    max_side, max_pixels, max_samples, queue_share, max_upscale_pixels, images_per_hour,
    images_per_day}."""
    config = current_app.config
    defaults = _defaults(config)
    raw = config.get("TIERS_JSON") or ""
    return _parse(raw, defaults) if raw.strip() else defaults


def get_tier(tier_id: str) -> dict | None:
    return next((t for t in tiers() if t["id"] == tier_id), None)


def tier_for(user) -> dict:
    """The user's tier; an unknown id (a tier removed from the settings) falls back to
    the default tier, then to the first one."""
    return (get_tier(getattr(user, "tier", None) or "")
            or get_tier(current_app.config.get("DEFAULT_TIER", "free")) or tiers()[0])


def check_tier_id(value) -> str:
    if not isinstance(value, str) or get_tier(value) is None:
        names = ", ".join(t["id"] for t in tiers())
        raise ValidationError("tier", f"must be one of: {names}")
    return value


def payment_configured() -> bool:
    """True only once a payment provider is set up; until then subscribe buttons stay
    disabled and say why."""
    return bool((current_app.config.get("PAYMENT_PROVIDER") or "").strip())
