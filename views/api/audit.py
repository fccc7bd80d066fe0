"""Placeholder: filled in by the moderation / audit work (issue 14)."""
from __future__ import annotations

OPENAPI: dict = {}
