"""Images as a collection: listing, search, stars, boards, bulk actions."""
from __future__ import annotations

from views.api import bp  # noqa: F401

OPENAPI: dict = {}
