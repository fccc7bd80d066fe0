"""Signed image links (the OpenAI API's `url` answers, /v1/images/files/<token>.png) end
with what they show: a link stops working once its owner is deactivated or deleted, or
its image is held for review, and works again when the owner is reactivated or the
image released (within its 60 minutes)."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.helpers import unique
from tests.integration.helpers import ApiUser, add_image, make_staff, user_row


@pytest.fixture
def app(idle_app):
    """Links need no worker: the image is stored as the worker would store it."""
    return idle_app


@pytest.fixture(scope="module")
def link_staff(idle_app):
    return make_staff(idle_app, unique("linkstaff"), "a link_staff password")


def linked_image(app, prefix: str) -> tuple[str, str, str]:
    """A user's public id, one of their images, and a signed link to it (the path)."""
    from extensions import db
    from models import Image
    from services.generation.compat import common

    user = ApiUser(app.test_client(), unique(prefix))
    row_id = user_row(app, user.username).id
    add_image(app, row_id)
    with app.app_context():
        image = db.session.scalar(sa.select(Image).where(Image.user_id == row_id))
        return user.me()["id"], image.id, f"/v1/images/files/{common.signed_token(image)}.png"


def opens(app, path: str) -> int:
    response = app.test_client().get(path)  # no cookie, no token: the link is the key
    if response.status_code == 404:
        assert response.get_json()["error"]["message"] == "No such image."
    return response.status_code


def set_active(app, link_staff: dict, user_id: str, active: bool) -> None:
    response = app.test_client().patch(f"/api/v1/admin/users/{user_id}",
                                       json={"active": active, "reason": "link test"}, headers=link_staff)
    assert response.status_code == 200, response.get_json()


def test_a_link_of_a_deactivated_owner_answers_404_until_they_are_reactivated(app, link_staff):
    owner, _image_id, link = linked_image(app, "linkoff")
    assert opens(app, link) == 200
    set_active(app, link_staff, owner, False)
    assert opens(app, link) == 404
    set_active(app, link_staff, owner, True)
    assert opens(app, link) == 200


def test_a_link_of_a_deleted_owner_answers_404(app, link_staff):
    owner, _image_id, link = linked_image(app, "linkgone")
    assert opens(app, link) == 200
    response = app.test_client().delete(f"/api/v1/admin/users/{owner}",
                                        json={"reason": "link test"}, headers=link_staff)
    assert response.status_code == 204, response.get_json()
    assert opens(app, link) == 404


def test_a_link_of_a_held_image_answers_404_until_it_is_released(app, link_staff):
    from extensions import db
    from models import Image
    from services.library import storage

    _owner, image_id, link = linked_image(app, "linkheld")
    assert opens(app, link) == 200
    with app.app_context():
        db.session.execute(sa.update(Image).where(Image.id == image_id).values(review=storage.HELD))
        db.session.commit()
    assert opens(app, link) == 404
    released = app.test_client().post(f"/api/v1/admin/moderation/held/{image_id}/release",
                                      json={"reason": "link test"}, headers=link_staff)
    assert released.status_code == 200, released.get_json()
    assert opens(app, link) == 200
