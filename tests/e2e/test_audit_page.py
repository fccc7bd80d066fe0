"""Admin → Audit in Chromium, on a phone: the rows of staff actions, a filter that fetches
the table again in place and carries over to the "Download CSV" link, no sideways scroll
and no script errors."""
from __future__ import annotations

import csv
import io
import re
import uuid

import requests
from playwright.sync_api import expect

from tests.e2e.helpers import STAFF_PASSWORD, browser_sign_in, flask_create_staff, staff_page


def test_the_audit_page_filters_and_downloads_on_a_phone(browser, live):
    boss = f"auditboss{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    token = requests.post(f"{live.url}/api/v1/auth/tokens", json={"login": boss, "password": STAFF_PASSWORD,
                                                                   "name": "e2e"}, timeout=30).json()["token"]
    staff = {"Authorization": f"Bearer {token}"}
    tag = f"e2e{uuid.uuid4().hex[:6]}"
    whom = requests.post(f"{live.url}/api/v1/auth/register", json={
        "username": f"{tag}kid", "email": f"{tag}kid@example.com", "password": "correct horse battery"},
        timeout=30).json()
    for body in ({"tokens_delta": 9, "reason": f"{tag} prize"}, {"tier": "plus", "reason": f"{tag} paid plan"}):
        assert requests.patch(f"{live.url}/api/v1/admin/users/{whom['id']}", json=body, headers=staff,
                              timeout=30).status_code == 200

    context, phone = staff_page(browser, live, viewport={"width": 390, "height": 844})
    try:
        browser_sign_in(phone, boss, STAFF_PASSWORD)
        phone.goto(f"/admin/audit?q={tag}")
        rows = phone.locator("tr.audit-row")
        expect(rows).to_have_count(2)
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"/admin/audit scrolls sideways ({width}px)"

        phone.select_option("#audit-action", "tokens.grant")  # a change fetches the table in place
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(f"{tag} prize")
        href = phone.get_attribute("#audit-csv", "href")
        assert "action=tokens.grant" in href and f"q={tag}" in href
        assert "action=tokens.grant" in phone.url  # a reload shows the same filter

        download = requests.get(live.url + href, headers=staff, timeout=30)
        assert download.status_code == 200
        [row] = list(csv.DictReader(io.StringIO(download.text)))
        assert (row["action"], row["reason"], row["actor"]) == ("tokens.grant", f"{tag} prize", boss)

        phone.click("#audit-clear")
        expect(phone.locator("#audit-action")).to_have_value("")
        # the link follows once the table has been fetched again: wait for it, do not read it at once
        expect(phone.locator("#audit-csv")).not_to_have_attribute("href", re.compile(r"action="))
        assert phone.js_errors == []
    finally:
        context.close()


def test_the_manage_dialogs_why_goes_into_the_audit_trail(browser, live):
    """Plan changes and deletes from Admin → Users carry the dialog's "Why" to their audit rows."""
    boss = f"whyboss{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    token = requests.post(f"{live.url}/api/v1/auth/tokens", json={"login": boss, "password": STAFF_PASSWORD,
                                                                   "name": "e2e"}, timeout=30).json()["token"]
    staff = {"Authorization": f"Bearer {token}"}
    name = f"why{uuid.uuid4().hex[:6]}"
    whom = requests.post(f"{live.url}/api/v1/auth/register", json={
        "username": name, "email": f"{name}@example.com", "password": "correct horse battery"}, timeout=30).json()

    context, desk = staff_page(browser, live)
    try:
        browser_sign_in(desk, boss, STAFF_PASSWORD)
        desk.goto("/admin")
        desk.fill("#user-q", name)
        row = desk.locator(f"tr.user-row[data-username='{name}']")
        expect(row).to_have_count(1)
        row.locator(".user-manage").click()
        desk.fill("#action-reason", "moved to the plus plan")
        desk.select_option("#user-tier", "plus")
        desk.click("#user-save")
        expect(desk.locator("#user-dialog-status")).to_contain_text("Saved.")
        desk.fill("#action-reason", "left the club")
        desk.fill("#delete-confirm", name)
        desk.click("#user-delete")
        expect(desk.locator("#users-status")).to_contain_text(f"{name} was deleted")
        assert desk.js_errors == []
    finally:
        context.close()

    items = requests.get(f"{live.url}/api/v1/admin/audit", params={"target": whom["id"]}, headers=staff,
                         timeout=30).json()["items"]
    assert {(item["action"], item["reason"]) for item in items} == {
        ("users.tier", "moved to the plus plan"), ("users.delete", "left the club")}
