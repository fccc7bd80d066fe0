"""One-time account links: staff make a password reset link; "Forgot password?" mails
one through a real SMTP server (aiosmtpd on a loopback port), answering the same
whether an account matched or not, limited per address and per account; a new email
address is confirmed by a link mailed to it. A link is stored hashed, expires, and
works once; setting a password with it signs every session and API token out."""
from __future__ import annotations

import hashlib
import socket
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa

from tests.helpers import PUBLIC_URL, Mailbox, instance_env, link_in, make_app, unique
from tests.integration.helpers import ApiUser, csrf_from, make_staff, sign_in, signed_in

STAFF_PASSWORD = "a staff password"
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    box.controller.start()
    yield box
    box.controller.stop()


def with_mail(app, port: int, **settings):
    # No starting tokens: a new account then gets no confirmation mail (the tests here
    # count mails; test_registration.py has that mail's own tests).
    app.config.update(SMTP_URL=f"smtp://127.0.0.1:{port}", MAIL_FROM="Daydream <daydream@example.com>",
                      PUBLIC_URL=PUBLIC_URL, **{"STARTING_TOKENS": 0, **settings})
    return app


@pytest.fixture(scope="module")
def mail_office(tmp_path_factory, redis_url, models_path, mailbox):
    """An app that sends mail to the mailbox, with a staff account (no worker)."""
    app = make_app(instance_env(tmp_path_factory.mktemp("resets"), redis_url, models_path))
    app.staff_headers = make_staff(app, "keeper", STAFF_PASSWORD)
    return with_mail(app, mailbox.port)


def staff_link(mail_office, user_id: str) -> str:
    response = mail_office.test_client().post(f"/api/v1/admin/users/{user_id}/reset-link",
                                         headers=mail_office.staff_headers)
    assert response.status_code == 201, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    url = response.get_json()["url"]
    assert url.startswith(PUBLIC_URL + "/reset/")
    return urlsplit(url).path


def set_password(client, path: str, password: str):
    page = client.get(path)
    assert page.status_code == 200, page.data[:300]
    return client.post(path, data={"password": password, "csrf_token": csrf_from(page.data)})


def can_sign_in(app, login: str, password: str) -> bool:
    response = app.test_client().post("/api/v1/auth/tokens", json={
        "login": login, "password": password, "name": "check"})
    assert response.status_code in (201, 401), response.get_json()
    return response.status_code == 201


def forgot(client, login: str, address: str):
    page = client.get("/forgot", environ_base={"REMOTE_ADDR": address})
    return client.post("/forgot", data={"login": login, "csrf_token": csrf_from(page.data)},
                       environ_base={"REMOTE_ADDR": address})


# --- staff reset links ------------------------------------------------------------------

def test_staff_reset_link_sets_a_new_password_once_and_signs_everything_out(mail_office):
    from extensions import db
    from models import AccountToken, User

    user = ApiUser(mail_office.test_client(), unique("forgetful"))
    laptop, phone = mail_office.test_client(), mail_office.test_client()
    sign_in(laptop, user.username, user.password)
    sign_in(phone, user.username, user.password)

    path = staff_link(mail_office, user.data["id"])
    secret = path.rsplit("/", 1)[1]
    with mail_office.app_context():
        row = db.session.scalar(sa.select(AccountToken).join(User, User.id == AccountToken.user_id)
                                .where(User.uuid == user.data["id"]))
        assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest() != secret  # kept hashed
        assert row.purpose == "reset" and row.created_by_id is not None
        assert timedelta(hours=23) < row.expires_at - row.created_at <= timedelta(hours=24)

    browser = mail_office.test_client()
    page = browser.get(path)
    assert page.status_code == 200 and user.username.encode() in page.data
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    weak = browser.post(path, data={"password": "short", "csrf_token": csrf_from(page.data)})
    assert weak.status_code == 422 and b"use at least 10 characters" in weak.data
    assert browser.post(path, data={"password": NEW_PASSWORD}).status_code == 400  # no CSRF token

    done = set_password(browser, path, NEW_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"].endswith("/login")
    assert b"Your new password is set" in browser.get("/login").data

    assert not can_sign_in(mail_office, user.username, user.password), "the old password still works"
    assert can_sign_in(mail_office, user.username, NEW_PASSWORD)
    assert not signed_in(laptop) and not signed_in(phone), "other sessions survived the reset"
    assert user.get("/api/v1/me").status_code == 401, "an API token survived the reset"

    again = browser.get(path)
    assert again.status_code == 404 and b"used already, has expired" in again.data
    replay = browser.post(path, data={"password": "yet another passphrase",
                                      "csrf_token": csrf_from(again.data)})
    assert replay.status_code == 404
    assert can_sign_in(mail_office, user.username, NEW_PASSWORD)


def test_an_expired_reset_link_is_refused(mail_office):
    from extensions import db
    from models import AccountToken

    user = ApiUser(mail_office.test_client(), unique("late"))
    path = staff_link(mail_office, user.data["id"])
    with mail_office.app_context():
        digest = hashlib.sha256(path.rsplit("/", 1)[1].encode()).hexdigest()
        db.session.execute(sa.update(AccountToken).where(AccountToken.token_hash == digest)
                           .values(expires_at=AccountToken.created_at - timedelta(seconds=1)))
        db.session.commit()
    client = mail_office.test_client()
    page = client.get(path)
    assert page.status_code == 404 and b"has expired" in page.data
    assert client.post(path, data={"password": NEW_PASSWORD,
                                   "csrf_token": csrf_from(page.data)}).status_code == 404
    assert can_sign_in(mail_office, user.username, user.password)
    # An account with links can still be deleted (its links go with it).
    staff_link(mail_office, user.data["id"])
    gone = mail_office.test_client().delete(f"/api/v1/admin/users/{user.data['id']}", headers=mail_office.staff_headers)
    assert gone.status_code == 204
    with mail_office.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AccountToken)
                                 .where(AccountToken.token_hash == digest)) == 0


def test_reset_ttl_comes_from_the_setting(mail_office):
    mail_office.config["RESET_TTL"] = 600
    try:
        user = ApiUser(mail_office.test_client(), unique("short"))
        answer = mail_office.test_client().post(f"/api/v1/admin/users/{user.data['id']}/reset-link",
                                           headers=mail_office.staff_headers).get_json()
    finally:
        mail_office.config["RESET_TTL"] = 24 * 3600
    from datetime import datetime, timezone

    expires = datetime.fromisoformat(answer["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=9) < expires - datetime.now(timezone.utc) <= timedelta(minutes=10)


def test_only_staff_make_reset_links(mail_office):
    client = mail_office.test_client()
    user, other = ApiUser(client, unique("nosy")), ApiUser(client, unique("target"))
    path = f"/api/v1/admin/users/{other.data['id']}/reset-link"
    refused = client.post(path, headers=user.headers)
    assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    assert mail_office.test_client().post(path).status_code == 401
    assert client.post("/api/v1/admin/users/nobody/reset-link", headers=mail_office.staff_headers).status_code == 404


def test_staff_reset_link_needs_a_recent_sign_in(mail_office):
    user = ApiUser(mail_office.test_client(), unique("target"))
    staff = mail_office.test_client()
    headers = {"X-CSRFToken": sign_in(staff, "keeper", STAFF_PASSWORD)}
    path = f"/api/v1/admin/users/{user.data['id']}/reset-link"
    with staff.session_transaction() as session:
        session["auth_at"] = time.time() - 16 * 60
    stale = staff.post(path, headers=headers)
    assert stale.status_code == 403 and stale.get_json()["error"]["code"] == "reauth_required"
    assert staff.post("/api/v1/auth/reauth", json={"password": STAFF_PASSWORD}, headers=headers).status_code == 204
    assert staff.post(path, headers=headers).status_code == 201


@pytest.mark.parametrize("token", ["x", "a" * 5000, "%00", "..%252F..", "ünïcødé", "dd_" + "A" * 43])
def test_any_link_that_is_not_one_is_a_404_page(mail_office, token):
    client = mail_office.test_client()
    for path in (f"/reset/{token}", f"/email/confirm/{token}"):
        page = client.get(path)
        assert page.status_code == 404, (path, page.status_code)
        assert b"not valid" in page.data
        csrf = csrf_from(client.get("/login").data)
        assert client.post(path, data={"password": NEW_PASSWORD, "csrf_token": csrf}).status_code == 404


# --- forgot password, by mail ---------------------------------------------------------------

def test_forgot_password_mails_a_link_that_sets_a_new_password(mail_office, mailbox):
    user = ApiUser(mail_office.test_client(), unique("mailme"))
    email = user.data["email"]
    assert b'href="/forgot"' in mail_office.test_client().get("/login").data

    client = mail_office.test_client()
    answer = forgot(client, email, "10.1.0.1")
    assert answer.status_code == 303 and answer.headers["Location"].endswith("/forgot?sent=1")
    assert b"If an account matches" in client.get(answer.headers["Location"]).data

    message = mailbox.wait_for_message(email)
    assert message["To"] == email and "daydream@example.com" in message["From"]
    assert message["Subject"] == "Reset your Daydream password"
    path = link_in(message)
    assert set_password(client, path, NEW_PASSWORD).status_code == 302
    sign_in(client, user.username, NEW_PASSWORD)
    assert signed_in(client)
    assert not can_sign_in(mail_office, email, user.password)
    assert client.get(path).status_code == 404  # once


def test_forgot_answers_the_same_for_an_unknown_account_and_mails_nobody(mail_office, mailbox):
    user = ApiUser(mail_office.test_client(), unique("known"))
    before = len(mailbox.messages)
    unknown = forgot(mail_office.test_client(), f"{unique('nobody')}@example.com", "10.2.0.1")
    known = forgot(mail_office.test_client(), user.username, "10.2.0.2")  # by username this time
    assert (unknown.status_code, unknown.headers["Location"], unknown.data) == \
        (known.status_code, known.headers["Location"], known.data)
    # Mail jobs run in order: once the known account's mail is here, the other job ran.
    mailbox.wait_for_message(user.data["email"])
    assert len(mailbox.messages) == before + 1


def test_forgot_is_rate_limited_per_address_and_quietly_per_account(mail_office, mailbox):
    client = mail_office.test_client()
    limit = int(mail_office.config["RESET_LIMIT_IP"].split()[0])
    for _ in range(limit):
        assert forgot(client, f"{unique('ghost')}@example.com", "10.3.0.1").status_code == 303
    refused = forgot(client, f"{unique('ghost')}@example.com", "10.3.0.1")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert b"Too many password reset requests" in refused.data
    assert forgot(client, f"{unique('ghost')}@example.com", "10.3.0.2").status_code == 303  # another address

    # Per account: past the limit the answer stays the same, and no more mail goes out.
    target, witness = ApiUser(client, unique("popular")), ApiUser(client, unique("witness"))
    per_account = int(mail_office.config["RESET_LIMIT_ACCOUNT"].split()[0])
    for n in range(per_account + 2):
        assert forgot(client, target.username, f"10.4.0.{n + 1}").status_code == 303
    assert forgot(client, witness.username, "10.4.1.1").status_code == 303
    mailbox.wait_for_message(witness.data["email"])
    assert len(mailbox.to(target.data["email"])) == per_account


def test_a_slow_smtp_server_does_not_hold_the_answer(tmp_path, redis_url, models_path):
    """An SMTP server that accepts the connection and never speaks."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app = with_mail(make_app(instance_env(tmp_path / "slow", redis_url, models_path)),
                        silent.getsockname()[1], SMTP_TIMEOUT=2)
        user = ApiUser(app.test_client(), unique("patient"))
        for login in (user.username, "nobody-at-all"):
            client = app.test_client()
            started = time.monotonic()
            assert forgot(client, login, "10.5.0.1").status_code == 303
            assert time.monotonic() - started < 1.5


def test_forgot_without_the_limit_store_answers_503(tmp_path, models_path, mailbox):
    app = with_mail(make_app(instance_env(tmp_path / "dead", "redis://127.0.0.1:1/0", models_path)),
                    mailbox.port)
    answer = forgot(app.test_client(), "someone@example.com", "10.6.0.1")
    assert answer.status_code == 503 and int(answer.headers["Retry-After"]) > 0
    assert b"Password reset is unavailable for a moment" in answer.data


def test_forgot_needs_something_to_look_for(mail_office):
    client = mail_office.test_client()
    page = client.get("/forgot")
    answer = client.post("/forgot", data={"login": "  ", "csrf_token": csrf_from(page.data)})
    assert answer.status_code == 422 and b"enter the email or username" in answer.data
    assert client.post("/forgot", data={"login": "x"}).status_code == 400  # no CSRF token


def test_without_mail_there_is_no_forgot_link_but_a_word_about_staff(idle_app):
    client = idle_app.test_client()
    login = client.get("/login").data
    assert b'href="/forgot"' not in login and b"Ask staff for a reset link" in login
    page = client.get("/forgot")
    assert page.status_code == 200 and b"Ask staff for a password reset link" in page.data
    answer = client.post("/forgot", data={"login": "x", "csrf_token": csrf_from(page.data)})
    assert answer.status_code == 200 and b"Ask staff" in answer.data


# --- email change, confirmed by mail ------------------------------------------------------

def test_a_new_email_changes_only_when_its_link_is_followed(mail_office, mailbox):
    user = ApiUser(mail_office.test_client(), unique("mover"))
    old, new = user.data["email"], f"{unique('moved')}@example.org"
    changed = user.client.patch("/api/v1/me", json={"email": new, "first_name": "Mo"}, headers=user.headers)
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert body["email"] == old and body["pending_email"] == new and body["first_name"] == "Mo"

    message = mailbox.wait_for_message(new)
    assert message["Subject"] == "Confirm your new Daydream email"
    assert not mailbox.to(old)
    browser = mail_office.test_client()
    sign_in(browser, user.username, user.password)
    account = browser.get("/account").data
    assert b'id="email-pending">' in account and new.encode() in account  # shown
    assert user.me()["email"] == old

    path = link_in(message, "email/confirm")
    page = browser.get(path)
    assert page.status_code == 200 and new.encode() in page.data
    assert user.me()["email"] == old, "opening the page must not change the email"
    confirmed = browser.post(path, data={"csrf_token": csrf_from(page.data)})
    assert confirmed.status_code == 302 and "/account" in confirmed.headers["Location"]
    me = user.me()
    assert me["email"] == new and me["pending_email"] is None
    assert b'id="email-pending" hidden>' in browser.get("/account").data  # nothing pending now
    assert browser.get(path).status_code == 404  # once
    assert can_sign_in(mail_office, new, user.password)


def test_a_newer_email_change_replaces_the_pending_one(mail_office, mailbox):
    user = ApiUser(mail_office.test_client(), unique("fickle"))
    first, second = f"{unique('first')}@example.org", f"{unique('second')}@example.org"
    for address in (first, second):
        assert user.client.patch("/api/v1/me", json={"email": address}, headers=user.headers).status_code == 200
    old_link = link_in(mailbox.wait_for_message(first), "email/confirm")
    mailbox.wait_for_message(second)
    assert mail_office.test_client().get(old_link).status_code == 404
    assert user.me()["pending_email"] == second


def test_without_mail_the_email_changes_at_once(idle_app):
    user = ApiUser(idle_app.test_client(), unique("direct"))
    new = f"{unique('now')}@example.org"
    answer = user.client.patch("/api/v1/me", json={"email": new}, headers=user.headers)
    assert answer.status_code == 200
    assert answer.get_json()["email"] == new and answer.get_json()["pending_email"] is None
