"""Classes: what their teachers (and staff) see and change, the class gallery its
members share into, and Admin → Classes (staff: create, delete, name teachers).

Every route looks the class up for the signed-in user first
(services/accounts/classes.py:class_for): another class, or one the user only learns
in, answers 404, as another user's image does."""
from __future__ import annotations

from flask import jsonify, send_file
from flask_login import current_user

from services.accounts import class_gallery, class_members, class_settings, classes, join_codes
from services.core.errors import ValidationError
from views.api.common import body, bp, listing, paging, staff_bp
from views.api.openapi import PAGING, answer, list_of, op, path_id, ref

NO_CONTENT = {"204": {"description": "Done"}}


def _me():
    return current_user._get_current_object()


def _class(class_id: str, *, teach: bool = False):
    return classes.class_for(_me(), class_id, teach=teach)


def class_answer(school_class) -> dict:
    return {**classes.class_dict(school_class), "role": classes.role_in(_me(), school_class),
            "settings": class_settings.settings_dict(school_class)}


@bp.get("/classes")
def list_my_classes():
    """The classes you teach or learn in."""
    items = [{**classes.class_dict(c), "role": role} for c, role in classes.classes_of(_me())]
    return jsonify({"items": items})


@bp.get("/classes/<class_id>")
def get_class(class_id: str):
    return jsonify(class_answer(_class(class_id)))


@bp.patch("/classes/<class_id>")
def update_class(class_id: str):
    school_class = _class(class_id, teach=True)
    return jsonify(class_answer(class_settings.update_settings(_me(), school_class, body())))


@bp.get("/classes/<class_id>/members")
def class_members_list(class_id: str):
    return jsonify({"items": class_members.members(_class(class_id, teach=True))})


@bp.delete("/classes/<class_id>/members/<user_id>")
def remove_class_member(class_id: str, user_id: str):
    class_members.remove_member(_me(), _class(class_id, teach=True), user_id)
    return "", 204


@bp.post("/classes/<class_id>/members/<user_id>/password")
def reset_member_password(class_id: str, user_id: str):
    password = class_members.reset_password(_me(), _class(class_id, teach=True), user_id)
    response = jsonify({"password": password})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/classes/<class_id>/members/<user_id>/images")
def member_images(class_id: str, user_id: str):
    school_class = _class(class_id, teach=True)
    offset, limit = paging()
    items, total = class_members.pupil_images(school_class, user_id, offset=offset, limit=limit)
    return listing(items, total, offset, limit)


@bp.patch("/classes/<class_id>/images/<image_id>")
def hide_class_image(class_id: str, image_id: str):
    school_class = _class(class_id, teach=True)
    data = body()
    if set(data) != {"hidden"} or not isinstance(data["hidden"], bool):
        raise ValidationError("hidden", "send {\"hidden\": true} to hide the image or false to show it again")
    image = class_members.set_hidden(_me(), school_class, image_id, data["hidden"])
    return jsonify(class_members.image_dict(school_class, image))


def _send(class_id: str, image_id: str, variant: str, mimetype: str):
    school_class = _class(class_id)
    response = send_file(class_gallery.image_file(_me(), school_class, image_id, variant), mimetype=mimetype,
                         conditional=True, etag=True)
    response.headers["Cache-Control"] = "private, no-cache"  # a hidden image must not stay in caches
    return response


@bp.get("/classes/<class_id>/images/<image_id>/full")
def class_image_full(class_id: str, image_id: str):
    return _send(class_id, image_id, "full", "image/png")


@bp.get("/classes/<class_id>/images/<image_id>/thumbnail")
def class_image_thumbnail(class_id: str, image_id: str):
    return _send(class_id, image_id, "thumbnail", "image/webp")


@bp.get("/classes/<class_id>/codes")
def list_join_codes(class_id: str):
    return jsonify({"items": join_codes.list_codes(_class(class_id, teach=True))})


@bp.post("/classes/<class_id>/codes")
def make_join_code(class_id: str):
    school_class = _class(class_id, teach=True)
    data = body()
    unknown = set(data) - {"expires_in_days", "max_uses"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not a setting of a join code")
    row = join_codes.make_code(_me(), school_class, expires_in_days=data.get("expires_in_days", 7),
                               max_uses=data.get("max_uses"))
    return jsonify(join_codes.code_dict(row)), 201


@bp.delete("/classes/<class_id>/codes/<code_id>")
def revoke_join_code(class_id: str, code_id: str):
    join_codes.revoke_code(_me(), _class(class_id, teach=True), code_id)
    return "", 204


@bp.get("/classes/<class_id>/audit")
def class_audit(class_id: str):
    school_class = _class(class_id, teach=True)
    offset, limit = paging()
    items, total = classes.audit_rows(school_class, offset=offset, limit=limit)
    return listing(items, total, offset, limit)


@bp.get("/classes/<class_id>/gallery")
def class_gallery_list(class_id: str):
    school_class = _class(class_id)
    offset, limit = paging()
    items, total = class_gallery.gallery_images(school_class, offset=offset, limit=limit)
    return listing(items, total, offset, limit)


@bp.post("/classes/<class_id>/gallery")
def share_into_class(class_id: str):
    school_class = _class(class_id)
    data = body()
    if not isinstance(data.get("image_id"), str) or set(data) != {"image_id"}:
        raise ValidationError("image_id", "send {\"image_id\": \"<the id of one of your images>\"}")
    image = class_gallery.share(_me(), school_class, data["image_id"])
    return jsonify(class_members.image_dict(school_class, image)), 201


@bp.delete("/classes/<class_id>/gallery/<image_id>")
def unshare_from_class(class_id: str, image_id: str):
    class_gallery.unshare(_me(), _class(class_id), image_id)
    return "", 204


# --- staff: Admin → Classes -------------------------------------------------------------------

@staff_bp.get("/admin/classes")
def admin_classes():
    offset, limit = paging()
    items, total = classes.list_classes(offset=offset, limit=limit)
    return listing(items, total, offset, limit)


@staff_bp.post("/admin/classes")
def admin_create_class():
    data = body()
    unknown = set(data) - {"name", "sso_group"}
    if unknown:
        raise ValidationError(sorted(unknown)[0], "is not a field of a new class")
    school_class = classes.create_class(_me(), data.get("name"), data.get("sso_group"))
    return jsonify(class_answer(school_class)), 201


@staff_bp.delete("/admin/classes/<class_id>")
def admin_delete_class(class_id: str):
    classes.delete_class(_me(), _class(class_id))
    return "", 204


@staff_bp.post("/admin/classes/<class_id>/teachers")
def admin_add_teacher(class_id: str):
    school_class = _class(class_id)
    data = body()
    if set(data) - {"user"}:
        raise ValidationError(sorted(set(data) - {"user"})[0], "is not a field here: send {\"user\": ...}")
    classes.add_teacher(_me(), school_class, data.get("user"))
    return jsonify(class_answer(school_class)), 201


@staff_bp.delete("/admin/classes/<class_id>/teachers/<user_id>")
def admin_remove_teacher(class_id: str, user_id: str):
    classes.remove_teacher(_me(), _class(class_id), user_id)
    return "", 204


# --- the OpenAPI document ------------------------------------------------------------------------

CAP = {"type": ["integer", "null"], "minimum": 1, "maximum": class_settings.MAX_CAP}
IDS = {"type": ["array", "null"], "items": {"type": "string"}, "maxItems": class_settings.MAX_ALLOWED}
SETTINGS_BODY = {"type": "object", "additionalProperties": False, "minProperties": 1, "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": classes.NAME_MAX},
    "sso_group": {"type": ["string", "null"], "maxLength": 255},
    "budget_mode": {"enum": list(class_settings.BUDGET_MODES)},
    "budget_tokens": {"type": "integer", "minimum": 0, "maximum": class_settings.MAX_BUDGET},
    "budget_period": {"enum": list(class_settings.BUDGET_PERIODS)},
    "images_per_hour": CAP, "images_per_day": CAP, "allowed_models": IDS, "allowed_loras": IDS,
    "moderation_preset": {"enum": [*class_settings.PRESETS, None]}, "gallery": {"type": "boolean"}},
    "description": "name, sso_group and the budget_* fields are staff's only (403 for a teacher)"}
CLASS_ID, MEMBER_ID = path_id("id"), path_id("user_id")
TEACH_ERRORS = (401, 404)
PNG = {"200": {"description": "PNG", "content": {"image/png": {}}}}
WEBP = {"200": {"description": "WebP", "content": {"image/webp": {}}}}

OPENAPI = {
    "/classes": {"get": op("The classes you teach or learn in, with your role in each",
                           answer("Classes", {"type": "object", "properties": {
                               "items": {"type": "array", "items": ref("Class")}}}))},
    "/classes/{id}": {
        "get": op("A class of yours, with its settings", answer("The class", ref("Class")), params=[CLASS_ID],
                  error_codes=TEACH_ERRORS),
        "patch": op("Change a class's settings (teachers and staff)", answer("The class", ref("Class")),
                    params=[CLASS_ID], body=SETTINGS_BODY, error_codes=(401, 403, 404, 422)),
    },
    "/classes/{id}/members": {"get": op(
        "The members: role, images made today, balance (teachers)",
        answer("Members", {"type": "object", "properties": {"items": {"type": "array", "items": ref("ClassMember")}}}),
        params=[CLASS_ID], error_codes=TEACH_ERRORS)},
    "/classes/{id}/members/{user_id}": {"delete": op(
        "Remove a pupil from the class (their account stays)", NO_CONTENT, params=[CLASS_ID, MEMBER_ID],
        error_codes=TEACH_ERRORS)},
    "/classes/{id}/members/{user_id}/password": {"post": op(
        "A new password for a pupil, shown once; the old one stops working and they are signed out",
        answer("The new password", {"type": "object", "properties": {"password": {"type": "string"}}}),
        params=[CLASS_ID, MEMBER_ID], error_codes=(401, 404, 409))},
    "/classes/{id}/members/{user_id}/images": {"get": op(
        "A pupil's images, newest first (teachers)", answer("Images", list_of("ClassImage")),
        params=[CLASS_ID, MEMBER_ID, *PAGING], error_codes=(401, 404, 422))},
    "/classes/{id}/images/{image_id}": {"patch": op(
        "Hide a pupil's image (from the class gallery, the showcase and signed links) or show it again",
        answer("The image", ref("ClassImage")), params=[CLASS_ID, path_id("image_id")],
        body={"type": "object", "required": ["hidden"], "additionalProperties": False,
              "properties": {"hidden": {"type": "boolean"}}}, error_codes=(401, 404, 422))},
    "/classes/{id}/images/{image_id}/full": {"get": op(
        "The PNG of a class's image", PNG, params=[CLASS_ID, path_id("image_id")], error_codes=TEACH_ERRORS)},
    "/classes/{id}/images/{image_id}/thumbnail": {"get": op(
        "The WebP thumbnail of a class's image", WEBP, params=[CLASS_ID, path_id("image_id")],
        error_codes=TEACH_ERRORS)},
    "/classes/{id}/codes": {
        "get": op("The class's join codes (teachers)", answer("Codes", {"type": "object", "properties": {
            "items": {"type": "array", "items": ref("JoinCode")}}}), params=[CLASS_ID], error_codes=TEACH_ERRORS),
        "post": op("Make a join code; its link is /join/<code>", answer("The code", ref("JoinCode"), "201"),
                   params=[CLASS_ID], body={"type": "object", "additionalProperties": False, "properties": {
                       "expires_in_days": {"type": ["integer", "null"], "minimum": 1, "maximum": join_codes.MAX_DAYS,
                                           "default": 7, "description": "null: until withdrawn"},
                       "max_uses": {"type": ["integer", "null"], "minimum": 1, "maximum": join_codes.MAX_USES}}},
                   error_codes=(401, 404, 422)),
    },
    "/classes/{id}/codes/{code_id}": {"delete": op(
        "Withdraw a join code", NO_CONTENT, params=[CLASS_ID, path_id("code_id")], error_codes=TEACH_ERRORS)},
    "/classes/{id}/audit": {"get": op(
        "What was done in the class, newest first (teachers)", answer("Audit rows", list_of("AuditEntry")),
        params=[CLASS_ID, *PAGING], error_codes=(401, 404, 422))},
    "/classes/{id}/gallery": {
        "get": op("The class gallery: what members shared, newest first", answer("Images", list_of("ClassImage")),
                  params=[CLASS_ID, *PAGING], error_codes=(401, 404, 422)),
        "post": op("Share one of your images into the class gallery", answer("The image", ref("ClassImage"), "201"),
                   params=[CLASS_ID], body={"type": "object", "required": ["image_id"], "additionalProperties": False,
                                            "properties": {"image_id": {"type": "string"}}},
                   error_codes=(401, 404, 409, 422)),
    },
    "/classes/{id}/gallery/{image_id}": {"delete": op(
        "Take your image out of the class gallery", NO_CONTENT, params=[CLASS_ID, path_id("image_id")],
        error_codes=TEACH_ERRORS)},
    "/admin/classes": {
        "get": op("Every class (staff)", answer("Classes", list_of("Class")), params=PAGING,
                  error_codes=(401, 403, 422)),
        "post": op("Create a class (staff)", answer("The class", ref("Class"), "201"),
                   body={"type": "object", "required": ["name"], "additionalProperties": False, "properties": {
                       "name": {"type": "string", "minLength": 1, "maxLength": classes.NAME_MAX},
                       "sso_group": {"type": ["string", "null"], "maxLength": 255}}},
                   error_codes=(401, 403, 422)),
    },
    "/admin/classes/{id}": {"delete": op(
        "Delete a class (staff): members, codes and gallery go, images stay", NO_CONTENT, params=[CLASS_ID],
        error_codes=(401, 403, 404, 409))},
    "/admin/classes/{id}/teachers": {"post": op(
        "Name a teacher of the class by username, email or id (staff)", answer("The class", ref("Class"), "201"),
        params=[CLASS_ID], body={"type": "object", "required": ["user"], "additionalProperties": False,
                                 "properties": {"user": {"type": "string"}}},
        error_codes=(401, 403, 404, 409, 422))},
    "/admin/classes/{id}/teachers/{user_id}": {"delete": op(
        "Remove a teacher from the class (staff)", NO_CONTENT, params=[CLASS_ID, MEMBER_ID],
        error_codes=(401, 403, 404))},
}

OPENAPI_SCHEMAS = {
    "Class": {"type": "object", "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "sso_group": {"type": ["string", "null"]},
        "created_at": {"type": "string"}, "pupils": {"type": "integer"},
        "role": {"enum": ["teacher", "pupil", None]},
        "teachers": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "username": {"type": "string"}}}},
        "settings": {"type": "object"}}},
    "ClassMember": {"type": "object", "properties": {
        **{k: {"type": "string"} for k in ("id", "username", "name", "joined_at")},
        "role": {"enum": ["teacher", "pupil"]}, "via": {"enum": ["code", "sso", "staff"]},
        "staff": {"type": "boolean"}, "active": {"type": "boolean"},
        "images_today": {"type": "integer"}, "tokens": {"type": "integer"}}},
    "ClassImage": {"type": "object", "properties": {
        **{k: {"type": "string"} for k in ("id", "created_at", "url", "thumbnail_url")},
        "owner": {"type": "object"}, "width": {"type": "integer"}, "height": {"type": "integer"},
        "prompt": {"type": ["string", "null"]}, "hidden": {"type": "boolean"}, "shared": {"type": "boolean"}}},
    "JoinCode": {"type": "object", "properties": {
        **{k: {"type": "string"} for k in ("id", "code", "link", "created_at")},
        "state": {"enum": ["active", "expired", "revoked", "used_up"]},
        **{k: {"type": ["string", "null"]} for k in ("expires_at", "revoked_at")},
        "max_uses": {"type": ["integer", "null"]}, "uses": {"type": "integer"}}},
}
