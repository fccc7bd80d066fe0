"""Database models (SQLAlchemy 2.x, typed). The database is the source of truth.

Nothing here imports services/. A model's `to_dict` is a plain dump of its own columns;
JSON that needs the domain (a model's card, a task's estimate, an image's prompt) is
made by the domain's service: catalog.model_to_dict, tasks.task_to_dict,
gallery.image_to_dict and the like."""
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


def effective_steps(steps: int, init_image: Optional[str], strength: Optional[float],
                    upscale: Optional[dict] = None) -> int:
    if upscale:
        return upscale_steps(upscale)
    if init_image and strength is not None:
        return max(1, min(steps, int(steps * strength)))
    return steps


def upscale_steps(upscale: dict) -> int:
    """An upscale task's progress units before its worker counts them: one for the
    upscale, and the refining pass's ceil(steps × strength) steps (its worker counts
    tiles, and the refining steps of each tile: worker/kinds/upscale.py)."""
    refine = upscale.get("refine") or None
    if not refine:
        return 1
    needed = int(refine.get("steps") or 1) * float(refine.get("strength") or 0)
    return 1 + max(1, int(-(-needed // 1)))  # (ceil, without an import)


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
    # Class budgets (issue 27): a member's allowance from their class (their own balance),
    # and a class pool's refill at a period's start (a pool row: class_id set).
    CLASS_ALLOWANCE = "class_allowance"
    POOL_REFILL = "pool_refill"


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
    # Registered while DAYDREAM_REGISTRATION=approval: not active until staff approve it.
    pending: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.text("false"))
    # Starting tokens held back until the account's email is confirmed (with mail
    # configured); the confirmation claims them once (credits.grant_held_starting_tokens).
    held_tokens: so.Mapped[int] = so.mapped_column(default=0, server_default=sa.text("0"))
    tier: so.Mapped[str] = so.mapped_column(sa.String(20), default="free")
    # Studio settings the user picks.
    cancel_on_leave: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.text("false"))
    previews: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.text("true"))
    # The default model of the A1111 API (POST /sdapi/v1/options): this user's own, never server-wide.
    api_model: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    last_seen_at: so.Mapped[Optional[datetime]]
    # Single sign-on (issue 27): the OpenID Connect issuer and subject this account signs
    # in as; None: not linked.
    sso_issuer: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    sso_subject: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    # Bumped by a password change (or staff deactivation): sessions and remember-me
    # cookies carry the epoch they were made in, and an old one no longer signs in.
    auth_epoch: so.Mapped[int] = so.mapped_column(default=0, server_default=sa.text("0"))
    # When the tier's allowance was last granted (the start of the current period).
    allowance_at: so.Mapped[Optional[datetime]] = so.mapped_column(default=utcnow)

    __table_args__ = (sa.CheckConstraint("tokens >= 0", name="tokens_not_negative"),
                      sa.Index("uq_users_sso", "sso_issuer", "sso_subject", unique=True))

    def get_id(self) -> str:
        """What the session and remember-me cookies keep: the public id and the auth
        epoch, followed by the sign-in's secret (services/accounts/signin.py open_session; its
        user loader refuses a stale epoch or an ended sign-in)."""
        return f"{self.uuid}.{self.auth_epoch or 0}"

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
            "pending": bool(self.pending),
            "tier": self.tier,
            "sessionid": self.sessionid,
            "settings": {"cancel_on_leave": self.cancel_on_leave, "previews": self.previews},
            "created_at": iso(self.created_at),
            "last_seen_at": iso(self.last_seen_at),
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


class UserSession(db.Model):
    """One sign-in of a browser (services/accounts/signin.py open_session). Its random secret
    travels in the session and remember-me cookies and only its hash is kept here, so
    signing out (or "sign out everywhere") ends it on the server: a copied cookie from
    before is refused afterwards."""

    __tablename__ = "user_sessions"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    secret_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    user_agent: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    last_seen_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    revoked_at: so.Mapped[Optional[datetime]]


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
    # How the init image is fitted to width × height: "cover" (crop) or "contain" (pad).
    init_fit: so.Mapped[Optional[str]] = so.mapped_column(sa.String(10))
    # The LoRAs applied: [{id, name, weight}] (name as A1111's <lora:name:weight> writes it).
    loras: so.Mapped[Optional[list]] = so.mapped_column(sa.JSON)
    # Hires fix (issue 24): {scale, width, height, upscaler, steps, denoising, prompt,
    # negative_prompt, scheduler}; None: one pass. width × height stay the first pass's size.
    hires: so.Mapped[Optional[dict]] = so.mapped_column(sa.JSON)
    # An upscale task (issue 24): {image: source image id, scale, upscaler, refine: {strength,
    # steps} or None}; None: a generation. width × height are the output's size.
    upscale: so.Mapped[Optional[dict]] = so.mapped_column(sa.JSON)
    # Inpainting (issue 23): the mask, an Image of kind "mask" at the init picture's size,
    # white = repaint (mask_invert is applied by the worker); and the inpaint settings
    # {mask_blur, inpaint_area, inpaint_padding, masked_content, mask_invert,
    # noise_multiplier, outpaint: {left, right, top, bottom}}, None unless the task has a
    # mask or outpaint. width × height are then the result's size (outpaint included).
    mask_image_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22))
    inpaint: so.Mapped[Optional[dict]] = so.mapped_column(sa.JSON)
    # Guides (issue 25). ControlNet units, at most 3: [{image (the unit's picture, an Image
    # of kind "control"), preprocessor, model (a ControlNet's id), model_name, weight, start,
    # end, control_mode, resize_mode, processor_res, threshold_a, threshold_b,
    # pixel_perfect}]; None: no unit.
    control: so.Mapped[Optional[list]] = so.mapped_column(sa.JSON)
    # Reference images (IP-Adapter, FLUX Redux): [{image (kind "reference"), weight, model,
    # model_name}]; None: none.
    reference_images: so.Mapped[Optional[list]] = so.mapped_column(sa.JSON)
    # Editing by instruction (an Edit model: FLUX.1 Kontext, …): {images: [the picture to
    # edit, then further reference pictures]}; the prompt is the instruction. None: not an
    # edit. width × height are the result's size.
    edit: so.Mapped[Optional[dict]] = so.mapped_column(sa.JSON)
    # The class whose shared pool paid for the task (issue 27), so that its refund goes
    # back to the pool; None: the user's own balance paid.
    class_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22), index=True)
    # Fast mode (issue 28): the denoiser's step cache (first-block cache, TaylorSeer or
    # MagCache, per family) was on for this task. None: off (and tasks made before it).
    fast: so.Mapped[Optional[bool]]
    # Results go into this board (the gallery's), if it still exists when they are saved.
    board_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22))
    cost: so.Mapped[int] = so.mapped_column(default=0)
    refunded: so.Mapped[bool] = so.mapped_column(default=False)
    idempotency_key: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    # SHA-256 of the request that used the key (tasks.request_fingerprint): the same key
    # with another request is refused (422), not answered with this task.
    idempotency_hash: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    error: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    worker: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    started_at: so.Mapped[Optional[datetime]]
    finished_at: so.Mapped[Optional[datetime]]
    # The fair queue's round (services/generation/dispatch.py): queued tasks run in
    # (fair_round, created_at, id) order; a user's next task goes one round after their last.
    fair_round: so.Mapped[int] = so.mapped_column(default=0, server_default=sa.text("0"))

    user: so.Mapped[User] = so.relationship()
    images: so.Mapped[list["Image"]] = so.relationship(
        back_populates="task", order_by="Image.index", foreign_keys="Image.task_id"
    )

    __table_args__ = (
        sa.UniqueConstraint("user_id", "idempotency_key", name="uq_tasks_user_idempotency"),
        # The fair order, so that the first round and a task's position are index reads.
        sa.Index("ix_tasks_fair_order", "state", "fair_round", "created_at", "id"),
        # A user's latest round, read at submit.
        sa.Index("ix_tasks_user_round", "user_id", "fair_round"),
    )

    @property
    def finished(self) -> bool:
        return self.state not in TaskState.unfinished()

    @property
    def effective_steps(self) -> int:
        """Denoising steps per sample: image-to-image skips the first (1 − strength); a
        hires fix adds its second pass's int(steps × denoising) (its steps 0: the first
        pass's), as services/generation/params.hires_steps counts them."""
        if self.upscale:  # (an upscale task: its units, worker/kinds/upscale.py)
            return upscale_steps(self.upscale)
        steps = effective_steps(self.steps, self.init_image_id, self.strength)
        if self.hires:
            second = int(self.hires.get("steps") or 0) or int(self.steps)
            steps += max(0, min(second, int(second * float(self.hires.get("denoising") or 0))))
        return steps

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
            "init_fit": self.init_fit,
            "loras": list(self.loras or []),
            "mask": self.mask_image_id,
            "inpaint": dict(self.inpaint) if self.inpaint else None,
            # (the guides only where the task has them: older records stay as they were)
            **({"control": [dict(unit) for unit in self.control]} if self.control else {}),
            **({"references": [dict(ref) for ref in self.reference_images]} if self.reference_images else {}),
            **({"edit": dict(self.edit)} if self.edit else {}),
            **({"fast": True} if self.fast else {}),
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
    # The image check (DAYDREAM_SAFETY=flag, worker/safety.py): "held" hides the image from
    # everyone but staff until staff release it ("released") or delete it; None = never held.
    review: so.Mapped[Optional[str]] = so.mapped_column(sa.String(10), index=True)
    # What the classifier said: its top label and score ("nsfw 0.97"); None = not checked.
    safety_label: so.Mapped[Optional[str]] = so.mapped_column(sa.String(80))
    # The board (collection) it is in, if any; deleting a board keeps or deletes its
    # images explicitly (services/library/boards.py), the foreign key is the safety net.
    board_id: so.Mapped[Optional[str]] = so.mapped_column(
        sa.ForeignKey("boards.id", ondelete="SET NULL"), index=True
    )
    # Shared into this class's gallery by its owner (issue 27); None: not shared. (No
    # foreign key, so that adding it copies no table: deleting a class clears it in code.)
    class_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22), index=True)
    # Hidden by a teacher of the owner's class (issue 27): the teacher's user id; hidden
    # from everyone but the owner's teachers and staff, as "held" is. None: not hidden.
    hidden_by_id: so.Mapped[Optional[int]]
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)

    task: so.Mapped[Optional[Task]] = so.relationship(back_populates="images", foreign_keys=[task_id])

    # The gallery lists a user's images newest first, filtered by board or star.
    __table_args__ = (sa.Index("ix_images_user_created", "user_id", "created_at"),)

    def to_dict(self) -> dict:
        base = f"/api/v1/images/{self.id}"
        data = {
            "id": self.id,
            "kind": self.kind,
            "task_id": self.task_id,
            "width": self.width,
            "height": self.height,
            "seed": self.seed,
            "starred": self.starred,
            "public": self.public,
            # "held": hidden by the image check until staff decide (its files answer 404).
            "review": self.review,
            # hidden by a teacher of the owner's class (issue 27): others no longer see it
            "hidden": self.hidden_by_id is not None,
            "board_id": self.board_id,
            "created_at": iso(self.created_at),
            "url": f"{base}/full",
            "thumbnail_url": f"{base}/thumbnail",
            "metadata_url": f"{base}/metadata",
        }
        # An upscale's result: the image it was made from (its details say "Upscaled from").
        if self.task_id and self.task is not None and self.task.upscale:
            data["source_image"] = self.task.upscale.get("image")
        return data


class ModelState(str, enum.Enum):
    AVAILABLE = "available"
    MISSING = "missing"
    ERROR = "error"
    UNSUPPORTED = "unsupported"  # a family Daydream does not serve (yet): cannot be enabled


class AiModel(db.Model):
    """A model the service can run (the built-in demo models, DAYDREAM_MODEL, or one found
    by a scan of the models folder) or a LoRA (`lora`; files under <models>/loras/).
    Staff enable them and pick the default model. `kind` is the storage format (demo,
    folder, single_file, hub); `family` and the native size make its card
    (services/generation/families.py). Its JSON is the catalog's (catalog.model_to_dict)."""

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
    lora: so.Mapped[bool] = so.mapped_column(default=False)
    family: so.Mapped[Optional[str]] = so.mapped_column(sa.String(20))
    variant: so.Mapped[Optional[str]] = so.mapped_column(sa.String(40))
    native_width: so.Mapped[Optional[int]]
    native_height: so.Mapped[Optional[int]]
    # An upscaler model (files under <models>/upscalers/, read by spandrel): its scale and
    # architecture ("ESRGAN", "SwinIR", …). Neither a model nor a LoRA.
    upscaler: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.false())
    scale: so.Mapped[Optional[int]]
    architecture: so.Mapped[Optional[str]] = so.mapped_column(sa.String(40))
    # A guide model (issue 25), files under <models>/controlnet/ or <models>/ipadapter/:
    # "controlnet" or "ipadapter" (FLUX Redux too: architecture "redux"); its family says
    # which models it guides. Neither a model, a LoRA nor an upscaler. None: not a guide.
    adapter: so.Mapped[Optional[str]] = so.mapped_column(sa.String(20))
    # A ControlNet Union's number of control modes, read by the scan (6 on xinsir's first SDXL
    # Union, 8 on ProMax); submit refuses a unit whose mode it lacks. None: not a Union, or not
    # known (a row from before the next scan): every mode is let through.
    control_modes: so.Mapped[Optional[int]]
    # Who may use it (issue 27): tier names; None: every tier. Classes narrow it further
    # (SchoolClass.allowed_models / allowed_loras).
    tiers: so.Mapped[Optional[list]] = so.mapped_column(sa.JSON)
    # Issue 26: the denoiser's quantization as stored ("Q4_K", "Q8_0", "nf4", "fp8"; None:
    # full precision) and the weights' size on disk, read by the scan for the memory planner
    # (services/generation/planner.py).
    quant: so.Mapped[Optional[str]] = so.mapped_column(sa.String(20))
    size_bytes: so.Mapped[Optional[int]] = so.mapped_column(sa.BigInteger)
    # Fast mode (issue 28), set by staff: "off" (not offered), "on" (every task), or
    # "optional" (off unless the user turns it on for a task).
    fast_mode: so.Mapped[str] = so.mapped_column(sa.String(10), default="off", server_default="off")


class ModelJob(db.Model):
    """A background model operation staff started on Admin → Models (issue 26): "install"
    (a Hugging Face repo id or an https URL downloaded into the models folder), "convert"
    (a single-file checkpoint into a diffusers folder) or "merge" (two or three models of
    one family). Run by the archive worker; progress in bytes (install) or steps."""

    __tablename__ = "model_jobs"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    kind: so.Mapped[str] = so.mapped_column(sa.String(10))  # install | convert | merge
    # queued | running | done | failed | cancelled
    state: so.Mapped[str] = so.mapped_column(sa.String(10), default="queued", index=True)
    source: so.Mapped[str] = so.mapped_column(sa.String(2048))  # repo id, URL, or model ids
    # What was asked beyond the source: revision, variant, files, sha256, merge method and
    # weights… (never an access token: that travels in the job only).
    options: so.Mapped[Optional[dict]] = so.mapped_column(sa.JSON)
    destination: so.Mapped[Optional[str]] = so.mapped_column(sa.String(1024))  # under the models folder
    done_bytes: so.Mapped[int] = so.mapped_column(sa.BigInteger, default=0, server_default=sa.text("0"))
    total_bytes: so.Mapped[Optional[int]] = so.mapped_column(sa.BigInteger)
    sha256: so.Mapped[Optional[str]] = so.mapped_column(sa.String(64))
    error: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    model_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(80))  # the catalog row it made
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    started_at: so.Mapped[Optional[datetime]]
    finished_at: so.Mapped[Optional[datetime]]


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
    # A row of a class's shared pool (issue 27): delta and balance_after are the pool's,
    # user_id is the member it was for (or the teacher/staff who granted it). A user's
    # balance is the sum of their rows with class_id None; a pool's, the sum of its rows.
    class_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22), index=True)

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

class Voucher(db.Model):
    """A single-use code worth some tokens, made by staff in batches. The code is kept
    as it is (staff export the unredeemed ones); it carries 80 random bits."""

    __tablename__ = "vouchers"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    tokens: so.Mapped[int]
    batch: so.Mapped[str] = so.mapped_column(sa.String(22), index=True)
    note: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    redeemed_by_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    redeemed_at: so.Mapped[Optional[datetime]]

    created_by: so.Mapped[Optional[User]] = so.relationship(foreign_keys=[created_by_id])
    redeemed_by: so.Mapped[Optional[User]] = so.relationship(foreign_keys=[redeemed_by_id])

    __table_args__ = (sa.CheckConstraint("tokens > 0", name="voucher_tokens_positive"),)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "code": self.code,
            "tokens": self.tokens,
            "batch": self.batch,
            "note": self.note,
            "created_at": iso(self.created_at),
            "created_by": self.created_by.username if self.created_by else None,
            "redeemed": self.redeemed_at is not None,
            "redeemed_at": iso(self.redeemed_at),
            "redeemed_by": self.redeemed_by.username if self.redeemed_by else None,
        }


class SetupToken(db.Model):
    """The one-time link that creates the first staff account (services/accounts/first_run.py):
    only a hash is kept, and using it is a conditional update, so it works once."""

    __tablename__ = "setup_tokens"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    used_at: so.Mapped[Optional[datetime]]


class AccountToken(db.Model):
    """A one-time link for an account (services/accounts/links.py): a password reset
    (made by staff or asked for by mail) or the confirmation of a new email address.
    Only a hash of the link's secret is kept; it expires, and using it is a conditional
    update, so it works once."""

    __tablename__ = "account_tokens"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: so.Mapped[str] = so.mapped_column(sa.String(10))  # "reset" or "email"
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    new_email: so.Mapped[Optional[str]] = so.mapped_column(sa.String(254))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    expires_at: so.Mapped[datetime]
    used_at: so.Mapped[Optional[datetime]]
    # The staff member who made a reset link (None: asked for by the user, by mail).
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))

    user: so.Mapped[User] = so.relationship(foreign_keys=[user_id])


# --- gallery and boards ----------------------------------------------------------------


class Board(db.Model):
    """A collection of a user's images. An image is in at most one board."""

    __tablename__ = "boards"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(80))
    # The name as compared: NFKC-normalized and case-folded (services/library/boards.py
    # name_key), unique per user, so "Ábc", "ÁBC" and "ábc" are one name whatever the
    # database's lower() folds. Longer than the name: normalizing can expand it.
    name_key: so.Mapped[str] = so.mapped_column(sa.String(320))
    # The image shown for the board; when unset (or the image left the board) the
    # newest image of the board is shown instead. No foreign key: images and boards
    # would point at each other.
    cover_image_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (sa.UniqueConstraint("user_id", "name_key", name="uq_boards_user_name_key"),)



# --- archives and the showcase ------------------------------------------------------------


class ArchiveState(str, enum.Enum):
    QUEUED = "queued"
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"
    EXPIRED = "expired"

    @classmethod
    def unfinished(cls) -> tuple[str, str]:
        return (cls.QUEUED.value, cls.BUILDING.value)


class Archive(db.Model):
    """A ZIP of a selection, a board or a whole account, built in the background by the
    archive worker (worker/archive_jobs.py) and deleted when it expires."""

    __tablename__ = "archives"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    state: so.Mapped[str] = so.mapped_column(sa.String(10), default=ArchiveState.QUEUED.value, index=True)
    # What was asked for: "selection", "board" or "all"; the images are fixed when asked.
    scope: so.Mapped[str] = so.mapped_column(sa.String(10))
    board_id: so.Mapped[Optional[str]] = so.mapped_column(sa.String(22))
    image_ids: so.Mapped[str] = so.mapped_column(sa.Text, default="[]")  # JSON list, in order
    image_count: so.Mapped[int] = so.mapped_column(default=0)
    done_count: so.Mapped[int] = so.mapped_column(default=0)
    # Relative to the archives folder; named by the archive's random id.
    filename: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255))
    size_bytes: so.Mapped[int] = so.mapped_column(default=0)
    error: so.Mapped[Optional[str]] = so.mapped_column(sa.Text)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    started_at: so.Mapped[Optional[datetime]]
    finished_at: so.Mapped[Optional[datetime]]
    expires_at: so.Mapped[Optional[datetime]] = so.mapped_column(index=True)

    @property
    def download_name(self) -> str:
        return f"daydream-{self.scope}-{self.id}.zip"

    def to_dict(self) -> dict:
        ready = self.state == ArchiveState.READY.value
        return {
            "id": self.id,
            "state": self.state,
            "scope": self.scope,
            "board_id": self.board_id,
            "image_count": self.image_count,
            "progress": {"done": self.done_count, "total": self.image_count},
            "size_bytes": self.size_bytes if ready else None,
            "url": f"/api/v1/archives/{self.id}/download" if ready else None,
            "error": self.error,
            "created_at": iso(self.created_at),
            "finished_at": iso(self.finished_at),
            "expires_at": iso(self.expires_at),
        }


class ShowcaseEntry(db.Model):
    """Staff curation of the showcase (services/library/showcase.py): a user's image that staff
    featured (image_id; shown only while its owner keeps it public), or a file of the
    showcase folder (file_key) that staff hid. `hidden` hides either kind."""

    __tablename__ = "showcase_entries"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    image_id: so.Mapped[Optional[str]] = so.mapped_column(
        sa.ForeignKey("images.id", ondelete="CASCADE"), unique=True)
    file_key: so.Mapped[Optional[str]] = so.mapped_column(sa.String(40), unique=True)
    hidden: so.Mapped[bool] = so.mapped_column(default=False, server_default=sa.text("false"))
    curated_by_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)

    image: so.Mapped[Optional[Image]] = so.relationship(foreign_keys=[image_id])


class AuditEntry(db.Model):
    """One staff action (services/core/audit.py), append-only: who did what to whom, when
    and why. Names are kept as they were, so a row still reads right after a deletion."""

    __tablename__ = "audit_entries"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)
    actor_id: so.Mapped[Optional[int]] = so.mapped_column(
        sa.ForeignKey("users.id", ondelete="SET NULL"), index=True)
    actor_name: so.Mapped[str] = so.mapped_column(sa.String(40), default="")
    action: so.Mapped[str] = so.mapped_column(sa.String(40), index=True)  # e.g. "tokens.grant"
    target_type: so.Mapped[str] = so.mapped_column(sa.String(20), default="")  # user, model, image, ...
    target_id: so.Mapped[str] = so.mapped_column(sa.String(255), default="", index=True)
    target_name: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    reason: so.Mapped[str] = so.mapped_column(sa.Text, default="")
    details: so.Mapped[Optional[dict]] = so.mapped_column(sa.JSON)
    address: so.Mapped[str] = so.mapped_column(sa.String(64), default="")


class PromptRule(db.Model):
    """A blocked word or pattern (services/moderation/rules.py): a prompt or negative
    prompt that matches is refused at submit."""

    __tablename__ = "prompt_rules"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(10), default="word")  # "word" or "regex"
    pattern: so.Mapped[str] = so.mapped_column(sa.String(255))
    note: so.Mapped[str] = so.mapped_column(sa.String(255), default="")
    enabled: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # The moderation preset the rule belongs to (issue 27): "standard" or "strict" (strict
    # applies its own rules and standard's).
    preset: so.Mapped[str] = so.mapped_column(sa.String(10), default="standard",
                                              server_default="standard", index=True)


class BlockedPrompt(db.Model):
    """A submit refused by a prompt rule, counted per user for staff."""

    __tablename__ = "blocked_prompts"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rule_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("prompt_rules.id", ondelete="SET NULL"))
    rule: so.Mapped[str] = so.mapped_column(sa.String(255))  # the pattern as it was
    prompt: so.Mapped[str] = so.mapped_column(sa.Text)  # the prompt (and negative prompt), shortened
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, index=True)

    user: so.Mapped[User] = so.relationship()


class Report(db.Model):
    """A signed-in user's report of a showcase item (its showcase id: an image id or a
    folder file's key); staff hide the item or dismiss the report."""

    __tablename__ = "reports"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    item_id: so.Mapped[str] = so.mapped_column(sa.String(40), index=True)
    reporter_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    reason: so.Mapped[str] = so.mapped_column(sa.String(500), default="")
    state: so.Mapped[str] = so.mapped_column(sa.String(10), default="open", index=True)  # open, hidden, dismissed
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    resolved_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    resolved_at: so.Mapped[Optional[datetime]]

    reporter: so.Mapped[Optional[User]] = so.relationship(foreign_keys=[reporter_id])


# --- schools and teams (issue 27) ------------------------------------------------------

class Setting(db.Model):
    """A server-wide setting staff change at run time (the moderation preset, …): a key
    and a JSON value. Environment settings seed a new install; these win after."""

    __tablename__ = "settings"

    key: so.Mapped[str] = so.mapped_column(sa.String(60), primary_key=True)
    value: so.Mapped[Optional[dict]] = so.mapped_column(sa.JSON)  # any JSON value
    updated_at: so.Mapped[datetime] = so.mapped_column(default=utcnow, onupdate=utcnow)


class SchoolClass(db.Model):
    """A class (or team): members (pupils and teachers, ClassMember), join codes, a token
    budget, caps, and the models and LoRAs its members may use."""

    __tablename__ = "classes"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    name: so.Mapped[str] = so.mapped_column(sa.String(80))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    # Members join it from the SSO groups claim when it holds this value; None: no group.
    sso_group: so.Mapped[Optional[str]] = so.mapped_column(sa.String(255), unique=True)
    # The token budget: "none", "pool" (one shared balance, pool_tokens, refilled to
    # budget_tokens each period) or "allowance" (budget_tokens granted to each member
    # each period). budget_period: "day", "week" or "month"; budget_at: the period's start.
    budget_mode: so.Mapped[str] = so.mapped_column(sa.String(10), default="none", server_default="none")
    budget_tokens: so.Mapped[int] = so.mapped_column(default=0, server_default=sa.text("0"))
    budget_period: so.Mapped[str] = so.mapped_column(sa.String(10), default="week", server_default="week")
    budget_at: so.Mapped[Optional[datetime]]
    pool_tokens: so.Mapped[int] = so.mapped_column(default=0, server_default=sa.text("0"))
    # Per-member caps of images made (samples of tasks not refunded); None: no cap.
    images_per_hour: so.Mapped[Optional[int]]
    images_per_day: so.Mapped[Optional[int]]
    # The model and LoRA ids its members may use; None: every enabled one.
    allowed_models: so.Mapped[Optional[list]] = so.mapped_column(sa.JSON)
    allowed_loras: so.Mapped[Optional[list]] = so.mapped_column(sa.JSON)
    # The moderation preset for its members ("strict" or "standard"); None: the server's.
    moderation_preset: so.Mapped[Optional[str]] = so.mapped_column(sa.String(10))
    # Members may share images into the class gallery.
    gallery: so.Mapped[bool] = so.mapped_column(default=True, server_default=sa.true())

    __table_args__ = (sa.CheckConstraint("pool_tokens >= 0", name="pool_tokens_not_negative"),)


class ClassMember(db.Model):
    __tablename__ = "class_members"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    class_id: so.Mapped[str] = so.mapped_column(sa.ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: so.Mapped[str] = so.mapped_column(sa.String(10), default="pupil")  # "pupil" or "teacher"
    # How they joined: "code", "sso", "staff" (added by staff or a teacher).
    via: so.Mapped[str] = so.mapped_column(sa.String(10), default="staff")
    joined_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)

    school_class: so.Mapped[SchoolClass] = so.relationship()
    user: so.Mapped[User] = so.relationship()

    __table_args__ = (sa.UniqueConstraint("class_id", "user_id", name="uq_class_members"),)


class JoinCode(db.Model):
    """A class's join code or link: expiring and revocable."""

    __tablename__ = "class_join_codes"

    id: so.Mapped[str] = so.mapped_column(sa.String(22), primary_key=True, default=new_id)
    class_id: so.Mapped[str] = so.mapped_column(sa.ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(40), unique=True)
    created_by_id: so.Mapped[Optional[int]] = so.mapped_column(sa.ForeignKey("users.id", ondelete="SET NULL"))
    created_at: so.Mapped[datetime] = so.mapped_column(default=utcnow)
    expires_at: so.Mapped[Optional[datetime]]
    revoked_at: so.Mapped[Optional[datetime]]
    max_uses: so.Mapped[Optional[int]]
    uses: so.Mapped[int] = so.mapped_column(default=0, server_default=sa.text("0"))
