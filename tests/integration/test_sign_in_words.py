"""What the sign-in and registration pages say up front (issue 13): why a visitor was
sent to sign in, and the password rule before a password is refused."""
from __future__ import annotations

import re

import pytest

from services.accounts.passwords import MIN_PASSWORD


def lead_of(html: str) -> str:
    match = re.search(r'<p class="muted" id="login-lead">(.*?)</p>', html, re.S)
    assert match, html[:2000]
    return match.group(1).strip()


@pytest.mark.parametrize("page, reason", [
    ("/studio", "Sign in to use the studio."),
    ("/images", "Sign in to see your images."),
    ("/account", "Sign in to open your account."),
])
def test_a_page_that_needs_a_sign_in_says_why_once(idle_client, page, reason):
    response = idle_client.get(page)
    assert response.status_code == 302
    html = idle_client.get(response.headers["Location"]).get_data(as_text=True)
    assert lead_of(html) == reason
    assert html.count(reason) == 1  # no flash saying it again
    assert "Please log in" not in html


def test_the_sign_in_page_on_its_own_or_with_another_site_says_nothing_more(idle_client):
    assert lead_of(idle_client.get("/login").get_data(as_text=True)) == "Sign in to open your studio."
    html = idle_client.get("/login?next=//evil.example/studio").get_data(as_text=True)
    assert lead_of(html) == "Sign in to open your studio."
    assert "Sign in to open that page." in idle_client.get("/login?next=/somewhere").get_data(as_text=True)


def test_the_password_rule_is_shown_before_it_is_broken(idle_client):
    html = idle_client.get("/register").get_data(as_text=True)
    hint = re.search(r'<p class="field-hint" id="password-hint">(.*?)</p>', html, re.S)
    assert hint and f"At least {MIN_PASSWORD} characters" in hint.group(1) and "common" in hint.group(1)
