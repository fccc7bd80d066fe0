"""What a task may ask for: the models and schedulers this server offers."""
from __future__ import annotations

from pathlib import Path

from flask import current_app

from services.schedulers import DEFAULT_SCHEDULER, SCHEDULERS

__all__ = ["DEFAULT_SCHEDULER", "schedulers", "models", "model_ids", "default_model"]


def schedulers() -> dict[str, str]:
    return dict(SCHEDULERS)


def model_kind(spec: str) -> str:
    if spec == "demo":
        return "demo"
    path = Path(spec)
    if not path.is_absolute():
        path = Path(current_app.config["MODELS_PATH"]) / spec
    if spec.endswith((".safetensors", ".ckpt")):
        return "single_file"
    if path.is_dir():
        return "folder"
    return "hub"


def default_model() -> str:
    return current_app.config["MODEL"]


def models() -> list[dict]:
    spec = default_model()
    name = "Demo (tiny, paints noise)" if spec == "demo" else Path(spec).name or spec
    return [{"id": spec, "name": name, "default": True, "kind": model_kind(spec)}]


def model_ids() -> list[str]:
    return [m["id"] for m in models()]
