"""The teacher's Class page in Chromium, at desktop and phone widths (issue 27): a pupil
joins on a phone through the code's link, picking a username and password; the teacher
sees them among the members with the image they made today, hides it, makes a join
code, saves a daily cap, gives the pupil a new password (shown once), and reads what
was done on the Activity tab; on a phone the same page fits the screen. No script
errors."""
from __future__ import annotations

import re
import uuid

import requests
from playwright.sync_api import expect

from tests.e2e.helpers import STAFF_PASSWORD, browser_sign_in, flask_create_staff, new_page, screenshot
from tests.helpers import wait_for

PUPIL_PASSWORD = "a pupil's long password"


def api_token(live, login: str, password: str) -> dict:
    answer = requests.post(f"{live.url}/api/v1/auth/tokens", json={"login": login, "password": password,
                                                                    "name": "e2e"}, timeout=30)
    assert answer.status_code == 201, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_the_class_page_works_at_desktop_and_phone_widths(browser, live):
    tag = uuid.uuid4().hex[:6]
    boss, teacher, pupil = f"cboss{tag}", f"teacher{tag}", f"pupil{tag}"
    flask_create_staff(live, boss)
    staff = api_token(live, boss, STAFF_PASSWORD)
    assert requests.post(f"{live.url}/api/v1/auth/register", json={
        "username": teacher, "email": f"{teacher}@example.com", "password": STAFF_PASSWORD}, timeout=30).ok
    made = requests.post(f"{live.url}/api/v1/admin/classes", json={"name": f"Art {tag}"}, headers=staff, timeout=30)
    class_id = made.json()["id"]
    assert requests.post(f"{live.url}/api/v1/admin/classes/{class_id}/teachers", json={"user": teacher},
                         headers=staff, timeout=30).status_code == 201
    code = requests.post(f"{live.url}/api/v1/classes/{class_id}/codes", json={"max_uses": 30},
                         headers=api_token(live, teacher, STAFF_PASSWORD), timeout=30).json()["code"]

    # the pupil joins on a phone, with a new account
    pupil_context, phone = new_page(browser, live, viewport={"width": 390, "height": 844})
    try:
        phone.goto(f"/join/{code}")
        phone.fill("#username", pupil)
        phone.fill("#password", PUPIL_PASSWORD)
        phone.click("#join-submit")
        expect(phone).to_have_url(re.compile(rf"/classes/{class_id}$"))
        expect(phone.locator("#class-title")).to_have_text(f"Art {tag}")
        assert phone.js_errors == []
    finally:
        pupil_context.close()
    pupil_api = api_token(live, pupil, PUPIL_PASSWORD)
    task = requests.post(f"{live.url}/api/v1/tasks", json={"prompt": "a red kite", "width": 64, "height": 64,
                                                           "steps": 2}, headers=pupil_api, timeout=30).json()
    wait_for(lambda: requests.get(f"{live.url}/api/v1/tasks/{task['id']}", headers=pupil_api,
                                  timeout=30).json()["state"] == "done", 90, interval=0.3, message="the pupil's task")

    context, page = new_page(browser, live)
    try:
        browser_sign_in(page, teacher, STAFF_PASSWORD)
        page.goto(f"/classes/{class_id}")
        expect(page.locator("#class-page")).to_have_attribute("data-ready", "class")
        row = page.locator(f"tr.member-row[data-username='{pupil}']")
        expect(row.locator(".member-today")).to_have_text("1")

        row.locator("button[data-action=images]").click()
        tile = page.locator("#pupil-grid .class-tile")
        expect(tile).to_have_count(1)
        tile.locator("button[data-action=hide]").click()
        expect(tile).to_have_attribute("data-hidden", "true")
        screenshot(page, "class-page")

        page.click("#tab-codes")
        codes = page.locator("#codes-list tr.code-row")
        expect(codes).to_have_count(1)
        page.select_option("#code-expires", "1")
        page.click("#code-make")
        expect(codes).to_have_count(2)

        page.click("#tab-settings")
        page.fill("#cap-day", "20")
        page.click("#settings-save")
        expect(page.locator("#settings-status")).to_have_text("Saved.")

        page.click("#tab-activity")
        for action in ("class.image_hide", "class.code_make", "class.settings", "class.join"):
            expect(page.locator(f"#audit-list tr.audit-row[data-action='{action}']").first).to_be_visible()
        assert page.js_errors == []

        # the same page on a phone: it fits, and a new password is shown once
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"/classes/{class_id}?on=phone#members")  # a fresh load, not a jump within the page
        expect(row).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the class page scrolls sideways on a phone ({width}px)"
        row.locator("button[data-action=password]").click()
        expect(page.locator("#confirm-ok")).to_have_text("Make a new password")
        page.click("#confirm-ok")
        shown = page.locator("#confirm-input")
        expect(shown).to_have_value(re.compile(r"^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$"))
        screenshot(page, "class-page-phone")
        new_password = shown.input_value()
        page.click("#confirm-ok")
        assert api_token(live, pupil, new_password)
        assert page.js_errors == []
    finally:
        context.close()
