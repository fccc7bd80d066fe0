"""Password resets in Chromium: staff make a one-time link in the users dialog and copy
it; the user opens it, sets a new password and signs in with it. With mail configured,
"Forgot password?" on a phone mails a link (to a real local SMTP server) that works the
same way, and the pages fit the phone's screen."""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (PASSWORD, STAFF_PASSWORD, browser_sign_in, flask_create_staff,
                               register_and_sign_in, staff_page)
from tests.helpers import PUBLIC_URL, Mailbox, WebServer, instance_env, link_in, make_app

NEW_PASSWORD = "a brand new passphrase"


def set_new_password(page, url: str) -> None:
    page.goto(url)
    expect(page.locator("h1")).to_have_text("Set a new password")
    page.fill("#password", "short")
    page.click("#reset-submit")
    expect(page.locator("#password-error")).to_contain_text("at least 10 characters")
    page.fill("#password", NEW_PASSWORD)
    page.click("#reset-submit")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator(".flash")).to_contain_text("Your new password is set")


def test_staff_make_a_reset_link_and_the_user_sets_a_new_password(page, browser, live):
    boss = f"boss{uuid.uuid4().hex[:6]}"
    flask_create_staff(live, boss)
    user = f"forgot{uuid.uuid4().hex[:6]}"
    register_and_sign_in(page, user)
    page.click("form[action='/logout'] button")
    page.goto("/login")
    expect(page.locator(".auth-card__footer")).to_contain_text("Ask staff for a reset link")

    context, staff = staff_page(browser, live)
    try:
        browser_sign_in(staff, boss, STAFF_PASSWORD)
        staff.goto("/admin")
        staff.fill("#user-q", user)
        row = staff.locator(f"tr.user-row[data-username='{user}']")
        expect(row).to_have_count(1)
        row.locator(".user-manage").click()
        staff.click("#reset-link-make")
        expect(staff.locator("#reset-link")).to_be_visible()
        expect(staff.locator("#reset-link-expiry")).to_contain_text("Works once")
        url = staff.input_value("#reset-link-value")
        assert re.search(r"/reset/[A-Za-z0-9_-]{40,}$", url), url
        staff.click("#user-dialog-close")
        row.locator(".user-manage").click()
        expect(staff.locator("#reset-link")).to_be_hidden()  # shown once
        assert staff.js_errors == []
    finally:
        context.close()

    set_new_password(page, url)
    page.fill("input[name=login]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    expect(page.locator("#form-error")).to_contain_text("Wrong username/email or password")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/studio$"))
    page.goto(url)
    expect(page.locator("h1")).to_have_text("Reset link invalid")
    assert page.js_errors == []


@pytest.fixture(scope="module")
def mail_live(tmp_path_factory, redis_url, models_path):
    """A second web server, this one sending mail to a local SMTP server."""
    box = Mailbox()
    box.controller.start()
    instance = tmp_path_factory.mktemp("e2e-mail")
    env = instance_env(instance, redis_url, models_path,
                       DAYDREAM_SMTP_URL=f"smtp://127.0.0.1:{box.port}",
                       DAYDREAM_MAIL_FROM="daydream@example.com",
                       DAYDREAM_PUBLIC_URL=PUBLIC_URL,
                       DAYDREAM_STARTING_TOKENS=0)  # no confirmation mail at registration
    make_app(env)
    web = WebServer(env, instance / "web.log").start()
    web.mailbox = box
    yield web
    web.stop()
    box.controller.stop()


def test_forgot_password_by_mail_on_a_phone(browser, mail_live):
    context = browser.new_context(base_url=mail_live.url, viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True, device_scale_factor=2)
    phone = context.new_page()
    phone.set_default_timeout(20_000)
    errors: list[str] = []
    phone.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        user = f"phoner{uuid.uuid4().hex[:6]}"
        register_and_sign_in(phone, user)
        context.clear_cookies()  # a stranger on another phone, then
        phone.goto("/login")
        phone.click("#forgot-link")
        expect(phone).to_have_url(re.compile(r"/forgot$"))
        phone.fill("#login", f"{user}@example.com")
        phone.click("#forgot-submit")
        expect(phone.locator("#forgot-sent")).to_contain_text("If an account matches")
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")

        message = mail_live.mailbox.wait_for_message(f"{user}@example.com")
        set_new_password(phone, mail_live.url + link_in(message))  # the path of the mailed link
        assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
        phone.fill("input[name=login]", user)
        phone.fill("input[name=password]", NEW_PASSWORD)
        phone.click("form button[type=submit]")
        expect(phone).to_have_url(re.compile(r"/studio$"))
        assert errors == []
    finally:
        context.close()
