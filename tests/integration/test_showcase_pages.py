"""The showcase's "Show more": GET /gallery/items renders a page of the showcase with the
same Jinja partial as the first page of /gallery, in the API's order, with a marker
saying where the next page starts; staff get their curation buttons in it too."""
from __future__ import annotations

import re
import uuid

from tests.helpers import image_bytes
from tests.integration.helpers import sign_in

PASSWORD = "correct horse battery"


def rendered_ids(html: str) -> list[str]:
    return re.findall(r'<li class="showcase-item[^"]*" id="item-([^"]+)"', html)


def marker(html: str) -> tuple[int, int]:
    found = re.search(r'<template data-showcase-page data-next="(\d+)" data-total="(\d+)">', html)
    assert found, html
    return int(found.group(1)), int(found.group(2))


def test_a_page_of_the_showcase_is_the_partial_of_the_first_page(app, client):
    folder = app.config["SHOWCASE_PATH"]
    folder.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    for n in range(3):
        (folder / f"page-{tag}-{n}.png").write_bytes(image_bytes((40, 30), (20 * n, 90, 160)))
    listed = client.get("/api/v1/showcase?limit=200").get_json()
    order = [item["id"] for item in listed["items"]]
    total = listed["total"]
    assert total >= 3

    first = client.get("/gallery").get_data(as_text=True)
    assert rendered_ids(first)[:total] == order[:48]
    assert marker(first) == (min(total, 48), total)
    assert 'data-items-url="/gallery/items"' in first

    answer = client.get("/gallery/items?offset=1&limit=2")
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    page = answer.get_data(as_text=True)
    assert rendered_ids(page) == order[1:3]
    assert marker(page) == (3, total)
    assert "<html" not in page and "data-action" not in page  # a partial; no staff tools for visitors

    past = client.get(f"/gallery/items?offset={total}&limit=5").get_data(as_text=True)
    assert rendered_ids(past) == [] and marker(past) == (total, total)
    # Nonsense paging is clamped rather than refused.
    assert client.get("/gallery/items?offset=-3&limit=100000").status_code == 200


def test_staff_get_the_hidden_pictures_and_their_buttons_in_a_page(app, client):
    from extensions import db
    from services.accounts.users import create_staff

    folder = app.config["SHOWCASE_PATH"]
    folder.mkdir(parents=True, exist_ok=True)
    name = f"hidden-{uuid.uuid4().hex[:6]}.png"
    (folder / name).write_bytes(image_bytes((40, 30), (200, 40, 40)))
    item = next(i for i in client.get("/api/v1/showcase?limit=200").get_json()["items"] if i.get("file") == name)

    staff_name = f"pager{uuid.uuid4().hex[:6]}"
    with app.app_context():
        create_staff(staff_name, f"{staff_name}@example.com", PASSWORD)
        db.session.remove()
    browser = app.test_client()
    token = sign_in(browser, staff_name, PASSWORD)
    assert browser.patch(f"/api/v1/showcase/{item['id']}", json={"hidden": True},
                         headers={"X-CSRFToken": token}).status_code == 200

    assert item["id"] not in rendered_ids(client.get("/gallery/items?limit=100").get_data(as_text=True))
    page = browser.get("/gallery/items?limit=100").get_data(as_text=True)
    assert item["id"] in rendered_ids(page)
    li = re.search(rf'<li[^>]*id="item-{re.escape(item["id"])}"[^>]*>.*?</li>', page, re.S).group(0)
    assert "is-hidden" in li and 'data-action="show"' in li
