"""The public showcase: featured images and the showcase folder; staff curate it."""
from __future__ import annotations

from views.api import bp  # noqa: F401

OPENAPI: dict = {}
