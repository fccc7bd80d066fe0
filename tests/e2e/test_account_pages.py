"""What a new user and a new operator see (issue 13): the sign-in page says why it was
shown; the password rule is on the form before it is broken; the account overview says
what its id is for; "Download everything" downloads with one click and lists the
account's archives from the server; the staff tab bar stays put from page to page."""
from __future__ import annotations

import re
import time
import uuid

from playwright.sync_api import expect

from services.accounts.passwords import MIN_PASSWORD
from tests.e2e.helpers import (STAFF_PASSWORD, browser_sign_in, flask_create_staff, register_and_sign_in,
                               staff_page)


def make_one_image(page) -> None:
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    answer = page.request.post("/api/v1/tasks", headers={"X-CSRFToken": token}, data={
        "prompt": "one square of noise", "width": 64, "height": 64, "steps": 2, "samples": 1})
    assert answer.status in (201, 202), answer.text()
    task_id = answer.json()["id"]
    deadline = time.monotonic() + 90
    while page.request.get(f"/api/v1/tasks/{task_id}").json()["state"] != "done":
        assert time.monotonic() < deadline, f"task {task_id} did not finish"
        time.sleep(0.2)


def test_the_sign_in_page_says_why_and_the_password_rule_comes_first(page):
    page.goto("/studio")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fstudio$|/login\?next=/studio$"))
    expect(page.locator("#login-lead")).to_have_text("Sign in to use the studio.")
    expect(page.get_by_text("Sign in to use the studio.")).to_have_count(1)  # no flash saying it again
    page.goto("/login")
    expect(page.locator("#login-lead")).to_have_text("Sign in to open your studio.")

    page.goto("/register")
    expect(page.locator("#password-hint")).to_be_visible()
    expect(page.locator("#password-hint")).to_contain_text(f"At least {MIN_PASSWORD} characters")
    expect(page.locator("#password-hint")).to_contain_text("common password")
    assert page.js_errors == []


def test_download_everything_downloads_with_one_click_and_lists_the_archives(page):
    register_and_sign_in(page, f"hoarder{uuid.uuid4().hex[:6]}")
    make_one_image(page)
    page.goto("/account")
    # The ids on the overview say what they are for.
    expect(page.locator("#fact-id-hint")).to_contain_text("API")
    expect(page.locator("#fact-session-hint")).to_contain_text("Earlier sessions")
    expect(page.locator("#archives-empty")).to_be_visible()

    with page.expect_download(timeout=60_000) as download:
        page.click("#download-all")  # one click: it downloads by itself once ready
    assert download.value.suggested_filename.endswith(".zip")
    row = page.locator("#archives-body tr.archive-row")
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-state", "ready")
    expect(row.locator(".archive-count")).to_have_text("1")
    expect(row.locator("a.archive-download")).to_be_visible()
    assert page.js_errors == []


def test_the_staff_tab_bar_stays_put_on_every_staff_page(page, browser, live):
    boss = f"tabs{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    context, staff = staff_page(browser, live)
    try:
        browser_sign_in(staff, boss, STAFF_PASSWORD)
        for width in (1280, 1024, 760, 390):
            staff.set_viewport_size({"width": width, "height": 800})
            boxes = {}
            for path in ("/admin", "/admin/vouchers", "/admin/queue", "/admin/models"):
                staff.goto(path)
                expect(staff.locator(".staff-nav")).to_be_visible()
                staff.wait_for_load_state("networkidle")
                boxes[path] = staff.locator(".staff-nav").bounding_box()
                boxes[path]["page"] = staff.evaluate("document.documentElement.scrollWidth")
            first = boxes["/admin"]
            for path, box in boxes.items():
                assert abs(box["x"] - first["x"]) < 1 and abs(box["width"] - first["width"]) < 1, (width, boxes)
                assert box["page"] <= width, (width, boxes)
        assert staff.js_errors == []
    finally:
        context.close()
