"""The JSON API, /api/v1 (API.md). Thin: parse, call one service, answer.

One module a feature: accounts, generation, images, gallery, archives, showcase,
admin. They put their routes on the blueprints of views/api/common.py: `bp` for
everyone signed in (routes marked @public for visitors too), `staff_bp` for staff
only. Each module documents its routes in its OPENAPI dict (merged by
views/api/openapi.py; a test checks that every route is there)."""
from __future__ import annotations

from views.api import (accounts, admin, archives, audit, classes, control, gallery, generation, images,  # noqa: F401
                       model_jobs, model_ops, moderation, openapi, pnginfo, safety_review, showcase, upscales)
from views.api.common import bp, staff_bp

__all__ = ["bp", "staff_bp"]
