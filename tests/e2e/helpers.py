"""Plain helpers for the browser tests: browser contexts, screenshots for the README,
registering and signing in through the pages, staff accounts. The fixtures (the live
server, the browser, pages) are in conftest.py beside this file."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from tests.helpers import ROOT

MEDIA = ROOT / "media"
PASSWORD = "a long enough password"
STAFF_PASSWORD = "a staff password"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("Chromium is not installed; `make test` installs it (apt-get install chromium)")


def new_page(browser, live, viewport=None):
    """A page in a browser context of its own (its own cookies): a second person, or
    the same person on another device. Browser JS errors collect in page.js_errors."""
    context = browser.new_context(base_url=live.url, viewport=viewport or {"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    return context, page


staff_page = new_page  # a second browser context, for the staff member


def screenshot(page, name: str) -> None:
    """Screenshots of the main pages for the README (media/)."""
    if os.environ.get("DAYDREAM_SCREENSHOTS", "1") == "1":
        MEDIA.mkdir(exist_ok=True)
        page.screenshot(path=str(MEDIA / f"{name}.png"))


def register_and_sign_in(page, username: str) -> None:
    page.goto("/register")
    page.fill("input[name=username]", username)
    page.fill("input[name=email]", f"{username}@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/studio$"))
    # Sign out, then in again through the sign-in page.
    page.click("form[action='/logout'] button")
    expect(page).to_have_url(re.compile(r"/$"))
    page.goto("/login")
    screenshot(page, "sign-in")
    page.fill("input[name=login]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    expect(page).to_have_url(re.compile(r"/studio$"))
    # The URL changes before the page's modules have run: wait until the studio is wired.
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")


def browser_sign_in(page, login: str, password: str, remember: bool = False) -> None:
    """Sign in through the sign-in page ("Keep me signed in" ticked if remember)."""
    page.goto("/login")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    if remember:
        page.check("#remember")
    page.click("#login-submit")
    expect(page).to_have_url(re.compile(r"/studio$"))
    expect(page.locator("body")).to_have_attribute("data-ready", "studio")


def flask_create_staff(live, username: str) -> None:
    """A staff account made the documented way: `flask create-staff`, the password
    (STAFF_PASSWORD) on standard input."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "create-staff", "--username", username,
         "--email", f"{username}@example.com"],
        input=STAFF_PASSWORD + "\n", env=live.env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def generate_in_studio(page, prompt: str, samples: int, size: int = 64) -> str:
    """Make `samples` images of size × size (64 by default) in the studio; returns the task id."""
    page.goto("/studio")
    if not page.locator("#prompt").is_visible():  # a phone: the panel is a drawer
        page.click("#panel-toggle")
    page.fill("#prompt", prompt)
    page.fill("#width", str(size))
    page.fill("#height", str(size))
    page.fill("#steps", "3")
    page.fill("#samples", str(samples))
    expect(page.locator("#timeline-loading")).to_be_hidden()
    cards = page.locator("#task-list article.task")
    before = cards.count()
    page.click("#generate")
    expect(cards).to_have_count(before + 1)
    card = cards.first
    expect(card).to_have_attribute("data-state", "done", timeout=60_000)
    expect(card.locator("img.task-image")).to_have_count(samples)
    return card.get_attribute("data-task-id")
