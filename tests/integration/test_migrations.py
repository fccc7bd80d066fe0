"""The Alembic migrations build exactly the tables the models describe, on SQLite and
on PostgreSQL (the database for deployments at scale)."""
from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade

from extensions import db
from tests.helpers import ROOT, instance_env
from tests.integration.helpers import migrated_app


def assert_matches_models(app) -> None:
    with app.app_context(), db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert diff == [], f"the migrations and the models differ; run `flask db migrate`: {diff}"


def exercise(app) -> None:
    from tests.integration.helpers import ApiUser

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


def test_migrations_match_the_models_on_postgresql(tmp_path, redis_url, models_path, postgres_url):
    app = migrated_app(instance_env(tmp_path, redis_url, models_path, DATABASE_URL=postgres_url))
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")
    assert_matches_models(app)
    exercise(app)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
