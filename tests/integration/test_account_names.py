"""Usernames and emails are compared case folded and NFKC (services/accounts/names.py),
the same at registration, sign-in and email changes, on SQLite (whose lower() knows
ASCII only) and on PostgreSQL: "STRASSE" and "straße" are one name, "ÉLODIE@…" and
"élodie@…" one address, and a full-width name is the plain one."""
from __future__ import annotations

import uuid

import pytest

from tests.helpers import instance_env, make_app

PASSWORD = "correct horse battery"


@pytest.fixture(params=["sqlite", "postgresql"])
def names_client(request, app, tmp_path, redis_url, models_path):
    if request.param == "sqlite":
        yield app.test_client()
        return
    pg_app = make_app(instance_env(tmp_path / "instance", redis_url, models_path,
                                   DATABASE_URL=request.getfixturevalue("postgres_url")))
    yield pg_app.test_client()
    from extensions import db

    with pg_app.app_context():
        db.session.remove()
        db.engine.dispose()


def names_register(client, username: str, email: str):
    return client.post("/api/v1/auth/register", json={"username": username, "email": email, "password": PASSWORD})


def names_sign_in(client, login: str, password: str = PASSWORD) -> int:
    return client.post("/api/v1/auth/tokens", json={"login": login, "password": password, "name": "t"}).status_code


def test_names_are_one_under_case_folding_at_registration_sign_in_and_email_change(names_client):
    client, n = names_client, uuid.uuid4().hex[:6]
    first = names_register(client, f"Strasse{n}", f"\u00c9LODIE.{n}@example.com")
    assert first.status_code == 201, first.get_json()

    # Registration: the same name or address in another case (or full width) is taken.
    for username, email, field in (
            (f"other{n}", f"\u00e9lodie.{n}@Example.com", "email"),
            (f"other{n}", f"E\u0301LODIE.{n}@example.com", "email"),  # a combining accent
            (f"STRASSE{n}", f"other.{n}@example.com", "username"),
            ("\uff33\uff34\uff32\uff21\uff33\uff33\uff25" + n, f"other.{n}@example.com", "username")):
        answer = names_register(client, username, email)
        assert answer.status_code == 409, (username, email, answer.get_json())
        assert answer.get_json()["error"]["field"] == field

    # Sign-in: by name or address in any case; "ß" folds to "ss".
    for login in (f"stra\u00dfe{n}", f"STRA\u1e9eE{n}", "\uff53\uff54\uff52\uff41\uff53\uff53\uff45" + n,
                  f"\u00e9lodie.{n}@example.com", f"\u00c9lodie.{n}@EXAMPLE.COM"):
        assert names_sign_in(client, login) == 201, login
    assert names_sign_in(client, f"strase{n}") == 401
    assert names_sign_in(client, f"stra\u00dfe{n}", "a wrong password") == 401

    # An email change to the first account's address in another case is refused.
    second = names_register(client, f"second{n}", f"second.{n}@example.com")
    assert second.status_code == 201, second.get_json()
    token = client.post("/api/v1/auth/tokens", json={"login": f"second{n}", "password": PASSWORD,
                                                     "name": "t"}).get_json()["token"]
    taken = client.patch("/api/v1/me", headers={"Authorization": f"Bearer {token}"},
                         json={"email": f"\u00e9lodie.{n}@example.com"})
    assert taken.status_code == 422 and taken.get_json()["error"]["field"] == "email", taken.get_json()


def test_names_a_full_width_username_is_stored_plain(client):
    n = uuid.uuid4().hex[:6]
    full_width = "".join(chr(ord(ch) + 0xFEE0) for ch in f"Wide{n}")
    answer = names_register(client, full_width, f"wide.{n}@example.com")
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["username"] == f"Wide{n}"
    assert names_sign_in(client, f"wide{n}") == 201
