"""Errors the services raise; views turn them into the API's error format or a
message on the page. Each carries the HTTP status that API.md gives it."""
from __future__ import annotations


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None,
                 status: int | None = None, headers: dict | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}
        if code:
            self.code = code
        if status:
            self.status = status

    def to_dict(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


class ValidationError(ServiceError):
    status = 422
    code = "invalid_field"

    def __init__(self, field: str, message: str, *, fields: dict | None = None):
        super().__init__(f"{field}: {message}", field=field)
        self.fields = fields or {field: message}

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["fields"] = self.fields
        return body


class NotEnoughTokens(ServiceError):
    status = 402
    code = "not_enough_tokens"


class TooLarge(ServiceError):
    status = 413
    code = "too_large"


class UnsupportedImage(ServiceError):
    status = 415
    code = "unsupported_media_type"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class QueueFull(ServiceError):
    status = 429
    code = "queue_full"


class Unavailable(ServiceError):
    status = 503
    code = "unavailable"


class InsufficientStorage(ServiceError):
    """The server's disk is full: nothing was stored (try again later)."""
    status = 507
    code = "insufficient_storage"
