"""GET /metrics: the service's figures in Prometheus' text format (services/core/metrics.py).

For a scraper, `Authorization: Bearer <DAYDREAM_METRICS_TOKEN>`; for a person, a
signed-in staff account. Without a token set, only staff get in. Not under /api/v1: it
is Prometheus' format, not the API's. A GET (no CSRF) with no rate limit of its own, so
a scraper every few seconds is never refused."""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, current_app, jsonify, request
from flask_login import current_user

from services.core import metrics

bp = Blueprint("metrics", __name__)


def _refused(status: int, code: str, message: str) -> Response:
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _bearer() -> str | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


@bp.get("/metrics")
def scrape():
    given = _bearer()
    if given is not None:
        expected = current_app.config["METRICS_TOKEN"]
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return _refused(401, "bad_token", "That is not the metrics token (DAYDREAM_METRICS_TOKEN).")
    elif not current_user.is_authenticated:
        return _refused(401, "not_signed_in", "Send the metrics token as a bearer token, or sign in as staff.")
    elif not current_user.is_staff:
        return _refused(403, "forbidden", "Only staff can read the metrics.")
    response = Response(metrics.render(), mimetype=None, content_type=metrics.CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
