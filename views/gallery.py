"""The personal gallery (/images): all of a user's images, boards, the image detail.
The page is a shell; site/static/js/pages/gallery/ (main.js) fills it from the API."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from services.library import boards, gallery, storage
from views.access import require_sign_in

bp = Blueprint("gallery", __name__)
bp.before_request(require_sign_in)  # every page here is for a signed-in user (views/access.py)


@bp.get("/images")
def index():
    return _page(None)


@bp.get("/images/<image_id>")
def detail(image_id: str):
    """The gallery with this image open in the lightbox (a link to share with oneself)."""
    return _page(gallery.image_to_dict(storage.get_image(current_user, image_id)))


def _page(image: dict | None):
    items, _total = boards.list_boards(current_user)
    return render_template("gallery/index.html", boards=items, counts=boards.view_counts(current_user),
                           open_image=image)
