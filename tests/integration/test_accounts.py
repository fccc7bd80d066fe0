"""Accounts: the profile, passwords (policy, change signs other sessions out, Argon2id
upgrade), deleting an account with its files, API tokens, the ledger, vouchers, sign-in
rate limits, tiers and allowances, the first-run setup link, and the ledger check."""
from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.helpers import unique
from tests.integration.helpers import ApiUser, add_image, csrf_from, make_staff, sign_in, user_row

PASSWORD = "correct horse battery"


# --- profile -------------------------------------------------------------------------

def test_profile_edits_are_validated_and_an_email_in_use_is_refused(make_user):
    user, other = make_user(), make_user()
    changed = user.client.patch("/api/v1/me", headers=user.headers, json={
        "first_name": "  Ada ", "last_name": "Lovelace", "mobile": "+44 20 7946 0958",
        "email": f"NEW-{user.username}@Example.com"})
    assert changed.status_code == 200, changed.get_json()
    data = changed.get_json()
    assert (data["first_name"], data["last_name"], data["mobile"]) == ("Ada", "Lovelace", "+44 20 7946 0958")
    assert data["email"] == f"NEW-{user.username}@example.com"  # the domain is normalized

    taken = user.client.patch("/api/v1/me", headers=user.headers, json={"email": other.data["email"].upper()})
    assert taken.status_code == 422
    assert taken.get_json()["error"]["field"] == "email"
    assert "already used" in taken.get_json()["error"]["message"]

    bad = user.client.patch("/api/v1/me", headers=user.headers, json={"mobile": "call me maybe",
                                                                        "email": "nope"})
    assert bad.status_code == 422
    assert set(bad.get_json()["error"]["fields"]) == {"mobile", "email"}
    assert user.me()["mobile"] == "+44 20 7946 0958"  # nothing changed
    # The studio settings still work through the same route.
    assert user.client.patch("/api/v1/me", headers=user.headers,
                             json={"settings": {"previews": False}}).get_json()["settings"]["previews"] is False


def test_the_account_page_shows_the_overview_and_tabs(make_user, client):
    user = make_user()
    sign_in(client, user.username, user.password)
    page = client.get("/account")
    assert page.status_code == 200
    html = page.data.decode()
    for text in (user.username, user.data["email"], user.data["id"], user.me()["sessionid"],
                 "Overview", "Settings", "Tokens", "API", "account.js", "starting grant"):
        assert text in html, text
    client.post("/logout", data={"csrf_token": csrf_from(page.data)})
    assert client.get("/account").status_code == 302


# --- passwords -----------------------------------------------------------------------

@pytest.mark.parametrize("password, reason", [
    ("short", "at least 10"),
    ("password123", "too common"),
    ("1234567890", "too common"),
    ("aaaaaaaaaaaa", "too common"),
    ("qwertyuiop", "too common"),
])
def test_weak_passwords_are_refused(client, password, reason):
    response = client.post("/api/v1/auth/register", json={
        "username": unique("weak"), "email": f"{unique('w')}@example.com", "password": password})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "password"
    assert reason in response.get_json()["error"]["message"]


def test_the_username_is_not_a_password(client):
    name = unique("samename")
    response = client.post("/api/v1/auth/register", json={
        "username": name, "email": f"{name}@example.com", "password": name})
    assert response.status_code == 422 and "username" in response.get_json()["error"]["message"]


def test_changing_the_password_signs_out_other_sessions_and_revokes_tokens(app, make_user):
    user = make_user()
    here, elsewhere, remembered = app.test_client(), app.test_client(), app.test_client()
    token = sign_in(here, user.username, user.password)
    sign_in(elsewhere, user.username, user.password)
    # A remember-me sign-in whose session cookie is gone: the remember cookie signs it in.
    login_csrf = csrf_from(remembered.get("/login").data)
    remembered.post("/login", data={"login": user.username, "password": user.password,
                                    "remember": "1", "csrf_token": login_csrf})
    remembered.delete_cookie("session")
    assert remembered.get("/api/v1/me").status_code == 200

    wrong = here.post("/api/v1/me/password", headers={"X-CSRFToken": token},
                      json={"current_password": "not my password", "new_password": "a brand new secret"})
    assert wrong.status_code == 422 and wrong.get_json()["error"]["field"] == "current_password"
    weak = here.post("/api/v1/me/password", headers={"X-CSRFToken": token},
                     json={"current_password": user.password, "new_password": "password123"})
    assert weak.status_code == 422 and weak.get_json()["error"]["field"] == "new_password"

    changed = here.post("/api/v1/me/password", headers={"X-CSRFToken": token},
                        json={"current_password": user.password, "new_password": "a brand new secret"})
    assert changed.status_code == 204
    assert here.get("/api/v1/me").status_code == 200          # this session stays
    assert elsewhere.get("/api/v1/me").status_code == 401     # the other one is signed out
    remembered.delete_cookie("session")
    assert remembered.get("/api/v1/me").status_code == 401    # and so is remember-me
    assert user.get("/api/v1/me").status_code == 401          # the API token is revoked
    old = app.test_client().post("/api/v1/auth/tokens", json={
        "login": user.username, "password": user.password, "name": "x"})
    assert old.status_code == 401
    new = app.test_client().post("/api/v1/auth/tokens", json={
        "login": user.username, "password": "a brand new secret", "name": "x"})
    assert new.status_code == 201


def test_a_password_change_can_keep_other_sessions(app, make_user):
    user = make_user()
    elsewhere = app.test_client()
    sign_in(elsewhere, user.username, user.password)
    changed = user.post("/api/v1/me/password", json={
        "current_password": user.password, "new_password": "another long secret", "keep_sessions": True})
    assert changed.status_code == 204
    assert elsewhere.get("/api/v1/me").status_code == 200
    assert user.get("/api/v1/me").status_code == 200


def test_a_password_change_through_a_token_keeps_that_token(app, make_user):
    user = make_user()
    second = app.test_client().post("/api/v1/auth/tokens", json={
        "login": user.username, "password": user.password, "name": "other"}).get_json()["token"]
    changed = user.post("/api/v1/me/password", json={
        "current_password": user.password, "new_password": "another long secret"})
    assert changed.status_code == 204
    assert user.get("/api/v1/me").status_code == 200
    assert app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {second}"}).status_code == 401


def test_argon2_hashes_are_upgraded_on_sign_in(app, make_user):
    from argon2 import PasswordHasher

    from extensions import db
    from models import User

    user = make_user()
    weak_hash = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(user.password)
    with app.app_context():
        db.session.execute(sa.update(User).where(User.username == user.username)
                           .values(password_hash=weak_hash))
        db.session.commit()
    sign_in(app.test_client(), user.username, user.password)
    upgraded = user_row(app, user.username).password_hash
    assert upgraded != weak_hash
    assert upgraded.startswith("$argon2id$") and "m=8192" not in upgraded
    assert not PasswordHasher().check_needs_rehash(upgraded)


def test_session_cookies_are_httponly_and_lax_and_secure_behind_https(fresh):
    for secure in (False, True):
        app = fresh(DAYDREAM_SECURE_COOKIES="true" if secure else "false")
        user = ApiUser(app.test_client(), unique("cookie"))
        client = app.test_client()
        token = csrf_from(client.get("/login").data)
        response = client.post("/login", data={"login": user.username, "password": user.password,
                                               "remember": "1", "csrf_token": token})
        cookies = response.headers.getlist("Set-Cookie")
        for name in ("session=", "remember_token="):
            cookie = next(c for c in cookies if c.startswith(name))
            assert "HttpOnly" in cookie and "SameSite=Lax" in cookie, cookie
            assert ("Secure" in cookie) is secure, cookie


# --- deleting an account ---------------------------------------------------------------

def test_deleting_my_account_removes_my_images_and_files(fresh):
    app = fresh()
    client = app.test_client()
    user = ApiUser(client, unique("leaver"))
    keeper = ApiUser(client, unique("keeper"))
    row = user_row(app, user.username)
    files = add_image(app, row.id) + add_image(app, row.id)
    kept = add_image(app, user_row(app, keeper.username).id)
    assert user.submit().status_code == 202
    assert all(p.exists() for p in files)

    wrong = client.delete("/api/v1/me", json={"password": "not it at all"}, headers=user.headers)
    assert wrong.status_code == 422 and wrong.get_json()["error"]["field"] == "password"
    assert all(p.exists() for p in files)

    gone = client.delete("/api/v1/me", json={"password": user.password}, headers=user.headers)
    assert gone.status_code == 204
    assert not any(p.exists() for p in files)
    assert all(p.exists() for p in kept)  # nobody else's files
    assert user_row(app, user.username) is None
    assert user.get("/api/v1/me").status_code == 401
    from extensions import db
    from models import Image, Ledger, Task

    with app.app_context():
        for model in (Image, Ledger, Task):
            assert db.session.scalar(sa.select(sa.func.count()).select_from(model)
                                     .where(model.user_id == row.id)) == 0


# --- API tokens ----------------------------------------------------------------------

def test_api_tokens_are_shown_once_stored_hashed_and_revocable(app, make_user, client):
    from extensions import db
    from models import ApiToken

    user = make_user()
    token = sign_in(client, user.username, user.password)
    made = client.post("/api/v1/auth/tokens", json={"name": "laptop"}, headers={"X-CSRFToken": token})
    assert made.status_code == 201
    secret = made.get_json()["token"]
    assert secret.startswith("dd_") and len(secret) > 40
    listed = client.get("/api/v1/auth/tokens").get_json()["items"]
    assert {t["name"] for t in listed} == {"tests", "laptop"}
    assert all("token" not in t for t in listed)
    with app.app_context():
        stored = db.session.get(ApiToken, made.get_json()["id"])
        assert stored.token_hash != secret and secret not in stored.token_hash
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/v1/me", headers=bearer).status_code == 200
    assert client.delete(f"/api/v1/auth/tokens/{made.get_json()['id']}",
                         headers={"X-CSRFToken": token}).status_code == 204
    assert app.test_client().get("/api/v1/me", headers=bearer).status_code == 401


# --- the ledger ------------------------------------------------------------------------

def test_my_ledger_lists_every_change_newest_first_and_pages(make_idle_user):
    user = make_idle_user()
    first = user.submit(samples=2).get_json()
    second = user.submit().get_json()
    assert user.post(f"/api/v1/tasks/{first['id']}/cancel").status_code == 200
    ledger = user.get("/api/v1/me/ledger").get_json()
    assert ledger["total"] == 4
    rows = ledger["items"]
    assert [(r["kind"], r["delta"], r["balance_after"]) for r in rows] == [
        ("refund", 2, 19), ("debit", -1, 17), ("debit", -2, 18), ("starting_grant", 20, 20)]
    assert rows[0]["task_id"] == first["id"] and rows[1]["task_id"] == second["id"]
    assert user.me()["tokens"] == sum(r["delta"] for r in rows) == 19
    page = user.get("/api/v1/me/ledger?offset=1&limit=2").get_json()
    assert [r["id"] for r in page["items"]] == [r["id"] for r in rows[1:3]]
    assert user.get("/api/v1/me/ledger?limit=0").status_code == 422


# --- vouchers ----------------------------------------------------------------------------

def test_vouchers_add_tokens_once_and_wrong_codes_are_refused(fresh):
    app = fresh()
    client = app.test_client()
    staff = make_staff(app)
    made = client.post("/api/v1/admin/vouchers", json={"tokens": 7, "count": 3, "note": "party"},
                       headers=staff)
    assert made.status_code == 201
    codes = made.get_json()["codes"]
    assert len(set(codes)) == 3
    assert all(re.fullmatch(r"DD(-[A-HJ-NP-Z2-9]{4}){4}", c) for c in codes)

    user, other = ApiUser(client, unique("lucky")), ApiUser(client, unique("late"))
    redeemed = user.post("/api/v1/me/redeem", json={"code": codes[0].lower().replace("-", " ")})
    assert redeemed.status_code == 200, redeemed.get_json()
    assert redeemed.get_json()["tokens"] == 27 and redeemed.get_json()["redeemed"] == 7
    top = user.get("/api/v1/me/ledger").get_json()["items"][0]
    assert (top["kind"], top["delta"], top["balance_after"]) == ("voucher", 7, 27)

    again = user.post("/api/v1/me/redeem", json={"code": codes[0]})
    assert again.status_code == 409 and "redeemed already" in again.get_json()["error"]["message"]
    stolen = other.post("/api/v1/me/redeem", json={"code": codes[0]})
    assert stolen.status_code == 409 and "someone else" in stolen.get_json()["error"]["message"]
    unknown = user.post("/api/v1/me/redeem", json={"code": "DD-AAAA-BBBB-CCCC-DDDD"})
    assert unknown.status_code == 404 and "typos" in unknown.get_json()["error"]["message"]
    garbled = user.post("/api/v1/me/redeem", json={"code": "hello"})
    assert garbled.status_code == 422 and garbled.get_json()["error"]["field"] == "code"
    assert user.me()["tokens"] == 27 and other.me()["tokens"] == 20

    listed = client.get("/api/v1/admin/vouchers?state=redeemed", headers=staff).get_json()
    assert [(v["code"], v["redeemed_by"]) for v in listed["items"]] == [(codes[0], user.username)]
    csv_text = client.get("/api/v1/admin/vouchers/unredeemed.csv", headers=staff).data.decode()
    assert codes[0] not in csv_text and codes[1] in csv_text and codes[2] in csv_text


def test_voucher_guessing_is_rate_limited(fresh):
    app = fresh(DAYDREAM_REDEEM_LIMIT="3 per hour")
    client = app.test_client()
    staff = make_staff(app)
    code = client.post("/api/v1/admin/vouchers", json={"tokens": 5, "count": 1},
                       headers=staff).get_json()["codes"][0]
    guesser = ApiUser(client, unique("guesser"))
    for _ in range(3):
        assert guesser.post("/api/v1/me/redeem", json={"code": "DD-AAAA-BBBB-CCCC-DDDD"}).status_code == 404
    blocked = guesser.post("/api/v1/me/redeem", json={"code": code})  # even a right one, for now
    assert blocked.status_code == 429
    assert blocked.get_json()["error"]["code"] == "rate_limited"
    assert "Try again in" in blocked.get_json()["error"]["message"]
    assert int(blocked.headers["Retry-After"]) > 0
    honest = ApiUser(client, unique("honest"))  # the limit is per user
    assert honest.post("/api/v1/me/redeem", json={"code": code}).status_code == 200


# --- sign-in rate limits ---------------------------------------------------------------

def _login(client, login, password):
    token = csrf_from(client.get("/login").data)
    return client.post("/login", data={"login": login, "password": password, "csrf_token": token})


# The limits themselves (growing delays per account and address, the caps, Redis down):
# tests/integration/test_signin_limits.py.


def test_deactivated_accounts_cannot_sign_in(fresh):
    app = fresh()
    client = app.test_client()
    staff = make_staff(app)
    user = ApiUser(client, unique("gone"))
    session = app.test_client()
    sign_in(session, user.username, user.password)
    assert client.patch(f"/api/v1/admin/users/{user.data['id']}", json={"active": False},
                        headers=staff).status_code == 200
    refused = _login(app.test_client(), user.username, user.password)
    assert refused.status_code == 401 and b"deactivated" in refused.data
    assert user.get("/api/v1/me").status_code == 401
    assert session.get("/api/v1/me").status_code == 401
    assert client.post("/api/v1/auth/tokens", json={"login": user.username, "password": user.password,
                                                    "name": "x"}).status_code == 403


# --- tiers and allowances ----------------------------------------------------------------

def test_tiers_come_from_settings_and_payments_are_off_until_configured(fresh):
    from services.accounts import tiers

    app = fresh()
    with app.test_request_context():
        listed = tiers.tiers()
        assert [t["id"] for t in listed] == ["free", "plus", "pro"]
        assert set(listed[0]) == {"id", "name", "price_label", "allowance", "period_days", "max_side",
                                  "max_pixels", "max_samples", "queue_share", "max_upscale_pixels",
                                  "images_per_hour", "images_per_day"}
        assert listed[0]["images_per_day"] is None and listed[0]["images_per_hour"] is None  # no cap
        assert listed[0]["max_side"] == 768 and listed[0]["queue_share"] == 3
        assert tiers.payment_configured() is False
    custom = fresh(DAYDREAM_TIERS='[{"id": "basic", "allowance": 5, "max_side": 512}, {"id": "max"}]',
                   DAYDREAM_PAYMENT_PROVIDER="stripe", DAYDREAM_DEFAULT_TIER="basic")
    with custom.test_request_context():
        assert [(t["id"], t["allowance"], t["max_side"]) for t in tiers.tiers()] == [
            ("basic", 5, 512), ("max", 20, 768)]
        assert tiers.payment_configured() is True
    user = ApiUser(custom.test_client(), unique("basic"))
    assert user.me()["tier"] == "basic"
    refused = user.submit(width=576, height=64)
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "width"


def test_a_tier_sets_the_limits_and_the_allowance_comes_once_a_period(fresh):
    from extensions import db
    from models import User, utcnow

    app = fresh()
    client = app.test_client()
    staff = make_staff(app)
    user = ApiUser(client, unique("subscriber"))
    assert user.submit(width=1024, height=64).status_code == 422  # free: 768 a side
    upgraded = client.patch(f"/api/v1/admin/users/{user.data['id']}", json={"tier": "plus"}, headers=staff)
    assert upgraded.status_code == 200 and upgraded.get_json()["tier"] == "plus"
    assert user.submit(width=1024, height=64).status_code == 202
    assert client.patch(f"/api/v1/admin/users/{user.data['id']}", json={"tier": "gold"},
                        headers=staff).status_code == 422

    before = user.me()["tokens"]
    with app.app_context():  # the period began 31 days ago
        db.session.execute(sa.update(User).where(User.uuid == user.data["id"])
                           .values(allowance_at=utcnow() - timedelta(days=31)))
        db.session.commit()
    after = user.me()["tokens"]
    assert after == before + 400
    assert user.me()["tokens"] == after  # once
    top = user.get("/api/v1/me/ledger").get_json()["items"][0]
    assert (top["kind"], top["delta"]) == ("allowance", 400)


# --- first run ---------------------------------------------------------------------------

def test_the_setup_link_creates_the_first_staff_account_once(fresh):
    from extensions import db
    from models import SetupToken

    app = fresh()
    printed = app.test_cli_runner().invoke(args=["setup-link"],
                                           env={"DAYDREAM_PUBLIC_URL": "https://daydream.example.org"})
    assert printed.exit_code == 0
    link = re.search(r"https://daydream\.example\.org/setup/(\S+)", printed.output)
    assert link, printed.output
    token = link.group(1)
    with app.app_context():  # only a hash is kept
        stored = db.session.scalars(sa.select(SetupToken.token_hash)).all()
        assert stored and token not in stored[0]

    client = app.test_client()
    assert client.get("/setup/not-the-token").status_code == 404
    form = client.get(f"/setup/{token}")
    assert form.status_code == 200 and b"first staff account" in form.data
    csrf = csrf_from(form.data)
    weak = client.post(f"/setup/{token}", data={"username": "root", "email": "root@example.com",
                                                 "password": "password123", "csrf_token": csrf})
    assert weak.status_code == 422 and b"too common" in weak.data
    made = client.post(f"/setup/{token}", data={"username": "root", "email": "root@example.com",
                                                 "password": "the first staff password",
                                                 "csrf_token": csrf})
    assert made.status_code == 302 and made.headers["Location"].startswith("/admin")
    assert client.get("/admin").status_code == 200  # signed in as staff
    assert user_row(app, "root").role == "staff"
    used = app.test_client().get(f"/setup/{token}")
    assert used.status_code == 404 and b"used already" in used.data
    again = app.test_cli_runner().invoke(args=["setup-link"])
    assert again.exit_code == 0 and "/setup/" not in again.output  # staff exists: no link


# --- the ledger check --------------------------------------------------------------------

def test_check_ledger_finds_a_balance_that_does_not_match(fresh):
    from extensions import db
    from models import User

    app = fresh()
    client = app.test_client()
    user = ApiUser(client, unique("books"))
    user.submit()
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["check-ledger"])
    assert ok.exit_code == 0 and "Ledger OK" in ok.output
    with app.app_context():
        db.session.execute(sa.update(User).where(User.username == user.username).values(tokens=99))
        db.session.commit()
    bad = runner.invoke(args=["check-ledger"])
    assert bad.exit_code == 1 and f"MISMATCH {user.username}" in bad.output
    assert "ledger sum 19" in bad.output


def test_last_seen_is_recorded(make_user):
    user = make_user()
    seen = user.me()["last_seen_at"]
    assert seen is not None
    assert time.time() - _epoch(seen) < 120


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
