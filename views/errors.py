"""Errors, answered in the shape of the API that was called. Nothing a client sends
becomes a 500.

One function answers (error_response), in one of four shapes:
- NATIVE, the JSON API (/api/, /healthz): {"error": {"code", "message", "field", "fields"}};
- A1111 (/sdapi, and /controlnet, which its clients probe), as A1111's FastAPI app words
  it: {"error": the exception's name, "detail", "body", "errors"};
- OPENAI (/v1): {"error": {"message", "type", "code", "param"}};
- PAGE, everywhere else: the error page.
The handlers below say what went wrong; where an API words it differently (its own field
names, its own codes) error_for says so, once for every route of that API, matched or
not."""
from __future__ import annotations

import enum
import logging

import redis
from flask import Flask, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from extensions import db
from services.core.errors import ServiceError, ValidationError
from services.generation.compat import a1111 as a1111_terms, openai as openai_terms
from services.generation.compat.common import rename_fields

log = logging.getLogger(__name__)


class Shape(enum.Enum):
    NATIVE = "native"
    A1111 = "a1111"
    OPENAI = "openai"
    PAGE = "page"


# The paths of the APIs the compatibility routes stand in for, matched by a route or not:
# A1111's (and its extensions', such as ControlNet's /controlnet/*) and OpenAI's.
PREFIXES = {Shape.A1111: ("/sdapi", "/controlnet"), Shape.OPENAI: ("/v1",)}
CODES = {400: "bad_request", 401: "not_signed_in", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large",
         415: "unsupported_media_type", 422: "invalid_field", 429: "rate_limited",
         500: "internal_error", 503: "unavailable"}
MESSAGES = {404: "Nothing here.", 405: "This method is not allowed here.", 413: "The request body is too large."}
OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 402: "insufficient_quota",
                403: "invalid_request_error", 404: "invalid_request_error", 409: "invalid_request_error",
                410: "invalid_request_error", 413: "invalid_request_error", 415: "invalid_request_error",
                422: "invalid_request_error", 429: "rate_limit_exceeded", 503: "server_error",
                504: "server_error"}
OPENAI_CODES = {"not_signed_in": "invalid_api_key"}  # Daydream's codes that OpenAI names otherwise
# Names of what went wrong in A1111's shape where no exception class names it.
A1111_NAMES = {"internal_error": "InternalError", "unavailable": "Unavailable"}


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def shape_of(path: str) -> Shape:
    """The shape errors take at this path."""
    if path.startswith("/api/") or path == "/healthz":
        return Shape.NATIVE
    for shape, prefixes in PREFIXES.items():
        if _under(path, prefixes):
            return shape
    return Shape.PAGE


def wants_json() -> bool:
    """Whether this request is the native JSON API's."""
    return shape_of(request.path) is Shape.NATIVE


def error_response(status: int, code: str, message: str, headers: dict | None = None, body: dict | None = None,
                   *, shape: Shape | None = None, field: str | None = None, name: str | None = None):
    """The one error answer: `status`, `headers`, and the error in `shape` (by default the
    shape of the API at the request's path). `body`: the native answer when it carries more
    than code and message (ServiceError.to_dict); `field`: the field it names (OpenAI's
    param); `name`: what went wrong in A1111's words (the exception's class name)."""
    shape = shape or shape_of(request.path)
    if shape is Shape.PAGE:
        title = code.replace("_", " ").capitalize()
        response = make_response(
            render_template("errors/error.html", code=status, title=title, message=message), status)
    else:
        if shape is Shape.A1111:
            body = {"error": name or A1111_NAMES.get(code, "HTTPException"), "detail": message, "body": "",
                    "errors": message}
        elif shape is Shape.OPENAI:
            kind = OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
            body = {"error": {"message": message, "type": kind, "code": code, "param": field}}
        response = make_response(jsonify(body or {"error": {"code": code, "message": message}}), status)
    for header, value in (headers or {}).items():
        response.headers[header] = value
    return response


def error_for(exc: ServiceError):
    """A service's error, in the words of the API at the request's path: A1111's and
    OpenAI's name the fields as their clients sent them; OpenAI answers a bad field 400
    invalid_value, and names a missing sign-in invalid_api_key."""
    shape = shape_of(request.path)
    if shape is Shape.A1111:
        if isinstance(exc, ValidationError):
            exc = rename_fields(exc, a1111_terms.A1111_NAMES)
        return error_response(exc.status, exc.code, exc.message, exc.headers, shape=shape, name=type(exc).__name__)
    if shape is Shape.OPENAI:
        if isinstance(exc, ValidationError):
            exc = rename_fields(exc, openai_terms.OPENAI_NAMES)
            return error_response(400, "invalid_value", exc.message, exc.headers, shape=shape, field=exc.field)
        return error_response(exc.status, OPENAI_CODES.get(exc.code, exc.code), exc.message, exc.headers,
                              shape=shape, field=exc.field)
    return error_response(exc.status, exc.code, exc.message, exc.headers, exc.to_dict(), shape=shape)


def http_error_for(exc: HTTPException):
    """An HTTP error (404, 405, 413, …), in the words of the API at the request's path. The
    exception's own headers go along: a 405's Allow, a 401's WWW-Authenticate."""
    headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
    shape = shape_of(request.path)
    if shape in (Shape.NATIVE, Shape.PAGE):
        message = MESSAGES.get(exc.code) or exc.description or exc.name
        return error_response(exc.code or 500, CODES.get(exc.code, "error"), message, headers, shape=shape)
    status = exc.code or 400
    unmatched = exc is request.routing_exception  # no route of the API took the path
    if shape is Shape.A1111:
        message = exc.name if unmatched else exc.description or exc.name
        return error_response(status, "http_error", message, headers, shape=shape)
    code, message = None, exc.description or exc.name
    if unmatched:
        code = {404: "unknown_url", 405: "method_not_allowed"}.get(status)
        message = f"Unknown route: {request.method} {request.path[:100]}" if status == 404 else exc.name
    return error_response(status, code, message, headers, shape=shape)


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        db.session.rollback()
        return error_for(exc)

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return error_response(400, "csrf_failed", "The form expired or came from another "
                              "site; reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return http_error_for(exc)

    @app.errorhandler(redis.RedisError)
    def redis_down(exc: redis.RedisError):
        # Every Redis call has a timeout (services/core/redis_client.py): what needs Redis answers
        # 503 while it is down or hung; pages that do not need it go on working.
        log.warning("Redis unavailable on %s %s: %s", request.method, request.path, exc)
        db.session.rollback()
        return error_response(503, "unavailable", "The queue service (Redis) is not answering "
                              "right now; nothing was changed. Try again in a moment.",
                              {"Retry-After": "10"})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        db.session.rollback()
        return error_response(500, "internal_error", "Something went wrong on the server; "
                              "it has been logged. Try again.")
