"""Staff: model jobs (installs from a hub repo id or an https URL; convert and merge add
their own kinds) on staff_bp (views/api/common.py: staff only). Starting, retrying and
cancelling a job need a recent sign-in from a browser session, like the other staff
writes."""
from __future__ import annotations

from flask import jsonify, request
from flask_login import current_user

from services.core import audit
from services.generation import installs, model_jobs
from views.api.common import body, listing, paging, staff_bp
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref
from views.reauth import require_recent_sign_in


@staff_bp.post("/admin/models/install")
def admin_install_model():
    data = body()
    require_recent_sign_in()
    job = installs.start_install(current_user._get_current_object(), data)
    return jsonify(model_jobs.job_to_dict(job)), 202


@staff_bp.get("/admin/model-jobs")
def admin_model_jobs():
    offset, limit = paging()
    kind = request.args.get("kind") or None
    rows, total = model_jobs.list_jobs(offset=offset, limit=limit, kind=kind)
    return listing([model_jobs.job_to_dict(job) for job in rows], total, offset, limit)


@staff_bp.get("/admin/model-jobs/<job_id>")
def admin_model_job(job_id: str):
    return jsonify(model_jobs.job_to_dict(model_jobs.get_job(job_id)))


@staff_bp.post("/admin/model-jobs/<job_id>/cancel")
def admin_cancel_model_job(job_id: str):
    reason = audit.reason_of(body().get("reason"))
    model_jobs.get_job(job_id)
    require_recent_sign_in()
    return jsonify(model_jobs.job_to_dict(model_jobs.cancel(job_id, reason)))


@staff_bp.post("/admin/model-jobs/<job_id>/retry")
def admin_retry_model_job(job_id: str):
    data = body()
    model_jobs.get_job(job_id)
    require_recent_sign_in()
    job = installs.retry_install(current_user._get_current_object(), job_id, data)
    return jsonify(model_jobs.job_to_dict(job)), 202


_STR, _INT = {"type": "string"}, {"type": "integer"}
_NULL_STR, _NULL_INT = {"type": ["string", "null"]}, {"type": ["integer", "null"]}
OPENAPI_SCHEMAS = {
    "ModelJob": {"type": "object", "properties": {
        "id": _STR, "kind": {"enum": ["install", "convert", "merge"]},
        "state": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
        "source": _STR, "options": {"type": "object"}, "destination": _NULL_STR,
        "done_bytes": _INT, "total_bytes": _NULL_INT, "rate": _NULL_INT, "eta_s": {"type": ["number", "null"]},
        "sha256": _NULL_STR, "error": _NULL_STR, "model_id": _NULL_STR, "created_by": _NULL_STR,
        "created_at": _STR, "started_at": _NULL_STR, "finished_at": _NULL_STR}},
}

OPENAPI = {
    "/admin/models/install": {"post": op(
        "Install a model from a Hugging Face repo id or an https URL to a .safetensors or .gguf file, "
        "as a background job (staff; recent sign-in). 422 names the field and the reason (an http:// "
        "URL, a pickle, a malformed id); 409 when it is installed or being installed already",
        answer("The job", ref("ModelJob"), "202"),
        body={"type": "object", "required": ["source"], "properties": {
            "source": _STR, "token": _STR, "revision": _STR, "variant": _STR,
            "files": {"type": ["string", "array"], "items": _STR}, "sha256": _STR, "reason": _STR}},
        error_codes=(401, 403, 409, 422, 503))},
    "/admin/model-jobs": {"get": op("Model jobs (installs, conversions, merges): unfinished first, then "
                                    "newest first (staff)", answer("Jobs", list_of("ModelJob")),
                                    params=PAGING + [{"name": "kind", "in": "query", "schema": _STR}],
                                    error_codes=(401, 403, 422))},
    "/admin/model-jobs/{id}": {"get": op("A model job (staff)", answer("The job", ref("ModelJob")),
                                         params=[path_id("id")], error_codes=(401, 403, 404))},
    "/admin/model-jobs/{id}/cancel": {"post": op(
        "Cancel a queued or running model job; what it wrote is removed (staff; recent sign-in). "
        "409 when it has ended", answer("The job", ref("ModelJob")),
        body={"type": "object", "properties": {"reason": _STR}},
        params=[path_id("id")], error_codes=(401, 403, 404, 409))},
    "/admin/model-jobs/{id}/retry": {"post": op(
        "Start a failed or cancelled install again: a new job with the same source and settings, which "
        "takes up the download the last one kept (staff; recent sign-in). 409 not_retryable (the job "
        "is queued, running or done), not_an_install (a convert or merge), already_installed, "
        "already_installing", answer("The new job", ref("ModelJob"), "202"),
        body={"type": "object", "properties": {"token": _STR, "reason": _STR}},
        params=[path_id("id")], error_codes=(401, 403, 404, 409, 422, 503))},
}
