"""Diffusers pipelines for the worker, one concern a module:

  load.py       a model spec (demo, folder, single file, hub id) to its pipeline
  memory.py     the device and precision, DAYDREAM_VRAM's memory modes, freeing memory
  compiling.py  DAYDREAM_COMPILE (torch.compile of the denoiser)
  loras.py      LoRA files resolved, then applied as named adapters
  cache.py      the one resident pipeline, and the pipelines made from its components
  prompt_cache.py  the text encoders' output of repeated prompts, reused (an LRU)
  info.py       what is known of each loaded pipeline (family, mode, adapters)
  errors.py     ModelLoadError, LoraError, and what of an error a user may see

The names below are the ones other modules use most; import from the modules."""
from __future__ import annotations

from worker.pipelines.cache import PipelineCache, derived, img2img_from
from worker.pipelines.compiling import compile_pipeline, is_compiled
from worker.pipelines.errors import LoraError, ModelLoadError, without_paths
from worker.pipelines.info import detected_of, family_of, memory_mode, resident
from worker.pipelines.load import load_pipeline
from worker.pipelines.loras import apply_loras, lora_files
from worker.pipelines.memory import free_memory, resolve_device
from worker.schedulers import DEFAULT_SCHEDULER, apply_scheduler

__all__ = [
    "DEFAULT_SCHEDULER",
    "LoraError",
    "ModelLoadError",
    "PipelineCache",
    "apply_loras",
    "apply_scheduler",
    "compile_pipeline",
    "derived",
    "detected_of",
    "family_of",
    "free_memory",
    "img2img_from",
    "is_compiled",
    "load_pipeline",
    "lora_files",
    "memory_mode",
    "resident",
    "resolve_device",
    "without_paths",
]
