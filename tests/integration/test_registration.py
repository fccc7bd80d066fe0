"""Registration: limited per address and per network (429 with Retry-After, on the page
and the API); the modes of DAYDREAM_REGISTRATION (open, invite with a staff voucher code,
approval by staff in Admin -> Users, closed), shown on the register and landing pages;
and, with mail configured, starting tokens granted once the email is confirmed, once."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import sqlalchemy as sa

from tests.helpers import PUBLIC_URL, Mailbox, WebServer, instance_env, link_in, make_app, unique
from tests.integration.helpers import csrf_from, make_staff, sign_in, user_row

PASSWORD = "correct horse battery"
STAFF = "registrar"
STAFF_PASSWORD = "a staff password"


@pytest.fixture(scope="module")
def desk(tmp_path_factory, redis_url, models_path):
    """An app with a staff account (no worker: nothing here generates)."""
    app = make_app(instance_env(tmp_path_factory.mktemp("registration"), redis_url, models_path))
    app.staff_headers = make_staff(app, STAFF, STAFF_PASSWORD)
    return app


@pytest.fixture
def settings(desk):
    """Change the desk's settings for one test (the mode, limits, mail); put back after."""
    saved = dict(desk.config)

    def change(**values):
        desk.config.update(values)
        return desk

    yield change
    desk.config.clear()
    desk.config.update(saved)


def register_api(client, name: str | None = None, address: str = "127.0.0.1", **extra):
    name = name or unique("r")
    return client.post("/api/v1/auth/register", environ_base={"REMOTE_ADDR": address}, json={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD, **extra})


def register_page(client, name: str | None = None, address: str = "127.0.0.1", **extra):
    name = name or unique("p")
    page = client.get("/register", environ_base={"REMOTE_ADDR": address})
    return client.post("/register", environ_base={"REMOTE_ADDR": address}, data={
        "username": name, "email": f"{name}@example.com", "password": PASSWORD,
        "csrf_token": csrf_from(page.data), **extra})


def count_users(app, like: str) -> int:
    from extensions import db
    from models import User

    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(User)
                                 .where(User.username.like(like + "%")))


def ledger_of(app, username: str) -> list[tuple[str, int]]:
    from extensions import db
    from models import Ledger, User

    with app.app_context():
        return [tuple(r) for r in db.session.execute(
            sa.select(Ledger.kind, Ledger.delta).join(User, User.id == Ledger.user_id)
            .where(User.username == username).order_by(Ledger.id)).all()]


def sign_in_answer(app, login: str) -> tuple[int, dict]:
    response = app.test_client().post("/api/v1/auth/tokens", json={
        "login": login, "password": PASSWORD, "name": "check"})
    return response.status_code, response.get_json()


# --- limits ---------------------------------------------------------------------------

def test_a_burst_of_registrations_from_one_address_gets_429(tmp_path, redis_url, models_path):
    """The real web server, 16 registrations at once from one address: the limit's 5
    accounts are made, every other request is refused with when to try again."""
    env = instance_env(tmp_path / "instance", redis_url, models_path,
                       DAYDREAM_REGISTER_LIMIT_IP="5 per hour", DAYDREAM_REGISTER_LIMIT_NETWORK="8 per hour")
    app = make_app(env)
    web = WebServer(env, tmp_path / "web.log").start()
    prefix = unique("burst")
    try:
        def one(i):
            return requests.post(web.url + "/api/v1/auth/register", timeout=30, json={
                "username": f"{prefix}{i}", "email": f"{prefix}{i}@example.com", "password": PASSWORD})

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(one, range(16)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses == [201] * 5 + [429] * 11, statuses
        refused = next(r for r in answers if r.status_code == 429)
        assert 0 < int(refused.headers["Retry-After"]) <= 3600
        error = refused.json()["error"]
        assert error["code"] == "rate_limited"
        assert re.match(r"Too many new accounts from your address\. Try again in \d+ minutes?\.",
                        error["message"]), error["message"]
        assert count_users(app, prefix) == 5

        # The page says the same, and makes nothing either.
        browser = requests.Session()
        page = browser.get(web.url + "/register", timeout=10)
        answer = browser.post(web.url + "/register", timeout=10, allow_redirects=False, data={
            "username": prefix + "page", "email": f"{prefix}page@example.com", "password": PASSWORD,
            "csrf_token": csrf_from(page.content)})
        assert answer.status_code == 429 and "Retry-After" in answer.headers
        assert "Too many new accounts from your address" in answer.text
        assert count_users(app, prefix) == 5
    finally:
        web.stop()


def test_the_network_limit_counts_neighbouring_addresses(desk, settings):
    """Per /24 of IPv4 and /64 of IPv6: fresh addresses next door do not reset the count;
    another network is counted apart."""
    settings(REGISTER_LIMIT_IP="3 per hour", REGISTER_LIMIT_NETWORK="4 per hour")
    client = desk.test_client()
    for address in ("10.77.1.1", "10.77.1.1", "10.77.1.2", "10.77.1.3"):
        assert register_api(client, address=address).status_code == 201
    refused = register_api(client, address="10.77.1.200")
    assert refused.status_code == 429, refused.get_json()
    assert "from your network" in refused.get_json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) > 0
    assert register_api(client, address="10.77.2.1").status_code == 201  # the next /24

    # The address's own limit comes first for one address.
    for _ in range(3):
        assert register_api(client, address="10.78.0.9").status_code == 201
    assert "from your address" in register_api(client, address="10.78.0.9").get_json()["error"]["message"]

    v6 = ["2001:db8:77::1", "2001:db8:77::2", "2001:db8:77:0:ffff::3", "2001:db8:77::4"]
    for address in v6:
        assert register_api(client, address=address).status_code == 201, address
    assert register_api(client, address="2001:db8:77::abcd").status_code == 429  # the same /64
    assert register_api(client, address="2001:db8:77:1::1").status_code == 201  # another /64


def test_refused_or_invalid_forms_do_not_use_up_the_limit(desk, settings):
    """Only registrations that pass the form's checks count: a typo is not a sign-up."""
    settings(REGISTER_LIMIT_IP="2 per hour")
    client = desk.test_client()
    for _ in range(4):
        bad = register_api(client, address="10.79.0.1", password="short")
        assert bad.status_code == 422
    taken = register_api(client, name=STAFF, address="10.79.0.1")
    assert taken.status_code == 409
    assert register_api(client, address="10.79.0.1").status_code == 201
    assert register_api(client, address="10.79.0.1").status_code == 201
    assert register_api(client, address="10.79.0.1").status_code == 429


# --- modes ------------------------------------------------------------------------------

def nav_has_register(html: str) -> bool:
    return 'class="btn btn--primary btn--small site-nav__register"' in html


def test_closed_registration_refuses_and_every_page_says_so(desk, settings):
    settings(REGISTRATION="closed")
    client = desk.test_client()
    page = client.get("/register")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Registration is closed" in html and 'id="register-submit"' not in html
    assert not nav_has_register(html)

    name = unique("closed")
    posted = client.post("/register", data={"username": name, "email": f"{name}@example.com",
                                            "password": PASSWORD, "csrf_token": csrf_from(html.encode())})
    assert posted.status_code == 403
    assert "Registration is closed on this server" in posted.get_data(as_text=True)
    refused = register_api(client, name)
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "registration_closed"
    assert user_row(desk, name) is None

    landing = client.get("/").get_data(as_text=True)
    assert "Registration is closed on this server" in landing
    assert 'href="/register"' not in landing and not nav_has_register(landing)


def test_open_registration_is_what_the_pages_offer_by_default(desk):
    landing = desk.test_client().get("/").get_data(as_text=True)
    assert "Create a free account" in landing and nav_has_register(landing)
    assert 'id="registration-note"' not in landing
    html = desk.test_client().get("/register").get_data(as_text=True)
    assert 'id="invite"' not in html and "Create account" in html


def make_invites(desk, count: int = 2, tokens: int = 7) -> list[str]:
    made = desk.test_client().post("/api/v1/admin/vouchers", headers=desk.staff_headers,
                                     json={"tokens": tokens, "count": count, "note": "class 4b"})
    assert made.status_code == 201, made.get_json()
    return made.get_json()["codes"]


def test_invite_registration_needs_an_unused_code_from_staff(desk, settings):
    settings(REGISTRATION="invite")
    client = desk.test_client()
    html = client.get("/register").get_data(as_text=True)
    assert 'id="invite"' in html and "invite code" in html
    assert "Register with an invite code" in client.get("/").get_data(as_text=True)

    missing = register_api(client)
    assert missing.status_code == 422 and missing.get_json()["error"]["field"] == "invite"
    wrong = register_api(client, invite="DD-ABCD-EFGH-JKLM-NPQR")
    assert wrong.status_code == 422 and "unknown or was used" in wrong.get_json()["error"]["message"]

    code, second = make_invites(desk)
    name = unique("invited")
    made = register_api(client, name, invite=code.lower().replace("-", " "))  # as people type it
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["tokens"] == desk.config["STARTING_TOKENS"] + 7
    assert sorted(ledger_of(desk, name)) == [("starting_grant", desk.config["STARTING_TOKENS"]),
                                                   ("voucher", 7)]
    again = register_api(client, invite=code)
    assert again.status_code == 422 and again.get_json()["error"]["field"] == "invite"

    # The page: a missing code is shown at its field; a good one signs the new user in.
    page = register_page(client)
    assert page.status_code == 422 and "enter the invite code" in page.get_data(as_text=True)
    page = register_page(client, invite=second)
    assert page.status_code == 302 and page.headers["Location"].endswith("/studio")


def test_approval_keeps_a_new_account_out_until_staff_approve_it(desk, settings):
    settings(REGISTRATION="approval")
    client = desk.test_client()
    html = client.get("/register").get_data(as_text=True)
    assert "Staff approve new accounts" in html and "Request an account" in html
    assert "Request an account" in client.get("/").get_data(as_text=True)

    name = unique("waiting")
    made = register_api(client, name)
    assert made.status_code == 201
    assert made.get_json()["pending"] is True and made.get_json()["active"] is False
    assert "waiting for staff approval" in made.get_json()["message"]
    status, body = sign_in_answer(desk, name)
    assert status == 403 and body["error"]["code"] == "pending_approval"
    assert "waiting for staff approval" in body["error"]["message"]

    # Through the pages: registered, sent to sign in, told why it cannot yet.
    browser = desk.test_client()
    other = unique("waiting")
    posted = register_page(browser, other)
    assert posted.status_code == 303 and posted.headers["Location"].endswith("/login")
    login = browser.get("/login").get_data(as_text=True)
    assert "waiting for staff approval" in login
    refused = browser.post("/login", data={"login": other, "password": PASSWORD,
                                           "csrf_token": csrf_from(login.encode())})
    assert "waiting for staff approval" in refused.get_data(as_text=True)
    assert browser.get("/api/v1/me").status_code == 401

    # Staff see who waits, with a badge and an Approve button, and approve.
    staff = desk.test_client()
    sign_in(staff, STAFF, STAFF_PASSWORD)
    listing = staff.get("/admin/users/rows?pending=1").get_data(as_text=True)
    assert name in listing and other in listing and STAFF not in listing
    assert "waiting for approval" in listing and f'aria-label="Approve {name}"' in listing
    assert "accounts are waiting for approval" in staff.get("/admin/users").get_data(as_text=True)
    user_id = made.get_json()["id"]
    approved = staff.post(f"/api/v1/admin/users/{user_id}/approve", headers=desk.staff_headers,
                          json={"reason": "in class 4b"})
    assert approved.status_code == 200, approved.get_json()
    assert approved.get_json()["pending"] is False and approved.get_json()["active"] is True
    assert sign_in_answer(desk, name)[0] == 201
    twice = staff.post(f"/api/v1/admin/users/{user_id}/approve", headers=desk.staff_headers)
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "not_pending"
    audit = staff.get("/api/v1/admin/audit?action=users.approve", headers=desk.staff_headers).get_json()
    rows = [r for r in audit["items"] if r["target"]["name"] == name]
    assert len(rows) == 1 and rows[0]["actor"]["username"] == STAFF and rows[0]["reason"] == "in class 4b"
    listing = staff.get("/admin/users/rows?pending=1").get_data(as_text=True)
    assert name not in listing and other in listing


# --- starting tokens after the email is confirmed -------------------------------------------

@pytest.fixture(scope="module")
def inbox():
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


def test_with_mail_the_starting_tokens_come_once_the_email_is_confirmed(desk, settings, inbox):
    settings(SMTP_URL=f"smtp://127.0.0.1:{inbox.port}", MAIL_FROM="Daydream <daydream@example.com>",
             PUBLIC_URL=PUBLIC_URL)
    starting = desk.config["STARTING_TOKENS"]
    client = desk.test_client()
    name = unique("mailed")
    made = register_api(client, name)
    assert made.status_code == 201
    assert made.get_json()["tokens"] == 0 and made.get_json()["held_tokens"] == starting
    assert f"get your {starting} starting tokens" in made.get_json()["message"]
    assert ledger_of(desk, name) == []

    path = link_in(inbox.wait_for_message(f"{name}@example.com"), "email/confirm")
    page = client.get(path)
    assert page.status_code == 200
    assert f"get your {starting} starting tokens" in page.get_data(as_text=True)
    confirmed = client.post(path, data={"csrf_token": csrf_from(page.data)})
    assert confirmed.status_code == 302
    assert user_row(desk, name).tokens == starting
    assert ledger_of(desk, name) == [("starting_grant", starting)]

    # The link works once; a later confirmation (a new address) grants nothing more.
    assert client.post(path, data={"csrf_token": csrf_from(page.data)}).status_code == 404
    token = client.post("/api/v1/auth/tokens", json={"login": name, "password": PASSWORD,
                                                     "name": "t"}).get_json()["token"]
    changed = client.patch("/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                           json={"email": f"new-{name}@example.com"})
    assert changed.status_code == 200, changed.get_json()
    second = link_in(inbox.wait_for_message(f"new-{name}@example.com"), "email/confirm")
    page = client.get(second)
    assert client.post(second, data={"csrf_token": csrf_from(page.data)}).status_code == 302
    assert user_row(desk, name).email == f"new-{name}@example.com"
    assert user_row(desk, name).tokens == starting
    assert ledger_of(desk, name) == [("starting_grant", starting)]


def test_the_page_says_where_the_confirmation_went(desk, settings, inbox):
    settings(SMTP_URL=f"smtp://127.0.0.1:{inbox.port}", MAIL_FROM="Daydream <daydream@example.com>",
             PUBLIC_URL=PUBLIC_URL)
    browser = desk.test_client()
    name = unique("pagemail")
    posted = register_page(browser, name)
    assert posted.status_code == 302
    studio = browser.get("/studio").get_data(as_text=True)
    assert f"Confirm your email to get your {desk.config['STARTING_TOKENS']} starting tokens" in studio
    assert f"{name}@example.com" in studio
    inbox.wait_for_message(f"{name}@example.com")
    assert user_row(desk, name).tokens == 0


def test_without_mail_the_starting_tokens_come_at_once(desk):
    name = unique("nomail")
    made = register_api(desk.test_client(), name)
    assert made.get_json()["tokens"] == desk.config["STARTING_TOKENS"]
    assert made.get_json()["held_tokens"] == 0
    assert ledger_of(desk, name) == [("starting_grant", desk.config["STARTING_TOKENS"])]
