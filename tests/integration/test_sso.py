"""Single sign-on against a real OpenID Connect provider (node's oidc-provider,
tests/oidc/server.js), the provider's side driven as a browser would with requests, the
server's side through the app: what is refused (a tampered state, a wrong nonce, tokens
of another issuer, a discovery document naming another issuer, an unverified email
trying to link an existing account, a deactivated account) is refused with a page that
says so, never a 500 and never a sign-in. A verified email links the account it names;
the staff group makes staff; signing out offers the provider's sign-out."""
from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from extensions import db
from models import ClassMember, Role, SchoolClass, User
from services.accounts.passwords import hash_password
from tests.helpers import OIDC_CLIENT_ID, OidcProvider, provider_account, unique, with_query
from tests.integration.helpers import csrf_from, signed_in

CALLBACK = "http://localhost/auth/sso/callback"  # the test client's address
STAFF_GROUP = "daydream-staff"
PASSWORD = "the provider's password"


# Each test signs in as a person of its own (the server keeps the accounts between tests).
PEOPLE = [provider_account("ada", PASSWORD, groups=["sso-7b"]), provider_account("eve", PASSWORD, verified=False),
          provider_account("head", PASSWORD, groups=[STAFF_GROUP]),
          *(provider_account(login, PASSWORD) for login in ("nia", "tam", "mix", "bea", "dee", "ola"))]


@pytest.fixture(scope="module")
def school_idp(tmp_path_factory):
    provider = OidcProvider(tmp_path_factory.mktemp("oidc") / "provider.log", PEOPLE)
    provider.start(CALLBACK, "http://localhost/")
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def sso_app(idle_app, school_idp):
    """The idle app (no worker: signing in needs none), set to sign in with the provider
    for this module only."""
    settings = {"OIDC_DISCOVERY_URL": school_idp.discovery(), "OIDC_CLIENT_ID": OIDC_CLIENT_ID,
                "OIDC_CLIENT_SECRET": school_idp.settings()["DAYDREAM_OIDC_CLIENT_SECRET"],
                "OIDC_NAME": "Test School", "OIDC_STAFF_GROUP": STAFF_GROUP}
    saved = {name: idle_app.config.get(name) for name in settings}
    idle_app.config.update(settings)
    yield idle_app
    idle_app.config.update(saved)


@pytest.fixture
def provider_config(sso_app):
    """Point the app at another of the provider's discovery documents for one test."""
    saved = sso_app.config["OIDC_DISCOVERY_URL"]

    def use(url: str) -> None:
        sso_app.config["OIDC_DISCOVERY_URL"] = url

    yield use
    sso_app.config["OIDC_DISCOVERY_URL"] = saved


def begin(client) -> str:
    """Press "Sign in with Test School": the provider's authorization address."""
    response = client.get("/auth/sso/start?next=/gallery")
    assert response.status_code == 302, response.data[:500]
    return response.headers["Location"]


def come_back(client, callback_url: str):
    """The browser arrives back at the server with the provider's answer."""
    parts = urlsplit(callback_url)
    return client.get(f"{parts.path}?{parts.query}")


def sso_account(app, login: str) -> User | None:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.email == f"{login}@school.example.org"))
        if user is not None:
            db.session.expunge(user)
        return user


def sso_refused(response, status: int, words: str) -> None:
    assert response.status_code == status, (response.status_code, response.data[:800])
    assert words in response.get_data(as_text=True), response.get_data(as_text=True)[:1500]


def test_a_first_sign_in_makes_the_account_and_the_next_signs_in_to_it(sso_app, school_idp):
    with sso_app.app_context():
        year7 = SchoolClass(name=unique("7B "), sso_group="sso-7b")
        db.session.add(year7)
        db.session.commit()
        year7_id = year7.id
    client = sso_app.test_client()
    back = come_back(client, school_idp.sign_in(begin(client), "ada", PASSWORD))
    assert back.status_code == 302, back.get_data(as_text=True)[-2000:]
    assert back.headers["Location"].endswith("/gallery")  # where the sign-in was started from
    assert signed_in(client)
    ada = sso_account(sso_app, "ada")
    assert (ada.username, ada.sso_issuer, ada.sso_subject, ada.first_name) == ("ada", school_idp.url, "ada", "Ada")
    assert ada.tokens == int(sso_app.config["STARTING_TOKENS"]) and ada.role == Role.USER.value
    assert ada.password_hash.startswith("!"), "an account made by single sign-on has no password"
    with sso_app.app_context():
        member = db.session.scalar(sa.select(ClassMember).where(ClassMember.user_id == ada.id))
        assert (member.class_id, member.role, member.via) == (year7_id, "pupil", "sso")

    other_browser = sso_app.test_client()
    come_back(other_browser, school_idp.sign_in(begin(other_browser), "ada", PASSWORD))
    assert other_browser.get("/api/v1/me").get_json()["id"] == client.get("/api/v1/me").get_json()["id"]
    with sso_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(User)
                                 .where(User.sso_subject == "ada")) == 1


def test_a_tampered_state_is_refused(sso_app, school_idp):
    client = sso_app.test_client()
    answer = school_idp.sign_in(begin(client), "nia", PASSWORD)
    state = parse_qs(urlsplit(answer).query)["state"][0]
    sso_refused(come_back(client, with_query(answer, state=state[:-1] + ("A" if state[-1] != "A" else "B"))),
            400, "state does not match")
    sso_refused(come_back(sso_app.test_client(), answer), 400, "state does not match")  # another browser
    assert not signed_in(client) and sso_account(sso_app, "nia") is None
    # The real answer, after the tampered one: its state was not used up by it.
    assert come_back(client, answer).status_code == 302 and signed_in(client)


def test_a_wrong_nonce_is_refused(sso_app, school_idp):
    client = sso_app.test_client()
    answer = school_idp.sign_in(with_query(begin(client), nonce="a-nonce-of-another-sign-in"), "tam", PASSWORD)
    sso_refused(come_back(client, answer), 400, "nonce does not match")
    assert not signed_in(client) and sso_account(sso_app, "tam") is None


def test_tokens_from_another_issuer_are_refused(sso_app, school_idp, provider_config):
    """A discovery document whose issuer is not the one that answers (a mix-up): the
    authorization response's iss says so (RFC 9207); without it, the ID token's does."""
    provider_config(school_idp.discovery("mixup"))
    client = sso_app.test_client()
    answer = school_idp.sign_in(begin(client), "mix", PASSWORD)
    sso_refused(come_back(client, answer), 400, "came from another issuer")
    answer = school_idp.sign_in(begin(client), "mix", PASSWORD)
    sso_refused(come_back(client, with_query(answer, iss=None)), 400, "ID token comes from another issuer")
    assert not signed_in(client) and sso_account(sso_app, "mix") is None


def test_a_discovery_document_naming_another_issuer_is_refused(sso_app, school_idp, provider_config):
    provider_config(school_idp.discovery("liar"))
    sso_refused(sso_app.test_client().get("/auth/sso/start"), 502, "names the issuer")


def make_password_account(app, login: str, **fields) -> int:
    with app.app_context():
        user = User(username=unique(login), email=f"{login}@school.example.org",
                    password_hash=hash_password(PASSWORD * 2), **fields)
        db.session.add(user)
        db.session.commit()
        return user.id


def test_an_unverified_email_does_not_link_an_existing_account(sso_app, school_idp):
    existing = make_password_account(sso_app, "eve")
    client = sso_app.test_client()
    sso_refused(come_back(client, school_idp.sign_in(begin(client), "eve", PASSWORD)), 403,
                "does not say that this email is verified")
    assert not signed_in(client)
    eve = sso_account(sso_app, "eve")
    assert eve.id == existing and eve.sso_subject is None


def test_a_verified_email_links_the_account_it_names(sso_app, school_idp):
    existing = make_password_account(sso_app, "bea")
    client = sso_app.test_client()
    assert come_back(client, school_idp.sign_in(begin(client), "bea", PASSWORD)).status_code == 302
    assert client.get("/api/v1/me").get_json()["id"] == sso_account(sso_app, "bea").to_dict()["id"]
    bea = sso_account(sso_app, "bea")
    assert (bea.id, bea.sso_issuer, bea.sso_subject) == (existing, school_idp.url, "bea")


def test_a_deactivated_account_is_refused(sso_app, school_idp):
    make_password_account(sso_app, "dee", active=False)
    client = sso_app.test_client()
    sso_refused(come_back(client, school_idp.sign_in(begin(client), "dee", PASSWORD)), 403, "deactivated")
    assert not signed_in(client)


def test_the_staff_group_makes_staff(sso_app, school_idp):
    client = sso_app.test_client()
    come_back(client, school_idp.sign_in(begin(client), "head", PASSWORD))
    assert client.get("/api/v1/me").get_json()["role"] == Role.STAFF.value


def test_signing_out_ends_the_session_and_offers_the_providers_sign_out(sso_app, school_idp):
    client = sso_app.test_client()
    come_back(client, school_idp.sign_in(begin(client), "ola", PASSWORD))
    token = csrf_from(client.get("/studio").data)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/sso/signed-out")
    assert not signed_in(client)
    page = client.get("/auth/sso/signed-out").get_data(as_text=True)
    link = urlsplit(href_of(page, "provider-sign-out"))
    query = parse_qs(link.query)
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{school_idp.url}/session/end"
    assert query["client_id"] == [OIDC_CLIENT_ID] and query["post_logout_redirect_uri"] == ["http://localhost/"]
    assert query["id_token_hint"][0].count(".") == 2  # the ID token of that sign-in
    assert client.get("/auth/sso/signed-out").status_code == 302, "the link is offered once"


def href_of(page: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}" href="([^"]+)"', page)
    assert match, page[:1500]
    return html.unescape(match.group(1))
