"""Moderation: prompt rules (services/moderation/rules.py) and their presets
(services/moderation/presets.py), the prompts they refused, and reports of showcase pictures (services/moderation/reports.py). Staff routes are on
staff_bp (401 for strangers, 403 for everyone else) and audited; reporting a picture is
for every signed-in user (bp)."""
from __future__ import annotations

from flask import jsonify, request
from flask_login import current_user

from extensions import db
from services.core import audit
from services.core.errors import ValidationError
from services.moderation import presets, reports, rules
from views.api.common import body, bp, listing, paging, staff_bp
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref


def _reason(data: dict) -> str:
    value = data.get("reason", "")
    if value is not None and not isinstance(value, str):
        raise ValidationError("reason", "must be text")
    return (value or "").strip()[:500]


# --- prompt rules (staff) ------------------------------------------------------------------

@staff_bp.get("/admin/moderation/rules")
def moderation_rules():
    items = [rules.rule_dict(rule) for rule in rules.list_rules(request.args.get("preset") or None)]
    return jsonify({"items": items, "total": len(items)})


@staff_bp.get("/admin/moderation/preset")
def moderation_preset():
    return jsonify(presets.summary())


@staff_bp.put("/admin/moderation/preset")
def moderation_preset_set():
    data = body()
    presets.set_server_preset(data.get("preset"), actor=current_user, reason=_reason(data))
    db.session.commit()
    return jsonify(presets.summary())


@staff_bp.post("/admin/moderation/rules")
def moderation_rule_add():
    data = body()
    reason = _reason(data)
    rule = rules.build_rule(current_user, data)
    audit.record("moderation.rule_add", target_type="prompt_rule", target_id=str(rule.id),
                 target_name=rule.pattern, reason=reason,
                 details={"kind": rule.kind, "pattern": rule.pattern, "note": rule.note, "enabled": rule.enabled,
                          "preset": rule.preset})
    db.session.commit()
    return jsonify(rules.rule_dict(rule)), 201


@staff_bp.patch("/admin/moderation/rules/<rule_id>")
def moderation_rule_edit(rule_id: str):
    data = body()
    reason = _reason(data)
    unknown = sorted(set(data) - set(_RULE_FIELDS))
    if unknown:
        raise ValidationError(unknown[0], "is not a field of a rule (kind, pattern, note, enabled, preset, reason)")
    if not set(data) & {"kind", "pattern", "note", "enabled", "preset"}:
        raise ValidationError("body", "send at least one of kind, pattern, note, enabled, preset")
    rule = rules.get_rule(rule_id)
    changes = rules.change_rule(rule, data)
    if changes:
        audit.record("moderation.rule_edit", target_type="prompt_rule", target_id=str(rule.id),
                     target_name=rule.pattern, reason=reason, details={"changes": changes})
        db.session.commit()
    return jsonify(rules.rule_dict(rule))


@staff_bp.delete("/admin/moderation/rules/<rule_id>")
def moderation_rule_delete(rule_id: str):
    data = request.get_json(silent=True)
    reason = _reason(data) if isinstance(data, dict) else request.args.get("reason", "").strip()[:500]
    rule = rules.get_rule(rule_id)
    audit.record("moderation.rule_delete", target_type="prompt_rule", target_id=str(rule.id),
                 target_name=rule.pattern, reason=reason,
                 details={"kind": rule.kind, "pattern": rule.pattern, "note": rule.note, "enabled": rule.enabled,
                          "preset": rule.preset})
    db.session.delete(rule)
    db.session.commit()
    return "", 204


@staff_bp.post("/admin/moderation/rules/test")
def moderation_rules_test():
    """Which enabled rule a prompt would match under a preset (by default the server's;
    nothing is recorded)."""
    data = body()
    preset = presets.check_preset(data["preset"]) if data.get("preset") is not None else presets.server_preset()
    texts = {}
    for field in rules.FIELDS:
        value = data.get(field, "")
        if value is not None and not isinstance(value, str):
            raise ValidationError(field, "must be text")
        texts[field] = (value or "")[:2000]
    match = rules.find_match(texts, preset=preset)
    if match is None:
        return jsonify({"blocked": False, "field": None, "rule": None, "matched": None, "preset": preset,
                        "message": "No rule matches."})
    return jsonify({"blocked": True, "field": match.field, "message": rules.describe(match), "preset": preset,
                    "matched": rules.matched_text(match),
                    "rule": {"id": match.rule_id, "kind": match.kind, "pattern": match.pattern, "note": match.note}})


@staff_bp.get("/admin/moderation/blocked")
def moderation_blocked():
    offset, limit = paging()
    user = request.args.get("user", "").strip()[:40] or None
    items, total = rules.recent_blocked(offset=offset, limit=limit, user_uuid=user)
    return jsonify({"users": rules.blocked_summary(), "items": items, "total": total,
                    "offset": offset, "limit": limit})


# --- reports -------------------------------------------------------------------------------

@bp.post("/showcase/<item_id>/report")
def showcase_report(item_id: str):
    entry, new = reports.report(current_user, item_id, body())
    return jsonify(entry), 201 if new else 200


@staff_bp.get("/admin/moderation/reports")
def moderation_reports():
    offset, limit = paging()
    items, total = reports.list_reports(state=request.args.get("state", "open"), offset=offset, limit=limit)
    return listing(items, total, offset, limit)


@staff_bp.post("/admin/moderation/reports/<report_id>")
def moderation_report_act(report_id: str):
    return jsonify(reports.resolve(current_user, report_id, body()))


# --- the OpenAPI document --------------------------------------------------------------------

_STR = {"type": "string"}
_STAFF = (401, 403)
_RULE_FIELDS = {
    "kind": {"enum": list(rules.KINDS), "default": "word"},
    "pattern": {"type": "string", "minLength": 1, "maxLength": rules.MAX_PATTERN},
    "note": {"type": "string", "maxLength": rules.MAX_NOTE},
    "enabled": {"type": "boolean"},
    "preset": {"enum": list(presets.PRESETS), "default": presets.DEFAULT,
               "description": "the preset the rule belongs to (strict applies standard's rules too)"},
    "reason": {"type": "string", "description": "why (kept in the audit trail)"},
}
_PRESET_SUMMARY = {"type": "object", "properties": {
    "preset": {"enum": list(presets.PRESETS), "description": "the server's preset"},
    "configured": {"enum": list(presets.PRESETS), "description": "DAYDREAM_MODERATION_PRESET (a new install's)"},
    "presets": {"type": "array", "items": {"type": "object", "properties": {
        "id": {"enum": list(presets.PRESETS)}, "label": _STR,
        "applies": {"type": "array", "items": _STR, "description": "the presets whose rules it matches"},
        "rules": {"type": "integer"}, "enabled": {"type": "integer"}}}}}}
_USER = {"type": ["object", "null"], "properties": {"id": _STR, "username": _STR}}

OPENAPI = {
    "/admin/moderation/preset": {
        "get": op("The server's moderation preset and each preset's rules (staff)",
                  answer("Presets", _PRESET_SUMMARY), error_codes=_STAFF),
        "put": op("Choose the server's moderation preset (staff; audited). A user's prompts are matched "
                  "against the strictest of it and their pupil classes' presets",
                  answer("Presets", _PRESET_SUMMARY),
                  body={"type": "object", "required": ["preset"], "properties": {
                      "preset": {"enum": list(presets.PRESETS)}, "reason": _STR}},
                  error_codes=(*_STAFF, 422)),
    },
    "/admin/moderation/rules": {
        "get": op("The prompt rules (staff): all, or one preset's own", answer("Rules", {"type": "object", "properties": {
            "items": {"type": "array", "items": ref("PromptRule")}, "total": {"type": "integer"}}}),
            params=[{"name": "preset", "in": "query", "schema": {"enum": list(presets.PRESETS)},
                     "description": "only this preset's own rules"}],
            error_codes=(*_STAFF, 422)),
        "post": op("Add a prompt rule: a word or phrase, a pair of word lists, or a regular expression (staff)",
                   answer("The rule", ref("PromptRule"), "201"),
                   body={"type": "object", "required": ["pattern"], "properties": _RULE_FIELDS},
                   error_codes=(*_STAFF, 422)),
    },
    "/admin/moderation/rules/{id}": {
        "patch": op("Change, enable or disable a prompt rule (staff)", answer("The rule", ref("PromptRule")),
                    body={"type": "object", "properties": _RULE_FIELDS}, params=[path_id("id")],
                    error_codes=(*_STAFF, 404, 422)),
        "delete": op("Delete a prompt rule (staff)", {"204": {"description": "Deleted"}},
                     params=[path_id("id")], error_codes=(*_STAFF, 404)),
    },
    "/admin/moderation/rules/test": {
        "post": op("Which enabled rule a prompt would match under a preset (by default the server's); "
                   "nothing is recorded (staff)",
                   answer("The match", {"type": "object", "properties": {
                       "blocked": {"type": "boolean"}, "field": {"type": ["string", "null"]},
                       "message": _STR, "rule": {"type": ["object", "null"]},
                       "preset": {"enum": list(presets.PRESETS)},
                       "matched": {"type": ["string", "null"],
                                   "description": "which normalized form of the text matched, and what it read"}}}),
                   body={"type": "object", "properties": {"prompt": _STR, "negative_prompt": _STR,
                                                          "preset": {"enum": list(presets.PRESETS)}}},
                   error_codes=(*_STAFF, 422)),
    },
    "/admin/moderation/blocked": {
        "get": op("Prompts the rules refused: counts per user, and the latest attempts (staff)",
                  answer("Blocked attempts", {"type": "object", "properties": {
                      "users": {"type": "array", "items": {"type": "object", "properties": {
                          "user": _USER, "count": {"type": "integer"}, "last_at": _STR}}},
                      "items": {"type": "array", "items": ref("BlockedPrompt")},
                      "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}),
                  params=PAGING + [{"name": "user", "in": "query", "schema": _STR,
                                    "description": "only this user's (their id)"}],
                  error_codes=(*_STAFF, 422)),
    },
    "/showcase/{id}/report": {
        "post": op("Report a showcase picture to staff (signed in; 201 new, 200 when your open "
                   "report of it exists already)",
                   {**answer("Your report", ref("Report"), "201"), **answer("Your open report of it", ref("Report"))},
                   body={"type": "object", "properties": {"reason": {"type": "string", "maxLength": reports.MAX_REASON}}},
                   params=[path_id("id")], error_codes=(401, 404, 422, 429)),
    },
    "/admin/moderation/reports": {
        "get": op("Reports of showcase pictures, newest first (staff; ?state=open by default)",
                  answer("Reports", list_of("Report")),
                  params=PAGING + [{"name": "state", "in": "query",
                                    "schema": {"enum": [*reports.STATES, "all"], "default": "open"}}],
                  error_codes=(*_STAFF, 422)),
    },
    "/admin/moderation/reports/{id}": {
        "post": op("Act on a report: hide the picture from the showcase, or dismiss; every open "
                   "report of the same picture is closed with it (staff)",
                   answer("What was done", {"type": "object", "properties": {
                       "action": {"enum": list(reports.ACTIONS)}, "item_id": _STR,
                       "resolved": {"type": "integer"}, "report": ref("Report")}}),
                   body={"type": "object", "required": ["action"], "properties": {
                       "action": {"enum": list(reports.ACTIONS)}, "reason": _STR}},
                   params=[path_id("id")], error_codes=(*_STAFF, 404, 409, 422)),
    },
}

OPENAPI_SCHEMAS = {
    "PromptRule": {"type": "object", "properties": {
        "id": {"type": "integer"}, "kind": {"enum": list(rules.KINDS)}, "pattern": _STR, "note": _STR,
        "enabled": {"type": "boolean"}, "preset": {"enum": list(presets.PRESETS)}, "created_at": _STR}},
    "BlockedPrompt": {"type": "object", "properties": {
        "id": {"type": "integer"}, "user": _USER, "rule_id": {"type": ["integer", "null"]}, "rule": _STR,
        "prompt": _STR, "matched": {"type": "string", "description": "which normalized form of the prompt "
                                    "matched, and what it read there (empty for older attempts)"},
        "created_at": _STR}},
    "Report": {"type": "object", "properties": {
        "id": {"type": "integer"}, "item_id": _STR, "reason": _STR,
        "state": {"enum": list(reports.STATES)}, "created_at": _STR, "resolved_at": {"type": ["string", "null"]},
        "reporter": _USER, "item": {"type": ["object", "null"]}, "open_reports": {"type": "integer"}}},
}
