"""Images held for review (DAYDREAM_SAFETY=flag) as their owner sees them in Chromium: a
"Held for review" card in the studio without the picture, no ZIP button when every
image of a task is held, and a gallery tile and lightbox that say so without asking for
the files (which answer 404 to the owner), with no script errors. The images are marked
held in the database here; the worker's own holding is tests/integration/test_safety.py."""
from __future__ import annotations

import re
import uuid

import requests
import sqlalchemy as sa
from playwright.sync_api import expect

from tests.e2e.helpers import (PASSWORD, STAFF_PASSWORD, browser_sign_in, flask_create_staff, generate_in_studio,
                               new_page)
from config import Config
from tests.helpers import environment


def test_the_owner_sees_held_images_as_held_in_the_studio_and_the_gallery(browser, live):
    name = f"held{uuid.uuid4().hex[:6]}"
    requests.post(f"{live.url}/api/v1/auth/register", json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD}, timeout=30).raise_for_status()
    context, page = new_page(browser, live)
    refused: list[str] = []  # the page never asks for a held image's files
    page.on("response", lambda r: refused.append(r.url) if "/api/v1/images/" in r.url and r.status == 404 else None)
    browser_sign_in(page, name, PASSWORD)
    kept_id = generate_in_studio(page, "a quiet harbour", 2)
    task_id = generate_in_studio(page, "a lighthouse in fog", 1)  # newest: first in the gallery
    [held] = [image["id"] for image in page.request.get(f"/api/v1/tasks/{task_id}").json()["images"]]
    with environment(live.env):
        engine = sa.create_engine(Config().SQLALCHEMY_DATABASE_URI)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE images SET review = 'held', safety_label = 'nsfw 0.99' WHERE id = :i"),
                     {"i": held})
    engine.dispose()
    assert page.request.get(f"/api/v1/images/{held}/full").status == 404

    try:
        page.reload()
        card = page.locator(f"[data-task-id='{task_id}']")
        expect(card.locator(".task-figure--held")).to_have_count(1)
        expect(card.locator(".task-figure--held")).to_contain_text("Held for review")
        expect(card.locator("img")).to_have_count(0)
        expect(card.locator(".task-archive")).to_be_hidden()  # nothing in it to download
        kept = page.locator(f"[data-task-id='{kept_id}']")
        expect(kept.locator("img.task-image")).to_have_count(2)
        expect(kept.locator(".task-archive")).to_be_visible()

        page.goto("/images")
        tiles = page.locator("#gallery-grid .tile")
        expect(tiles).to_have_count(3)
        expect(tiles.first).to_have_class(re.compile(r"\btile--held\b"))
        expect(tiles.first.locator(".tile__link")).to_have_count(0)  # not a link to a picture
        tiles.nth(1).locator(".tile__link").click()
        expect(page.locator("#lightbox")).to_be_visible()
        expect(page.locator("#lightbox-position")).to_have_text("Image 2 of 3")
        page.keyboard.press("ArrowLeft")  # to the held one: the lightbox says so, asks for nothing
        expect(page.locator("#lightbox-position")).to_have_text("Image 1 of 3")
        expect(page.locator("#detail-message")).to_contain_text("Held for review")
        assert page.js_errors == []
        assert refused == []
    finally:
        context.close()


def test_staff_delete_a_held_image_with_a_reason_asked_in_the_pages_dialog(browser, live):
    """Admin → Moderation, held images: Delete asks in the page's own dialog (lib/confirm.js)
    for an optional reason, never the browser's prompt box; Cancel keeps the image, and the
    reason given goes into the audit trail."""
    name = f"heldowner{uuid.uuid4().hex[:6]}"
    requests.post(f"{live.url}/api/v1/auth/register", json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD}, timeout=30).raise_for_status()
    context, page = new_page(browser, live)
    staff_context, staff = new_page(browser, live)
    try:
        browser_sign_in(page, name, PASSWORD)
        task_id = generate_in_studio(page, "a kite over dunes", 1)
        [held] = [image["id"] for image in page.request.get(f"/api/v1/tasks/{task_id}").json()["images"]]
        with environment(live.env):
            engine = sa.create_engine(Config().SQLALCHEMY_DATABASE_URI)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE images SET review = 'held', safety_label = 'nsfw 0.98' WHERE id = :i"),
                         {"i": held})
        engine.dispose()

        boss = f"reviewer{uuid.uuid4().hex[:6]}"
        flask_create_staff(live, boss)
        native: list[str] = []
        staff.on("dialog", lambda dialog: (native.append(dialog.type), dialog.dismiss()))
        browser_sign_in(staff, boss, STAFF_PASSWORD)
        staff.goto("/admin/moderation")
        row = staff.locator(f"tr.held-row[data-image-id='{held}']")
        expect(row).to_have_count(1)

        row.locator(".held-delete").click()
        dialog = staff.get_by_role("dialog", name="Delete this image for good?")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_label("Reason (optional)")).to_be_focused()
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_have_count(0)
        expect(row).to_have_count(1)

        row.locator(".held-delete").click()
        dialog.get_by_label("Reason (optional)").fill("  against the rules  ")
        dialog.get_by_role("button", name="Delete image").click()
        expect(row).to_have_count(0)
        expect(staff.locator("#held-status")).to_contain_text("Image deleted.")
        assert native == [], "the browser's own prompt box was used"
        rows = staff.request.get("/api/v1/admin/audit?action=moderation.delete&limit=50").json()["items"]
        assert any(r["reason"] == "against the rules" for r in rows), rows
        assert page.request.get(f"/api/v1/images/{held}").status == 404
        assert staff.js_errors == []
    finally:
        staff_context.close()
        context.close()
