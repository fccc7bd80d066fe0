"""Upscalers: the built-in resamplers (Lanczos, Nearest; always there, never rows) and the
upscaler models staff enabled (AiModel rows with `upscaler`, files under
<models>/upscalers/ read by spandrel: ESRGAN, Real-ESRGAN, SwinIR, HAT, DAT, SPAN, …; the
demo ESRGAN ×2 with the demo models). The scan finds them (catalog.py); how their files are
read, safely, is upscaler_files.py; the worker runs them (worker/upscalers.py)."""
from __future__ import annotations

from services.generation import catalog
from services.generation.upscaler_files import (  # noqa: F401 (the names callers know from here)
    BUILTINS,
    DEMO_ID,
    FILES,
    FOLDER,
    UnsafeFile,
    Unsupported,
    UpscalerFileError,
    describe,
    describe_files,
    load_descriptor,
    read_state_dict,
)


def builtin(upscaler_id: str) -> dict | None:
    return catalog.builtin_upscaler(upscaler_id)


def available() -> list[dict]:
    """The built-in resamplers, then the enabled upscaler models (by name):
    [{id, name, scale (None for a built-in), architecture, builtin}]."""
    return [catalog.builtin_upscaler(key) for key in BUILTINS] + [
        catalog.upscaler_to_dict(row) for row in catalog.enabled_upscalers()]


def find(upscaler_id) -> dict | None:
    """An enabled upscaler model (with its file's "spec") or a built-in, by id; None for
    anything else (unknown, disabled, not an upscaler)."""
    if not isinstance(upscaler_id, str) or not upscaler_id.strip():
        return None
    upscaler_id = upscaler_id.strip()
    found = catalog.builtin_upscaler(upscaler_id.lower())
    if found is not None:
        return found
    row = catalog.row_of(upscaler_id)
    if row is None or not row.upscaler or not row.enabled:
        return None
    return {**catalog.upscaler_to_dict(row), "spec": row.spec}


def spec_of(upscaler_id) -> str | None:
    """The file spec of an enabled upscaler model (relative to the models folder, or the demo
    id); None for a built-in or anything not offered."""
    found = find(upscaler_id)
    return found.get("spec") if found else None


def listing() -> list[dict]:
    """The upscalers as GET /api/v1/models lists them (kind "upscaler")."""
    return catalog.upscaler_items()
