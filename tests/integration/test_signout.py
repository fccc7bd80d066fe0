"""Signing out signs out: the remember-me cookie goes, the sign-in ends on the server (a
copied session or remember-me cookie from before is refused), and "sign out
everywhere" ends every session of the account."""
from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.integration.helpers import csrf_from, sign_in, signed_in

REMEMBER = "remember_token"


@pytest.fixture
def app(idle_app):
    """Signing in and out needs no worker."""
    return idle_app


def sign_in_remembered(client, login: str, password: str) -> str:
    """Sign in with "Keep me signed in on this device" ticked; returns the CSRF token."""
    token = csrf_from(client.get("/login").data)
    response = client.post("/login", data={"login": login, "password": password, "remember": "1",
                                            "csrf_token": token})
    assert response.status_code == 302, response.data[:500]
    assert client.get_cookie(REMEMBER) is not None
    return csrf_from(client.get("/studio").data)


def copy_cookie(client, source, name: str) -> None:
    client.set_cookie(name, source.get_cookie(name).value)


def test_signing_out_with_keep_me_signed_in_signs_out(make_user, client):
    user = make_user()
    token = sign_in_remembered(client, user.username, user.password)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302
    assert any(c.startswith(f"{REMEMBER}=;") for c in response.headers.getlist("Set-Cookie")), \
        "sign-out deletes the remember-me cookie"
    assert client.get_cookie(REMEMBER) is None
    assert not signed_in(client)
    assert client.get("/studio").status_code == 302  # the page sends it to the sign-in page


def test_copied_cookies_from_before_sign_out_are_refused(app, make_user, client):
    user = make_user()
    token = sign_in_remembered(client, user.username, user.password)
    session_copy, remember_copy = app.test_client(), app.test_client()
    copy_cookie(session_copy, client, "session")
    copy_cookie(remember_copy, client, REMEMBER)
    assert signed_in(session_copy) and signed_in(remember_copy)  # copies work while it lasts

    client.post("/logout", data={"csrf_token": token})
    assert not signed_in(session_copy), "a copied session cookie outlived sign-out"
    assert not signed_in(remember_copy), "a copied remember-me cookie outlived sign-out"
    # The refused remember-me cookie is deleted, and a page does not sign it back in.
    assert remember_copy.get("/studio").status_code == 302
    assert remember_copy.get_cookie(REMEMBER) is None


def test_an_api_call_in_flight_at_sign_out_leaves_the_new_session_cookie_alone(app, make_user, client):
    """The studio's calls carry the cookies of before sign-out; one answered after it must
    not write its stale session over the one sign-out set ("You are signed out")."""
    user = make_user()
    token = sign_in_remembered(client, user.username, user.password)
    in_flight = app.test_client()
    copy_cookie(in_flight, client, "session")
    copy_cookie(in_flight, client, REMEMBER)

    client.post("/logout", data={"csrf_token": token})
    response = in_flight.get("/api/v1/me")
    assert response.status_code == 401
    assert not any(c.startswith("session=") for c in response.headers.getlist("Set-Cookie")), \
        "a call whose sign-in had ended wrote the session cookie"
    assert "You are signed out" in client.get("/").get_data(as_text=True)


def test_each_sign_in_is_a_row_that_sign_out_revokes(app, make_user, client):
    from extensions import db
    from models import User, UserSession

    user = make_user()
    token = sign_in(client, user.username, user.password)
    with app.app_context():
        uid = db.session.scalar(sa.select(User.id).where(User.username == user.username))
        rows = db.session.scalars(sa.select(UserSession).where(UserSession.user_id == uid)).all()
        assert len(rows) == 1 and rows[0].revoked_at is None and "Werkzeug" in rows[0].user_agent
    client.post("/logout", data={"csrf_token": token})
    with app.app_context():
        row = db.session.scalar(sa.select(UserSession).where(UserSession.user_id == uid))
        assert row.revoked_at is not None


def test_sign_out_everywhere_ends_every_session_of_the_account(app, make_user, client):
    user, bystander = make_user(), make_user()
    laptop, phone, remembered, other = (app.test_client() for _ in range(4))
    sign_in(laptop, user.username, user.password)
    sign_in(phone, user.username, user.password)
    sign_in_remembered(remembered, user.username, user.password)
    remembered.delete_cookie("session")  # only the remember-me cookie is left
    sign_in(other, bystander.username, bystander.password)
    assert signed_in(laptop) and signed_in(phone) and signed_in(remembered)

    page = laptop.get("/account")
    assert b"3 open sessions, this one included" in page.data
    response = laptop.post("/account/sign-out-everywhere", data={"csrf_token": csrf_from(page.data)})
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert b"3 sessions ended, this one included" in laptop.get("/login").data
    for client_ in (laptop, phone, remembered):
        assert not signed_in(client_)
    assert signed_in(other), "another user's session is not touched"
    assert user.get("/api/v1/me").status_code == 200, "API tokens are not sessions: they stay"


def test_sign_out_everywhere_needs_the_csrf_token(make_user, client):
    user = make_user()
    sign_in(client, user.username, user.password)
    assert client.post("/account/sign-out-everywhere").status_code == 400
    assert signed_in(client)


def test_sign_out_everywhere_through_the_api(app, make_user):
    user = make_user()
    browser, elsewhere = app.test_client(), app.test_client()
    token = sign_in(browser, user.username, user.password)
    sign_in(elsewhere, user.username, user.password)

    # With the bearer token: the browsers are signed out, the token stays.
    ended = user.client.delete("/api/v1/me/sessions", headers=user.headers)
    assert ended.status_code == 200 and ended.get_json() == {"ended": 2}
    assert not signed_in(browser) and not signed_in(elsewhere)
    assert user.get("/api/v1/me").status_code == 200

    # From a browser: it needs the CSRF token, and it ends this session as well.
    token = sign_in(browser, user.username, user.password)
    assert browser.delete("/api/v1/me/sessions").status_code == 400
    ended = browser.delete("/api/v1/me/sessions", headers={"X-CSRFToken": token})
    assert ended.status_code == 200 and ended.get_json() == {"ended": 1}
    assert not signed_in(browser)
    assert browser.delete("/api/v1/me/sessions").status_code == 401


def test_a_password_change_keeps_this_sign_in_and_ends_the_others(app, make_user):
    from extensions import db
    from models import User, UserSession

    user = make_user()
    here, elsewhere = app.test_client(), app.test_client()
    token = sign_in_remembered(here, user.username, user.password)
    sign_in(elsewhere, user.username, user.password)
    changed = here.post("/api/v1/me/password", headers={"X-CSRFToken": token},
                        json={"current_password": user.password, "new_password": "a fresh long secret"})
    assert changed.status_code == 204
    assert signed_in(here) and not signed_in(elsewhere)
    here.delete_cookie("session")
    assert signed_in(here), "the renewed remember-me cookie carries the new epoch"
    with app.app_context():
        uid = db.session.scalar(sa.select(User.id).where(User.username == user.username))
        open_rows = db.session.scalar(sa.select(sa.func.count()).select_from(UserSession).where(
            UserSession.user_id == uid, UserSession.revoked_at.is_(None)))
        assert open_rows == 1
