"""A class's settings, checked and stored here (services/generation and
services/moderation apply them): the token budget (staff only: a teacher may not give
their class tokens), the per-member image caps, the models and LoRAs its members may
use, the moderation preset, and whether members may share into the class gallery."""
from __future__ import annotations

import sqlalchemy as sa

from extensions import db
from models import AiModel, SchoolClass, User, iso
from services.accounts import classes
from services.core.errors import Forbidden, ValidationError

BUDGET_MODES = ("none", "pool", "allowance")
BUDGET_PERIODS = ("day", "week", "month")
PRESETS = ("strict", "standard")
MAX_CAP = 10_000
MAX_BUDGET = 10**9
MAX_ALLOWED = 500
STAFF_FIELDS = ("name", "sso_group", "budget_mode", "budget_tokens", "budget_period")
TEACHER_FIELDS = ("images_per_hour", "images_per_day", "allowed_models", "allowed_loras",
                  "moderation_preset", "gallery")


def _usable(lora: bool):
    """The enabled models (or LoRAs) a class may allow: no upscalers, no guide models."""
    return sa.select(AiModel).where(AiModel.enabled.is_(True), AiModel.lora.is_(lora),
                                    AiModel.upscaler.is_(False), AiModel.adapter.is_(None))


def model_choices() -> list[AiModel]:
    return list(db.session.scalars(_usable(False).order_by(AiModel.is_default.desc(), AiModel.name)))


def lora_choices() -> list[AiModel]:
    return list(db.session.scalars(_usable(True).order_by(AiModel.family, AiModel.name)))


def settings_dict(school_class: SchoolClass) -> dict:
    return {"budget": {"mode": school_class.budget_mode, "tokens": school_class.budget_tokens,
                       "period": school_class.budget_period, "pool_tokens": school_class.pool_tokens,
                       "period_started_at": iso(school_class.budget_at)},
            "images_per_hour": school_class.images_per_hour, "images_per_day": school_class.images_per_day,
            "allowed_models": school_class.allowed_models, "allowed_loras": school_class.allowed_loras,
            "moderation_preset": school_class.moderation_preset, "gallery": school_class.gallery}


def _whole(field: str, value, low: int, high: int, *, none_ok: bool) -> int | None:
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        nothing = " or null (no cap)" if none_ok else ""
        raise ValidationError(field, f"must be a whole number from {low} to {high}{nothing}")
    return value


def _choice(field: str, value, choices: tuple, *, none_ok: bool = False):
    if value is None and none_ok:
        return None
    if value not in choices:
        raise ValidationError(field, f"must be one of {', '.join(choices)}" + (" or null" if none_ok else ""))
    return value


def _allowed(field: str, value, *, lora: bool) -> list[str] | None:
    """None (every enabled one) or a list of ids of enabled models (LoRAs)."""
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > MAX_ALLOWED or not all(isinstance(v, str) for v in value):
        raise ValidationError(field, f"must be a list of at most {MAX_ALLOWED} ids, or null for every enabled one")
    wanted = list(dict.fromkeys(value))
    known = set(db.session.scalars(_usable(lora).with_only_columns(AiModel.id).where(AiModel.id.in_(wanted))))
    unknown = [v for v in wanted if v not in known]
    if unknown:
        what = "LoRA" if lora else "model"
        raise ValidationError(field, f"{unknown[0][:80]!r} is not an enabled {what}")
    return wanted


def _clean(field: str, value, school_class: SchoolClass):
    if field == "name":
        return classes.clean_name(value)
    if field == "sso_group":
        return classes.clean_sso_group(value, school_class)
    if field == "budget_mode":
        return _choice(field, value, BUDGET_MODES)
    if field == "budget_period":
        return _choice(field, value, BUDGET_PERIODS)
    if field == "budget_tokens":
        return _whole(field, value, 0, MAX_BUDGET, none_ok=False)
    if field in ("images_per_hour", "images_per_day"):
        return _whole(field, value, 1, MAX_CAP, none_ok=True)
    if field in ("allowed_models", "allowed_loras"):
        return _allowed(field, value, lora=field == "allowed_loras")
    if field == "moderation_preset":
        return _choice(field, value, PRESETS, none_ok=True)
    if not isinstance(value, bool):  # gallery
        raise ValidationError(field, "must be true or false")
    return value


def update_settings(actor: User, school_class: SchoolClass, data: dict) -> SchoolClass:
    """Change some settings ({field: value}; the fields of STAFF_FIELDS for staff only),
    with one audit row naming what changed. A new budget mode or period starts a new
    period at the next use (budget_at cleared: the pool is filled then)."""
    if not data:
        raise ValidationError("body", "name at least one of " + ", ".join(STAFF_FIELDS + TEACHER_FIELDS))
    for field in data:
        if field not in STAFF_FIELDS + TEACHER_FIELDS:
            raise ValidationError(field, "cannot be changed here")
        if field in STAFF_FIELDS and not actor.is_staff:
            raise Forbidden(f"{field}: only staff can change a class's name, group and budget.",
                            code="staff_only", field=field)
    cleaned = {field: _clean(field, value, school_class) for field, value in data.items()}
    changed = {f: v for f, v in cleaned.items() if getattr(school_class, f) != v}
    if not changed:
        return school_class
    before = school_class.name
    for field, value in changed.items():
        setattr(school_class, field, value)
    if "budget_mode" in changed or "budget_period" in changed:
        school_class.budget_at = None
    action = "rename" if set(changed) == {"name"} else "settings"
    classes.record(action, school_class, actor=actor, details={"changed": changed, **(
        {"from": before} if "name" in changed else {})})
    db.session.commit()
    return school_class
