"""The OpenAPI 3.1 document of /api/v1 (served at /api/v1/openapi.json)."""
from __future__ import annotations

from services.validation import DEFAULTS, MAX_SEED

ERROR = {"$ref": "#/components/schemas/Error"}


def _answer(description: str, schema: dict | None = None, status: str = "200") -> dict:
    body = {"description": description}
    if schema:
        body["content"] = {"application/json": {"schema": schema}}
    return {status: body}


def _errors(*codes: int) -> dict:
    names = {400: "Bad request", 401: "Not signed in", 402: "Not enough tokens", 403: "Not allowed",
             404: "Not found", 409: "State conflict", 413: "Too large", 415: "Unsupported media type",
             422: "Invalid field", 429: "Rate limited or queue full",
             503: "A dependency is down"}
    return {str(c): {"description": names[c], "content": {"application/json": {"schema": ERROR}}}
            for c in codes}


def _op(summary: str, answers: dict, *, body: dict | None = None, params: list | None = None,
        public: bool = False, errors=(401,)) -> dict:
    op = {"summary": summary, "responses": {**answers, **_errors(*errors)}}
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


def _path_id(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


PAGING = [{"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
          {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}}]


def _list(item: str) -> dict:
    return {"type": "object", "properties": {
        "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
        "total": {"type": "integer"}, "offset": {"type": "integer"}, "limit": {"type": "integer"}}}


def document() -> dict:
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    params = {
        "type": "object", "required": ["prompt"],
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "maxLength": 1000},
            "negative_prompt": {"type": "string", "maxLength": 1000, "default": ""},
            "width": {"type": "integer", "multipleOf": 8, "minimum": 64, "default": DEFAULTS["width"]},
            "height": {"type": "integer", "multipleOf": 8, "minimum": 64, "default": DEFAULTS["height"]},
            "steps": {"type": "integer", "minimum": 1, "maximum": 150, "default": DEFAULTS["steps"]},
            "guidance": {"type": "number", "minimum": 0, "maximum": 30, "default": DEFAULTS["guidance"]},
            "samples": {"type": "integer", "minimum": 1, "default": DEFAULTS["samples"]},
            "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SEED},
            "scheduler": {"type": "string"}, "model": {"type": "string"},
            "init_image": {"type": ["string", "null"]},
            "strength": {"type": "number", "minimum": 0, "maximum": 1, "default": DEFAULTS["strength"]},
        },
    }
    paths = {
        "/auth/register": {"post": _op("Create an account", _answer("The new user", ref("User"), "201"),
                                       body={"type": "object", "required": ["username", "email", "password"],
                                             "properties": {k: {"type": "string"} for k in ("username", "email", "password")}},
                                       public=True, errors=(400, 403, 409, 422))},
        "/auth/tokens": {
            "post": _op("Create a personal API token (shown once)",
                        _answer("The token", ref("NewToken"), "201"),
                        body={"type": "object", "required": ["login", "password", "name"],
                              "properties": {k: {"type": "string"} for k in ("login", "password", "name")}},
                        public=True, errors=(401, 422)),
            "get": _op("List your API tokens", _answer("Tokens", _list("ApiToken"))),
        },
        "/auth/tokens/{id}": {"delete": _op("Revoke an API token", {"204": {"description": "Revoked"}},
                                            params=[_path_id("id")], errors=(401, 404))},
        "/me": {"get": _op("You", _answer("The signed-in user", ref("User"))),
                "patch": _op("Change your settings", _answer("The user", ref("User")),
                             body={"type": "object", "properties": {"settings": {
                                 "type": "object", "properties": {"cancel_on_leave": {"type": "boolean"},
                                                                  "previews": {"type": "boolean"}}}}},
                             errors=(400, 401, 422))},
        "/uploads": {"post": {"summary": "Upload an image for image-to-image (PNG, JPEG or WebP)",
                              "requestBody": {"required": True, "content": {"multipart/form-data": {
                                  "schema": {"type": "object", "properties": {
                                      "file": {"type": "string", "format": "binary"}}}}}},
                              "responses": {**_answer("The stored image", ref("Image"), "201"),
                                            **_errors(401, 413, 415, 422)}}},
        "/admin/models": {"get": _op("Every model and its state (staff)", _answer("Models", {"type": "object"}),
                                     errors=(401, 403))},
        "/admin/models/scan": {"post": _op("Scan the models folder (staff)", _answer("Models", {"type": "object"}),
                                           errors=(401, 403))},
        "/admin/models/{id}": {"patch": _op("Enable a model or make it the default (staff)",
                                            _answer("The model", {"type": "object"}),
                                            body={"type": "object", "properties": {
                                                "enabled": {"type": "boolean"}, "default": {"type": "boolean"}}},
                                            params=[_path_id("id")], errors=(401, 403, 404, 422))},
        "/admin/tasks/{id}/cancel": {"post": _op("Cancel any task (staff)", _answer("The task", ref("Task")),
                                                 params=[_path_id("id")], errors=(401, 403, 404, 409))},
        "/models": {"get": _op("Models", _answer("Models", {"type": "object"}))},
        "/schedulers": {"get": _op("Schedulers", _answer("Schedulers", {"type": "object"}))},
        "/estimate": {"post": _op("What a submit would cost and wait now",
                                  _answer("Estimate", {"type": "object", "properties": {
                                      "cost": {"type": "integer"}, "eta_s": {"type": ["number", "null"]},
                                      "position": {"type": "integer"}}}),
                                  body=params, errors=(401, 422))},
        "/tasks": {
            "post": _op("Submit a task", _answer("The queued task", ref("Task"), "202"), body=params,
                        params=[{"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                        errors=(400, 401, 402, 422, 429, 503)),
            "get": _op("Your tasks, newest first", _answer("Tasks", _list("Task")),
                       params=PAGING + [{"name": "session", "in": "query", "schema": {"type": "string"},
                                         "description": "`current` for this session's tasks"}]),
        },
        "/tasks/{id}": {"get": _op("A task", _answer("The task", ref("Task")), params=[_path_id("id")],
                                   errors=(401, 404))},
        "/tasks/{id}/cancel": {"post": _op("Cancel a queued or running task (refunded)", _answer("The task", ref("Task")),
                                           params=[_path_id("id")], errors=(401, 404, 409))},
        "/tasks/{id}/archive": {"get": _op("The task's images as a ZIP",
                                           {"200": {"description": "ZIP", "content": {"application/zip": {}}}},
                                           params=[_path_id("id")], errors=(401, 404, 409))},
        "/queue": {"get": _op("The queue", _answer("Queue", {"type": "object", "properties": {
            "queued": {"type": "integer"}, "running": {"type": "integer"}, "workers": {"type": "integer"},
            "your_position": {"type": ["integer", "null"]}}}))},
        "/images/{id}": {"get": _op("An image", _answer("The image", ref("Image")), params=[_path_id("id")],
                                    errors=(401, 404))},
        "/images/{id}/full": {"get": _op("The PNG, parameters embedded",
                                         {"200": {"description": "PNG", "content": {"image/png": {}}}},
                                         params=[_path_id("id")], errors=(401, 404))},
        "/images/{id}/thumbnail": {"get": _op("The WebP thumbnail (longest side 256)",
                                              {"200": {"description": "WebP", "content": {"image/webp": {}}}},
                                              params=[_path_id("id")], errors=(401, 404))},
        "/images/{id}/metadata": {"get": _op("The generation parameters", _answer("Parameters", {"type": "object"}),
                                             params=[_path_id("id")], errors=(401, 404))},
    }
    string, integer = {"type": "string"}, {"type": "integer"}
    schemas = {
        "Error": {"type": "object", "properties": {"error": {"type": "object", "required": ["code", "message"],
                  "properties": {"code": string, "message": string, "field": string}}}},
        "User": {"type": "object", "properties": {k: string for k in (
            "id", "username", "email", "first_name", "last_name", "mobile", "role", "created_at")}
            | {"tokens": integer, "active": {"type": "boolean"}}},
        "ApiToken": {"type": "object", "properties": {"id": string, "name": string, "created_at": string,
                                                      "last_used_at": {"type": ["string", "null"]}}},
        "NewToken": {"type": "object", "properties": {"id": string, "name": string, "token": string}},
        "Image": {"type": "object", "properties": {k: string for k in (
            "id", "kind", "task_id", "created_at", "url", "thumbnail_url", "metadata_url")}
            | {"width": integer, "height": integer, "seed": integer}},
        "Task": {"type": "object", "properties": params["properties"] | {
            "id": string, "state": {"enum": ["queued", "running", "done", "failed", "canceled"]},
            "cost": integer, "refunded": {"type": "boolean"}, "position": {"type": ["integer", "null"]},
            "progress": {"type": "object", "properties": {"step": integer, "total": integer}},
            "eta_s": {"type": ["number", "null"]}, "images": {"type": "array", "items": ref("Image")},
            "error": {"type": ["string", "null"]}, "created_at": string,
            "duration_s": {"type": ["number", "null"]}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Daydream API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "session"}}},
        "security": [{"bearer": []}, {"session": []}],
    }
