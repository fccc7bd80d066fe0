"""Who may use which model and LoRA (issue 27). A user may use an enabled model or LoRA
when its tiers (AiModel.tiers; None: every tier) hold their tier, and every class they
are a pupil of that has an allowed list (SchoolClass.allowed_models / allowed_loras;
None: every enabled one) holds it. Staff may use every enabled one.

Every list a user sees goes through here (GET /api/v1/models, the studio, the A1111 and
OpenAI model lists), and so does every submit: a task naming another model is a 422
naming the field (`model`, or `loras`), in every API's shape. A user's default model is
the server's when they may use it, else the first they may."""
from __future__ import annotations

from dataclasses import dataclass, field

from models import AiModel, SchoolClass, User
from services.accounts import classes, tiers
from services.core.errors import ServiceError
from services.generation import catalog


class NotAvailable(ServiceError):
    """422 model_not_available: the model (field "model") or a LoRA ("loras") is one the
    user's plan or class does not allow."""

    status = 422
    code = "model_not_available"

    def __init__(self, message: str, *, field: str):
        super().__init__(message, field=field)

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["fields"] = {self.field: self.message}
        return body


@dataclass
class Rules:
    """What limits a user: their tier and the classes they are a pupil of (none for staff)."""

    staff: bool
    tier: dict
    pupil_of: list[SchoolClass] = field(default_factory=list)


def rules_for(user: User) -> Rules:
    if user.is_staff:
        return Rules(staff=True, tier=tiers.tier_for(user))
    return Rules(staff=False, tier=tiers.tier_for(user), pupil_of=classes.pupil_classes(user))


def _names(ids: list[str], rows: list[AiModel]) -> str:
    by_id = {row.id: row.name for row in rows}
    found = [by_id[i] for i in ids if i in by_id]
    return ", ".join(found) if found else "none"


def refusal(rules: Rules, row: AiModel, shown: str | None = None) -> str | None:
    """Why the user may not use this model or LoRA ("'x' is not available to you: …"), or
    None when they may."""
    if rules.staff:
        return None
    what = f"'{(shown or row.id)[:80]}' is not available to you"
    if row.tiers is not None and rules.tier["id"] not in row.tiers:
        plans = [t["name"] for t in tiers.tiers() if t["id"] in row.tiers]
        comes = f"; it comes with {', '.join(plans)}" if plans else ""
        return f"{what}: your plan ({rules.tier['name']}) does not include it{comes}"
    for school_class in rules.pupil_of:
        allowed = school_class.allowed_loras if row.lora else school_class.allowed_models
        if allowed is not None and row.id not in allowed:
            rows = catalog.enabled_loras() if row.lora else catalog.enabled_models()
            return f"{what}: your class {school_class.name} allows {_names(allowed, rows)}"
    return None


def may_use(rules: Rules, row: AiModel) -> bool:
    return refusal(rules, row) is None


def usable_models(user: User) -> list[AiModel]:
    """The enabled models the user may use, the server's default first."""
    rules = rules_for(user)
    return [row for row in catalog.enabled_models() if may_use(rules, row)]


def usable_loras(user: User) -> list[AiModel]:
    rules = rules_for(user)
    return [row for row in catalog.enabled_loras() if may_use(rules, row)]


def usable_model_ids(user: User) -> list[str]:
    return [row.id for row in usable_models(user)]


def default_model_for(user: User, usable: list[str] | None = None) -> str:
    """The server's default model when the user may use it, else the first they may (a
    user who may use none gets the server's, and a submit says why they cannot)."""
    server = catalog.default_model()
    usable = usable_model_ids(user) if usable is None else usable
    return server if server in usable or not usable else usable[0]


def model_items(user: User) -> list[dict]:
    """The models the user may use as GET /api/v1/models lists them, `default` marking
    the user's default."""
    rows = usable_models(user)
    default = default_model_for(user, [row.id for row in rows])
    return [{**catalog.model_to_dict(row, plan=True), "default": row.id == default} for row in rows]


def lora_items(user: User) -> list[dict]:
    return [catalog.model_to_dict(row) for row in usable_loras(user)]


def check_model(user: User, model_id: str, *, field: str = "model", shown: str | None = None) -> None:
    """NotAvailable naming `field` unless the user may use this model. An id that is no
    enabled model is left to the parameter checks (their own 422)."""
    row = catalog.row_of(model_id) if isinstance(model_id, str) else None
    if row is None:
        return
    why = refusal(rules_for(user), row, shown)
    if why:
        raise NotAvailable(why, field=field)


def check_task(user: User, params: dict) -> None:
    """A task's model and LoRAs (checked parameters) against what the user may use."""
    rules = rules_for(user)
    if rules.staff:
        return
    row = catalog.row_of(params.get("model") or "")
    why = refusal(rules, row) if row is not None else None
    if why:
        raise NotAvailable(why, field="model")
    for lora in params.get("loras") or ():
        row = catalog.row_of(lora["id"])
        why = refusal(rules, row, lora.get("name")) if row is not None else None
        if why:
            raise NotAvailable(why, field="loras")
