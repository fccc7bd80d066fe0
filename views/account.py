"""The account page (/account): overview, settings, tokens, API tokens."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("account", __name__)
