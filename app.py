"""The Flask application factory and WSGI entry point.

Web:    gunicorn -w CORES -k gthread --threads 64 'app:create_app()'   (see README)
Worker: python qworker.py   (or: rq worker -c qworker -w qworker.DaydreamWorker)
"""
from __future__ import annotations

import logging
import sys

import click
import sqlalchemy as sa
from flask import Flask, Request as FlaskRequest, redirect, request, url_for

from config import ROOT, Config
from extensions import csrf, db, limiter, login_manager, migrate, socketio
from services.accounts.credits import check_ledger
from services.accounts.first_run import print_setup_link
from services.accounts.signin import load_session_user
from services.accounts.users import create_staff
from services.core import proxy
from services.core.args import StrictJSON
from services.core.errors import ServiceError
from services.core.events import client_manager
from services.generation.tasks import reconcile
from views import account, admin, api, auth, classes, errors, gallery, join, metrics, public, sockets, sso, studio
from views.compat import a1111 as compat_a1111, openai as compat_openai
from views.errors import error_response, wants_json


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self' ws: wss:; object-src 'none'; base-uri 'self'; form-action 'self'; "
       "frame-ancestors 'none'")


class Request(FlaskRequest):
    """Every JSON body is parsed by the one strict parser (services/core/args.py): text
    with a lone surrogate, a number that overflows, or nesting too deep for the parser is
    a clear 4xx naming the field (or bad_json), never a 500 from the database or json."""

    @property
    def json_module(self):
        return StrictJSON

    @json_module.setter
    def json_module(self, _provider):
        pass  # Flask hands each request the app's JSON provider; bodies keep the strict parser

    def json_object(self, *, not_json: str = "bad_json", not_object: ServiceError | None = None) -> dict:
        """The one body parser of every JSON route: the body's JSON object, {} when there is
        no body. Text that is not JSON (or not sent as JSON) is a 400 with the code
        `not_json`; JSON that is not an object raises `not_object` (by default a 400
        bad_json too; the compatibility APIs name the field `body`)."""
        data = self.get_json(silent=True)
        if data is None:
            if self.get_data(cache=True):
                raise ServiceError("The body is not valid JSON.", code=not_json)
            return {}
        if not isinstance(data, dict):
            raise not_object or ServiceError("Send a JSON object.", code="bad_json")
        return data


def create_app(config: Config | None = None, *, web: bool = True) -> Flask:
    """web=False builds the app for the worker: database and config, no Socket.IO
    server, no pages."""
    config = config or Config()
    app = Flask(__name__, instance_path=str(config.INSTANCE_PATH), instance_relative_config=False,
                template_folder=str(ROOT / "site" / "templates"),
                static_folder=str(ROOT / "site" / "static"))
    app.request_class = Request
    app.config.from_object(config)
    config.INSTANCE_PATH.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    db.init_app(app)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    with app.app_context():
        _tune_sqlite()
    register_cli(app)
    if not web:
        return app

    login_manager.init_app(app)
    _setup_login()
    limiter.init_app(app)
    csrf.init_app(app)
    # WebSocket only: the web server runs several processes (DAYDREAM_WEB_PROCESSES) and a
    # long-polling session's requests could land in any of them, while a WebSocket stays
    # in the process that accepted it. A polling request is answered 400 "Invalid transport".
    socketio.init_app(app, client_manager=client_manager(app.config["REDIS_URL"],
                                                               publish_timeout=app.config["REDIS_TIMEOUT"]),
                      cors_allowed_origins=app.config.get("CORS_ORIGINS") or None,
                      transports=["websocket"])
    # Behind a reverse proxy: the client's address and scheme (services/core/proxy.py).
    # Outside Socket.IO's middleware, so its connections see them too.
    # Cookies set over HTTPS are marked Secure (the session's, remember-me's, any).
    app.wsgi_app = proxy.wrap(proxy.SecureCookies(app.wsgi_app), app.config.get("TRUSTED_PROXIES", ""))

    # Who may open what is checked at each blueprint: public, auth and join are open; studio,
    # account, gallery and classes need a sign-in (views/access.py); admin is staff only
    # (views/admin/common.py); the API authenticates itself (views/api/common.py).
    app.register_blueprint(public.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(sso.bp)  # single sign-on: /auth/sso/*
    app.register_blueprint(studio.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(gallery.bp)
    app.register_blueprint(classes.bp)
    app.register_blueprint(join.bp)
    app.register_blueprint(metrics.bp)
    # The API checks CSRF itself for cookie-authenticated writes (views/api/common.py);
    # Flask-WTF looks a nested blueprint up by its own name, so both are exempt.
    csrf.exempt(api.bp)
    csrf.exempt(api.staff_bp)
    # The A1111 and OpenAI compatibility APIs (views/compat/) take API tokens only, never a cookie.
    app.register_blueprint(compat_a1111.bp)
    app.register_blueprint(compat_openai.bp)
    csrf.exempt(compat_a1111.bp)
    csrf.exempt(compat_openai.bp)
    app.before_request(auth.note_activity)
    app.session_interface = auth.SessionCookies()
    errors.register(app)
    sockets.register(socketio)

    @app.after_request
    def security_headers(response):
        # Everything is served from this origin: no CDN, no inline scripts.
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    @app.context_processor
    def globals_for_templates():
        return {"app_name": "Daydream"}

    return app


def _setup_login() -> None:
    # The session (or remember-me cookie) names the user and the auth epoch it was made
    # in: a password change or a deactivation moves the epoch on and signs it out.
    login_manager.user_loader(load_session_user)

    @login_manager.unauthorized_handler
    def unauthorized():
        if wants_json():
            return error_response(401, "not_signed_in", "Sign in first.")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def _tune_sqlite() -> None:
    """WAL lets the web server read while the worker writes. synchronous=NORMAL (SQLite's
    advice with WAL) syncs the log at checkpoints instead of at every commit: a crashed
    process loses nothing and the file is never corrupted; a power cut may undo the last
    commits, whole transactions each (a debit with its task, a refund with its move),
    which the reconciler settles like a worker that died. It takes two disk syncs off
    every task (about 10 ms on this machine's disk)."""
    engine = db.engine
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def register_cli(app: Flask) -> None:
    @app.cli.command("create-staff")
    @click.option("--username", required=True)
    @click.option("--email", required=True)
    def create_staff_command(username: str, email: str):
        """Create a staff account; the password is read from standard input."""
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True) \
            if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
        try:
            user = create_staff(username, email, password)
        except ServiceError as exc:
            raise click.ClickException(exc.message)
        click.echo(f"Staff account {user.username} created.")

    @app.cli.command("setup-link")
    def setup_link_command():
        """Print the one-time link that creates the first staff account (if none exists)."""
        print_setup_link()

    @app.cli.command("check-ledger")
    def check_ledger_command():
        """Check that every balance equals the sum of its ledger rows (exit 1 if not)."""
        wrong = check_ledger()
        for row in wrong:
            click.echo(f"MISMATCH {row['username']} (id {row['user_id']}): balance {row['balance']}, "
                       f"ledger sum {row['ledger_sum']}", err=True)
        if wrong:
            raise click.exceptions.Exit(1)
        click.echo("Ledger OK: every balance equals the sum of its ledger rows.")

    @app.cli.command("reconcile")
    def reconcile_command():
        """Settle tasks whose job was lost (dead worker, Redis restart)."""
        click.echo(reconcile())
