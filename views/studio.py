"""The studio page: the side panel and the session timeline (filled by site/static/js/pages/studio/main.js)."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_login import current_user

from services.accounts import credits
from services.generation import access, catalog, guides, params, tasks, upscalers
from views.access import require_sign_in

bp = Blueprint("studio", __name__)
bp.before_request(require_sign_in)  # every page here is for a signed-in user (views/access.py)

INPAINT_SETTINGS = ("mask_blur", "inpaint_padding", "inpaint_area", "masked_content", "mask_invert")


def inpaint_rules() -> dict:
    """{field: rule} of the inpaint settings the panel offers (params.RULES): {min, max,
    step, default} of a number, {choices, default} of a choice, {default} of a switch."""
    out = {}
    for name in INPAINT_SETTINGS:
        rule = params.RULES[name]
        if rule.kind in ("int", "float"):
            out[name] = {"min": rule.min, "max": rule.max, "step": rule.step, "default": rule.default}
        elif rule.kind == "choice":
            out[name] = {"choices": list(rule.choices), "default": rule.default}
        else:
            out[name] = {"default": rule.default}
    return out


def hires_config() -> dict:
    """The Hires fix section's settings (params.HIRES_RULES): {scale, steps, denoising} as
    {min, max, step, default}, and the upscalers it offers: the latent modes, the
    built-in resamplers and the enabled upscaler models, each {id, name}."""
    rules = {name: {"min": rule.min, "max": rule.max, "step": rule.step, "default": rule.default}
             for name, rule in params.HIRES_RULES.items()}
    models = [{"id": item["id"], "name": item["name"]} for item in upscalers.available() if not item.get("builtin")]
    return {**rules, "upscaler": params.HIRES_DEFAULT_UPSCALER,
            "latent": [{"id": key, "name": name} for key, name in params.LATENT_UPSCALERS.items()],
            "builtin": [{"id": key, "name": name} for key, name in params.BUILTIN_UPSCALERS.items()],
            "models": models}


@bp.get("/studio")
def index():
    limits = tasks.limits_for(current_user)
    user = current_user._get_current_object()
    # The models this user may use (their plan's and classes': access.py), `default` theirs;
    # max_side: this user's side limit with the model (params.model_limits).
    usable = access.model_items(user)
    ids = [m["id"] for m in usable]
    cards = {model_id: card for model_id, card in catalog.cards().items() if model_id in ids}
    models = [{**m, "max_side": params.model_limits(limits, cards[m["id"]])["max_side"]} for m in usable]
    default_model = access.default_model_for(user, ids)
    return render_template(
        "studio/index.html",
        limits=limits,
        schedulers=catalog.schedulers(),
        default_scheduler=catalog.DEFAULT_SCHEDULER,
        # Each with its card (families.py): sizes, defaults, schedulers, controls that apply.
        models=models,
        loras=access.lora_items(user),
        max_loras=current_app.config["MAX_LORAS"],
        demo_model=catalog.is_demo_default(),
        # The panel's starting values: the table's, or the default model's card's (the demo
        # models' are small and quick); the panel follows the model chosen (model_defaults).
        defaults=params.studio_defaults(cards[default_model], limits) if default_model in cards
        else params.studio_defaults(catalog.card_for(default_model), limits),
        model_defaults={model_id: params.studio_defaults(card, limits) for model_id, card in cards.items()},
        cost_formula=params.COST_FORMULA,
        # The rules table (services/generation/params.py), maxima narrowed by this
        # user's limits: {field: {min, max, step, default}}; and the cost formula's units.
        rules=params.rules(limits),
        choice_rules=params.choice_rules(),
        text_rules=params.text_rules(),
        cost=params.COST,
        # What pays a task (credits.funds): the user's tokens, and their class's pool where
        # one pays for them; the cost line says "short" only when neither can (estimate.js).
        funds=credits.funds(user),
        # Inpainting and outpainting (inpaint.js): the settings' rules; each model's card
        # says whether it inpaints ("inpainting") and its size step (outpaint's sides).
        inpaint=inpaint_rules(),
        # Hires fix (hires.js): its settings' rules and the upscalers it may use.
        hires=hires_config(),
        # Guides (guidepanel.js): the enabled ControlNets and IP-Adapters, each {id, name,
        # family, adapter, architecture, control_modes}, and how many of each a task may take; each
        # model's card says which it takes (controlnet, ip_adapter) and whether it edits.
        guides=[{"id": guide_id, **guide} for guide_id, guide in catalog.guide_table().items()
                if guides.runs(guide)],
        max_control=current_app.config["MAX_CONTROL"],
        max_references=current_app.config["MAX_REFERENCES"],
    )
