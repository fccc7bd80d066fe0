"""Board names are unique per user ignoring case, for all of Unicode (NFKC, case-folded):
a duplicate is a 409 that says so, never a 500, on SQLite and PostgreSQL, also when two
requests race; the migration fills the key for the boards that exist."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade

from extensions import db
from services.library import boards as boards_service
from tests.helpers import ROOT, instance_env
from tests.integration.helpers import ApiUser, migrated_app


def create(user, name):
    return user.post("/api/v1/boards", json={"name": name})


def rename(user, board_id, name):
    return user.client.patch(f"/api/v1/boards/{board_id}", json={"name": name}, headers=user.headers)


def assert_taken(response, name):
    assert response.status_code == 409, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert error["code"] == "board_exists" and name in error["message"]


SAME_NAMES = [
    ("Ábc", "Ábc"),  # the same non-ASCII name twice
    ("Ábc", "ábc"),  # SQLite's lower() folds only ASCII
    ("ÁBC", "ábc"),
    ("Straße", "STRASSE"),  # case folding, not lower()
    ("ﬁles", "Files"),  # NFKC: the ligature is "fi"
    ("Ｂｏａｒｄ", "board"),  # NFKC: full-width letters
    ("Å", "Å"),  # NFKC: A + combining ring is Å
]


@pytest.mark.parametrize("first, second", SAME_NAMES)
def test_a_name_taken_in_any_case_or_form_is_a_409(make_idle_user, first, second):
    user = make_idle_user()
    assert create(user, first).status_code == 201
    assert_taken(create(user, second), second)
    assert [b["name"] for b in user.get("/api/v1/boards").get_json()["items"]] == [first]


def test_renaming_to_a_name_taken_is_a_409_and_to_its_own_name_in_another_case_is_fine(make_idle_user):
    user = make_idle_user()
    abc = create(user, "Ábc").get_json()
    other = create(user, "Other").get_json()
    assert_taken(rename(user, other["id"], "ábc"), "ábc")
    assert_taken(rename(user, other["id"], "ÁBC"), "ÁBC")
    assert rename(user, other["id"], "Other").status_code == 200  # unchanged
    renamed = rename(user, abc["id"], "ÁBC")
    assert renamed.status_code == 200 and renamed.get_json()["name"] == "ÁBC"
    assert sorted(b["name"] for b in user.get("/api/v1/boards").get_json()["items"]) == ["Other", "ÁBC"]


def test_another_user_may_have_the_same_name(make_idle_user):
    first, second = make_idle_user(), make_idle_user()
    assert create(first, "Ábc").status_code == 201
    assert create(second, "ábc").status_code == 201


def test_boards_are_listed_by_name_ignoring_case(make_idle_user):
    user = make_idle_user()
    for name in ("b", "Ábc", "A", "ábd"):
        assert create(user, name).status_code == 201
    names = [b["name"] for b in user.get("/api/v1/boards").get_json()["items"]]
    assert names == ["A", "b", "Ábc", "ábd"]


def test_a_name_that_normalizes_too_long_is_a_422(make_idle_user):
    user = make_idle_user()
    response = create(user, "\ufdfa" * 20)  # one character, 18 once normalized
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "name"


@pytest.fixture
def no_check(monkeypatch):
    """Two requests racing: both pass the check before either commits; the database's
    unique key decides (the check is skipped to make the race certain)."""
    monkeypatch.setattr(boards_service, "_check_unique", lambda *args, **kwargs: None)


def test_a_race_to_the_same_name_is_a_409_not_a_500(make_idle_user, no_check):
    user = make_idle_user()
    assert create(user, "Ábc").status_code == 201
    assert_taken(create(user, "ábc"), "ábc")
    other = create(user, "Other").get_json()
    assert_taken(rename(user, other["id"], "ÁBC"), "ÁBC")
    assert user.get(f"/api/v1/boards/{other['id']}").get_json()["name"] == "Other"


# --- PostgreSQL ----------------------------------------------------------------------------

def test_duplicates_are_a_409_on_postgresql(tmp_path, redis_url, models_path, postgres_url, monkeypatch):
    app = migrated_app(instance_env(tmp_path, redis_url, models_path, DATABASE_URL=postgres_url))
    try:
        user = ApiUser(app.test_client(), "pgboards")
        assert create(user, "Ábc").status_code == 201
        assert_taken(create(user, "ábc"), "ábc")
        monkeypatch.setattr(boards_service, "_check_unique", lambda *args, **kwargs: None)
        assert_taken(create(user, "ÁBC"), "ÁBC")  # the race: the unique key answers
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


# --- the migration ---------------------------------------------------------------------------

def test_the_migration_fills_the_keys_and_keeps_each_images_board(tmp_path, redis_url, models_path):
    from app import create_app
    from config import Config
    from tests.helpers import environment

    env = instance_env(tmp_path, redis_url, models_path)
    with environment(env):
        app = create_app(Config())
    directory = str(ROOT / "migrations")
    with app.app_context():
        upgrade(directory=directory)
    user = ApiUser(app.test_client(), "premigration")  # registered with today's users table,
    with app.app_context():  # then the schema goes back to before the board keys
        downgrade(directory=directory, revision="d8a1sessions01")
    start = datetime(2026, 1, 1)
    rows = [("b1", "Ábc"), ("b2", "ábc"), ("b3", "ÁBC"), ("b4", "Other"), ("b5", "x" * 80)]
    with app.app_context():
        user_id = db.session.scalar(sa.text("SELECT id FROM users WHERE username = 'premigration'"))
        for n, (board_id, name) in enumerate(rows):
            db.session.execute(sa.text(
                "INSERT INTO boards (id, user_id, name, created_at, updated_at) VALUES (:id, :u, :name, :t, :t)"),
                {"id": board_id, "u": user_id, "name": name, "t": start + timedelta(minutes=n)})
        db.session.execute(sa.text(
            "INSERT INTO boards (id, user_id, name, created_at, updated_at) VALUES ('b6', :u, :name, :t, :t)"),
            {"u": user_id, "name": "X" * 80, "t": start + timedelta(hours=1)})
        for n, (board_id, _) in enumerate(rows):
            db.session.execute(sa.text(
                "INSERT INTO images (id, user_id, kind, \"index\", filename, thumbnail, width, height, "
                "size_bytes, starred, public, board_id, created_at) VALUES "
                "(:id, :u, 'upload', 0, 'f', 't', 8, 8, 0, false, false, :b, :t)"),
                {"id": f"i{n}", "u": user_id, "b": board_id, "t": start})
        db.session.commit()

        upgrade(directory=directory)
        got = dict(db.session.execute(sa.text("SELECT id, name FROM boards")).all())
        keys = dict(db.session.execute(sa.text("SELECT id, name_key FROM boards")).all())
        images = dict(db.session.execute(sa.text("SELECT id, board_id FROM images")).all())
    assert got == {"b1": "Ábc", "b2": "ábc (2)", "b3": "ÁBC (3)", "b4": "Other", "b5": "x" * 80,
                   "b6": "X" * 76 + " (2)"}
    assert keys["b1"] == "ábc" and keys["b4"] == "other" and keys["b6"] == "x" * 76 + " (2)"
    assert images == {f"i{n}": board_id for n, (board_id, _) in enumerate(rows)}
    token = user.client.post("/api/v1/auth/tokens", json={  # (the schema's round trip dropped the first one)
        "login": user.username, "password": user.password, "name": "after"})
    assert token.status_code == 201, token.get_json()
    user.headers = {"Authorization": f"Bearer {token.get_json()['token']}"}
    assert_taken(create(user, "ÁbC"), "ÁbC")
    with app.app_context():
        downgrade(directory=directory, revision="d8a1sessions01")
        assert "name_key" not in {c["name"] for c in sa.inspect(db.engine).get_columns("boards")}
        assert dict(db.session.execute(sa.text("SELECT id, board_id FROM images")).all()) == images
