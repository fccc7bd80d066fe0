"""Database models (SQLAlchemy 2.x, typed). The database is the source of truth."""
from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Optional

import shortuuid
import sqlalchemy as sa
import sqlalchemy.orm as so
from flask_login import UserMixin

from extensions import db


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def new_id() -> str:
    return shortuuid.uuid()


def iso(value: Optional[datetime]) -> Optional[str]:
    return value.replace(tzinfo=timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def effective_steps(steps: int, init_image: Optional[str], strength: Optional[float]) -> int:
    if init_image and strength is not None:
        return max(1, min(steps, int(steps * strength)))
    return steps


class Role(str, enum.Enum):
    USER = "user"
    STAFF = "staff"


class TaskState(str, enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"

    @classmethod
    def unfinished(cls) -> tuple[str, str]:
        return (cls.QUEUED.value, cls.RUNNING.value)


class LedgerKind(str, enum.Enum):
    STARTING_GRANT = "starting_grant"
    DEBIT = "debit"
    REFUND = "refund"
    STAFF_GRANT = "staff_grant"
    STAFF_REVOKE = "staff_revoke"
    VOUCHER = "voucher"
    ALLOWANCE = "allowance"


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    uuid: so.Mapped[str] = so.mapped_column(sa.String(22), unique=True, default=new_id)
    sessionid: so.Mapped[str] = so.mapped_column(sa.String(22), unique=True, default=new_id)
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)
    username: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    first_name: so.Mapped[str] = so.mapped_column(sa.String(80), default="")
    last_name: so.Mapped[str] = so.mapped_column(sa.String(80), default="")
    mobile: so.Mapped[str] = so.mapped_column(sa.String(32), default="")
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(255))
    tokens: so.Mapped[int] = so.mapped_column(default=0)
    role: so.Mapped[str] = so.mapped_column(sa.String(10), default=Role.USER.value)
    active: so.Mapped[bool] = so.mapped_column(default=True)
    tier: so.Mapped[str] = so.mapped_column(sa.String(20), default="free")
    # Studio settings the user picks.
    cancel_on_leave: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.text("false"))
    previews: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.text("true"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint("tokens >= 0", name="tokens_not_negative"),)

    def get_id(self) -> str:  # Flask-Login keeps the public id in the session cookie
        return self.uuid

    @property
    def is_active(self) -> bool:
        return self.active

    @property
    def is_staff(self) -> bool:
        return self.role == Role.STAFF.value

    @property
    def room(self) -> str:
        """The Socket.IO room that receives this user's events."""
        return f"user:{self.uuid}"

    def to_dict(self) -> dict:
        return {
            "id": self.uuid,
            "username": self.username,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "mobile": self.mobile,
            "role": self.role,
            "tokens": self.tokens,
            "active": self.active,
            "tier": self.tier,
            "sessionid": self.sessionid,
            "settings": {"cancel_on_leave": self.cancel_on_leave, "previews": self.previews},
            "created_at": iso(self.created_at),
        }


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(80))
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    last_used_at: so.Mapped[Optional[datetime]]

    user: so.Mapped[User] = so.relationship()

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
        }


class Task(db.Model):
    __tablename__ = "tasks"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: so.Mapped[str] = so.mapped_column(sa.String(22), index=True)
    state: so.Mapped[str] = so.mapped_column(sa.String(10), default=TaskState.QUEUED.value, index=True)
    prompt: so.Mapped[str] = so.mapped_column(sa.Text)
    negative_prompt: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    width: so.Mapped[int]
    height: so.Mapped[int]
    steps: so.Mapped[int]
    guidance: so.Mapped[float]
    samples: so.Mapped[int]
    seed: so.Mapped[int] = so.mapped_column(sa.BigInteger)
    scheduler: so.Mapped[str] = so.mapped_column(sa.String(40))
    model: so.Mapped[str] = so.mapped_column(sa.String(255))
    init_image_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22))
    strength: so.Mapped[Optional[float]]
    cost: so.Mapped[int] = so.mapped_column(default=0)
    refunded: so.Mapped[bool] = so.mapped_column(default=False)
    idempotency_key: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    error: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    worker: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    started_at: so.Mapped[Optional[datetime]]
    finished_at: so.Mapped[Optional[datetime]]

    user: so.Mapped[User] = so.relationship()
    images: so.Mapped[list["Image"]] = so.relationship(
        back_populates="task", order_by="Image.index", foreign_keys="Image.task_id"
    )

    __table_args__ = (
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_tasks_user_idempotency"),
    )

    @property
    def finished(self) -> bool:
        return self.state not in TaskState.unfinished()

    @property
    def effective_steps(self) -> int:
        """Denoising steps per sample: image-to-image skips the first (1 − strength)."""
        return effective_steps(self.steps, self.init_image_id, self.strength)

    @property
    def duration_s(self) -> Optional[float]:
        if self.started_at and self.finished_at:
            return round((self.finished_at - self.started_at).total_seconds(), 3)
        return None

    def parameters(self) -> dict:
        return {
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "width": self.width,
            "height": self.height,
            "steps": self.steps,
            "guidance": self.guidance,
            "samples": self.samples,
            "seed": self.seed,
            "scheduler": self.scheduler,
            "model": self.model,
            "init_image": self.init_image_id,
            "strength": self.strength,
        }


class Image(db.Model):
    __tablename__ = "images"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    task_id: so.Mapped[Optional[str]] = so.mapped_column(
        sa.ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    kind: so.Mapped[str] = so.mapped_column(sa.String(10), default="result")
    index: so.Mapped[int] = so.mapped_column(default=0)
    # Random file names (never user input), relative to the images folder.
    filename: so.Mapped[str] = so.mapped_column(sa.String(255))
    thumbnail: so.Mapped[str] = so.mapped_column(sa.String(255))
    width: so.Mapped[int]
    height: so.Mapped[int]
    seed: so.Mapped[Optional[int]] = so.mapped_column(sa.BigInteger)
    size_bytes: so.Mapped[int] = so.mapped_column(default=0)
    starred: so.Mapped[bool] = so.mapped_column(default=False)
    public: so.Mapped[bool] = so.mapped_column(default=False)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)

    task: so.Mapped[Optional[Task]] = so.relationship(back_populates="images", foreign_keys=[task_id])

    def to_dict(self) -> dict:
        base = f"/api/v1/images/{self.id}"
        return {
            "id": self.id,
            "kind": self.kind,
            "task_id": self.task_id,
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "starred": self.starred,
            "public": self.public,
            "board_id": None,
            "created_at": iso(self.created_at),
            "url": f"{base}/full",
            "thumbnail_url": f"{base}/thumbnail",
            "metadata_url": f"{base}/metadata",
        }


class ModelState(str, enum.Enum):
    AVAILABLE = "available"
    MISSING = "missing"
    ERROR = "error"


class AiModel(db.Model):
    """A model the service can run: the built-in demo, DAYDREAM_MODEL, or one found by
    a scan of the models folder. Staff enable models and pick the default."""

    __tablename__ = "models"

    id: so.Mapped[str] = so.mapped_column(sa.String(80), primary_key=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(255))
    spec: so.Mapped[str] = so.mapped_column(sa.String(1024), unique=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    source: so.Mapped[str] = so.mapped_column(sa.String(20), default="scan")
    enabled: so.Mapped[bool] = so.mapped_column(default=False)
    is_default: so.Mapped[bool] = so.mapped_column(default=False)
    state: so.Mapped[str] = so.mapped_column(sa.String(20), default=ModelState.AVAILABLE.value)
    error: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    def to_dict(self, staff: bool = False) -> dict:
        data = {"id": self.id, "name": self.name, "default": self.is_default, "kind": self.kind}
        if staff:
            data.update(spec=self.spec, enabled=self.enabled, state=self.state, error=self.error,
                        source=self.source)
        return data


class Ledger(db.Model):
    """Append-only: every change of a balance is one row; a balance is their sum."""

    __tablename__ = "ledger"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(20))
    delta: so.Mapped[int]
    balance_after: so.Mapped[int]
    task_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22))
    note: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    # A task is debited at most once and refunded at most once, whatever path
    # (worker, cancel, reconciler) gets there first.
    __table_args__ = (sa.UniqueConstraint("task_id", "kind", name="uq_ledger_task_kind"),)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "delta": self.delta,
            "balance_after": self.balance_after,
            "task_id": self.task_id,
            "note": self.note,
            "created_at": iso(self.created_at),
        }


# --- accounts, credits and staff ------------------------------------------------------


# --- gallery and boards ----------------------------------------------------------------


# --- archives and the showcase ------------------------------------------------------------
