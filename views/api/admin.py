"""Staff: models, any task."""
from __future__ import annotations

from flask import jsonify

from extensions import db
from models import Task
from services import catalog, tasks
from services.errors import NotFound
from services.openapi import answer, op, path_id, ref
from views.api import body, bp, staff_only


@bp.get("/admin/models")
def admin_models():
    staff_only()
    return jsonify({"folder": str(catalog.models_folder()),
                    "items": [m.to_dict(staff=True) for m in catalog.all_models()]})


@bp.post("/admin/models/scan")
def admin_scan_models():
    staff_only()
    return jsonify({"folder": str(catalog.models_folder()),
                    "items": [m.to_dict(staff=True) for m in catalog.scan()]})


@bp.patch("/admin/models/<model_id>")
def admin_update_model(model_id: str):
    staff_only()
    return jsonify(catalog.update_model(model_id, body()).to_dict(staff=True))


@bp.post("/admin/tasks/<task_id>/cancel")
def admin_cancel_task(task_id: str):
    staff_only()
    task = db.session.get(Task, task_id)
    if task is None:
        raise NotFound("No such task.")
    return jsonify(tasks.task_to_dict(tasks.cancel(task)))


OPENAPI = {
    "/admin/models": {"get": op("Every model and its state (staff)", answer("Models", {"type": "object"}),
                                 error_codes=(401, 403))},
    "/admin/models/scan": {"post": op("Scan the models folder (staff)", answer("Models", {"type": "object"}),
                                       error_codes=(401, 403))},
    "/admin/models/{id}": {"patch": op("Enable a model or make it the default (staff)",
                                        answer("The model", {"type": "object"}),
                                        body={"type": "object", "properties": {
                                            "enabled": {"type": "boolean"}, "default": {"type": "boolean"}}},
                                        params=[path_id("id")], error_codes=(401, 403, 404, 422))},
    "/admin/tasks/{id}/cancel": {"post": op("Cancel any task (staff)", answer("The task", ref("Task")),
                                             params=[path_id("id")], error_codes=(401, 403, 404, 409))},
}
