"""The staff pages, /admin (the JSON they read is the staff API, views/api/admin.py and
its neighbours, under /api/v1/admin). One module a page; each puts its routes on the
blueprint of views/admin/common.py, which lets staff in and no one else, once for all.

- users.py       /admin, /admin/users, /admin/users/rows
- vouchers.py    /admin/vouchers, /admin/vouchers/rows
- queue.py       /admin/queue
- models.py      /admin/models
- moderation.py  /admin/moderation
- audit.py       /admin/audit, /admin/audit/rows
- classes.py     /admin/classes, /admin/classes/rows"""
from __future__ import annotations

from views.admin import audit, classes, models, moderation, queue, users, vouchers  # noqa: F401
from views.admin.common import bp

__all__ = ["bp"]
