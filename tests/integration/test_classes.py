"""Classes run by teachers (issue 27): staff create a class and name its teacher; pupils
join with a code (a new account picks a username and password; a signed-in one joins
with one click), and expired, withdrawn and used-up codes are refused, saying which.
Members share their own images into the class gallery, which only its members see (and
which takes nothing while closed). The
teacher hides a pupil's image (gone from the class gallery and from signed links, still
the owner's), gives a pupil a new password (the old one stops working), sees the class's
audit rows, and sees nothing of another class: a 404 for its page, members, images and
API. No worker is needed: images are stored as the worker would store them."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.helpers import unique
from tests.integration.helpers import ApiUser, add_image, csrf_from, make_staff, sign_in, user_row

PUPIL_PASSWORD = "a pupil's long password"


@pytest.fixture(scope="module")
def school(idle_app):
    """Staff, and two classes, each with its own teacher (ApiUsers)."""
    staff = make_staff(idle_app, unique("head"), "a head teacher password")
    client = idle_app.test_client()
    made = {}
    for name in ("A", "B"):
        teacher = ApiUser(idle_app.test_client(), unique(f"teach{name.lower()}"))
        answer = client.post("/api/v1/admin/classes", json={"name": f"Art {name} {unique('')}"}, headers=staff)
        assert answer.status_code == 201, answer.get_json()
        class_id = answer.get_json()["id"]
        added = client.post(f"/api/v1/admin/classes/{class_id}/teachers", json={"user": teacher.username},
                            headers=staff)
        assert added.status_code == 201, added.get_json()
        made[name] = (class_id, teacher)
    return {"staff": staff, **made}


def new_code(teacher: ApiUser, class_id: str, **settings) -> dict:
    answer = teacher.post(f"/api/v1/classes/{class_id}/codes", json=settings)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def join_as_new_pupil(app, code: str, username: str):
    """Open the join link without an account, pick a username and password; returns the
    signed-in client and the answer."""
    client = app.test_client()
    page = client.get(f"/join/{code}")
    assert page.status_code == 200, page.data[:300]
    answer = client.post(f"/join/{code}", data={"username": username, "password": PUPIL_PASSWORD,
                                                "csrf_token": csrf_from(page.data)})
    return client, answer


def pupil_in(app, school, name: str = "A") -> tuple[str, object]:
    """A new pupil of class `name` (joined with a code); returns their username and client."""
    class_id, teacher = school[name]
    username = unique("pupil")
    client, answer = join_as_new_pupil(app, new_code(teacher, class_id)["code"], username)
    assert answer.status_code == 303, answer.data[:500]
    return username, client


def image_of(app, username: str) -> str:
    from extensions import db
    from models import Image

    owner = user_row(app, username)
    add_image(app, owner.id)
    with app.app_context():
        return db.session.scalar(sa.select(Image.id).where(Image.user_id == owner.id)
                                 .order_by(Image.created_at.desc()).limit(1))


def test_a_pupil_joins_with_a_code_as_a_new_account_and_a_signed_in_user_with_one_click(idle_app, school):
    class_id, teacher = school["A"]
    code = new_code(teacher, class_id, max_uses=5)
    assert re.fullmatch(r"[A-HJKMNP-Z2-9]{8}", code["code"]) and code["link"] == f"/join/{code['code']}"

    username = unique("kid")
    client, answer = join_as_new_pupil(idle_app, code["code"].lower()[:4] + "-" + code["code"][4:], username)
    assert answer.status_code == 303 and answer.headers["Location"].endswith(f"/classes/{class_id}")
    me = client.get("/api/v1/me").get_json()
    assert me["username"] == username and me["email"].endswith("@pupils.invalid")
    assert [(c["id"], c["role"]) for c in client.get("/api/v1/classes").get_json()["items"]] == [(class_id, "pupil")]
    assert client.get(f"/classes/{class_id}").status_code == 200  # the pupil's view: the class gallery

    # someone with an account joins with one click (after signing in)
    other = ApiUser(idle_app.test_client(), unique("hasacct"))
    browser = idle_app.test_client()
    sign_in(browser, other.username, other.password)
    page = browser.get(f"/join/{code['code']}")
    assert b'id="join-submit"' in page.data and b'id="username"' not in page.data  # no account form
    joined = browser.post(f"/join/{code['code']}", data={"csrf_token": csrf_from(page.data)})
    assert joined.status_code == 303
    again = browser.post(f"/join/{code['code']}", data={"csrf_token": csrf_from(page.data)})
    assert again.status_code == 303  # in it already: nothing counted twice

    codes = teacher.get(f"/api/v1/classes/{class_id}/codes").get_json()["items"]
    assert next(c for c in codes if c["id"] == code["id"])["uses"] == 2
    members = {m["username"]: m for m in teacher.get(f"/api/v1/classes/{class_id}/members").get_json()["items"]}
    assert members[username]["role"] == "pupil" and members[username]["via"] == "code"
    assert members[other.username]["role"] == "pupil" and members[teacher.username]["role"] == "teacher"
    assert members[username]["tokens"] == me["tokens"] and members[username]["images_today"] == 0


def test_expired_withdrawn_used_up_and_unknown_codes_are_refused_saying_why(idle_app, school):
    from extensions import db
    from models import JoinCode, utcnow

    class_id, teacher = school["A"]
    expired, revoked, once = (new_code(teacher, class_id), new_code(teacher, class_id),
                              new_code(teacher, class_id, max_uses=1))
    with idle_app.app_context():
        db.session.execute(sa.update(JoinCode).where(JoinCode.id == expired["id"])
                           .values(expires_at=utcnow() - timedelta(minutes=1)))
        db.session.commit()
    assert teacher.client.delete(f"/api/v1/classes/{class_id}/codes/{revoked['id']}",
                                 headers=teacher.headers).status_code == 204
    _client, first = join_as_new_pupil(idle_app, once["code"], unique("first"))
    assert first.status_code == 303

    for code, status, words in ((expired, 410, b"expired on"), (revoked, 410, b"withdrawn"),
                                (once, 410, b"used 1 times"), ({"code": "ZZZZ2222"}, 404, b"No class has that code")):
        client = idle_app.test_client()
        page = client.get(f"/join/{code['code']}")
        assert page.status_code == status and words in page.data, (code, page.status_code)
        posted = client.post(f"/join/{code['code']}", data={"username": unique("late"), "password": PUPIL_PASSWORD,
                                                           "csrf_token": csrf_from(client.get('/join').data)})
        assert posted.status_code == status and words in posted.data
    states = {c["id"]: c["state"] for c in teacher.get(f"/api/v1/classes/{class_id}/codes").get_json()["items"]}
    assert (states[expired["id"]], states[revoked["id"]], states[once["id"]]) == ("expired", "revoked", "used_up")
    assert user_row(idle_app, "late") is None


def test_the_teacher_hides_a_pupils_image_from_the_class_gallery_and_signed_links(idle_app, school):
    from extensions import db
    from models import Image
    from services.generation.compat import common

    class_id, teacher = school["A"]
    username, pupil = pupil_in(idle_app, school)
    image_id = image_of(idle_app, username)
    shared = pupil.post(f"/api/v1/classes/{class_id}/gallery", json={"image_id": image_id},
                        headers={"X-CSRFToken": csrf_from(pupil.get("/account").data)})
    assert shared.status_code == 201, shared.get_json()
    with idle_app.app_context():
        link = f"/v1/images/files/{common.signed_token(db.session.get(Image, image_id))}.png"
    gallery = f"/api/v1/classes/{class_id}/gallery"
    assert [i["id"] for i in pupil.get(gallery).get_json()["items"]] == [image_id]
    assert idle_app.test_client().get(link).status_code == 200
    assert teacher.get(f"/api/v1/classes/{class_id}/images/{image_id}/thumbnail").status_code == 200

    hidden = teacher.client.patch(f"/api/v1/classes/{class_id}/images/{image_id}", json={"hidden": True},
                                  headers=teacher.headers)
    assert hidden.status_code == 200 and hidden.get_json()["hidden"] is True
    assert pupil.get(gallery).get_json()["items"] == []
    assert pupil.get(f"/api/v1/classes/{class_id}/images/{image_id}/thumbnail").status_code == 404
    assert idle_app.test_client().get(link).status_code == 404
    assert pupil.get(f"/api/v1/images/{image_id}/thumbnail").status_code == 200  # still the owner's
    assert pupil.get(f"/api/v1/images/{image_id}").get_json()["hidden"] is True  # marked for them
    # the teacher still sees it among the pupil's images, marked hidden
    pupil_id = user_row(idle_app, username).uuid
    listed = teacher.get(f"/api/v1/classes/{class_id}/members/{pupil_id}/images").get_json()["items"]
    assert [(i["id"], i["hidden"]) for i in listed] == [(image_id, True)]
    assert teacher.get(f"/api/v1/classes/{class_id}/images/{image_id}/full").status_code == 200

    shown = teacher.client.patch(f"/api/v1/classes/{class_id}/images/{image_id}", json={"hidden": False},
                                 headers=teacher.headers)
    assert shown.status_code == 200 and idle_app.test_client().get(link).status_code == 200
    assert [i["id"] for i in pupil.get(gallery).get_json()["items"]] == [image_id]


def test_members_share_into_the_class_gallery_and_only_its_members_see_it(idle_app, school):
    class_id, teacher = school["A"]
    (maker, pupil), (_classmate, classmate) = pupil_in(idle_app, school), pupil_in(idle_app, school)
    _outsider, outsider = pupil_in(idle_app, school, "B")
    image_id = image_of(idle_app, maker)
    csrf = lambda client: {"X-CSRFToken": csrf_from(client.get("/account").data)}  # noqa: E731
    gallery = f"/api/v1/classes/{class_id}/gallery"
    thumbnail = f"/api/v1/classes/{class_id}/images/{image_id}/thumbnail"

    def in_gallery(client) -> list[tuple]:
        """(id, owner) of this image in the class gallery as `client` sees it."""
        items = client.get(gallery).get_json()["items"]
        return [(i["id"], i["owner"]["username"]) for i in items if i["id"] == image_id]

    assert in_gallery(classmate) == [] and classmate.get(thumbnail).status_code == 404

    # only the owner shares their image, only into a class they belong to
    assert classmate.post(gallery, json={"image_id": image_id}, headers=csrf(classmate)).status_code == 404
    assert outsider.post(gallery, json={"image_id": image_id}, headers=csrf(outsider)).status_code == 404
    assert pupil.post(gallery, json={"image_id": image_id}, headers=csrf(pupil)).status_code == 201
    assert in_gallery(classmate) == in_gallery(teacher) == [(image_id, maker)]
    assert classmate.get(thumbnail).status_code == 200
    # another class's members see nothing of it
    assert outsider.get(gallery).status_code == 404 and outsider.get(thumbnail).status_code == 404

    # a closed gallery takes no more; the owner takes theirs back
    assert teacher.client.patch(f"/api/v1/classes/{class_id}", json={"gallery": False},
                                headers=teacher.headers).status_code == 200
    try:
        closed = pupil.post(gallery, json={"image_id": image_of(idle_app, maker)}, headers=csrf(pupil))
        assert closed.status_code == 409 and closed.get_json()["error"]["code"] == "gallery_closed"
    finally:
        teacher.client.patch(f"/api/v1/classes/{class_id}", json={"gallery": True}, headers=teacher.headers)
    assert pupil.delete(f"{gallery}/{image_id}", headers=csrf(pupil)).status_code == 204
    assert in_gallery(classmate) == [] and classmate.get(thumbnail).status_code == 404


def test_the_teacher_gives_a_pupil_a_new_password_and_the_old_one_stops_working(idle_app, school):
    class_id, teacher = school["A"]
    username, pupil = pupil_in(idle_app, school)
    assert pupil.get("/api/v1/me").status_code == 200
    pupil_id = user_row(idle_app, username).uuid
    answer = teacher.post(f"/api/v1/classes/{class_id}/members/{pupil_id}/password")
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    password = answer.get_json()["password"]
    assert re.fullmatch(r"[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}", password)

    assert pupil.get("/api/v1/me").status_code == 401  # signed out everywhere
    tokens = idle_app.test_client().post
    assert tokens("/api/v1/auth/tokens", json={"login": username, "password": PUPIL_PASSWORD,
                                               "name": "old"}).status_code == 401
    assert tokens("/api/v1/auth/tokens", json={"login": username, "password": password,
                                               "name": "new"}).status_code == 201
    # a teacher is no pupil's: their own password cannot be reset from the class
    teacher_id = teacher.me()["id"]
    assert teacher.post(f"/api/v1/classes/{class_id}/members/{teacher_id}/password").status_code == 404


def test_a_teacher_of_one_class_sees_nothing_of_another(idle_app, school):
    a_id, teacher_a = school["A"]
    b_id, teacher_b = school["B"]
    username, pupil_b = pupil_in(idle_app, school, "B")
    image_id = image_of(idle_app, username)
    pupil_id = user_row(idle_app, username).uuid
    code_b = new_code(teacher_b, b_id)
    assert teacher_b.get(f"/api/v1/classes/{b_id}/members/{pupil_id}/images").status_code == 200

    for path in (f"/api/v1/classes/{b_id}", f"/api/v1/classes/{b_id}/members", f"/api/v1/classes/{b_id}/codes",
                 f"/api/v1/classes/{b_id}/audit", f"/api/v1/classes/{b_id}/gallery",
                 f"/api/v1/classes/{b_id}/members/{pupil_id}/images",
                 f"/api/v1/classes/{b_id}/images/{image_id}/thumbnail",
                 # through their own class, another class's pupil and image are not there either
                 f"/api/v1/classes/{a_id}/members/{pupil_id}/images",
                 f"/api/v1/classes/{a_id}/images/{image_id}/full"):
        answer = teacher_a.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
    writes = [("PATCH", f"/api/v1/classes/{b_id}", {"images_per_day": 1}),
              ("PATCH", f"/api/v1/classes/{a_id}/images/{image_id}", {"hidden": True}),
              ("PATCH", f"/api/v1/classes/{b_id}/images/{image_id}", {"hidden": True}),
              ("POST", f"/api/v1/classes/{b_id}/members/{pupil_id}/password", None),
              ("POST", f"/api/v1/classes/{a_id}/members/{pupil_id}/password", None),
              ("DELETE", f"/api/v1/classes/{b_id}/members/{pupil_id}", None),
              ("POST", f"/api/v1/classes/{b_id}/codes", {}),
              ("DELETE", f"/api/v1/classes/{b_id}/codes/{code_b['id']}", None)]
    for method, path, body in writes:
        answer = teacher_a.client.open(path, method=method, json=body, headers=teacher_a.headers)
        assert answer.status_code == 404, (method, path, answer.status_code)
    browser = idle_app.test_client()
    sign_in(browser, teacher_a.username, teacher_a.password)
    for page in (f"/classes/{b_id}", f"/classes/{b_id}/members", f"/classes/{b_id}/gallery",
                 f"/classes/{b_id}/pupils/{pupil_id}/images", f"/classes/{a_id}/pupils/{pupil_id}/images"):
        assert browser.get(page).status_code == 404, page
    assert browser.get(f"/classes/{a_id}").status_code == 200
    # a pupil is no teacher: their class's teacher pages and API are a 404 to them too
    assert pupil_b.get(f"/api/v1/classes/{b_id}/members").status_code == 404
    assert pupil_b.get(f"/classes/{b_id}/members").status_code == 404
    # nothing changed in class B
    assert teacher_b.get(f"/api/v1/classes/{b_id}").get_json()["settings"]["images_per_day"] is None
    assert {c["state"] for c in teacher_b.get(f"/api/v1/classes/{b_id}/codes").get_json()["items"]} == {"active"}


def test_settings_are_checked_and_the_budget_is_staffs(idle_app, school):
    class_id, teacher = school["A"]
    patch = lambda body, headers=teacher.headers: teacher.client.patch(  # noqa: E731
        f"/api/v1/classes/{class_id}", json=body, headers=headers)
    for body, field in (({"images_per_day": 0}, "images_per_day"), ({"images_per_hour": True}, "images_per_hour"),
                        ({"allowed_models": ["no-such-model"]}, "allowed_models"),
                        ({"moderation_preset": "lax"}, "moderation_preset"), ({"colour": "red"}, "colour"),
                        ({}, "body")):
        answer = patch(body)
        assert answer.status_code == 422 and answer.get_json()["error"]["field"] == field, (body, answer.get_json())
    refused = patch({"budget_mode": "pool", "budget_tokens": 1000})
    assert refused.status_code == 403 and refused.get_json()["error"]["field"] == "budget_mode"
    model = next(m["id"] for m in teacher.get("/api/v1/models").get_json()["items"] if m["kind"] == "model")
    saved = patch({"images_per_day": 20, "images_per_hour": None, "allowed_models": [model],
                   "moderation_preset": "strict"})
    assert saved.status_code == 200, saved.get_json()
    settings = saved.get_json()["settings"]
    assert (settings["images_per_day"], settings["allowed_models"], settings["moderation_preset"]) == (
        20, [model], "strict")
    staff = patch({"budget_mode": "pool", "budget_tokens": 500, "budget_period": "day"}, school["staff"])
    assert staff.status_code == 200 and staff.get_json()["settings"]["budget"]["mode"] == "pool"
    patch({"allowed_models": None, "images_per_day": None, "moderation_preset": None})
    patch({"budget_mode": "none"}, school["staff"])


def test_every_teacher_action_is_an_audit_row_the_teacher_sees(idle_app, school):
    class_id, teacher = school["A"]
    username, _pupil = pupil_in(idle_app, school)
    pupil_id = user_row(idle_app, username).uuid
    image_id = image_of(idle_app, username)
    code = new_code(teacher, class_id)
    teacher.client.delete(f"/api/v1/classes/{class_id}/codes/{code['id']}", headers=teacher.headers)
    teacher.client.patch(f"/api/v1/classes/{class_id}/images/{image_id}", json={"hidden": True},
                         headers=teacher.headers)
    teacher.post(f"/api/v1/classes/{class_id}/members/{pupil_id}/password")
    teacher.client.patch(f"/api/v1/classes/{class_id}", json={"images_per_hour": 5}, headers=teacher.headers)
    assert teacher.client.delete(f"/api/v1/classes/{class_id}/members/{pupil_id}",
                                 headers=teacher.headers).status_code == 204

    rows = teacher.get(f"/api/v1/classes/{class_id}/audit?limit=20").get_json()["items"]
    mine = [(r["action"], r["target"]["name"]) for r in rows if r["actor"]["username"] == teacher.username]
    for expected in (("class.code_make", code["code"]), ("class.code_revoke", code["code"]),
                     ("class.image_hide", username), ("class.password_reset", username),
                     ("class.member_remove", username)):
        assert expected in mine, (expected, mine)
    assert ("class.settings", teacher.username) in [(r["action"], r["actor"]["username"]) for r in rows]
    assert all(r["details"]["class_id"] == class_id for r in rows)
    assert ("class.join", username) in [(r["action"], r["actor"]["username"]) for r in rows]
    browser = idle_app.test_client()
    sign_in(browser, teacher.username, teacher.password)
    page = browser.get(f"/classes/{class_id}/audit")
    assert page.status_code == 200 and b"set a new password" in page.data and username.encode() in page.data
    # the rows are staff's audit trail too
    staff_rows = idle_app.test_client().get(f"/api/v1/admin/audit?action=class&q={username}",
                                            headers=school["staff"]).get_json()["items"]
    assert {"class.password_reset", "class.member_remove"} <= {r["action"] for r in staff_rows}
    # the pupil left the class: the teacher cannot reach them any more
    assert teacher.get(f"/api/v1/classes/{class_id}/members/{pupil_id}/images").status_code == 404
