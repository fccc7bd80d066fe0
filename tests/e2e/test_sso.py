"""Single sign-on in Chromium, against a real OpenID Connect provider (node's
oidc-provider, tests/oidc/server.js) and a server that allows nothing else
(DAYDREAM_SSO_ONLY): a pupil's first sign-in makes their account and puts them in the
class of their groups claim; signing out offers the provider's sign-out, which works;
the next sign-in signs in to the same account. Passwords are refused, on the page and
at POST /api/v1/auth/tokens, except for the break-glass staff account. A tampered state,
a wrong nonce, another issuer and an unverified email trying to link an existing account
are refused with a page that says why, and nothing is signed in. (Every refusal, through
the app: tests/integration/test_sso.py.)"""
from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import requests
import sqlalchemy as sa
from playwright.sync_api import expect

from extensions import db
from models import ClassMember, SchoolClass, User
from services.accounts.passwords import hash_password
from services.accounts.users import create_staff
from tests.e2e.helpers import PASSWORD, STAFF_PASSWORD, new_page
from tests.helpers import OidcProvider, WebServer, provider_account, unique, with_query

PROVIDER_PASSWORD = "the school's password"
KEEPER = "keeper"  # the break-glass staff account
PUPIL = {"login": "pia", "password": PROVIDER_PASSWORD,
         "claims": {"email": "pia.k@school.example.org", "email_verified": True,
                    "preferred_username": "pia.k@school.example.org", "given_name": "Pia",
                    "groups": ["year-8-green", "library-club"]}}
# A person whose email the provider does not vouch for, the same as an existing account's.
UNVERIFIED = provider_account("uma", PROVIDER_PASSWORD, verified=False)
CALLBACK = "/auth/sso/callback"


@pytest.fixture(scope="module")
def school_server(stack_factory, tmp_path_factory):
    """A server (no worker: signing in needs none) that signs in only with the provider,
    and the provider, started once its client's redirect URIs are known. `mixup`: a
    second web server of the same instance whose discovery document is the provider's
    "mixup" one (it names another issuer with this provider's endpoints and keys),
    started only by the test that needs it."""
    provider = OidcProvider(tmp_path_factory.mktemp("oidc") / "provider.log", [PUPIL, UNVERIFIED])
    stack = stack_factory(worker=False, web=1, **provider.settings(
        DAYDREAM_SSO_ONLY="true", DAYDREAM_SSO_BREAK_GLASS=f"someone-else, {KEEPER}"))
    web = stack.web(1)
    mixup = WebServer({**stack.env, "DAYDREAM_OIDC_DISCOVERY_URL": provider.discovery("mixup")},
                      stack.instance / "web-mixup.log")
    provider.start([web.url + CALLBACK, mixup.url + CALLBACK], web.url + "/")
    with stack.app.app_context():
        db.session.add(SchoolClass(name="Year 8 Green", sso_group="year-8-green"))
        db.session.commit()
        create_staff(KEEPER, f"{KEEPER}@school.example.org", STAFF_PASSWORD)
    yield SimpleNamespace(web=web, url=web.url, app=stack.app, provider=provider, mixup=mixup)
    mixup.stop()
    provider.stop()


def sign_in_with_the_school(page, school_server, person: dict = PUPIL) -> None:
    page.click("#sso-sign-in")
    expect(page).to_have_url(re.compile("^" + re.escape(school_server.provider.url)))
    page.fill("#login", person["login"])
    page.fill("#password", person["password"])
    page.click("#sign-in")


def expect_refused(page, server_url: str, code: str, words: str) -> None:
    """The sign-in came back to the server and was refused: its page says why."""
    expect(page.locator("#sso-problem-code")).to_have_text(f"({code})")
    expect(page.locator("#form-error")).to_contain_text(words)
    assert page.url.startswith(server_url + CALLBACK)


def test_a_pupil_signs_in_with_the_school_account_into_their_class(browser, school_server):
    context, page = new_page(browser, school_server)
    try:
        page.goto("/studio")
        expect(page).to_have_url(re.compile(r"/login\?next="))
        expect(page.locator("#sso-sign-in")).to_have_text("Sign in with Test School")
        sign_in_with_the_school(page, school_server)
        expect(page).to_have_url(re.compile(r"/studio$"))
        me = page.request.get("/api/v1/me").json()
        assert me["username"] == "pia.k" and me["email"] == "pia.k@school.example.org"
        with school_server.app.app_context():
            pia = db.session.scalar(sa.select(User).where(User.sso_subject == "pia"))
            classes = db.session.execute(
                sa.select(SchoolClass.name, ClassMember.role, ClassMember.via)
                .join(ClassMember, ClassMember.class_id == SchoolClass.id)
                .where(ClassMember.user_id == pia.id)).all()
        assert classes == [("Year 8 Green", "pupil", "sso")]

        # Signing out here, then at the provider, with the link this server offers.
        page.click("form[action='/logout'] button")
        expect(page).to_have_url(re.compile(r"/auth/sso/signed-out$"))
        page.click("#provider-sign-out")
        page.click("#provider-logout")
        expect(page).to_have_url(school_server.url + "/")
        assert page.request.get("/api/v1/me").status == 401

        # The next sign-in (the provider asks again) is the same account.
        page.goto("/login")
        sign_in_with_the_school(page, school_server)
        expect(page).to_have_url(re.compile(r"/studio$"))
        assert page.request.get("/api/v1/me").json()["id"] == me["id"]
        with school_server.app.app_context():
            assert db.session.scalar(sa.select(sa.func.count()).select_from(User)
                                     .where(User.sso_subject == "pia")) == 1
        assert page.js_errors == []
    finally:
        context.close()


def test_with_sso_only_passwords_are_refused_but_the_break_glass_account_works(browser, school_server):
    pupil = unique("pwd")
    with school_server.app.app_context():
        db.session.add(User(username=pupil, email=f"{pupil}@school.example.org", password_hash=hash_password(PASSWORD)))
        db.session.commit()
    context, page = new_page(browser, school_server)
    try:
        page.goto("/register")
        expect(page).to_have_url(re.compile(r"/login$"))  # accounts come from the provider
        page.click("#password-fold summary")
        page.fill("input[name=login]", pupil)
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-submit")
        expect(page.locator("#form-error")).to_contain_text("Passwords are turned off")
        assert page.request.get("/api/v1/me").status == 401

        for login, password in ((pupil, PASSWORD), ("nobody-at-all", PASSWORD)):
            answer = requests.post(school_server.url + "/api/v1/auth/tokens", timeout=10,
                                   json={"login": login, "password": password, "name": "script"})
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "passwords_off", answer.text

        # The break-glass staff account signs in with its password, on the page and the API.
        page.fill("input[name=login]", KEEPER)
        page.fill("input[name=password]", STAFF_PASSWORD)
        page.click("#login-submit")
        expect(page).to_have_url(re.compile(r"/studio$"))
        answer = requests.post(school_server.url + "/api/v1/auth/tokens", timeout=10,
                               json={"login": KEEPER, "password": STAFF_PASSWORD, "name": "script"})
        assert answer.status_code == 201, answer.text
        assert page.js_errors == []
    finally:
        context.close()


def test_a_tampered_state_and_a_wrong_nonce_are_refused_in_the_browser(browser, school_server):
    """The sign-in's address at the provider, changed in the browser: the provider's
    answer carries another state (not this browser's sign-in) or its ID token another
    nonce. Each is refused with a page that says so, and nothing is signed in."""
    context, page = new_page(browser, school_server)
    try:
        for change, code in (({"state": "a-state-of-someone-else-entirely"}, "sso_state"),
                             ({"nonce": "the-nonce-of-another-sign-in"}, "sso_nonce")):
            start = page.request.get("/auth/sso/start", max_redirects=0)
            assert start.status == 302, start.text()
            page.goto(with_query(start.headers["location"], **change))
            expect(page.locator("#login, #sso-problem-code").first).to_be_visible()
            if page.locator("#login").count():  # the first time: the provider asks who this is
                page.fill("#login", PUPIL["login"])
                page.fill("#password", PUPIL["password"])
                page.click("#sign-in")
            expect(page.locator("#sso-problem-code")).to_have_text(f"({code})")
            assert page.url.startswith(school_server.url + CALLBACK)
            assert page.request.get("/api/v1/me").status == 401
        assert page.js_errors == []
    finally:
        context.close()


def test_an_answer_from_another_issuer_is_refused_in_the_browser(browser, school_server):
    """A server whose discovery document names another issuer than the provider that
    answers (a mix-up): the pupil signs in at the provider as usual, and the answer that
    comes back (its iss, RFC 9207) is refused with a page that says so."""
    mixup = school_server.mixup.start() if school_server.mixup.proc is None else school_server.mixup
    context, page = new_page(browser, mixup)
    try:
        page.goto("/login")
        sign_in_with_the_school(page, school_server)
        expect_refused(page, mixup.url, "sso_issuer", f"came from another issuer ({school_server.provider.url})")
        for server in (mixup, school_server):
            assert page.request.get(server.url + "/api/v1/me").status == 401
        with school_server.app.app_context():  # no account of the issuer the mixup document names
            assert db.session.scalar(sa.select(sa.func.count()).select_from(User).where(
                User.sso_issuer == school_server.provider.url + "/mixup")) == 0
        assert page.js_errors == []
    finally:
        context.close()


def test_an_unverified_email_does_not_link_the_existing_account_in_the_browser(browser, school_server):
    """The provider does not vouch for the email, which an account here has already: the
    sign-in is refused with a page that says why, and the account stays unlinked (else
    anyone who could set that address at the provider would take it over)."""
    email = UNVERIFIED["claims"]["email"]
    with school_server.app.app_context():
        existing = User(username=unique("uma"), email=email, password_hash=hash_password(PASSWORD))
        db.session.add(existing)
        db.session.commit()
        existing_id = existing.id
    context, page = new_page(browser, school_server)
    try:
        page.goto("/login")
        sign_in_with_the_school(page, school_server, UNVERIFIED)
        expect_refused(page, school_server.url, "sso_email_unverified",
                       f"An account with the email {email} exists already")
        expect(page.locator("#form-error")).to_contain_text("does not say that this email is verified")
        assert page.request.get("/api/v1/me").status == 401
        with school_server.app.app_context():
            accounts = db.session.execute(sa.select(User.id, User.sso_issuer, User.sso_subject).where(
                sa.or_(User.email == email, User.sso_subject == UNVERIFIED["login"]))).all()
        assert accounts == [(existing_id, None, None)], "linked, or a second account made"
        assert page.js_errors == []
    finally:
        context.close()
