"""The personal gallery (/images): all of a user's images, boards, the image detail."""
from __future__ import annotations

from flask import Blueprint

bp = Blueprint("gallery", __name__)
