"""What this process knows of each pipeline it loaded: the family and files it was
loaded from (families.Detected), its memory mode, whether it was compiled, its LoRA
adapters. Kept beside the pipeline object, weakly, so a pipeline the cache lets go of is
freed."""
from __future__ import annotations

import weakref

from services.generation import families
from services.generation.families import Detected
from worker.pipelines.errors import ModelLoadError

# pipe -> {"found": Detected, "spec", "mode", "loras": {adapter: spec}}; weak so that
# a pipeline the cache lets go of is freed.
_info: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def family_of(pipe) -> str:
    info = _info.get(pipe)
    return info["found"].family if info else family_of_class(pipe)


def detected_of(pipe) -> Detected | None:
    info = _info.get(pipe)
    return info["found"] if info else None


def resident() -> int:
    """How many pipelines this process holds (loaded and not yet freed)."""
    return len(_info)


def memory_mode(pipe) -> str | None:
    info = _info.get(pipe)
    return info.get("mode") if info else None


def known(pipe) -> bool:
    """Was `pipe` loaded here (load.load_pipeline)?"""
    return pipe in _info


def note(pipe, **fields) -> dict:
    """Record `fields` of `pipe` (load.py: found and spec; memory.py: mode; ...); its record."""
    record = _info.setdefault(pipe, {})
    record.update(fields)
    return record


def record_of(pipe) -> dict:
    """The record of `pipe` (made empty when there is none yet: LoRAs on a pipeline loaded elsewhere)."""
    return _info.setdefault(pipe, {})


def family_of_class(pipe) -> str:
    """The family of a pipeline by its class (a pipeline not loaded here)."""
    family = families.PIPELINE_FAMILIES.get(type(pipe).__name__)
    if family is None:
        raise ModelLoadError(
            f"It is a {type(pipe).__name__}; Daydream serves Stable Diffusion 1.x/2.x, SDXL, SD 3/3.5, "
            "FLUX.1, FLUX.2, Z-Image, Chroma and Qwen-Image text-to-image models.")
    if family == "sd1" and getattr(pipe.unet.config, "cross_attention_dim", None) == 1024:
        family = "sd2"
    return family
