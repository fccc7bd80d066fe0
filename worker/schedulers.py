"""The diffusers scheduler behind each sampler name (services/generation/schedulers.py).

SCHEDULER_SETTINGS maps every key to (diffusers class, extra config), following the
meanings AUTOMATIC1111's web UI gives these names (the "A1111/k-diffusion -> diffusers"
table in diffusers' scheduler docs). `apply_scheduler(pipe, name)` gives a pipeline one
of them:

* each scheduler is made once per pipeline, from the model's ORIGINAL scheduler config
  (not from whatever was swapped in last, so settings never drift), and then reused: a
  pipeline call resets a scheduler's state in set_timesteps;
* only the config keys the class accepts are passed (no "config attributes were not
  expected" warnings); the model's prediction_type (v-prediction SD 2.x),
  timestep_spacing, betas and so on carry over, and where the config lacks them the
  SD 1.x/2.x values of clip_sample, set_alpha_to_one and skip_prk_steps are used (the
  class defaults differ: DDIM would clip samples, PNDM would run PRK steps);
* UNet models (SD 1.x/2.x, SDXL) take the UNet schedulers, flow-matching models (SD 3,
  FLUX) only flow_euler, which keeps the model's own flow config (shift,
  use_dynamic_shifting, ...): a mismatch raises ValueError (the web tier refuses such
  requests already; this is the worker's guard).

DPM++ SDE draws its noise from a Brownian tree; diffusers seeds that tree from the
global torch RNG unless told otherwise, so the same seed would give different pictures.
Here the tree is seeded from the `seed`/`generator` given to apply_scheduler or, when
none is given, from the generation's own starting latents (which the request's
generator made), so the same seed always gives the same pixels.

Kept free of worker/pipelines/ (which imports this module).
"""
from __future__ import annotations

import hashlib
import inspect
import math
import weakref
from typing import Any

import numpy as np
import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    DPMSolverSDEScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    FlowMatchEulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
    UniPCMultistepScheduler,
)
from diffusers.schedulers.scheduling_dpmsolver_sde import BrownianTreeNoiseSampler

from services.generation.families import PIPELINE_FAMILIES
from services.generation.schedulers import DEFAULT_SCHEDULER, FLOW_SCHEDULERS, SCHEDULERS, UNET_SCHEDULERS

__all__ = ["SCHEDULER_SETTINGS", "SeededDPMSolverSDEScheduler", "EulerAncestralKarrasScheduler",
           "EulerAncestralExponentialScheduler", "apply_scheduler", "is_flow_model"]


class SeededDPMSolverSDEScheduler(DPMSolverSDEScheduler):
    """DPMSolverSDEScheduler whose Brownian-tree noise is reproducible.

    With `noise_sampler_seed` set (apply_scheduler sets it from the request's seed) that
    seed is used, as in diffusers. With it None, diffusers would draw a seed from the
    global torch RNG; this class instead derives one seed per sample from the first
    step's latents, which the request's generator made, so a run is a function of its
    seed either way. A new tree is made on every call (set_timesteps drops the old one).
    """

    def step(self, model_output, timestep, sample, *args, **kwargs):
        if self.noise_sampler is None:
            seeds = self.noise_sampler_seed
            if seeds is None:
                seeds = _seeds_from_latents(sample)
            sigmas = self.sigmas
            min_sigma, max_sigma = sigmas[sigmas > 0].min().item(), sigmas.max().item()
            # A hair wider than the schedule: step() asks for sigmas recomputed as
            # exp(-(-log sigma)), which can fall a rounding error outside it (torchsde
            # then warns "Should have ta>=t0").
            self.noise_sampler = BrownianTreeNoiseSampler(sample, min_sigma * (1 - 1e-4), max_sigma * (1 + 1e-4),
                                                          seeds)
        return super().step(model_output, timestep, sample, *args, **kwargs)


class EulerAncestralKarrasScheduler(EulerAncestralDiscreteScheduler):
    """Euler ancestral on the Karras noise schedule, as A1111's "Euler a" + "Karras".

    diffusers' EulerAncestralDiscreteScheduler has no use_karras_sigmas (Euler and the
    DPM++ schedulers do): after its own set_timesteps, the sigmas are redrawn between the
    same highest and lowest ones on the schedule (k-diffusion's formulas, as
    EulerDiscreteScheduler does it) and each sigma's timestep interpolated back from the
    model's training schedule. step() and scale_model_input() read self.sigmas, so the
    ancestral steps follow the new schedule. No __init__ of its own: the config is the
    parent's (apply_scheduler passes only the keys it accepts)."""

    sigma_schedule = "karras"

    def set_timesteps(self, num_inference_steps: int, device=None):
        super().set_timesteps(num_inference_steps, device)
        plain = self.sigmas[:-1].numpy().astype(np.float64)  # (the last one is the final 0)
        high, low = float(plain[0]), float(plain[-1])
        if self.sigma_schedule == "karras":
            rho = 7.0
            ramp = np.linspace(0, 1, num_inference_steps)
            sigmas = (high ** (1 / rho) + ramp * (low ** (1 / rho) - high ** (1 / rho))) ** rho
        else:
            sigmas = np.exp(np.linspace(math.log(high), math.log(low), num_inference_steps))
        alphas = self.alphas_cumprod.numpy().astype(np.float64)
        log_sigmas = np.log(((1 - alphas) / alphas) ** 0.5)  # rises with the timestep
        timesteps = np.interp(np.log(sigmas), log_sigmas, np.arange(len(log_sigmas)))
        self.sigmas = torch.from_numpy(np.concatenate([sigmas, [0.0]]).astype(np.float32))  # kept on the CPU
        self.timesteps = torch.from_numpy(timesteps.astype(np.float32)).to(device=device)
        self._step_index = None
        self._begin_index = None


class EulerAncestralExponentialScheduler(EulerAncestralKarrasScheduler):
    """Euler ancestral on the exponential noise schedule (A1111's "Euler a" + "Exponential")."""

    sigma_schedule = "exponential"


def _seeds_from_latents(sample: torch.Tensor) -> list[int]:
    """One 63-bit seed per sample of a batch, from a few of its values (a tiny copy)."""
    head = sample.detach().reshape(sample.shape[0], -1)[:, :64].to(device="cpu", dtype=torch.float32)
    return [int.from_bytes(hashlib.blake2b(row.numpy().tobytes(), digest_size=8).digest(), "little") >> 1
            for row in head]


# key -> (class, config that overrides the model's). The explicit False/"dpmsolver++"
# values matter when the model's own scheduler config says otherwise (a model shipped
# with a Karras or SDE DPM++ scheduler, say).
_NO_KARRAS = {"use_karras_sigmas": False, "use_exponential_sigmas": False, "use_beta_sigmas": False}
_KARRAS = {**_NO_KARRAS, "use_karras_sigmas": True}
_EXPONENTIAL = {**_NO_KARRAS, "use_exponential_sigmas": True}
_DPMPP_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2}
SCHEDULER_SETTINGS: dict[str, tuple[type, dict[str, Any]]] = {
    "euler": (EulerDiscreteScheduler, dict(_NO_KARRAS)),
    "euler_karras": (EulerDiscreteScheduler, dict(_KARRAS)),
    "euler_exponential": (EulerDiscreteScheduler, dict(_EXPONENTIAL)),
    "euler_a": (EulerAncestralDiscreteScheduler, {}),
    "euler_a_karras": (EulerAncestralKarrasScheduler, {}),
    "euler_a_exponential": (EulerAncestralExponentialScheduler, {}),
    "dpmpp_2m": (DPMSolverMultistepScheduler, {**_DPMPP_2M, **_NO_KARRAS}),
    "dpmpp_2m_karras": (DPMSolverMultistepScheduler, {**_DPMPP_2M, **_KARRAS}),
    "dpmpp_2m_exponential": (DPMSolverMultistepScheduler, {**_DPMPP_2M, **_EXPONENTIAL}),
    "dpmpp_sde_karras": (SeededDPMSolverSDEScheduler, dict(_KARRAS)),
    "dpmpp_sde_exponential": (SeededDPMSolverSDEScheduler, dict(_EXPONENTIAL)),
    "ddim": (DDIMScheduler, {}),
    "unipc": (UniPCMultistepScheduler, dict(_NO_KARRAS)),
    "unipc_karras": (UniPCMultistepScheduler, dict(_KARRAS)),
    "unipc_exponential": (UniPCMultistepScheduler, dict(_EXPONENTIAL)),
    "lcm": (LCMScheduler, {}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": True}),
    "flow_euler": (FlowMatchEulerDiscreteScheduler, {}),
}
assert SCHEDULER_SETTINGS.keys() == SCHEDULERS.keys(), \
    "services/generation/schedulers.py and worker/schedulers.py disagree"

# What SD 1.x/2.x scheduler configs say; used only where a model's config lacks the key.
_SD_SCHEDULER_DEFAULTS = {"clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True}

FLOW_FAMILIES = ("sd3", "flux", "chroma", "zimage", "flux2", "qwen")

# pipe -> {"base": the model's own scheduler, name: scheduler instance}; weak so that a
# pipeline the cache lets go of is freed with its schedulers.
_schedulers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _accepted(cls) -> set[str]:
    keys: set[str] = set()
    for klass in cls.__mro__:  # a subclass without its own __init__ takes its parent's keys
        init = klass.__dict__.get("__init__")
        if init is not None:
            keys.update(inspect.signature(init).parameters)
            break
    keys.discard("self")
    return keys


def _is_flow_scheduler(scheduler) -> bool:
    config = getattr(scheduler, "config", {})
    return type(scheduler).__name__.startswith("FlowMatch") or ("shift" in config and "beta_start" not in config)


def is_flow_model(pipe, base_scheduler=None) -> bool:
    """True for flow-matching pipelines (SD 3, FLUX), False for UNet ones."""
    family = PIPELINE_FAMILIES.get(type(pipe).__name__)
    if family is not None:
        return family in FLOW_FAMILIES
    if getattr(pipe, "unet", None) is not None:
        return False
    if getattr(pipe, "transformer", None) is not None:
        return True
    return _is_flow_scheduler(base_scheduler if base_scheduler is not None else pipe.scheduler)


def _make_scheduler(name: str, base):
    cls, extra = SCHEDULER_SETTINGS[name]
    accepted = _accepted(cls)
    base_config = dict(base.config)
    if name in FLOW_SCHEDULERS:
        config = {**base_config, **extra}
    else:
        config = {**_SD_SCHEDULER_DEFAULTS, **base_config, **extra}
    # The model's own scheduler, where it already is this one with these settings.
    if type(base) is cls and all(base_config.get(k) == v for k, v in extra.items() if k in accepted):
        return base
    # Only the keys this class takes: keeps diffusers from warning about the rest.
    return cls.from_config({k: v for k, v in config.items() if k in accepted})


def _seed_of(seed, generator):
    """The noise-sampler seed(s) for a request: an int, a list (one per generator), or None."""
    if seed is not None:
        return [int(s) for s in seed] if isinstance(seed, (list, tuple)) else int(seed)
    if generator is None:
        return None
    if isinstance(generator, (list, tuple)):
        return [int(g.initial_seed()) for g in generator]
    return int(generator.initial_seed())


def apply_scheduler(pipe, name: str | None = None, *, seed: int | list[int] | None = None, generator=None):
    """Give `pipe` the scheduler called `name` (a key of SCHEDULERS) and return it.

    `seed` or `generator` (a torch.Generator or a list of them, as passed to the
    pipeline) seeds DPM++ SDE's noise; without them the noise is derived from the
    starting latents, which is just as reproducible. Other schedulers ignore them.
    Raises ValueError for an unknown name or one that does not fit the model (a UNet
    scheduler for SD 3/FLUX, flow_euler for SD 1.x/2.x/SDXL)."""
    name = name or DEFAULT_SCHEDULER
    if name not in SCHEDULER_SETTINGS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}.")
    made = _schedulers.get(pipe)
    if made is None:
        made = _schedulers[pipe] = {"base": pipe.scheduler}
    base = made["base"]
    flow = is_flow_model(pipe, base)
    allowed = FLOW_SCHEDULERS if flow else UNET_SCHEDULERS
    if name not in allowed:
        kind = "a flow-matching model (SD 3 / FLUX)" if flow else "a UNet model (SD 1.x/2.x, SDXL)"
        raise ValueError(f"The {SCHEDULERS[name]} scheduler ({name!r}) does not fit {kind}; "
                         f"choose one of {', '.join(allowed)}.")
    scheduler = made.get(name)
    if scheduler is None:
        scheduler = made[name] = _make_scheduler(name, base)
    if isinstance(scheduler, DPMSolverSDEScheduler):
        # Set on every call, so one request's seed never carries over to the next.
        scheduler.noise_sampler_seed = _seed_of(seed, generator)
        scheduler.noise_sampler = None
    if pipe.scheduler is not scheduler:
        pipe.scheduler = scheduler
    return scheduler
