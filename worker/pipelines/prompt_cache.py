"""The prompt-embedding cache: the same prompt on the same loaded model reuses its
text-encoder output within a worker process (a class that submits one prompt many
times, an A1111 client that resubmits), up to DAYDREAM_PROMPT_CACHE entries, the least
recently used going first.

It works on every family the same way: each pipeline the worker calls (the loaded one,
and those made from its components: image-to-image, inpaint, ControlNet) gets its
`encode_prompt` wrapped (install, share), which every diffusers pipeline calls from
__call__. The key is the model (one token a load) and the pipeline class, every
argument (strings, numbers, bools, None, devices, lists and tuples of those), and what
else changes the encoders' output: their device and dtype, and the LoRA adapters active
on them with their scales. A call with any other argument (a tensor: prompt_embeds given;
a picture: Qwen-Image-Edit's image) goes straight through. The cache hands out copies, so
a pipeline that edits its embeddings in place never edits a cached entry.

Cleared for a model when it is unloaded (cache.PipelineCache.unload) or when a LoRA is
loaded or deleted on it (loras.apply_loras): the adapter names in the key stay the same
when a LoRA's file changes. Hits and misses are counted for GET /metrics
(worker/metrics.py reports them after each job)."""
from __future__ import annotations

import inspect
import itertools
import threading
import weakref
from collections import OrderedDict

import torch

DEFAULT_ENTRIES = 64
# Entries also stay under this many bytes in all (a T5 or Qwen prompt is a few MB, on
# the GPU): the oldest go first, the newest entry always stays.
MAX_BYTES = 256 * 2**20
TEXT_ENCODERS = ("text_encoder", "text_encoder_2", "text_encoder_3")


class Uncacheable(Exception):
    """An argument the key cannot hold (a tensor, a picture): the call goes through."""


class PromptCache:
    """The LRU of one worker process: key -> (the encoders' output, its bytes)."""

    def __init__(self, entries: int = DEFAULT_ENTRIES, max_bytes: int = MAX_BYTES):
        self.entries = entries
        self.max_bytes = max_bytes
        self._store: OrderedDict = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.bypassed = 0
        self._reported = (0, 0)  # (hits, misses) already counted into /metrics

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key):
        with self._lock:
            found = self._store.get(key)
            if found is None:
                return None
            self._store.move_to_end(key)
            return found[0]

    def put(self, key, value) -> None:
        if self.entries <= 0:
            return
        size = _bytes(value)
        with self._lock:
            old = self._store.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._store[key] = (value, size)
            self._bytes += size
            while len(self._store) > self.entries or (self._bytes > self.max_bytes and len(self._store) > 1):
                _, (_, dropped) = self._store.popitem(last=False)
                self._bytes -= dropped

    def forget(self, model) -> None:
        """Drop the entries of one model (its token)."""
        with self._lock:
            for key in [k for k in self._store if k[0] == model]:
                self._bytes -= self._store.pop(key)[1]

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._bytes = 0

    def unreported(self) -> tuple[int, int]:
        """Hits and misses not yet counted into /metrics (mark_reported after they are)."""
        return self.hits - self._reported[0], self.misses - self._reported[1]

    def mark_reported(self, counts: tuple[int, int]) -> None:
        self._reported = (self._reported[0] + counts[0], self._reported[1] + counts[1])


# The worker's cache (one a process), and what each wrapped pipeline belongs to.
cache = PromptCache()
_models: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pipe -> model token
_tokens = itertools.count(1)
_signatures: dict[type, inspect.Signature] = {}


def configure(entries: int) -> None:
    """DAYDREAM_PROMPT_CACHE: the most entries kept (0: off; install then wraps nothing)."""
    cache.entries = max(0, int(entries))
    if cache.entries == 0:
        cache.clear()


def install(pipe, name: str = "") -> bool:
    """Wrap the loaded pipeline's encode_prompt with the cache, as a new model (its own
    token: a reload never meets the entries of the load before). False when the cache is
    off or the pipeline has no encode_prompt."""
    if cache.entries <= 0 or not callable(getattr(type(pipe), "encode_prompt", None)):
        return False
    _wrap(pipe, (name, next(_tokens)))
    return True


def share(base, other) -> bool:
    """Wrap `other`, a pipeline made from `base`'s components (from_pipe), as the same
    model as `base` (nothing when `base` is not wrapped)."""
    model = _models.get(base)
    if model is None or not callable(getattr(type(other), "encode_prompt", None)):
        return False
    if _models.get(other) != model:
        _wrap(other, model)
    return True


def forget(pipe) -> None:
    """Drop the entries of `pipe`'s model: it is unloaded, or its LoRAs changed."""
    model = _models.get(pipe)
    if model is not None:
        cache.forget(model)


def model_of(pipe):
    return _models.get(pipe)


def _wrap(pipe, model) -> None:
    function = type(pipe).encode_prompt
    signature = _signatures.get(type(pipe))
    if signature is None:
        signature = _signatures[type(pipe)] = inspect.signature(function)
    owner = weakref.ref(pipe)  # (no cycle: the pipeline is freed when the cache lets go)

    def encode_prompt(*args, **kwargs):
        this = owner()
        try:
            key = _key(this, model, signature, args, kwargs) if cache.entries > 0 else None
        except Uncacheable:
            key = None
        if key is None:
            cache.bypassed += 1
            return function(this, *args, **kwargs)
        found = cache.get(key)
        if found is not None:
            cache.hits += 1
            return _copy(found)
        cache.misses += 1
        result = function(this, *args, **kwargs)
        stored = _detached(result)
        cache.put(key, stored)
        return _copy(stored)

    encode_prompt.__wrapped__ = function
    pipe.encode_prompt = encode_prompt
    _models[pipe] = model


# --- the key ----------------------------------------------------------------------------

def _key(pipe, model, signature, args, kwargs) -> tuple:
    bound = signature.bind(pipe, *args, **kwargs)
    bound.apply_defaults()
    arguments = bound.arguments
    arguments.pop(next(iter(signature.parameters)))  # self
    frozen = tuple(sorted((name, _frozen(value)) for name, value in arguments.items()))
    device = arguments.get("device")
    where = str(pipe._execution_device) if device is None else None
    return (model, type(pipe).__qualname__, frozen, where, encoders_state(pipe))


def _frozen(value):
    if value is None or type(value) is str:
        return value
    if type(value) in (bool, int, float):
        return (type(value).__name__, value)  # (1, 1.0 and True are equal keys otherwise)
    if isinstance(value, (torch.device, torch.dtype)):
        return str(value)
    if type(value) in (list, tuple):
        return (type(value).__name__, tuple(_frozen(v) for v in value))
    raise Uncacheable(type(value).__name__)


def encoders_state(pipe) -> tuple:
    """Each text encoder's device, dtype and active LoRA adapters with their scales."""
    state = []
    for name in TEXT_ENCODERS:
        encoder = getattr(pipe, name, None)
        if isinstance(encoder, torch.nn.Module):
            state.append((name, str(getattr(encoder, "device", "")), str(getattr(encoder, "dtype", "")),
                          lora_state(encoder)))
    return tuple(state)


def lora_state(module: torch.nn.Module) -> tuple:
    """The adapters active on `module`'s peft layers and their scales (as
    set_adapters/set_scale and disable_lora leave them); () without any."""
    if not getattr(module, "_hf_peft_config_loaded", False) and not getattr(module, "peft_config", None):
        return ()
    from peft.tuners.tuners_utils import BaseTunerLayer

    active = set()
    for layer in module.modules():
        if not isinstance(layer, BaseTunerLayer):
            continue
        if layer.merged:
            active.add(("merged", tuple(layer.merged_adapters)))
        if layer.disable_adapters:
            continue
        scaling = getattr(layer, "scaling", {})
        for adapter in layer.active_adapters:
            active.add((adapter, float(scaling.get(adapter, 1.0))))
    return tuple(sorted(active, key=repr))


# --- copies ------------------------------------------------------------------------------

def _detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(v) for v in value)
    return value


def _copy(value):
    """A copy the pipeline may edit in place (tensors cloned, lists and tuples rebuilt)."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def _bytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(_bytes(v) for v in value)
    return 0
