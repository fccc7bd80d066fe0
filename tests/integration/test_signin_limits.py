"""Sign-in limits that cannot be turned against a user: failures slow down the (account,
address) pair that made them with a growing delay, never the owner elsewhere; an
address spraying many accounts, or an account tried from many addresses, is refused
except where that account signed in before; without Redis, sign-in answers 503."""
from __future__ import annotations

import re
import time

from itsdangerous import URLSafeSerializer

from tests.helpers import instance_env, make_app, unique, wait_for
from tests.integration.helpers import csrf_from

PASSWORD = "correct horse battery"
ATTACKER, OWNER, SPRAYER = "203.0.113.7", "198.51.100.20", "192.0.2.99"


def register(client, username: str) -> dict:
    """An account made through the API: it never signed in from any address."""
    response = client.post("/api/v1/auth/register", json={
        "username": username, "email": f"{username}@example.com", "password": PASSWORD})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def login_from(app, address: str, login: str, password: str):
    """A sign-in through the page from a client at `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    token = csrf_from(client.get("/login").data)
    return client.post("/login", data={"login": login, "password": password, "csrf_token": token})


def retry_after(response) -> int:
    assert response.status_code == 429, (response.status_code, response.data[:300])
    return int(response.headers["Retry-After"])


def test_a_brute_force_from_one_address_does_not_lock_out_the_owner(fresh):
    app = fresh(DAYDREAM_SIGNIN_FREE_FAILURES="2")
    owner = unique("owner")
    register(app.test_client(), owner)

    for n in range(2):  # the free failures
        assert login_from(app, ATTACKER, owner, f"guess {n}").status_code == 401
    waits = []
    blocked = login_from(app, ATTACKER, owner, PASSWORD)  # even the right password must wait
    waits.append(retry_after(blocked))
    assert b"Too many failed sign-ins for this account from your address" in blocked.data
    assert re.search(rb"Try again in \d+ seconds?\.", blocked.data)

    # The owner, from their own address, signs in at once, and again later.
    assert login_from(app, OWNER, owner, PASSWORD).status_code == 302

    # Each further failure of the attacker's pair makes its wait longer.
    for _ in range(2):
        wait_for(lambda: login_from(app, ATTACKER, owner, "another guess").status_code == 401,
                 timeout=10, interval=0.2, message="the attacker's wait to pass")
        waits.append(retry_after(login_from(app, ATTACKER, owner, "a guess too soon")))
    assert waits[0] >= 1 and waits[1] > waits[0] and waits[2] > waits[1], waits

    # The API's sign-in (making a token) is the same pair, and the owner still gets in there.
    api = app.test_client()
    api.environ_base["REMOTE_ADDR"] = ATTACKER
    refused = api.post("/api/v1/auth/tokens", json={"login": owner, "password": PASSWORD, "name": "x"})
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    assert login_from(app, OWNER, owner, PASSWORD).status_code == 302


def test_a_success_forgets_its_own_pairs_failures_only(fresh):
    app = fresh(DAYDREAM_SIGNIN_FREE_FAILURES="2")
    user = unique("forgetful")
    register(app.test_client(), user)
    for n in range(2):
        assert login_from(app, ATTACKER, user, f"guess {n}").status_code == 401
    # The owner mistypes, then gets it right: their typos are forgotten...
    assert login_from(app, OWNER, user, "typo one").status_code == 401
    assert login_from(app, OWNER, user, PASSWORD).status_code == 302
    assert login_from(app, OWNER, user, "typo two").status_code == 401
    assert login_from(app, OWNER, user, PASSWORD).status_code == 302
    # ...but the attacker's are not: their next failure is their third, and it makes
    # them wait again.
    wait_for(lambda: login_from(app, ATTACKER, user, "guess 3").status_code == 401,
             timeout=10, interval=0.2, message="the attacker's wait to pass")
    assert retry_after(login_from(app, ATTACKER, user, "guess 4")) >= 1


def test_spraying_many_accounts_from_one_address_is_capped(fresh):
    app = fresh(DAYDREAM_SIGNIN_LIMIT_IP="4 per 15 minutes")
    client = app.test_client()
    sprayed = [unique("spray") for _ in range(5)]
    for name in sprayed:
        register(client, name)
    regular = unique("regular")
    register(client, regular)
    assert login_from(app, SPRAYER, regular, PASSWORD).status_code == 302  # signed in here before

    for name in sprayed[:4]:
        assert login_from(app, SPRAYER, name, "password1234").status_code == 401
    capped = login_from(app, SPRAYER, sprayed[4], PASSWORD)
    assert 800 < retry_after(capped) <= 900
    assert b"Too many failed sign-ins from your address" in capped.data
    assert login_from(app, SPRAYER, unique("nobody"), "whatever it is").status_code == 429

    # Someone who signed in from that address before still can (a shared address),
    # and the sprayed accounts sign in from elsewhere.
    assert login_from(app, SPRAYER, regular, PASSWORD).status_code == 302
    assert login_from(app, OWNER, sprayed[4], PASSWORD).status_code == 302


def test_an_account_tried_from_many_addresses_still_lets_its_owner_in(fresh):
    app = fresh(DAYDREAM_SIGNIN_LIMIT_ACCOUNT="3 per hour")
    target = unique("target")
    register(app.test_client(), target)
    assert login_from(app, OWNER, target, PASSWORD).status_code == 302  # the owner's address

    for n in range(3):
        assert login_from(app, f"203.0.113.{10 + n}", target, "a guess").status_code == 401
    refused = login_from(app, "203.0.113.50", target, PASSWORD)
    assert retry_after(refused) > 0
    assert b"sign in from an address you used before" in refused.data
    assert login_from(app, OWNER, target, PASSWORD).status_code == 302


def test_wrong_current_passwords_slow_down_but_do_not_lock_sign_in(fresh):
    app = fresh(DAYDREAM_SIGNIN_FREE_FAILURES="2")
    client = app.test_client()
    user = unique("reauth")
    register(client, user)
    token = client.post("/api/v1/auth/tokens", json={"login": user, "password": PASSWORD,
                                                     "name": "t"}).get_json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(2):
        wrong = client.post("/api/v1/auth/reauth", json={"password": "not it"}, headers=headers)
        assert wrong.status_code == 422
    slowed = client.post("/api/v1/auth/reauth", json={"password": PASSWORD}, headers=headers)
    assert retry_after(slowed) >= 1
    assert login_from(app, OWNER, user, PASSWORD).status_code == 302


def test_without_redis_sign_in_answers_503_not_200_and_not_500(fresh, tmp_path):
    """An app started with REDIS_URL (and so the limit store) at a closed port."""
    dead = "redis://127.0.0.1:1/0"
    live = fresh()
    user = unique("stranded")
    register(live.test_client(), user)
    app = make_app(instance_env(tmp_path / "dead", dead, tmp_path / "models",
                                DATABASE_URL=live.config["SQLALCHEMY_DATABASE_URI"]))
    assert app.config["RATELIMIT_STORAGE_URI"] == dead

    for password in (PASSWORD, "a wrong guess"):
        page = login_from(app, OWNER, user, password)
        assert page.status_code == 503, (password, page.status_code, page.data[:300])
        assert b"Sign-in is unavailable for a moment" in page.data
        assert int(page.headers["Retry-After"]) > 0
    api = app.test_client().post("/api/v1/auth/tokens", json={"login": user, "password": PASSWORD,
                                                              "name": "x"})
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "unavailable"
    assert int(api.headers["Retry-After"]) > 0


# --- device cookies: known browsers pass a sprayed shared address -----------------------

SCHOOL, HOME = "198.51.100.77", "203.0.113.80"


def browser_at(app, address: str):
    """A browser (a test client keeping its cookies) at `address`."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def sign_in_page(client, login: str, password: str):
    token = csrf_from(client.get("/login").data)
    return client.post("/login", data={"login": login, "password": password, "csrf_token": token})


def sign_out(client) -> None:
    token = csrf_from(client.get("/studio").data)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302


def spray(app, address: str, times: int) -> None:
    for n in range(times):
        assert login_from(app, address, unique("nobody"), f"guess {n}").status_code == 401
    assert login_from(app, address, unique("nobody"), "one more").status_code == 429


def test_a_known_device_signs_in_from_a_sprayed_address_and_a_new_account_does_not(fresh):
    app = fresh(DAYDREAM_SIGNIN_LIMIT_IP="4 per 15 minutes")
    pupil, newcomer = unique("pupil"), unique("newcomer")
    register(app.test_client(), pupil)
    newcomer_id = register(app.test_client(), newcomer)["id"]
    laptop = browser_at(app, HOME)  # the pupil's laptop signs in at home first
    assert sign_in_page(laptop, pupil, PASSWORD).status_code == 302
    assert laptop.get_cookie("daydream_device") is not None
    sign_out(laptop)

    spray(app, SCHOOL, 4)  # someone at school sprays accounts: the address is capped
    laptop.environ_base["REMOTE_ADDR"] = SCHOOL
    assert sign_in_page(laptop, pupil, PASSWORD).status_code == 302, "a known device was locked out"
    sign_out(laptop)
    # An account that never signed in from there, without a device cookie, is refused;
    # so is one with another account's cookie, or a cookie not signed by the server.
    assert retry_after(login_from(app, SCHOOL, newcomer, PASSWORD)) > 0
    assert retry_after(sign_in_page(laptop, newcomer, PASSWORD)) > 0
    forged = browser_at(app, SCHOOL)
    forged.set_cookie("daydream_device", URLSafeSerializer("not the secret", salt="daydream.device-cookie").dumps(
        [[newcomer_id, "a nonce", int(time.time())]]))
    assert retry_after(sign_in_page(forged, newcomer, PASSWORD)) > 0


def test_an_account_made_on_a_school_computer_signs_in_there_again_after_a_spray(fresh):
    app = fresh(DAYDREAM_SIGNIN_LIMIT_IP="4 per 15 minutes")
    desk = browser_at(app, SCHOOL)
    name = unique("made")
    token = csrf_from(desk.get("/register").data)
    made = desk.post("/register", data={"username": name, "email": f"{name}@example.com",
                                        "password": PASSWORD, "csrf_token": token})
    assert made.status_code == 302, made.data[:300]
    sign_out(desk)
    spray(app, SCHOOL, 4)
    assert sign_in_page(desk, name, PASSWORD).status_code == 302


def test_a_known_device_has_its_own_limit(fresh):
    app = fresh(DAYDREAM_SIGNIN_FREE_FAILURES="2", DAYDREAM_SIGNIN_LIMIT_IP="4 per 15 minutes")
    owner = unique("device")
    register(app.test_client(), owner)
    phone = browser_at(app, HOME)
    assert sign_in_page(phone, owner, PASSWORD).status_code == 302
    sign_out(phone)
    # Wrong passwords from the known device slow down that device, not the address.
    phone.environ_base["REMOTE_ADDR"] = SCHOOL
    for n in range(2):
        assert sign_in_page(phone, owner, f"typo {n}").status_code == 401
    slowed = sign_in_page(phone, owner, PASSWORD)
    assert retry_after(slowed) >= 1
    assert b"Too many failed sign-ins for this account on this device" in slowed.data
    bystander = unique("bystander")
    register(app.test_client(), bystander)
    assert login_from(app, SCHOOL, bystander, PASSWORD).status_code == 302, "the device's typos capped the address"
    # The owner's other browsers are not slowed by the device's failures.
    assert login_from(app, HOME, owner, PASSWORD).status_code == 302


def test_a_known_device_gets_an_api_key_from_a_sprayed_address(fresh):
    app = fresh(DAYDREAM_SIGNIN_LIMIT_IP="4 per 15 minutes")
    owner = unique("keyed")
    register(app.test_client(), owner)
    laptop = browser_at(app, HOME)
    assert sign_in_page(laptop, owner, PASSWORD).status_code == 302
    sign_out(laptop)
    spray(app, SCHOOL, 4)
    # Without the device cookie the capped address is refused; the laptop's cookie lets it in.
    stranger = browser_at(app, SCHOOL)
    refused = stranger.post("/api/v1/auth/tokens", json={"login": owner, "password": PASSWORD, "name": "script"})
    assert refused.status_code == 429
    laptop.environ_base["REMOTE_ADDR"] = SCHOOL
    made = laptop.post("/api/v1/auth/tokens", json={"login": owner, "password": PASSWORD, "name": "script"})
    assert made.status_code == 201, made.get_json()
