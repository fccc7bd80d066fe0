"""Quantized weights on loading (DAYDREAM_QUANT=auto|none|nf4|fp8): what the worker applies
to a model it loads, by the memory plan (services/generation/planner.py).

- A GGUF denoiser is quantized as stored: diffusers' GGUFQuantizationConfig
  (gguf_config), whatever the device.
- On CUDA, a full-precision denoiser of the large transformer families (and their T5 or
  LLM text encoder) can be quantized as it loads: bitsandbytes NF4 or torchao fp8
  (weight-only), through diffusers' PipelineQuantizationConfig. "auto" does so only when
  the plan says the model does not fit as it is; "nf4"/"fp8" always (on CUDA).
- On the CPU nothing is quantized on loading (bitsandbytes and torchao's kernels are for
  GPUs): said once in the log.

choose() is the whole choice, without torch or a GPU (tests/unit/test_quant_choice.py);
pipeline_config() and gguf_config() build diffusers' config objects, importing
bitsandbytes and torchao only then (neither is a dependency: a missing one is a
ModelLoadError saying what to install)."""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass

from services.generation import planner
from worker.pipelines.errors import ModelLoadError

log = logging.getLogger("daydream.worker")

SETTINGS = planner.QUANT_SETTINGS
# Families whose denoiser and large text encoder are worth quantizing on loading, with the
# pipeline component names: (denoiser, the T5/LLM text encoder or None).
COMPONENTS = {
    "sd3": ("transformer", "text_encoder_3"),
    "flux": ("transformer", "text_encoder_2"),
    "chroma": ("transformer", "text_encoder"),
    "zimage": ("transformer", "text_encoder"),
    "flux2": ("transformer", "text_encoder"),
    "qwen": ("transformer", "text_encoder"),
}
PACKAGES = {"nf4": ("bitsandbytes", "bitsandbytes>=0.45"), "fp8": ("torchao", "torchao>=0.10")}
_said: set[str] = set()


@dataclass(frozen=True)
class Choice:
    """What to quantize on loading: `method` ("nf4" | "fp8") for `components` (pipeline
    component names), and why (for the log and the model's notes)."""

    method: str
    components: tuple[str, ...]
    why: str


def setting() -> str:
    """DAYDREAM_QUANT of this worker (config.py), "auto" when unset."""
    try:
        from flask import current_app, has_app_context

        if has_app_context():
            return str(current_app.config.get("QUANT") or "auto").lower()
    except ImportError:  # pragma: no cover
        pass
    return (os.environ.get("DAYDREAM_QUANT") or "auto").strip().lower()


def check_setting(value: str) -> str:
    value = (value or "auto").strip().lower()
    if value not in SETTINGS:
        raise ModelLoadError(f"DAYDREAM_QUANT={value!r} is not a quantization setting: use "
                             f"{', '.join(SETTINGS)}.")
    return value


def choose(value: str, device_type: str, family: str | None, stored_quant: str | None = None,
           plan: planner.Plan | None = None) -> tuple[Choice | None, str]:
    """(what to quantize on loading, or None; why). device_type: "cuda" or "cpu";
    stored_quant: the file's own (a GGUF type: its denoiser is quantized already);
    plan: the memory plan on this GPU (for "auto")."""
    value = check_setting(value)
    if value == "none":
        return None, "DAYDREAM_QUANT=none"
    if device_type != "cuda":
        return None, ("NF4 and fp8 need a CUDA GPU (bitsandbytes and torchao): nothing is quantized on "
                      "loading on the CPU")
    parts = COMPONENTS.get(family or "")
    if parts is None:
        return None, f"the {family or 'unknown'} family is not quantized on loading (it fits as it is)"
    denoiser, encoder = parts
    if value == "auto":
        if plan is None:
            return None, "no memory plan"
        method = plan.quant if plan.quant in ("nf4", "fp8") and stored_quant is None else plan.encoder_quant
        if method not in ("nf4", "fp8"):
            return None, "the plan fits without quantizing on loading"
        value = method
    components = tuple(c for c in ((denoiser if stored_quant is None else None), encoder) if c)
    if not components:
        return None, "the denoiser is quantized as stored and there is no large text encoder"
    why = f"{value} for {', '.join(components)}" + (f" (plan: {plan.label})" if plan else "")
    return Choice(value, components, why), why


def say_once(why: str) -> None:
    if why not in _said:
        _said.add(why)
        log.info("quantization on loading: %s", why)


def _require(method: str) -> None:
    package, requirement = PACKAGES[method]
    if importlib.util.find_spec(package) is None:
        raise ModelLoadError(f"DAYDREAM_QUANT={method} needs the {package} package on the worker, which is not "
                             f"installed: pip install '{requirement}' (or set DAYDREAM_QUANT=none).")


def pipeline_config(choice: Choice, dtype):
    """diffusers' PipelineQuantizationConfig for `choice` (imports the backend now)."""
    from diffusers import PipelineQuantizationConfig

    _require(choice.method)
    if choice.method == "nf4":
        return PipelineQuantizationConfig(
            quant_backend="bitsandbytes_4bit",
            quant_kwargs={"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": dtype},
            components_to_quantize=list(choice.components))
    from diffusers import TorchAoConfig as DiffusersTorchAo
    from torchao.quantization import Float8WeightOnlyConfig
    from transformers import TorchAoConfig as TransformersTorchAo

    mapping = {name: (DiffusersTorchAo if name.startswith(("transformer", "unet")) else TransformersTorchAo)(
        Float8WeightOnlyConfig()) for name in choice.components}
    return PipelineQuantizationConfig(quant_mapping=mapping)


def gguf_config(dtype):
    """diffusers' GGUFQuantizationConfig: a GGUF file's weights stay quantized, computed in dtype."""
    from diffusers import GGUFQuantizationConfig

    if importlib.util.find_spec("gguf") is None:
        raise ModelLoadError("Loading a .gguf file needs the gguf package on the worker: pip install 'gguf>=0.10'.")
    return GGUFQuantizationConfig(compute_dtype=dtype)


def gpu_total_bytes(device: str) -> int | None:
    """The total memory of the GPU `device` names (None: not a CUDA device)."""
    import torch

    kind = torch.device(device)
    if kind.type != "cuda" or not torch.cuda.is_available():
        return None
    return int(torch.cuda.get_device_properties(kind).total_memory)


def plan_for(found, device: str, value: str, demo: bool = False) -> planner.Plan:
    """The memory plan of a model (families.Detected) on this worker's device."""
    total = gpu_total_bytes(device)
    return planner.plan(found.family, found.variant, found.quant, found.size_bytes, total, value, demo=demo,
                        device="cuda" if total else "cpu")
