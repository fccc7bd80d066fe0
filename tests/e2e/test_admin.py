"""Staff in Chromium: grant tokens to a user, who sees the new balance and the ledger
row; the users, vouchers and queue pages work, on a phone too."""
from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.e2e.helpers import (STAFF_PASSWORD, browser_sign_in, flask_create_staff, register_and_sign_in,
                               screenshot, staff_page)


def looks(page, selector: str) -> dict:
    """How a form field is drawn: the styles app.css gives every text field."""
    return page.locator(selector).evaluate("""el => {
      const s = getComputedStyle(el);
      return {radius: s.borderTopLeftRadius, border: s.borderTopColor, background: s.backgroundColor,
              color: s.color, minHeight: s.minHeight, paddingLeft: s.paddingLeft};
    }""")


def test_staff_grant_tokens_and_the_user_sees_the_balance_and_the_ledger_row(page, browser, live):
    boss = f"boss{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    user = f"grantee{uuid.uuid4().hex[:6]}"
    register_and_sign_in(page, user)
    expect(page.locator("#balance")).to_contain_text("20")

    context, staff = staff_page(browser, live)
    try:
        browser_sign_in(staff, boss, STAFF_PASSWORD)
        staff.goto("/admin")
        staff.fill("#user-q", user)
        row = staff.locator(f"tr.user-row[data-username='{user}']")
        expect(row).to_have_count(1)
        expect(staff.locator("tr.user-row")).to_have_count(1)
        expect(row.locator(".user-tokens")).to_have_text("20")
        row.locator(".user-manage").click()
        expect(staff.locator("#user-dialog")).to_be_visible()
        staff.fill("#grant-amount", "15")
        staff.fill("#grant-reason", "welcome bonus")
        staff.click("#grant-submit")
        expect(staff.locator("#user-dialog-status")).to_contain_text("Granted 15 tokens. Balance: 35.")
        expect(row.locator(".user-tokens")).to_have_text("35")
        screenshot(staff, "admin-users")
        # A plan change says, before and after, that it grants the new plan's allowance.
        staff.select_option("#user-tier", "plus")
        expect(staff.locator("#user-tier-note")).to_contain_text("grants its allowance of 400 tokens now")
        staff.select_option("#user-tier", "free")
        expect(staff.locator("#user-tier-note")).to_be_hidden()
        staff.select_option("#user-tier", "plus")
        staff.fill("#action-reason", "won the art prize")
        staff.click("#user-save")
        expect(staff.locator("#user-dialog-status")).to_have_text("Saved. The new plan granted 400 tokens; balance 435.")
        expect(row.locator(".user-tokens")).to_have_text("435")
        entries = staff.request.get("/api/v1/admin/audit?action=users.tier").json()["items"]
        entry = next(e for e in entries if e["target"]["name"] == user)
        assert entry["details"] == {"from": "free", "to": "plus", "tokens": 400}
        assert entry["reason"] == "won the art prize"
        staff.goto("/admin/audit?action=users.tier")
        expect(staff.locator("tr", has_text=user).locator(".audit-details")).to_contain_text("tokens: 400")
        # The date fields look like the others (they were left unstyled).
        assert looks(staff, "#audit-since") == looks(staff, "#audit-actor")
        assert staff.js_errors == []
    finally:
        context.close()

    page.goto("/account#settings")
    assert looks(page, "#mobile") == looks(page, "#email")  # type=tel styled like the rest
    page.goto("/account#tokens")
    expect(page.locator("#tokens-balance")).to_have_text("435")
    expect(page.locator("#balance")).to_contain_text("435")
    rows = page.locator("#ledger-body tr.ledger-row")
    expect(rows.nth(0)).to_contain_text("+400")  # the plan's allowance
    expect(rows.nth(1)).to_have_attribute("data-kind", "staff_grant")
    expect(rows.nth(1)).to_contain_text("+15")
    expect(rows.nth(1)).to_contain_text("welcome bonus")
    assert page.js_errors == []


def test_the_queue_page_shows_tasks_and_workers_live(page, browser, live):
    boss = f"ops{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    context, staff = staff_page(browser, live)
    try:
        browser_sign_in(staff, boss, STAFF_PASSWORD)
        staff.goto("/admin/queue")
        expect(staff.locator("tr.worker-row")).to_have_count(1)
        expect(staff.locator("tr.worker-row")).to_contain_text("alive")

        user = f"queuer{uuid.uuid4().hex[:6]}"
        register_and_sign_in(page, user)
        page.fill("#prompt", "a very long render")
        page.fill("#width", "64")
        page.fill("#height", "64")
        page.fill("#steps", "150")
        page.fill("#samples", "4")
        page.click("#generate")
        # The queue page picks it up without a reload, with its owner, and staff cancel it.
        row = staff.locator("tr.queue-row").filter(has_text=user)
        expect(row).to_have_count(1, timeout=30_000)
        row.locator(".task-cancel").click()
        staff.get_by_role("alertdialog").get_by_role("button", name="Cancel the task").click()
        expect(row).to_have_count(0)
        card = page.locator("#task-list article.task").first
        expect(card).to_have_attribute("data-state", "canceled", timeout=30_000)
        expect(page.locator("#balance")).to_contain_text("20")
        screenshot(staff, "admin-queue")
        assert staff.js_errors == []
    finally:
        context.close()


def test_the_admin_pages_work_on_a_phone(browser, live):
    boss = f"pocketboss{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    context, phone = staff_page(browser, live, viewport={"width": 390, "height": 844})
    try:
        browser_sign_in(phone, boss, STAFF_PASSWORD)
        for path, ready in (("/admin", "tr.user-row"), ("/admin/vouchers", "#voucher-form"),
                            ("/admin/queue", "tr.worker-row")):
            phone.goto(path)
            expect(phone.locator(ready).first).to_be_visible()
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} scrolls sideways ({width}px)"
        phone.goto("/admin")
        screenshot(phone, "admin-users-phone")
        assert phone.js_errors == []
    finally:
        context.close()
