"""Admin → Classes (/admin/classes): every class with its teachers and pupils. The table
is a server-rendered partial (admin/_classes_rows.html), fetched again by
site/static/js/pages/admin-classes.js after a change or a page; creating, renaming and
deleting classes and naming teachers go to the API (views/api/classes.py)."""
from __future__ import annotations

from flask import render_template

from services.accounts.classes import list_classes
from views.admin.common import bp, offset_arg

CLASSES_PAGE = 50


def classes_context(offset: int) -> dict:
    items, total = list_classes(offset=offset, limit=CLASSES_PAGE)
    return {"classes": items, "classes_total": total, "classes_offset": offset, "classes_limit": CLASSES_PAGE}


@bp.get("/classes")
def classes():
    return render_template("admin/classes.html", **classes_context(0))


@bp.get("/classes/rows")
def classes_rows():
    """The classes table (admin/_classes_rows.html) at ?offset=."""
    return render_template("admin/_classes_rows.html", **classes_context(offset_arg()))
