"""Errors: JSON in the API's format under /api, a friendly page elsewhere. Nothing a
client sends becomes a 500."""
from __future__ import annotations

import logging

import redis

from flask import Flask, jsonify, make_response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from extensions import db
from services.core.errors import ServiceError
from views.compat import unmatched as compat_unmatched

log = logging.getLogger(__name__)

CODES = {400: "bad_request", 401: "not_signed_in", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 413: "too_large",
         415: "unsupported_media_type", 422: "invalid_field", 429: "rate_limited",
         500: "internal_error", 503: "unavailable"}


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_response(status: int, code: str, message: str, headers: dict | None = None, body=None):
    if wants_json():
        response = make_response(jsonify(body or {"error": {"code": code, "message": message}}), status)
    else:
        title = code.replace("_", " ").capitalize()
        response = make_response(
            render_template("errors/error.html", code=status, title=title, message=message), status)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError):
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.to_dict())

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return error_response(400, "csrf_failed", "The form expired or came from another "
                              "site; reload the page and try again.")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        # Under /sdapi, /controlnet and /v1: the compatibility API's own JSON shape.
        answer = compat_unmatched(exc)
        if answer is not None:
            return answer
        messages = {
            404: "Nothing here.", 405: "This method is not allowed here.",
            413: "The request body is too large.",
        }
        message = messages.get(exc.code) or exc.description or exc.name
        # The exception's own headers go along: a 405's Allow, a 401's WWW-Authenticate.
        headers = {name: value for name, value in exc.get_headers() if name.lower() != "content-type"}
        return error_response(exc.code or 500, CODES.get(exc.code, "error"), message, headers)

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
