"""Public pages and the health check."""
from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, jsonify, render_template

from extensions import db
from services import queue

bp = Blueprint("public", __name__)


@bp.get("/")
def index():
    return render_template("public/index.html")


@bp.get("/healthz")
def healthz():
    body, ok = {}, True
    try:
        db.session.execute(sa.text("SELECT 1"))
        body["db"] = "ok"
    except Exception as exc:
        db.session.rollback()
        body["db"], ok = f"down: {exc.__class__.__name__}", False
    try:
        queue.connection().ping()
        body["redis"] = "ok"
        body["workers"] = len(queue.workers())
    except Exception as exc:
        body["redis"], ok = f"down: {exc.__class__.__name__}", False
        body["workers"] = 0
    return jsonify(body), 200 if ok else 503
