"""Staff: models, users, vouchers, the queue and any task. Every route is on
staff_bp (views/api/common.py), which lets staff only through.

Actions that change an account or mint tokens need a recent sign-in when they come from
a browser session (re-enter the password: POST /auth/reauth; views/reauth.py); API
tokens are credentials of their own and are not asked again."""
from __future__ import annotations

from flask import Response, jsonify, request
from flask_login import current_user

from extensions import db
from models import Task
from services.accounts import credits, links, staff, tiers, users, vouchers
from services.core import audit
from services.core.errors import NotFound
from services.generation import catalog, monitor, tasks
from views.api.common import body, listing, paging, staff_bp
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref
from views.auth import link_base
from views.reauth import require_recent_sign_in


@staff_bp.get("/admin/models")
def admin_models():
    return jsonify({"folder": str(catalog.models_folder()),
                    "items": [catalog.model_to_dict(m, staff=True) for m in catalog.all_models()],
                    # (the plans a model or LoRA may be limited to: PATCH {tiers})
                    "tiers": [{"id": t["id"], "name": t["name"]} for t in tiers.tiers()]})


@staff_bp.post("/admin/models/scan")
def admin_scan_models():
    found = catalog.scan(audit.reason_of(body().get("reason")))
    return jsonify({"folder": str(catalog.models_folder()), "skipped": found.skipped,
                    "items": [catalog.model_to_dict(m, staff=True) for m in found.models]})


@staff_bp.patch("/admin/models/<model_id>")
def admin_update_model(model_id: str):
    return jsonify(catalog.model_to_dict(catalog.update_model(model_id, body()), staff=True))


@staff_bp.post("/admin/tasks/<task_id>/cancel")
def admin_cancel_task(task_id: str):
    task = db.session.get(Task, task_id)
    if task is None:
        raise NotFound("No such task.")
    return jsonify(tasks.task_to_dict(tasks.cancel(task)))


@staff_bp.get("/admin/queue")
def admin_queue():
    return jsonify(monitor.queue_view())


@staff_bp.get("/admin/users")
def admin_users():
    offset, limit = paging()
    items, total = staff.list_users(request.args.get("q"), offset=offset, limit=limit,
                                    pending=request.args.get("pending") in ("1", "true"))
    return listing(items, total, offset, limit)


@staff_bp.get("/admin/users/<user_id>")
def admin_user(user_id: str):
    return jsonify(staff.user_row(staff.get_user(user_id)))


@staff_bp.get("/admin/users/<user_id>/ledger")
def admin_user_ledger(user_id: str):
    offset, limit = paging()
    rows, total = credits.ledger_page(staff.get_user(user_id), offset, limit)
    return listing([r.to_dict() for r in rows], total, offset, limit)


@staff_bp.patch("/admin/users/<user_id>")
def admin_update_user(user_id: str):
    data = body()
    target = staff.get_user(user_id)
    require_recent_sign_in()
    user = staff.update_user(current_user._get_current_object(), target, data)
    return jsonify(staff.user_row(user))


@staff_bp.delete("/admin/users/<user_id>")
def admin_delete_user(user_id: str):
    reason = audit.reason_of(body().get("reason", request.args.get("reason")))
    target = staff.get_user(user_id)
    require_recent_sign_in()
    staff.delete_user(current_user._get_current_object(), target, reason)
    return "", 204


@staff_bp.post("/admin/users/<user_id>/approve")
def admin_approve_user(user_id: str):
    """Let in an account that registered under DAYDREAM_REGISTRATION=approval."""
    reason = audit.reason_of(body().get("reason"))
    target = staff.get_user(user_id)
    require_recent_sign_in()
    user = users.approve_user(current_user._get_current_object(), target, reason)
    return jsonify(staff.user_row(user))


@staff_bp.post("/admin/users/<user_id>/reset-link")
def admin_reset_link(user_id: str):
    """A one-time password reset link for the user, shown to staff once."""
    reason = audit.reason_of(body().get("reason"))
    target = staff.get_user(user_id)
    require_recent_sign_in()
    link = links.staff_reset_link(current_user._get_current_object(), target, link_base(), reason)
    response = jsonify(link)
    response.headers["Cache-Control"] = "no-store"
    return response, 201


@staff_bp.post("/admin/vouchers")
def admin_create_vouchers():
    data = body()
    require_recent_sign_in()
    made = vouchers.create_batch(current_user, data.get("tokens"), data.get("count"), data.get("note"),
                                 audit.reason_of(data.get("reason")))
    return jsonify({"batch": made[0].batch, "tokens": made[0].tokens,
                    "codes": [v.code for v in made]}), 201


@staff_bp.get("/admin/vouchers")
def admin_vouchers():
    offset, limit = paging()
    items, total = vouchers.list_vouchers(state=request.args.get("state"), offset=offset, limit=limit)
    return listing([v.to_dict() for v in items], total, offset, limit)


@staff_bp.get("/admin/vouchers/unredeemed.csv")
def admin_vouchers_csv():
    response = Response(vouchers.unredeemed_csv(), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="daydream-vouchers-unredeemed.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


_STAFF_ERRORS = (401, 403)
_STR, _INT = {"type": "string"}, {"type": "integer"}
# Every staff action is a row of the audit trail (views/api/audit.py); its optional
# `reason` (the body's, or the query's for a DELETE) goes in the row.
_REASON = {"name": "reason", "in": "query", "schema": _STR}
OPENAPI_SCHEMAS = {
    "AdminUser": {"type": "object", "properties": {
        "id": _STR, "username": _STR, "email": _STR, "role": _STR, "tier": _STR, "tokens": _INT,
        "active": {"type": "boolean"}, "pending": {"type": "boolean"}, "tasks": _INT, "images": _INT,
        "last_seen_at": {"type": ["string", "null"]}, "created_at": _STR}},
    "Voucher": {"type": "object", "properties": {
        "id": _INT, "code": _STR, "tokens": _INT, "batch": _STR, "note": _STR, "created_at": _STR,
        "redeemed": {"type": "boolean"}, "redeemed_at": {"type": ["string", "null"]},
        "redeemed_by": {"type": ["string", "null"]}}},
}

OPENAPI = {
    "/admin/models": {"get": op("Every model and its state (staff)", answer("Models", {"type": "object"}),
                                 error_codes=_STAFF_ERRORS)},
    "/admin/models/scan": {"post": op("Scan the models folder (staff)", answer("Models", {"type": "object"}),
                                       body={"type": "object", "properties": {"reason": _STR}},
                                       error_codes=_STAFF_ERRORS)},
    "/admin/models/{id}": {"patch": op("Enable a model, make it the default, or limit it to tiers (staff)",
                                        answer("The model", {"type": "object"}),
                                        body={"type": "object", "properties": {
                                            "enabled": {"type": "boolean"}, "default": {"type": "boolean"},
                                            "tiers": {"type": ["array", "null"], "items": {"type": "string"}},
                                            "reason": _STR}},
                                        params=[path_id("id")], error_codes=(401, 403, 404, 422))},
    "/admin/tasks/{id}/cancel": {"post": op("Cancel any task (staff)", answer("The task", ref("Task")),
                                             params=[path_id("id")], error_codes=(401, 403, 404, 409))},
    "/admin/queue": {"get": op("Every queued and running task with its owner, position and "
                               "progress, and the workers (staff)",
                               answer("Queue", {"type": "object", "properties": {
                                   "items": {"type": "array", "items": ref("Task")},
                                   "queued": _INT, "running": _INT,
                                   "workers": {"type": "array", "items": {"type": "object"}}}}),
                               error_codes=_STAFF_ERRORS)},
    "/admin/users": {"get": op("Users, newest first; q searches username, email, id, names (staff)",
                                answer("Users", list_of("AdminUser")),
                                params=PAGING + [{"name": "q", "in": "query", "schema": _STR},
                                                 {"name": "pending", "in": "query",
                                                  "description": "true: only accounts waiting for approval",
                                                  "schema": {"enum": ["true", "false", "1", "0"]}}],
                                error_codes=(401, 403, 422))},
    "/admin/users/{id}": {
        "get": op("A user (staff)", answer("The user", ref("AdminUser")), params=[path_id("id")],
                   error_codes=(401, 403, 404)),
        "patch": op("Grant or revoke tokens (with a reason), change tier or role, deactivate "
                    "(staff; a browser session needs a recent sign-in)",
                     answer("The user", ref("AdminUser")),
                     body={"type": "object", "properties": {
                         "tokens_delta": _INT, "reason": _STR, "tier": _STR,
                         "role": {"enum": ["user", "staff"]}, "active": {"type": "boolean"}}},
                     params=[path_id("id")], error_codes=(401, 403, 404, 409, 422)),
        "delete": op("Delete a user with their images and files (staff; recent sign-in)",
                      {"204": {"description": "Deleted"}}, params=[path_id("id"), _REASON],
                      error_codes=(401, 403, 404, 409)),
    },
    "/admin/users/{id}/approve": {"post": op(
        "Approve an account waiting for approval (DAYDREAM_REGISTRATION=approval): it can sign "
        "in from now on (staff; recent sign-in). 409 when it is not waiting",
        answer("The user", ref("AdminUser")), body={"type": "object", "properties": {"reason": _STR}},
        params=[path_id("id")], error_codes=(401, 403, 404, 409))},
    "/admin/users/{id}/reset-link": {"post": op(
        "Make a one-time password reset link for the user (staff; recent sign-in). The link "
        "is shown once, expires after DAYDREAM_RESET_TTL seconds and, used, signs the user's "
        "sessions and API tokens out",
        answer("The link", {"type": "object", "required": ["url", "expires_at"], "properties": {
            "url": _STR, "expires_at": _STR}}, "201"),
        body={"type": "object", "properties": {"reason": _STR}},
        params=[path_id("id")], error_codes=(401, 403, 404))},
    "/admin/users/{id}/ledger": {"get": op("A user's ledger, newest first (staff)",
                                            answer("Ledger rows", list_of("LedgerRow")),
                                            params=[path_id("id")] + PAGING,
                                            error_codes=(401, 403, 404, 422))},
    "/admin/vouchers": {
        "post": op("Make a batch of single-use voucher codes (staff; recent sign-in)",
                    answer("The codes", {"type": "object", "properties": {
                        "batch": _STR, "tokens": _INT, "codes": {"type": "array", "items": _STR}}}, "201"),
                    body={"type": "object", "required": ["tokens", "count"], "properties": {
                        "tokens": _INT, "count": _INT, "note": _STR, "reason": _STR}},
                    error_codes=(401, 403, 422)),
        "get": op("Vouchers, newest first, with who redeemed them (staff)",
                   answer("Vouchers", list_of("Voucher")),
                   params=PAGING + [{"name": "state", "in": "query",
                                     "schema": {"enum": ["all", "redeemed", "unredeemed"]}}],
                   error_codes=(401, 403, 422)),
    },
    "/admin/vouchers/unredeemed.csv": {"get": op("The unredeemed codes as CSV (staff)",
                                                  {"200": {"description": "CSV",
                                                           "content": {"text/csv": {}}}},
                                                  error_codes=_STAFF_ERRORS)},
}
