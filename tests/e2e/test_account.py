"""The account page in Chromium: a user redeems a voucher that staff made on the
vouchers page; edits their profile; makes an API token; and it all fits a phone."""
from __future__ import annotations

import uuid

import requests
from playwright.sync_api import expect

from tests.e2e.helpers import (STAFF_PASSWORD, browser_sign_in, flask_create_staff, register_and_sign_in,
                               screenshot, staff_page)


def test_a_user_redeems_a_voucher_made_by_staff(page, browser, live):
    boss = f"issuer{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    context, staff = staff_page(browser, live)
    try:
        browser_sign_in(staff, boss, STAFF_PASSWORD)
        staff.goto("/admin/vouchers")
        staff.fill("#voucher-tokens", "12")
        staff.fill("#voucher-count", "2")
        staff.fill("#voucher-note", "e2e")
        staff.click("#voucher-create")
        expect(staff.locator("#voucher-status")).to_contain_text("2 codes worth 12 tokens each")
        codes = staff.locator("#new-codes-text").input_value().split("\n")
        assert len(codes) == 2
    finally:
        context.close()

    user = f"redeemer{uuid.uuid4().hex[:6]}"
    register_and_sign_in(page, user)
    page.goto("/account")
    page.click("#tab-tokens")
    expect(page.locator("#panel-tokens")).to_be_visible()
    page.fill("#voucher-code", codes[0].lower())
    page.click("#redeem-submit")
    expect(page.locator("#redeem-status")).to_contain_text("12 tokens added")
    expect(page.locator("#tokens-balance")).to_have_text("32")
    expect(page.locator("#balance")).to_contain_text("32")
    first = page.locator("#ledger-body tr.ledger-row").first
    expect(first).to_have_attribute("data-kind", "voucher")
    expect(first).to_contain_text("+12")

    page.fill("#voucher-code", codes[0])
    page.click("#redeem-submit")
    expect(page.locator("#code-error")).to_contain_text("redeemed already")
    expect(page.locator("#tokens-balance")).to_have_text("32")
    screenshot(page, "account-tokens")
    assert page.js_errors == []

    # Staff see who redeemed it.
    context, staff = staff_page(browser, live)
    try:
        browser_sign_in(staff, boss, STAFF_PASSWORD)
        staff.goto("/admin/vouchers")
        row = staff.locator(f"tr.voucher-row[data-code='{codes[0]}']")
        expect(row.locator(".voucher-redeemed-by")).to_have_text(user)
    finally:
        context.close()


def test_profile_and_api_tokens_on_the_account_page(page, live):
    user = f"tinkerer{uuid.uuid4().hex[:6]}"
    register_and_sign_in(page, user)
    page.goto("/account#settings")
    expect(page.locator("#profile-form")).to_be_visible()
    page.fill("#first_name", "Grace")
    page.fill("#mobile", "not a number")
    page.click("#profile-save")
    expect(page.locator("#mobile-error")).to_be_visible()
    page.fill("#mobile", "+1 555 0100")
    page.click("#profile-save")
    expect(page.locator("#profile-status")).to_have_text("Saved.")
    page.click("#tab-overview")
    expect(page.locator("#fact-name")).to_have_text("Grace")

    page.click("#tab-api")
    page.fill("#token-name", "my script")
    page.click("#token-create")
    expect(page.locator("#new-token")).to_be_visible()
    secret = page.locator("#new-token-value").input_value()
    assert secret.startswith("dd_")
    expect(page.locator("tr.api-token-row").filter(has_text="my script")).to_have_count(1)
    me = requests.get(live.url + "/api/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert me.status_code == 200 and me.json()["first_name"] == "Grace"
    page.locator("tr.api-token-row").filter(has_text="my script").get_by_role("button", name="Revoke my script").click()
    page.get_by_role("alertdialog", name="Revoke the API key “my script”?").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr.api-token-row").filter(has_text="my script")).to_have_count(0)
    assert requests.get(live.url + "/api/v1/me", headers={"Authorization": f"Bearer {secret}"},
                        timeout=30).status_code == 401
    assert page.js_errors == []


def test_the_account_page_works_on_a_phone(phone):
    register_and_sign_in(phone, f"pocketacct{uuid.uuid4().hex[:6]}")
    phone.goto("/account")
    for tab in ("overview", "settings", "tokens", "api"):
        phone.click(f"#tab-{tab}")
        expect(phone.locator(f"#panel-{tab}")).to_be_visible()
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the {tab} tab scrolls sideways ({width}px)"
    phone.click("#tab-tokens")
    screenshot(phone, "account-phone")


def test_the_pages_own_dialog_asks_before_revoking_a_key_on_a_phone(phone):
    """lib/confirm.js on a phone: an alertdialog named by its question, that fits the screen;
    Escape cancels and gives the focus back; nothing native is shown."""
    native: list[str] = []
    phone.on("dialog", lambda dialog: (native.append(dialog.type), dialog.dismiss()))
    register_and_sign_in(phone, f"revoker{uuid.uuid4().hex[:6]}")
    phone.goto("/account#api")
    phone.click("#tab-api")
    phone.fill("#token-name", "pocket script")
    phone.click("#token-create")
    row = phone.locator("tr.api-token-row").filter(has_text="pocket script")
    expect(row).to_have_count(1)
    revoke = row.get_by_role("button", name="Revoke pocket script")

    revoke.click()
    dialog = phone.get_by_role("alertdialog", name="Revoke the API key “pocket script”?")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_accessible_description("Scripts and tools using it stop working.")
    expect(dialog.get_by_role("button", name="Revoke")).to_be_focused()
    box = dialog.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
    phone.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(revoke).to_be_focused()
    expect(row).to_have_count(1)

    revoke.click()
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_have_count(0)
    expect(row).to_have_count(1)

    revoke.click()
    dialog.get_by_role("button", name="Revoke").click()
    expect(row).to_have_count(0)
    assert native == [], "the browser's own dialog was used"
