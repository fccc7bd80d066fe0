"""Signing out in Chromium against the real server: with "Keep me signed in" ticked the
browser is signed out for good (the remember-me cookie is gone, a copy of it is
refused), and "Sign out everywhere" on the account page ends another browser's session."""
from __future__ import annotations

import re
import uuid

import requests
from playwright.sync_api import expect

from tests.e2e.helpers import PASSWORD, browser_sign_in, new_page

REMEMBER = "remember_token"


def register_by_api(live, username: str) -> None:
    response = requests.post(live.url + "/api/v1/auth/register", timeout=10, json={
        "username": username, "email": f"{username}@example.com", "password": PASSWORD})
    assert response.status_code == 201, response.text


def cookie_names(context) -> set[str]:
    return {c["name"] for c in context.cookies()}


def test_sign_out_with_keep_me_signed_in_signs_out_for_good(page, browser, live):
    username = f"leaver{uuid.uuid4().hex[:6]}"
    register_by_api(live, username)
    browser_sign_in(page, username, PASSWORD, remember=True)
    assert REMEMBER in cookie_names(page.context)
    copied = [c for c in page.context.cookies() if c["name"] == REMEMBER]

    page.click("form[action='/logout'] button")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("#flashes")).to_contain_text("You are signed out")
    assert REMEMBER not in cookie_names(page.context)
    page.goto("/studio")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.reload()  # and stays signed out
    expect(page).to_have_url(re.compile(r"/login\?next="))

    # A copy of the remember-me cookie taken before sign-out is refused afterwards.
    context, thief = new_page(browser, live)
    try:
        context.add_cookies(copied)
        thief.goto("/studio")
        expect(thief).to_have_url(re.compile(r"/login\?next="))
        assert REMEMBER not in cookie_names(context)  # the dead cookie was deleted
    finally:
        context.close()
    assert page.js_errors == []


def test_sign_out_everywhere_ends_the_other_browsers_session(page, browser, live):
    username = f"roamer{uuid.uuid4().hex[:6]}"
    register_by_api(live, username)
    browser_sign_in(page, username, PASSWORD, remember=False)
    context, other = new_page(browser, live)
    try:
        browser_sign_in(other, username, PASSWORD, remember=True)
        page.goto("/account#settings")
        expect(page.locator("#session-count")).to_contain_text("2 open sessions, this one included")
        page.click("#sign-out-everywhere")
        expect(page).to_have_url(re.compile(r"/login$"))
        expect(page.locator("#flashes")).to_contain_text("2 sessions ended, this one included")

        other.goto("/studio")
        expect(other).to_have_url(re.compile(r"/login\?next="))
        assert REMEMBER not in cookie_names(context)
        assert other.js_errors == []
    finally:
        context.close()
    page.goto("/account")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    assert page.js_errors == []
