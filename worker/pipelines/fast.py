"""Fast mode on the worker (issue 28): the family's diffusers step cache on the
transformer for one call, removed after it (services/generation/fast.py says which cache
and its settings).

`enabled(pipe, family, demo=...)` is a context manager around a pipeline call (worker/
render.py, when the batch's tasks are fast; fast tasks batch only with fast tasks:
worker/batching.py). It puts the cache's hooks on the transformer's blocks and takes them
off afterwards, so nothing leaks into the next call: the next task's pixels are the plain
ones.

diffusers' cache hooks keep their state per "cache context", which FluxPipeline,
Flux2KleinPipeline and the Qwen-Image pipelines name around each transformer call
("cond", "uncond"); the others (FLUX.1 img2img and inpaint, FLUX.2 dev, Z-Image, SD 3)
name none, and one runner may make several pipeline calls (a hires fix's two passes).
So a hook on the transformer itself (ContextHook) names the context "cond" where the
pipeline named none, and starts the cache afresh when a new pass begins: the picture's
size changed, or the timestep turned back (a pass counts it one way)."""
from __future__ import annotations

import contextlib
import inspect

import torch
from diffusers.hooks import (FirstBlockCacheConfig, HookRegistry, ModelHook, TaylorSeerCacheConfig,
                             apply_first_block_cache, apply_taylorseer_cache)
from diffusers.hooks.first_block_cache import _FBC_BLOCK_HOOK, _FBC_LEADER_BLOCK_HOOK
from diffusers.hooks.hooks import CacheContext, StateManager
from diffusers.hooks.taylorseer_cache import _TAYLORSEER_CACHE_HOOK

from services.generation import fast


CONTEXT_HOOK = "daydream_fast_context"
CACHE_HOOKS = (_FBC_LEADER_BLOCK_HOOK, _FBC_BLOCK_HOOK, _TAYLORSEER_CACHE_HOOK)


def transformer_of(pipe):
    """The pipeline's transformer (a compiled one's own module), or None (a UNet)."""
    module = getattr(pipe, "transformer", None)
    return getattr(module, "_orig_mod", module)


def config_for(method: fast.Method, transformer, demo: bool = False):
    """diffusers' cache config for `method`."""
    if method.name == fast.FIRST_BLOCK:
        return FirstBlockCacheConfig(threshold=method.demo_threshold if demo else method.threshold)
    dtype = next(transformer.parameters()).dtype
    return TaylorSeerCacheConfig(cache_interval=method.interval, disable_cache_before_step=method.warmup,
                                 taylor_factors_dtype=dtype if dtype.is_floating_point else torch.float32,
                                 cache_identifiers=list(method.modules) or None)


def _managers(transformer) -> list[StateManager]:
    """The state managers of the cache hooks on `transformer`'s modules."""
    found = []
    for module in transformer.modules():
        registry = getattr(module, "_diffusers_hook", None)
        if registry is None:
            continue
        for name in CACHE_HOOKS:
            hook = registry.hooks.get(name)
            if hook is not None:
                found += [attr for attr in vars(hook).values() if isinstance(attr, StateManager)]
    return found


def _argument(names: list[str], wanted: tuple[str, ...], args, kwargs):
    """The first of `wanted` among a forward's arguments (by name, or by its position)."""
    for name in wanted:
        if name in kwargs:
            return kwargs[name]
        if name in names and names.index(name) < len(args):
            return args[names.index(name)]
    return None


class ContextHook(ModelHook):
    """On the transformer: names the cache context where the pipeline named none, and
    starts the cache afresh when a new pass begins: another size, or the timestep turning
    back (a pass counts it one way: down for FLUX, up for Z-Image's 1 - t)."""

    def __init__(self, managers: list[StateManager]):
        super().__init__()
        self.managers = managers
        self.names: list[str] = []
        self.shape: tuple | None = None  # the last call's latents' shape
        self.timestep: float | None = None  # and its timestep
        self.direction = 0  # +1 or -1: which way the timestep goes in this pass (0: not known yet)

    def initialize_hook(self, module):
        self.names = [name for name in inspect.signature(module.forward).parameters if name != "self"]
        return module

    def new_pass(self, shape, timestep) -> bool:
        fresh = self.shape is not None and shape != self.shape
        if not fresh and timestep is not None and self.timestep is not None and abs(timestep - self.timestep) > 1e-6:
            sign = 1 if timestep > self.timestep else -1
            fresh = self.direction != 0 and sign != self.direction
            self.direction = 0 if fresh else sign
        elif fresh:
            self.direction = 0
        self.shape, self.timestep = shape, timestep if timestep is not None else self.timestep
        return fresh

    def new_forward(self, module, *args, **kwargs):
        hidden = _argument(self.names, ("hidden_states", "x"), args, kwargs)
        timestep = _argument(self.names, ("timestep", "t"), args, kwargs)
        shape = tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else None
        if isinstance(hidden, (list, tuple)) and hidden and isinstance(hidden[0], torch.Tensor):
            shape = (len(hidden), *hidden[0].shape)  # (Z-Image takes a list of latents)
        now = float(timestep.flatten()[0]) if isinstance(timestep, torch.Tensor) and timestep.numel() else None
        if self.new_pass(shape, now):
            for manager in self.managers:  # forget the last pass's steps
                named = manager._context
                manager.reset()
                manager.set_context(named)
        for manager in self.managers:
            if manager._context is None:
                manager.set_context(CacheContext("cond"))
        return self.fn_ref.original_forward(*args, **kwargs)


def _remove(transformer) -> None:
    registry = HookRegistry.check_if_exists_or_initialize(transformer)
    for name in (CONTEXT_HOOK, *CACHE_HOOKS):
        registry.remove_hook(name, recurse=True)
    registry.invalidate_child_registries_cache()


@contextlib.contextmanager
def enabled(pipe, family: str | None, demo: bool = False):
    """The family's fast mode on `pipe`'s transformer while in the block (nothing where
    the family has none). Yields the method, or None."""
    method = fast.method_for(family)
    transformer = transformer_of(pipe)
    if method is None or transformer is None:
        yield None
        return
    config = config_for(method, transformer, demo)
    try:
        if method.name == fast.FIRST_BLOCK:
            apply_first_block_cache(transformer, config)
        else:
            apply_taylorseer_cache(transformer, config)
        registry = HookRegistry.check_if_exists_or_initialize(transformer)
        registry.invalidate_child_registries_cache()
        registry.register_hook(ContextHook(_managers(transformer)), CONTEXT_HOOK)
        yield method
    finally:
        _remove(transformer)
