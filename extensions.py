"""Flask extensions, created unbound here and bound in create_app()."""
import logging

# Alembic announces each of its plugins at INFO as it is imported: noise in every log.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData

# Named constraints so that Alembic migrations work on SQLite and PostgreSQL alike.
naming = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=naming))
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# Rate limits counted in Redis (RATELIMIT_STORAGE_URI); services/core/ratelimit.py counts
# failed sign-ins and voucher redemptions with it.
limiter = Limiter(key_func=get_remote_address)
# Threading mode: served by gunicorn's threaded worker with simple-websocket (see
# README, "Web server"); no monkey patching, so Redis, SQLAlchemy and RQ behave as usual.
socketio = SocketIO(async_mode="threading")
