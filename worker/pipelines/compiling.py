"""torch.compile (DAYDREAM_COMPILE): the pipeline's denoiser compiled once per process."""
from __future__ import annotations

import torch

from worker.pipelines import info

COMPILE_CACHE_SIZE = 64  # graphs kept per compiled module: sizes × batch sizes × LoRA sets


def denoiser_name(pipe) -> str:
    return "unet" if getattr(pipe, "unet", None) is not None else "transformer"


def is_compiled(module) -> bool:
    return isinstance(module, torch._dynamo.eval_frame.OptimizedModule)


def compile_pipeline(pipe) -> bool:
    """Compile the pipeline's UNet or transformer with torch.compile (a UNet first goes
    channels_last, the memory layout its convolutions are fastest in). Each new shape
    (size, images a call) compiles on its first call, which is slow (the worker logs its
    time), and is cached for the process's life; attention stays PyTorch's SDPA. Returns
    False when it was compiled already."""
    name = denoiser_name(pipe)
    module = getattr(pipe, name, None)
    if module is None or is_compiled(module):
        return False
    if name == "unet":
        module.to(memory_format=torch.channels_last)
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, COMPILE_CACHE_SIZE)
    setattr(pipe, name, torch.compile(module, dynamic=False))
    if info.known(pipe):
        info.note(pipe, compiled=True)
    return True

