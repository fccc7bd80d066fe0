"""The Alembic migrations build exactly the tables the models describe, on SQLite and
on PostgreSQL (the database for deployments at scale)."""
from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from extensions import db
from tests.conftest import ROOT, environment, instance_env

POSTGRES_URL = os.environ.get("DAYDREAM_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def migrated_app(env: dict):
    from app import create_app
    from config import Config

    with environment(env):
        app = create_app(Config())
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
    return app


def assert_matches_models(app) -> None:
    with app.app_context(), db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert diff == [], f"the migrations and the models differ; run `flask db migrate`: {diff}"


def exercise(app) -> None:
    from tests.integration.conftest import ApiUser

    user = ApiUser(app.test_client(), "migrated")
    task = user.submit()
    assert task.status_code == 202, task.get_json()
    assert user.me()["tokens"] == 19


def test_migrations_match_the_models_on_sqlite(tmp_path, redis_url, models_path):
    app = migrated_app(instance_env(tmp_path, redis_url, models_path))
    assert_matches_models(app)
    exercise(app)
    with app.app_context():
        downgrade(directory=str(ROOT / "migrations"), revision="base")
        assert sa.inspect(db.engine).get_table_names() == ["alembic_version"]


@pytest.fixture
def postgres_url():
    psycopg = pytest.importorskip("psycopg")
    admin_url = POSTGRES_URL
    name = f"daydream_test_{uuid.uuid4().hex[:8]}"
    try:
        conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {admin_url}: {exc}")
    conn.execute(f'CREATE DATABASE "{name}"')
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    conn.close()


def test_migrations_match_the_models_on_postgresql(tmp_path, redis_url, models_path, postgres_url):
    app = migrated_app(instance_env(tmp_path, redis_url, models_path, DATABASE_URL=postgres_url))
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert_matches_models(app)
    exercise(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
