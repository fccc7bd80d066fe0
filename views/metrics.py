"""GET /metrics (Prometheus text format). Placeholder: filled in by the metrics work."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("metrics", __name__)
