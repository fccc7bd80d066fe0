"""The memory planner: how a model will run on a worker's GPU, before anyone queues for it.

plan() picks the precision, the quantization and the offload for a model of a family on
a GPU of so many bytes, with the peak memory it expects and a label staff read on Admin →
Models ("Q4_K GGUF, 7.1 GB, fits", "bf16 with CPU offload, slower", "needs 25 GB, this
GPU has 8 GB: use a GGUF file"). The worker follows the same plan when it loads
(worker/pipelines/memory.py, DAYDREAM_VRAM=auto); the submit service refuses a task for a
model that cannot fit (only when the ready workers report a GPU: a CPU worker has no
GPU memory limit). No torch: the web tier imports this.

The sizes are the published parameter counts of each family's parts, at 2 bytes a
parameter (bf16/fp16); the working memory of a one-megapixel image is a measured round
figure per family. Estimates, not promises: a margin is kept."""
from __future__ import annotations

from dataclasses import asdict, dataclass

GB = 1024**3
B = 1_000_000_000  # parameters

# The order in which the planner tries to fit a model (the first that fits wins).
OFFLOADS = ("none", "model", "sequential")
QUANT_SETTINGS = ("auto", "none", "nf4", "fp8")

# Bytes a parameter of each storage type takes (GGUF blocks: K-quants hold 256 weights
# with their scales; Q8_0 32 weights and one fp16 scale). nf4: 4 bits and a scale per 64.
BYTES_PER_PARAM = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "F32": 4.0, "F16": 2.0, "BF16": 2.0,
                   "fp8": 1.0, "nf4": 0.5625, "Q8_0": 1.0625, "Q6_K": 0.8203, "Q5_K": 0.6875,
                   "Q5_0": 0.6875, "Q5_1": 0.75, "Q4_K": 0.5625, "Q4_0": 0.5625, "Q4_1": 0.625,
                   "Q3_K": 0.4297, "Q2_K": 0.3281}
# Memory the CUDA context and allocator take before any weight, and the share of a GPU
# kept free (fragmentation, other processes' contexts).
OVERHEAD = int(0.5 * GB)
MARGIN = 0.92


@dataclass(frozen=True)
class Spec:
    """A model's parts in parameters: the denoiser, the text encoders (each alone: model
    offload moves one at a time), the VAE; the working memory of one 1 MP image."""

    label: str
    denoiser: float
    text_encoders: tuple[float, ...]
    vae: float
    working_gb: float
    precision: str = "bf16"  # as it runs on a GPU (fp16: the UNet families)
    gguf: bool = False  # the family has GGUF denoisers (diffusers' GGUF loader maps them)
    big_encoder: bool = False  # a T5 or an LLM text encoder: quantized with the denoiser


# Published parameter counts (transformer / UNet, text encoders, VAE).
SPECS: dict[str, Spec] = {
    "sd1": Spec("SD 1.5", 0.86 * B, (0.123 * B,), 0.084 * B, 0.8, precision="fp16"),
    "sd2": Spec("SD 2.1", 0.865 * B, (0.354 * B,), 0.084 * B, 1.2, precision="fp16"),
    "sdxl": Spec("SDXL", 2.567 * B, (0.123 * B, 0.695 * B), 0.084 * B, 1.5, precision="fp16"),
    "sd3-medium": Spec("SD 3.5 Medium", 2.47 * B, (0.123 * B, 0.695 * B, 4.76 * B), 0.084 * B, 1.5,
                       gguf=True, big_encoder=True),
    "sd3-large": Spec("SD 3.5 Large", 8.06 * B, (0.123 * B, 0.695 * B, 4.76 * B), 0.084 * B, 2.0,
                      gguf=True, big_encoder=True),
    "flux-dev": Spec("FLUX.1 dev", 11.9 * B, (0.123 * B, 4.76 * B), 0.084 * B, 2.0, gguf=True,
                     big_encoder=True),
    "flux-schnell": Spec("FLUX.1 schnell", 11.9 * B, (0.123 * B, 4.76 * B), 0.084 * B, 2.0, gguf=True,
                         big_encoder=True),
    "flux2-klein-4b": Spec("FLUX.2 klein 4B", 3.9 * B, (4.02 * B,), 0.084 * B, 1.5, gguf=True,
                           big_encoder=True),
    "flux2-klein-9b": Spec("FLUX.2 klein 9B", 9.1 * B, (8.19 * B,), 0.084 * B, 2.0, gguf=True,
                           big_encoder=True),
    "flux2-dev": Spec("FLUX.2 dev", 32.2 * B, (24.0 * B,), 0.084 * B, 3.0, gguf=True, big_encoder=True),
    "zimage": Spec("Z-Image Turbo", 6.15 * B, (4.02 * B,), 0.084 * B, 1.5, gguf=True, big_encoder=True),
    "qwen": Spec("Qwen-Image", 20.4 * B, (8.29 * B,), 0.127 * B, 3.0, gguf=True, big_encoder=True),
    "chroma": Spec("Chroma", 8.9 * B, (4.76 * B,), 0.084 * B, 2.0, gguf=True, big_encoder=True),
    # The tiny built-in models: a few megabytes.
    "demo": Spec("demo", 0.002 * B, (0.001 * B,), 0.001 * B, 0.1),
}
# What the table prints (README): one row a model people run.
TABLE_ROWS = ("sd1", "sdxl", "sd3-medium", "sd3-large", "flux-schnell", "flux-dev", "flux2-klein-4b",
              "flux2-klein-9b", "flux2-dev", "zimage", "qwen", "chroma")
GPU_SIZES_GB = (6, 8, 12, 16, 24, 48, 80)


def spec_key(family: str | None, variant: str | None = "", size_bytes: int | None = None,
             demo: bool = False) -> str:
    """The SPECS row of a model of `family` and `variant` (a file's size tells SD 3.5
    Medium from Large, and FLUX.2 klein 4B from 9B, where the variant does not)."""
    variant = (variant or "").lower()
    if demo:
        return "demo"
    if family == "sd3":
        if "medium" in variant:
            return "sd3-medium"
        if "large" in variant:
            return "sd3-large"
        return "sd3-medium" if size_bytes and size_bytes < 8 * GB else "sd3-large"
    if family == "flux":
        return "flux-schnell" if variant == "schnell" else "flux-dev"
    if family == "flux2":
        if "dev" in variant:
            return "flux2-dev"
        if "9b" in variant or (size_bytes and size_bytes > 9 * GB):
            return "flux2-klein-9b"
        return "flux2-klein-4b"
    return family if family in SPECS else "sd1"  # (unknown: the card's own guess)


@dataclass(frozen=True)
class Plan:
    precision: str  # "bf16" | "fp16" | "fp32" (the CPU)
    quant: str | None  # the denoiser's: None, a GGUF type ("Q4_K", …), "nf4" or "fp8"
    encoder_quant: str | None  # the large text encoder's: None, "nf4" or "fp8" (applied on loading)
    offload: str  # "none" | "model" | "sequential"
    expected_bytes: int  # peak GPU memory (0 on the CPU)
    fits: bool
    label: str
    why: str

    def to_dict(self) -> dict:
        return asdict(self)

    def api(self) -> dict:
        """What GET /api/v1/models shows of it."""
        return {"label": self.label, "fits": self.fits, "expected_bytes": self.expected_bytes,
                "offload": self.offload, "quant": self.quant, "text_encoder_quant": self.encoder_quant,
                "precision": self.precision, "why": self.why}


def _gb(n: float) -> str:
    value = n / GB
    return f"{value:.1f} GB" if value < 10 else f"{value:.0f} GB"


def _quant_label(quant: str | None) -> str:
    if quant is None:
        return ""
    if quant.startswith(("Q", "IQ")) or quant in ("F16", "BF16"):
        return f"{quant} GGUF"
    return {"nf4": "NF4", "fp8": "fp8"}.get(quant, quant)


def _choices(spec: Spec, quant: str | None, quant_setting: str, size_bytes: int | None):
    """(denoiser quant, text encoder quant, denoiser bytes, text encoder bytes each) in the
    order the planner tries them: as stored; then, on CUDA, fp8 and nf4 as DAYDREAM_QUANT
    allows (auto: fp8 first, the better picture) for a full-precision denoiser and for a
    large text encoder (T5, an LLM) beside a full-precision or GGUF denoiser."""
    precision_bytes = BYTES_PER_PARAM[spec.precision]
    encoders = tuple(int(p * precision_bytes) for p in spec.text_encoders)
    if quant is not None:  # a quantized file: its own size when known
        denoiser = int(size_bytes) if size_bytes else int(spec.denoiser * BYTES_PER_PARAM.get(quant, 0.5625))
    else:
        denoiser = int(spec.denoiser * precision_bytes)
    yield quant, None, denoiser, encoders
    if spec.precision != "bf16":
        return  # (the small UNet families fit as they are; nobody quantizes them)
    for name in {"auto": ("fp8", "nf4"), "fp8": ("fp8",), "nf4": ("nf4",)}.get(quant_setting, ()):
        per = BYTES_PER_PARAM[name]
        quantized = tuple(int(p * per) if spec.big_encoder and p > 1 * B else e
                          for p, e in zip(spec.text_encoders, encoders))
        if quant is None:
            yield name, name if spec.big_encoder else None, int(spec.denoiser * per), quantized
        elif spec.big_encoder:
            yield quant, name, denoiser, quantized


def plan(family: str | None, variant: str | None = "", quant: str | None = None, size_bytes: int | None = None,
         gpu_total_bytes: int | None = None, quant_setting: str = "auto", demo: bool = False,
         device: str = "cuda") -> Plan:
    """How a model runs on a GPU of gpu_total_bytes (None with device "cpu": on the CPU).
    quant: the file's own quantization (a GGUF type) or None; quant_setting:
    DAYDREAM_QUANT (auto|none|nf4|fp8: what the worker may apply on CUDA)."""
    spec = SPECS[spec_key(family, variant, size_bytes, demo)]
    if device == "cpu" or not gpu_total_bytes:
        what = _quant_label(quant)
        return Plan("fp32", quant, None, "none", 0, True,
                    f"CPU{': ' + what if what else ''}: no GPU memory limit, slow",
                    "the worker runs on the CPU, in its memory")
    budget = int(gpu_total_bytes * MARGIN) - OVERHEAD
    working = int(spec.working_gb * GB)
    vae = int(spec.vae * BYTES_PER_PARAM[spec.precision])
    best_needed = None
    choices = list(_choices(spec, quant, quant_setting, size_bytes))
    for offload in OFFLOADS:
        for name, encoder_quant, denoiser, encoders in choices:
            largest = max([denoiser, vae, *encoders])
            if offload == "none":
                needed = denoiser + sum(encoders) + vae + working
            elif offload == "model":  # one part on the GPU at a time
                needed = largest + working
            else:  # layer by layer: about one block at a time, plus the working memory
                needed = int(largest * 0.05) + working
                if largest > 4 * budget:  # it would stream over PCIe every step: too slow to offer
                    continue
            if offload == "model" and best_needed is None:
                best_needed = needed
            if needed <= budget:
                return _fits(spec, name, encoder_quant, offload, needed + OVERHEAD, quant)
    return _does_not_fit(spec, quant, best_needed + OVERHEAD, gpu_total_bytes)


def _fits(spec: Spec, quant: str | None, encoder_quant: str | None, offload: str, expected: int,
          stored_quant: str | None) -> Plan:
    what = _quant_label(quant) or spec.precision
    if encoder_quant and encoder_quant != quant:
        what += f" (text encoder {_quant_label(encoder_quant)})"
    if offload == "none":
        label, why = f"{what}, {_gb(expected)}, fits", "every part stays on the GPU"
    elif offload == "model":
        label = f"{what} with CPU offload, {_gb(expected)}, slower"
        why = "the whole model does not fit at once: each part moves to the GPU while it runs"
    else:
        label = f"{what} with sequential CPU offload, {_gb(expected)}, very slow"
        why = "even one part does not fit: its layers move to the GPU one at a time"
        if spec.gguf and stored_quant is None:
            label += " (a GGUF file would be faster)"
    if quant is not None and quant != stored_quant:
        why += f"; the denoiser quantized to {_quant_label(quant)} on loading"
    if encoder_quant:
        why += f"; the text encoder quantized to {_quant_label(encoder_quant)} on loading"
    return Plan(spec.precision, quant, encoder_quant, offload, expected, True, label, why)


def _does_not_fit(spec: Spec, quant: str | None, needed: int, gpu_total_bytes: int) -> Plan:
    advice = ("use a GGUF file of it (Q4_K or smaller)" if spec.gguf and quant is None
              else "use a smaller quantization" if spec.gguf else "use a smaller model")
    label = f"needs {_gb(needed)}, this GPU has {_gb(gpu_total_bytes)}: {advice}"
    why = (f"{spec.label} needs about {_gb(needed)} of GPU memory even with CPU offload, and this "
           f"worker's GPU has {_gb(gpu_total_bytes)}: {advice}")
    return Plan(spec.precision, quant, None, "none", needed, False, label, why)


def plan_row(row, gpu: dict | None, quant_setting: str = "auto") -> Plan:
    """The plan of a catalog row (models.AiModel) on `gpu` (gpu_of_workers())."""
    gpu = gpu or {}
    return plan(row.family, row.variant, row.quant, row.size_bytes, gpu.get("gpu_total_bytes"),
                quant_setting, demo=row.kind == "demo", device=gpu.get("device", "cpu"))


def gpu_of_workers(workers: dict[str, dict]) -> dict | None:
    """The GPU the plans are for, from the live workers' heartbeats: None when no worker
    said (none is up, or an old one); {"device": "cpu"} when one runs on the CPU (it
    takes any model, slowly: nothing is refused); else the largest GPU's
    {"device": "cuda", "gpu_total_bytes", "gpu_name"}."""
    reported = [w for w in workers.values() if isinstance(w, dict) and w.get("device")]
    if not reported:
        return None
    if any(w["device"] == "cpu" for w in reported):
        return {"device": "cpu"}
    best = max(reported, key=lambda w: int(w.get("gpu_total_bytes") or 0))
    if not best.get("gpu_total_bytes"):
        return None
    return {"device": "cuda", "gpu_total_bytes": int(best["gpu_total_bytes"]), "gpu_name": best.get("gpu_name", "")}


def table(quant_setting: str = "auto") -> list[tuple[str, list[str]]]:
    """[(model, [label per GPU size])]: the README's table."""
    return [(SPECS[key].label, [_table_plan(key, size, quant_setting).label for size in GPU_SIZES_GB])
            for key in TABLE_ROWS]


def _table_plan(key: str, size_gb: int, quant_setting: str) -> Plan:
    family, _, variant = key.partition("-")
    return plan(family, variant, None, None, size_gb * GB, quant_setting)
