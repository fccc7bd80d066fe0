"""Fast mode (issue 28): diffusers' step caches on a model's transformer, per family.

What fast mode does for each family, without torch (the worker's
worker/pipelines/fast.py turns a Method into diffusers' cache config):

- FLUX.1 and Qwen-Image: first-block cache. Each step runs the first transformer block;
  when its output changed less than `threshold` (relative) since the last full step, the
  other blocks are skipped and their last residual is reused.
- FLUX.2, Z-Image and SD 3: TaylorSeer. After `warmup` full steps, the attention layers
  are computed every `interval` steps and predicted (a Taylor expansion of their last
  outputs) in between. diffusers' first-block cache does not fit their blocks (FLUX.2's
  single blocks and SD 3's last joint block return other shapes than their first block;
  Z-Image's blocks name their input otherwise).
- Chroma: none. Its pipeline calls the transformer twice a step (with and without the
  prompt) without telling a cache which call is which, so a cache would mix them.
- SD 1.x, 2.x and SDXL (UNets): none; diffusers' step caches are for transformers.

A model's fast_mode (models.AiModel, staff set it on Admin -> Models) says whether its
tasks run fast: "off" (never; a task asking for it is refused), "on" (always) or
"optional" (the task's `fast`, default off). The task records what it ran
(models.Task.fast) and its infotext says "Fast mode: <method>"."""
from __future__ import annotations

from dataclasses import dataclass

from services.core.errors import ValidationError

MODES = ("off", "on", "optional")
INFOTEXT_KEY = "Fast mode"
FIRST_BLOCK = "first-block cache"
TAYLORSEER = "TaylorSeer"

TEXTS = {
    FIRST_BLOCK: ("skips most of the denoiser on steps whose first block changed little; "
                  "faster, slightly different pictures"),
    TAYLORSEER: ("computes the denoiser's attention every other step after the first few and predicts "
                 "it in between; faster, slightly different pictures"),
}


@dataclass(frozen=True)
class Method:
    name: str  # FIRST_BLOCK or TAYLORSEER
    threshold: float = 0.0  # first-block cache: the relative change under which blocks are skipped
    # The tiny random-weight demo models change far more per step than trained ones: their
    # threshold is set so that the demo shows steps skipped.
    demo_threshold: float = 0.0
    interval: int = 2  # TaylorSeer: a full step every `interval` steps after the warm-up
    warmup: int = 2  # TaylorSeer: full steps first
    # TaylorSeer: the attention modules it caches (regular expressions on module names);
    # () takes diffusers' default (the attention of transformer_blocks and single_transformer_blocks).
    modules: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return TEXTS[self.name]


# FLUX.1's threshold: ParaAttention's suggestion for FLUX.1 dev (0.08-0.12); Qwen-Image's
# the same. TaylorSeer: a full step every other step after two, the settings that
# diffusers' docs show scaled to 4-50 step models.
METHODS: dict[str, Method] = {
    "flux": Method(FIRST_BLOCK, threshold=0.12, demo_threshold=0.6),
    "qwen": Method(FIRST_BLOCK, threshold=0.12, demo_threshold=0.6),
    "flux2": Method(TAYLORSEER),
    "zimage": Method(TAYLORSEER, modules=(r"layers\.\d+\.attention",)),
    "sd3": Method(TAYLORSEER),
}
UNAVAILABLE_TEXT = "not available for this model's family (diffusers' step caches are for some transformers)"


def method_for(family: str | None) -> Method | None:
    return METHODS.get(family or "")


def available(family: str | None) -> bool:
    return family in METHODS


def card(family: str | None) -> dict:
    """The card's "fast": what fast mode does for a model of `family`."""
    method = method_for(family)
    if method is None:
        return {"available": False, "method": None, "text": UNAVAILABLE_TEXT}
    return {"available": True, "method": method.name, "text": method.text}


def check_mode(family: str | None, value) -> str:
    """A staff member's fast_mode for a model of `family` (ValidationError naming fast_mode)."""
    if not isinstance(value, str) or value not in MODES:
        raise ValidationError("fast_mode", "must be one of " + ", ".join(MODES))
    if value != "off" and not available(family):
        raise ValidationError("fast_mode", "this model's family has no fast mode; only off")
    return value


def choose(mode: str | None, family: str | None, asked) -> tuple[bool, str | None]:
    """Whether a task runs fast: (fast, error). asked: the task's `fast` (None: not said).
    "off" refuses a task asking for it; "on" runs every task fast (whatever it says: the
    model is always fast); "optional": the task's choice, default off."""
    if asked is not None and not isinstance(asked, bool):
        return False, "must be true or false"
    mode = mode if mode in MODES else "off"
    if not available(family):
        mode = "off"
    if mode == "off":
        if asked:
            return False, "this model has no fast mode (staff may turn it on in Admin → Models)"
        return False, None
    if mode == "on":
        return True, None
    return bool(asked), None


def infotext_value(family: str | None) -> str | None:
    """What the infotext's "Fast mode" says for a fast task of `family`."""
    method = method_for(family)
    return method.name if method else None
