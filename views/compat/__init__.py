"""The compatibility APIs other tools speak (docs/TOOLS.md): AUTOMATIC1111's web UI API
under /sdapi/v1 (a1111.py) and the OpenAI Images API under /v1 (openai.py). They take a
personal API token (Bearer, or HTTP Basic username:token; never a cookie, so no CSRF),
translate to the one submit service (services/generation/compat.py) and answer errors
in their own API's shape."""
from __future__ import annotations

from flask import request
from werkzeug.exceptions import HTTPException

from views.compat import a1111, openai

__all__ = ["a1111", "openai", "unmatched"]

# Paths of the APIs these stand in for, where no route matched: A1111's (and its
# extensions', such as ControlNet's /controlnet/*, which clients probe) and OpenAI's.
A1111_PREFIXES = ("/sdapi", "/controlnet")
OPENAI_PREFIXES = ("/v1",)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in prefixes)


def unmatched(exc: HTTPException):
    """An HTTP error (404, 405) under a compatibility API's paths that no route of it
    took, in that API's shape (A1111's as FastAPI words it, {"detail": "Not Found", ...});
    None elsewhere."""
    status = exc.code or 400
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    if _under(request.path, A1111_PREFIXES):
        return a1111.answer_error(status, "HTTPException", exc.name, headers)
    if _under(request.path, OPENAI_PREFIXES):
        code = {404: "unknown_url", 405: "method_not_allowed"}.get(status)
        message = f"Unknown route: {request.method} {request.path[:100]}" if status == 404 else exc.name
        return openai.answer_error(status, message, code=code, headers=headers)
    return None
