"""What a task may ask for: the models staff enabled, and the schedulers.

Models are rows: the built-in demo model (always there), the one DAYDREAM_MODEL
names, and whatever a scan of the models folder finds (disabled until staff enable
them). A task stores the model's id; the worker looks the spec up here."""
from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa
from flask import current_app

from extensions import db
from models import AiModel, ModelState
from services.core.errors import NotFound, ValidationError
from services.generation.schedulers import DEFAULT_SCHEDULER, SCHEDULERS

__all__ = ["DEFAULT_SCHEDULER", "schedulers", "models", "model_ids", "default_model"]

DEMO_ID = "demo"
DEMO_FOLDER = "daydream-demo"  # where the worker builds the demo model: not a scan result
CHECKPOINTS = (".safetensors", ".ckpt")


def schedulers() -> dict[str, str]:
    return dict(SCHEDULERS)


def models_folder() -> Path:
    return Path(current_app.config["MODELS_PATH"])


def local_path(spec: str) -> Path:
    path = Path(spec)
    return path if path.is_absolute() else models_folder() / spec


def model_kind(spec: str) -> str:
    if spec == "demo":
        return "demo"
    if spec.endswith(CHECKPOINTS):
        return "single_file"
    if local_path(spec).is_dir():
        return "folder"
    return "hub"


def _slug(spec: str) -> str:
    name = _display_name(spec)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "model"


def _unique_id(spec: str) -> str:
    base = _slug(spec)
    candidate, n = base, 2
    while db.session.get(AiModel, candidate) is not None:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _display_name(spec: str) -> str:
    name = Path(spec).name if model_kind(spec) != "hub" else spec
    return Path(name).stem if name.endswith(CHECKPOINTS) else name


def ensure_models() -> None:
    """The demo row and the DAYDREAM_MODEL row exist; exactly one row is the default.
    Idempotent and cheap; runs once per process."""
    ext = current_app.extensions
    if ext.get("daydream_models_synced"):
        return
    try:
        with db.session.no_autoflush:
            _sync_builtin_models()
        db.session.commit()
    except sa.exc.IntegrityError:  # another process or request did the same just now
        db.session.rollback()
    ext["daydream_models_synced"] = True


def _sync_builtin_models() -> None:
    demo = db.session.get(AiModel, DEMO_ID)
    if demo is None:
        demo = AiModel(id=DEMO_ID, name="Demo (tiny, paints noise)", spec="demo", kind="demo",
                       source="builtin", enabled=True)
        db.session.add(demo)
    configured = current_app.config["MODEL"]
    row = demo if configured == "demo" else db.session.scalar(
        sa.select(AiModel).where(AiModel.spec == configured))
    if row is None:
        row = AiModel(id=_unique_id(configured), name=_display_name(configured), spec=configured,
                      kind=model_kind(configured), source="env", enabled=True)
        db.session.add(row)
    row.enabled = True
    if db.session.scalar(sa.select(sa.func.count()).select_from(AiModel)
                         .where(AiModel.is_default, AiModel.enabled)) == 0:
        row.is_default = True


def enabled_models() -> list[AiModel]:
    ensure_models()
    return list(db.session.scalars(sa.select(AiModel).where(AiModel.enabled)
                                   .order_by(AiModel.is_default.desc(), AiModel.name)))


def models() -> list[dict]:
    return [m.to_dict() for m in enabled_models()]


def model_ids() -> list[str]:
    return [m.id for m in enabled_models()]


def default_model() -> str:
    ensure_models()
    row = db.session.scalar(sa.select(AiModel).where(AiModel.is_default, AiModel.enabled))
    return row.id if row else DEMO_ID


def is_demo_default() -> bool:
    return default_model() == DEMO_ID


def spec_of(model_id: str) -> str | None:
    ensure_models()
    row = db.session.get(AiModel, model_id)
    return row.spec if row else None


# --- staff ---------------------------------------------------------------------------

def all_models() -> list[AiModel]:
    ensure_models()
    return list(db.session.scalars(sa.select(AiModel).order_by(AiModel.source, AiModel.name)))


def scan() -> list[AiModel]:
    """Find diffusers folders (with model_index.json) and single-file checkpoints in
    the models folder; new ones are added disabled, vanished ones marked missing."""
    ensure_models()
    folder = models_folder()
    found: set[str] = set()
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder)
            if len(rel.parts) > 3 or any(p.startswith(".") or p == DEMO_FOLDER for p in rel.parts):
                continue
            if path.is_dir() and (path / "model_index.json").is_file():
                found.add(str(rel))
            elif path.is_file() and path.suffix in CHECKPOINTS:
                found.add(str(rel))
    known = {m.spec: m for m in db.session.scalars(sa.select(AiModel))}
    for spec in sorted(found - set(known)):
        db.session.add(AiModel(id=_unique_id(spec), name=_display_name(spec), spec=spec,
                               kind=model_kind(spec), source="scan", enabled=False))
        db.session.flush()
    for spec, row in known.items():
        if row.source == "scan":
            present = spec in found
            if not present:
                row.state = ModelState.MISSING.value
            elif row.state == ModelState.MISSING.value:
                row.state, row.error = ModelState.AVAILABLE.value, None
    db.session.commit()
    return all_models()


def update_model(model_id: str, data: dict) -> AiModel:
    row = db.session.get(AiModel, model_id)
    if row is None:
        raise NotFound("No such model.")
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise ValidationError("enabled", "must be true or false")
        if not data["enabled"] and row.is_default:
            raise ValidationError("enabled", "pick another default model before disabling this one")
        row.enabled = data["enabled"]
    if data.get("default") is True:
        if row.state == ModelState.MISSING.value:
            raise ValidationError("default", "this model's files are missing; rescan or pick another")
        db.session.execute(sa.update(AiModel).values(is_default=False))
        row.enabled = row.is_default = True
    db.session.commit()
    return row


def record_load_result(spec: str, error: str | None) -> None:
    """The worker notes whether a model loaded, for the staff's models page."""
    row = db.session.scalar(sa.select(AiModel).where(AiModel.spec == spec))
    if row is not None:
        row.state = ModelState.ERROR.value if error else ModelState.AVAILABLE.value
        row.error = error
        db.session.commit()
