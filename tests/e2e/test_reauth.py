"""The password dialog in Chromium, on any page: a staff member whose sign-in is older
than the recent sign-in window (DAYDREAM_RECENT_AUTH_SECONDS, a few seconds on this
server of its own) is asked for the password when making an API token on /account, and
gets the token once it is entered; canceling or a wrong password leaves them where they
were. The staff users page asks the same way (lib/api.js, the one place that does)."""
from __future__ import annotations

import uuid

import pytest
import requests
from playwright.sync_api import expect

from tests.e2e.helpers import STAFF_PASSWORD, browser_sign_in, flask_create_staff, new_page
from tests.helpers import WebServer, instance_env, make_app, unique, wait_for

WINDOW_S = 3

# True once this browser's sign-in is too old for a staff action: an empty change of
# one's own account (no effect) is refused with reauth_required.
SIGN_IN_IS_OLD = """async () => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const me = await (await fetch("/api/v1/me", {headers: {Accept: "application/json"}})).json();
  const res = await fetch("/api/v1/admin/users/" + encodeURIComponent(me.id), {
    method: "PATCH", body: "{}",
    headers: {"Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrf},
  });
  const body = await res.json().catch(() => ({}));
  return res.status === 403 && !!body.error && body.error.code === "reauth_required";
}"""


@pytest.fixture(scope="module")
def short_window(tmp_path_factory, redis_url, models_path):
    """A web server of its own whose recent sign-in window is WINDOW_S seconds."""
    instance = tmp_path_factory.mktemp("e2e-reauth")
    env = instance_env(instance, redis_url, models_path, DAYDREAM_RECENT_AUTH_SECONDS=WINDOW_S)
    make_app(env)
    web = WebServer(env, instance / "web.log").start()
    web.env, web.instance = env, instance
    yield web
    web.stop()


@pytest.fixture
def staff(browser, short_window):
    """A staff member signed in on the short-window server, and their page."""
    username = unique("late")
    flask_create_staff(short_window, username)
    context, page = new_page(browser, short_window)
    browser_sign_in(page, username, STAFF_PASSWORD)
    page.username = username
    yield page
    context.close()


def wait_until_the_sign_in_is_old(page) -> None:
    wait_for(lambda: page.evaluate(SIGN_IN_IS_OLD), timeout=30, interval=0.5,
             message="the recent sign-in window to pass")


def test_a_staff_member_past_the_window_enters_the_password_and_gets_the_api_token(staff, short_window):
    page = staff
    page.goto("/account#api")
    expect(page.locator("#token-form")).to_be_visible()
    wait_until_the_sign_in_is_old(page)
    name = f"nightly {uuid.uuid4().hex[:4]}"
    page.fill("#token-name", name)

    # Canceling the dialog: no token, and the page says why.
    page.click("#token-create")
    dialog = page.locator("#reauth-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#reauth-password")).to_be_focused()
    page.click("#reauth-cancel")
    expect(dialog).to_be_hidden()
    expect(page.locator("#name-error")).to_contain_text("Enter your password again")
    expect(page.locator("#new-token")).to_be_hidden()
    expect(page.locator("tr.api-token-row")).to_have_count(0)

    # A wrong password is refused in the dialog, which stays open; the right one goes on.
    page.click("#token-create")
    expect(dialog).to_be_visible()
    page.fill("#reauth-password", "not my password at all")
    page.click("#reauth-submit")
    expect(page.locator("#reauth-error")).to_be_visible()
    expect(dialog).to_be_visible()
    page.fill("#reauth-password", STAFF_PASSWORD)
    page.click("#reauth-submit")
    expect(dialog).to_be_hidden()

    expect(page.locator("#new-token")).to_be_visible()
    secret = page.locator("#new-token-value").input_value()
    assert secret.startswith("dd_")
    expect(page.locator("tr.api-token-row").filter(has_text=name)).to_have_count(1)
    me = requests.get(short_window.url + "/api/v1/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert me.status_code == 200 and me.json()["username"] == page.username
    assert page.js_errors == []


def test_the_staff_users_page_asks_for_the_password_the_same_way(staff):
    page = staff
    page.goto("/admin")
    wait_until_the_sign_in_is_old(page)
    page.fill("#user-q", page.username)
    row = page.locator(f"tr.user-row[data-username='{page.username}']")
    expect(row).to_have_count(1)
    row.locator(".user-manage").click()
    expect(page.locator("#user-dialog")).to_be_visible()
    before = int(row.locator(".user-tokens").inner_text())
    page.fill("#grant-amount", "5")
    page.fill("#grant-reason", "after a coffee")
    page.click("#grant-submit")
    expect(page.locator("#reauth-dialog")).to_be_visible()
    page.fill("#reauth-password", STAFF_PASSWORD)
    page.click("#reauth-submit")
    expect(page.locator("#reauth-dialog")).to_be_hidden()
    expect(page.locator("#user-dialog-status")).to_contain_text(f"Granted 5 tokens. Balance: {before + 5}.")
    expect(row.locator(".user-tokens")).to_have_text(str(before + 5))
    assert page.js_errors == []
