"""The teacher's Class page in Chromium, at desktop and phone widths (issue 27): a pupil
joins on a phone through the code's link, picking a username and password; the teacher
sees them among the members with the image they made today, hides it, makes a join
code, saves a daily cap, gives the pupil a new password (shown once), and reads what
was done on the Activity tab; on a phone the same page fits the screen. A pupil whose
class pool pays their tasks is not told in the studio that they are short of tokens. No
script errors."""
from __future__ import annotations

import re
import uuid

import requests
from playwright.sync_api import expect

from tests.e2e.helpers import (STAFF_PASSWORD, browser_sign_in, flask_create_staff, generate_in_studio, new_page,
                               screenshot)
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


def test_the_studio_counts_the_class_pool_and_says_the_class_cap_as_the_server_does(browser, live):
    """The studio's cost line counts the class pool that pays a pupil's tasks, as the
    server does at submit: a pupil with no tokens of their own is not "short" while the
    pool can pay, the task goes through, and the line follows the pool down. Over the
    class's daily cap, the studio says the server's words (no countdown of seconds)."""
    tag = uuid.uuid4().hex[:6]
    boss, pupil = f"pboss{tag}", f"pooled{tag}"
    flask_create_staff(live, boss)
    staff = api_token(live, boss, STAFF_PASSWORD)
    class_id = requests.post(f"{live.url}/api/v1/admin/classes", json={"name": f"Pool {tag}"}, headers=staff,
                             timeout=30).json()["id"]
    budget = requests.patch(f"{live.url}/api/v1/classes/{class_id}", headers=staff, timeout=30,
                            json={"budget_mode": "pool", "budget_tokens": 50, "budget_period": "week"})
    assert budget.status_code == 200, budget.text
    code = requests.post(f"{live.url}/api/v1/classes/{class_id}/codes", json={}, headers=staff,
                         timeout=30).json()["code"]

    context, page = new_page(browser, live)
    try:
        page.goto(f"/join/{code}")
        page.fill("#username", pupil)
        page.fill("#password", PUPIL_PASSWORD)
        page.click("#join-submit")
        expect(page).to_have_url(re.compile(rf"/classes/{class_id}$"))
        me = requests.get(f"{live.url}/api/v1/me", headers=api_token(live, pupil, PUPIL_PASSWORD), timeout=30).json()
        if me["tokens"]:  # none of their own: only the pool can pay
            assert requests.patch(f"{live.url}/api/v1/admin/users/{me['id']}", headers=staff, timeout=30, json={
                "tokens_delta": -me["tokens"], "reason": "the pool pays"}).status_code == 200

        page.goto("/studio")
        expect(page.locator("body")).to_have_attribute("data-ready", "studio")
        expect(page.locator("#balance")).to_have_text("0 tokens")
        line, words = page.locator("#cost-line"), page.locator("#cost-balance")
        expect(page.locator("#cost")).to_have_attribute("data-source", "server")
        expect(words).to_have_text("Your class's pool pays: it has 50 tokens")
        expect(line).not_to_have_class(re.compile(r"\bis-short\b"))

        generate_in_studio(page, "a kite over the sea", 1)  # the server takes it: the pool pays
        cost = int(page.locator("#cost").get_attribute("data-cost"))
        expect(words).to_have_text(f"Your class's pool pays: it has {50 - cost} tokens")
        expect(page.locator("#balance")).to_have_text("0 tokens")
        expect(line).not_to_have_class(re.compile(r"\bis-short\b"))

        assert requests.patch(f"{live.url}/api/v1/classes/{class_id}", json={"images_per_day": 1}, headers=staff,
                              timeout=30).status_code == 200
        page.click("#generate")
        expect(page.locator("#form-error")).to_have_text(re.compile(
            r"^You have made 1 image today; your class allows 1; more from \d\d:\d\d\. Nothing was charged\.$"))
        assert page.js_errors == []
    finally:
        context.close()
