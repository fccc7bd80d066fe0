"""The public pages (landing, docs, showcase, terms), the navigation for visitors, users
and staff, and the showcase's rules: a user's image shows only if its owner made it
public and staff featured it; files in the showcase folder show by themselves; staff
can hide any of them."""
from __future__ import annotations

import io
import re
import uuid

import pytest
from PIL import Image as PILImage

from tests.helpers import image_bytes
from tests.integration.helpers import ApiUser, sign_in

PASSWORD = "correct horse battery"


@pytest.fixture
def curator(app, client):
    from extensions import db
    from services.accounts.users import create_staff

    name = f"curator{uuid.uuid4().hex[:6]}"
    with app.app_context():
        create_staff(name, f"{name}@example.com", PASSWORD)
        db.session.remove()
    token = client.post("/api/v1/auth/tokens", json={"login": name, "password": PASSWORD, "name": "t"})
    assert token.status_code == 201, token.get_json()
    user = ApiUser.__new__(ApiUser)
    user.client, user.username, user.password = client, name, PASSWORD
    user.headers = {"Authorization": f"Bearer {token.get_json()['token']}"}
    return user


def one_image(user, prompt: str) -> dict:
    task = user.submit(prompt=prompt, steps=1).get_json()
    done = user.wait_task(task["id"])
    assert done["state"] == "done", done
    return done["images"][0]


def set_public(user, image: dict, public: bool) -> None:
    response = user.client.patch(f"/api/v1/images/{image['id']}", json={"public": public}, headers=user.headers)
    assert response.status_code == 200, response.get_json()


def showcase_ids(client, headers=None, **params) -> set[str]:
    query = "&".join(f"{k}={v}" for k, v in {"limit": 200, **params}.items())
    response = client.get(f"/api/v1/showcase?{query}", headers=headers or {})
    assert response.status_code == 200, response.get_json()
    return {item["id"] for item in response.get_json()["items"]}


@pytest.mark.parametrize("path, words", [
    ("/", ["Turn words into images", 'id="pricing"', "From the showcase", "/docs", "/terms"]),
    ("/docs", ["What each setting does", "curl -s -X POST", "import requests", "Guidance", "Scheduler",
               "qarchiver.py", "Scaling out", "/api/v1/openapi.json"]),
    ("/gallery", ["Showcase", 'id="showcase-grid"']),
    ("/terms", ["Acceptable use", "Your content and your responsibility", "What is kept, and for how long",
                "Deletion", "24 hours"]),
])
def test_visitors_see_the_public_pages_without_signing_in(client, path, words):
    response = client.get(path)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    for word in words:
        assert word in page, f"{word!r} is missing from {path}"


def test_the_pricing_section_lists_the_tiers_and_subscribing_waits_for_a_payment_provider(app, client):
    from services.accounts import tiers

    with app.test_request_context():
        names = [t["name"] for t in tiers.tiers()]
    page = client.get("/").get_data(as_text=True)
    for name in names:
        assert f'<h3 class="tier__name">{name}</h3>' in page
    paid = len(names) - 1
    assert len(re.findall(r'<button type="button" class="btn btn--block tier__subscribe" disabled', page)) == paid
    assert "payment provider" in page

    app.config["PAYMENT_PROVIDER"] = "example"
    try:
        page = client.get("/").get_data(as_text=True)
    finally:
        app.config["PAYMENT_PROVIDER"] = ""
    assert "disabled" not in page.split('id="pricing"')[1].split("</section>")[0]
    assert len(re.findall(r'tier__subscribe" href="/register">Subscribe', page)) == paid


def nav_links(html: str) -> list[str]:
    nav = html.split('<nav class="site-nav"')[1].split("</nav>")[0]
    return re.findall(r'<a class="[^"]*" href="([^"]+)"', nav)


def test_the_navigation_changes_with_who_is_looking(app, make_user, curator):
    visitor = app.test_client()
    page = visitor.get("/").get_data(as_text=True)
    assert nav_links(page) == ["/gallery", "/docs", "/#pricing", "/login", "/register"]
    assert 'id="nav-toggle"' in page and 'id="balance"' not in page

    user = make_user("navuser")
    browser = app.test_client()
    sign_in(browser, user.username, user.password)
    page = browser.get("/docs").get_data(as_text=True)
    assert nav_links(page) == ["/studio", "/images", "/account", "/docs"]
    assert 'id="balance" data-tokens="20"' in page and 'action="/logout"' in page
    assert 'href="/docs" aria-current="page"' in page

    staff_browser = app.test_client()
    sign_in(staff_browser, curator.username, curator.password)
    # (staff run classes: "Classes" shows for them, and for members of a class)
    assert nav_links(staff_browser.get("/docs").get_data(as_text=True)) == [
        "/studio", "/images", "/classes", "/account", "/docs", "/admin"]


def test_a_users_image_shows_only_while_public_and_featured(app, client, make_user, curator):
    owner = make_user("shower")
    private, public_only, featured = (one_image(owner, p) for p in ("private", "public only", "featured"))
    set_public(owner, public_only, True)
    set_public(owner, featured, True)

    refused = curator.post("/api/v1/showcase", json={"image_id": private["id"]})
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "not_public"
    assert owner.post("/api/v1/showcase", json={"image_id": featured["id"]}).status_code == 403
    candidates = curator.get("/api/v1/showcase/candidates?limit=200").get_json()
    assert {public_only["id"], featured["id"]} <= {i["id"] for i in candidates["items"]}
    assert private["id"] not in {i["id"] for i in candidates["items"]}
    added = curator.post("/api/v1/showcase", json={"image_id": featured["id"]})
    assert added.status_code == 201, added.get_json()

    visitor = app.test_client()
    ids = showcase_ids(visitor)
    assert featured["id"] in ids and private["id"] not in ids and public_only["id"] not in ids
    page = visitor.get("/gallery").get_data(as_text=True)
    assert featured["id"] in page and private["id"] not in page and public_only["id"] not in page
    assert featured["id"] in visitor.get("/").get_data(as_text=True)  # the landing page's artwork
    full = visitor.get(f"/api/v1/showcase/{featured['id']}/full")
    assert full.status_code == 200 and full.mimetype == "image/png"
    assert full.data == owner.get(featured["url"]).data
    assert visitor.get(f"/api/v1/showcase/{featured['id']}/thumbnail").mimetype == "image/webp"
    for hidden in (private, public_only):
        for variant in ("full", "thumbnail"):
            assert visitor.get(f"/api/v1/showcase/{hidden['id']}/{variant}").status_code == 404

    # The owner makes it private again: it leaves the showcase at once.
    set_public(owner, featured, False)
    assert featured["id"] not in showcase_ids(visitor)
    assert visitor.get(f"/api/v1/showcase/{featured['id']}/full").status_code == 404
    # Public again: featured again, until staff hide it, then unfeature it.
    set_public(owner, featured, True)
    assert featured["id"] in showcase_ids(visitor)
    hidden = curator.client.patch(f"/api/v1/showcase/{featured['id']}", json={"hidden": True}, headers=curator.headers)
    assert hidden.status_code == 200 and hidden.get_json()["hidden"] is True
    assert featured["id"] not in showcase_ids(visitor)
    assert featured["id"] in showcase_ids(curator.client, curator.headers, include_hidden="true") - showcase_ids(visitor)
    assert featured["id"] not in showcase_ids(visitor, include_hidden="true")  # only staff see hidden ones
    gone = curator.client.delete(f"/api/v1/showcase/{featured['id']}", headers=curator.headers)
    assert gone.status_code == 204
    assert featured["id"] not in showcase_ids(curator.client, curator.headers, include_hidden="true")


def test_a_deactivated_owners_featured_image_leaves_the_showcase(app, client, make_user, curator):
    owner = make_user("gone")
    featured = one_image(owner, "featured then deactivated")
    set_public(owner, featured, True)
    assert curator.post("/api/v1/showcase", json={"image_id": featured["id"]}).status_code == 201
    visitor = app.test_client()
    assert featured["id"] in showcase_ids(visitor)

    owner_id = owner.me()["id"]
    deactivated = curator.client.patch(f"/api/v1/admin/users/{owner_id}", json={"active": False},
                                       headers=curator.headers)
    assert deactivated.status_code == 200, deactivated.get_json()
    assert featured["id"] not in showcase_ids(visitor)
    assert featured["id"] not in visitor.get("/gallery").get_data(as_text=True)
    for variant in ("full", "thumbnail"):
        assert visitor.get(f"/api/v1/showcase/{featured['id']}/{variant}").status_code == 404
    # Staff still reach it (to unfeature it); the owner back, it shows again.
    assert curator.get(f"/api/v1/showcase/{featured['id']}/full").status_code == 200
    response = curator.client.patch(f"/api/v1/admin/users/{owner_id}", json={"active": True},
                                    headers=curator.headers)
    assert response.status_code == 200, response.get_json()
    assert featured["id"] in showcase_ids(visitor)


def test_curating_is_for_staff_only(client, make_user):
    user = make_user("notstaff")
    assert user.post("/api/v1/showcase", json={"image_id": "x"}).status_code == 403
    assert user.get("/api/v1/showcase/candidates").status_code == 403
    assert user.client.patch("/api/v1/showcase/x", json={"hidden": True}, headers=user.headers).status_code == 403
    assert user.client.delete("/api/v1/showcase/x", headers=user.headers).status_code == 403
    assert client.post("/api/v1/showcase", json={"image_id": "x"}).status_code == 401


def test_files_dropped_in_the_showcase_folder_show_up_and_staff_can_hide_them(app, client, curator):
    folder = app.config["SHOWCASE_PATH"]
    folder.mkdir(parents=True, exist_ok=True)
    name = f"sunset-over-hills-{uuid.uuid4().hex[:6]}.jpg"
    (folder / name).write_bytes(image_bytes((96, 64), (200, 120, 40), fmt="JPEG"))
    (folder / f"notes-{uuid.uuid4().hex[:6]}.txt").write_text("not a picture")
    (folder / f"broken-{uuid.uuid4().hex[:6]}.png").write_bytes(b"not a png at all")

    items = {i["file"]: i for i in client.get("/api/v1/showcase?limit=200").get_json()["items"]
             if i["kind"] == "folder"}
    assert name in items
    assert not any(n.endswith(".txt") or n.startswith("broken-") for n in items)
    item = items[name]
    assert item["title"].lower().startswith("sunset over hills") and (item["width"], item["height"]) == (96, 64)
    assert name not in item["url"]  # addressed by a digest, never by the file name
    full = client.get(item["url"])
    assert full.status_code == 200 and full.mimetype == "image/jpeg"
    thumb = client.get(item["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.mimetype == "image/webp"
    assert PILImage.open(io.BytesIO(thumb.data)).size == (96, 64)
    assert item["id"] in client.get("/gallery").get_data(as_text=True)

    assert curator.client.patch(f"/api/v1/showcase/{item['id']}", json={"hidden": True},
                                headers=curator.headers).status_code == 200
    assert item["id"] not in showcase_ids(client)
    assert client.get(item["url"]).status_code == 404
    assert curator.client.delete(f"/api/v1/showcase/{item['id']}", headers=curator.headers).status_code == 409
    assert curator.client.patch(f"/api/v1/showcase/{item['id']}", json={"hidden": False},
                                headers=curator.headers).status_code == 200
    assert item["id"] in showcase_ids(client)

    (folder / name).unlink()  # taken out of the folder: gone from the showcase
    assert item["id"] not in showcase_ids(client)
    assert client.get(item["url"]).status_code == 404


def test_the_staff_see_curation_tools_on_the_showcase_page(app, curator):
    browser = app.test_client()
    sign_in(browser, curator.username, curator.password)
    page = browser.get("/gallery").get_data(as_text=True)
    assert 'data-staff="true"' in page and "Public images to feature" in page
    assert 'data-staff="false"' in app.test_client().get("/gallery").get_data(as_text=True)
