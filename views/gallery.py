"""The personal gallery (/images): all of a user's images, boards, the image detail.
The page is a shell; site/static/js/pages/gallery.js fills it from the API."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from services.library import boards, gallery, storage

bp = Blueprint("gallery", __name__)


@bp.get("/images")
@login_required
def index():
    return _page(None)


@bp.get("/images/<image_id>")
@login_required
def detail(image_id: str):
    """The gallery with this image open in the lightbox (a link to share with oneself)."""
    return _page(gallery.image_to_dict(storage.get_image(current_user, image_id)))


def _page(image: dict | None):
    items, _total = boards.list_boards(current_user)
    return render_template("gallery/index.html", boards=items, counts=boards.view_counts(current_user),
                           open_image=image)
