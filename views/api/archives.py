"""ZIP archives of a selection, a board or the whole account, built in the background."""
from __future__ import annotations

from views.api import bp  # noqa: F401

OPENAPI: dict = {}
