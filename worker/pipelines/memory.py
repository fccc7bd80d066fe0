"""Memory and precision: where a pipeline runs (resolve_device: the device and the
dtype of a family there), how (DAYDREAM_VRAM: place_on_device), and freeing what a
pipeline held (free_memory)."""
from __future__ import annotations

import gc

import torch

from worker.pipelines import info
from worker.pipelines.errors import ModelLoadError


def resolve_device(device: str = "auto", family: str | None = None) -> tuple[str, torch.dtype]:
    """"auto" -> CUDA when there is a GPU, else CPU. On CUDA: float16 for SD 1.x/2.x and
    SDXL, bfloat16 for SD 3 and FLUX where the GPU has it (they overflow in float16);
    on the CPU float32 (half precision is slow or unsupported for most CPU kernels)."""
    if device in ("", "auto", None):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            f"Device {device!r} was asked for, but torch sees no CUDA GPU "
            f"(torch {torch.__version__}). Set DAYDREAM_DEVICE=auto or cpu, or install a CUDA build of torch."
        )
    if kind != "cuda":
        return device, torch.float32
    if family in ("sd3", "flux", "chroma", "zimage", "qwen") and torch.cuda.is_bf16_supported():
        return device, torch.bfloat16
    return device, torch.float16



# --- memory modes ---------------------------------------------------------------

def _weights_bytes(pipe) -> int:
    total = 0
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            total += sum(p.numel() * p.element_size() for p in component.parameters())
    return total


# The memory plan's offload (services/generation/planner.py) as a mode of DAYDREAM_VRAM=auto.
PLANNED_MODES = {"none": "high", "model": "low", "sequential": "sequential"}


def choose_mode(pipe, device: str, vram: str, planned_offload: str | None = None) -> str:
    """"high", "low" or "sequential" for DAYDREAM_VRAM: "auto" follows the memory plan's
    offload when the loader made one (planner.py), else keeps everything on the GPU when
    the weights and about 3 GB of working memory for a one-megapixel image fit in free memory."""
    vram = (vram or "auto").lower()
    if vram not in ("auto", "high", "low"):
        raise ModelLoadError(f"DAYDREAM_VRAM={vram!r} is not a memory mode: use auto, high or low.")
    if torch.device(device).type != "cuda" or vram != "auto":
        return "high" if vram == "auto" else vram
    if planned_offload in PLANNED_MODES:
        return PLANNED_MODES[planned_offload]
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return "high" if _weights_bytes(pipe) + 3 * 1024**3 < free else "low"


def place_on_device(pipe, device: str, vram: str = "auto", planned_offload: str | None = None) -> str:
    """Put the pipeline where it runs. "low": on a GPU, each part moves to it only while it
    runs (model CPU offload); "sequential" (the plan's, when not even one part fits): layer
    by layer; everywhere, the VAE decodes in tiles and one image at a time, so large images
    fit in little memory. Returns the mode used."""
    device, _ = resolve_device(device)
    mode = choose_mode(pipe, device, vram, planned_offload)
    if mode == "sequential":
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            vae.enable_tiling()
            vae.enable_slicing()
        pipe.enable_sequential_cpu_offload(device=device)
    elif mode == "low":
        vae = getattr(pipe, "vae", None)
        if vae is not None:
            vae.enable_tiling()
            vae.enable_slicing()
        if torch.device(device).type == "cuda":
            pipe.enable_model_cpu_offload(device=device)
        else:
            pipe.to(device)
    else:
        pipe.to(device)
    if info.known(pipe):
        info.note(pipe, mode=mode)
    return mode



def device_info(device: str = "auto") -> dict:
    """For the heartbeat: the device this worker runs on and, on CUDA, its GPU's name and
    total memory (the web tier's memory plans read it: services/generation/planner.py).
    Called from the main thread (starting CUDA is not for the heartbeat's thread)."""
    try:
        device, _ = resolve_device(device)
    except ModelLoadError:
        return {}  # (the load says why)
    kind = torch.device(device)
    if kind.type != "cuda":
        return {"device": "cpu"}
    props = torch.cuda.get_device_properties(kind)
    return {"device": "cuda", "gpu_name": props.name, "gpu_total_bytes": int(props.total_memory)}


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
