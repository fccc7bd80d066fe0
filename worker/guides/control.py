"""ControlNet calls: the kind's pipeline made into the ControlNet pipeline of the same kind
(from_pipe: the same components plus the ControlNets, no weights copied), and the call's
arguments given each unit's maps (a map per row: each row's task its own), weight
(controlnet_conditioning_scale), step range (control_guidance_start/end) and mode.

  text to image    StableDiffusion[XL]ControlNetPipeline, FluxControlNetPipeline
  image to image   StableDiffusion[XL]ControlNetImg2ImgPipeline, FluxControlNetImg2ImgPipeline
  inpaint          StableDiffusion[XL]ControlNetInpaintPipeline, FluxControlNetInpaintPipeline

Always a Multi-ControlNet (MultiControlNetModel, FluxMultiControlNetModel), one net a unit,
so that one unit and several go the same way. An SDXL ControlNet Union (ControlNetUnionModel)
runs in StableDiffusionXLControlNetUnion[Img2Img|Inpaint]Pipeline instead, alone: the
task's units all use it (validation says so), each unit's map one of its conditions
(control_image, a list) with its mode (control_mode: the preprocessor's sdxl_union_type),
weight and step range; the Union mixes the conditions in one model.

Control modes (A1111's), per unit, on SD 1.x/SDXL: "balanced" is the plain ControlNet;
"prompt" (My prompt is more important) scales the ControlNet's residuals layer by layer
by 0.825 ** (n - i), sd-webui-controlnet's soft weights (the deepest untouched);
"control" (ControlNet is more important) is diffusers' guess mode for that unit: its
residuals scaled from 0.1 to 1 (logspace) and given to the conditional half of the batch
only, so the prompt's guidance cannot pull against them. FLUX: "balanced" only (its
pipelines have neither; validation refuses the others), and a ControlNet Union's mode is
the preprocessor's union_type (services/generation/preprocess.py; canny 0 when it has
none). An SDXL Union's units share one control mode (validation), applied to the Union's
residuals by a forward hook (UnionMode) as UnitNet applies a unit's: diffusers' guess mode
in the Union pipelines fails with classifier-free guidance."""
from __future__ import annotations

import inspect
import logging
import weakref

import numpy as np
import torch
from PIL import Image as PILImage

from worker.guides.loading import GuideError
from worker.pipelines import prompt_cache
from worker.pipelines.info import memory_mode

SOFT_WEIGHT = 0.825
# The ControlNet pipeline of each pipeline a kind calls (by class name).
GUIDED = {
    "StableDiffusionPipeline": "StableDiffusionControlNetPipeline",
    "StableDiffusionImg2ImgPipeline": "StableDiffusionControlNetImg2ImgPipeline",
    "StableDiffusionInpaintPipeline": "StableDiffusionControlNetInpaintPipeline",
    "StableDiffusionXLPipeline": "StableDiffusionXLControlNetPipeline",
    "StableDiffusionXLImg2ImgPipeline": "StableDiffusionXLControlNetImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline": "StableDiffusionXLControlNetInpaintPipeline",
    "FluxPipeline": "FluxControlNetPipeline",
    "FluxImg2ImgPipeline": "FluxControlNetImg2ImgPipeline",
    "FluxInpaintPipeline": "FluxControlNetInpaintPipeline",
}
# The SDXL ControlNet Union pipeline of each (ControlNetUnionModel).
UNION_GUIDED = {
    "StableDiffusionXLPipeline": "StableDiffusionXLControlNetUnionPipeline",
    "StableDiffusionXLImg2ImgPipeline": "StableDiffusionXLControlNetUnionImg2ImgPipeline",
    "StableDiffusionXLInpaintPipeline": "StableDiffusionXLControlNetUnionInpaintPipeline",
}
MOST_RUNNERS = 8  # ControlNet pipelines kept per loaded pipeline (each a set of nets and a kind)

# pipe -> {(class name, guide ids): (pipeline, unit nets)}; weak, freed with the pipeline.
_runners: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _SameUnitsForEveryPrompt(logging.Filter):
    """Drops the SD ControlNet pipelines' warning, at every call with a list of prompts,
    that a Multi-ControlNet's maps are "fixed across the prompts": each row has its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "ControlNets and you have passed" not in record.getMessage()


for _module in ("pipeline_controlnet", "pipeline_controlnet_img2img", "pipeline_controlnet_inpaint",
                "pipeline_controlnet_sd_xl", "pipeline_controlnet_sd_xl_img2img", "pipeline_controlnet_inpaint_sd_xl"):
    logging.getLogger(f"diffusers.pipelines.controlnet.{_module}").addFilter(_SameUnitsForEveryPrompt())


class UnitNet(torch.nn.Module):
    """One unit's ControlNet inside an SD Multi-ControlNet, with the unit's control mode
    (set before each call). The same ControlNet may serve two units, each its own mode."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.mode = "balanced"
        self.cfg = False  # the batch holds the unconditional half first (classifier-free guidance)

    @property
    def config(self):
        return self.net.config

    def forward(self, *args, **kwargs):
        kwargs["return_dict"] = False
        if self.mode == "control":
            kwargs["guess_mode"] = True  # (the ControlNet's own 0.1..1 scaling of its residuals)
        down, mid = self.net(*args, **kwargs)
        if self.mode == "prompt":
            down = _soft(down)
        elif self.mode == "control" and self.cfg:
            down = [_conditional_only(sample) for sample in down]
            mid = _conditional_only(mid)
        return down, mid


class UnionMode:
    """An SDXL ControlNet Union's control mode (set before each call), applied to its
    residuals by a forward hook: "prompt" as UnitNet's; "control" guess mode's 0.1..1
    scales, the unconditional half left out. One per Union (union_mode())."""

    def __init__(self, net):
        self.mode = "balanced"
        self.cfg = False
        net.register_forward_hook(self._moded)

    def _moded(self, module, args, output):
        if self.mode not in ("prompt", "control"):
            return None
        down, mid = output
        if self.mode == "prompt":
            return _soft(down), mid
        scales = torch.logspace(-1, 0, len(down) + 1, device=mid.device)
        down, mid = [sample * scale for sample, scale in zip(down, scales)], mid * scales[-1]
        if self.cfg:
            down, mid = [_conditional_only(sample) for sample in down], _conditional_only(mid)
        return down, mid


# ControlNetUnionModel -> its UnionMode; weak, freed with the net.
_union_modes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def union_mode(net) -> UnionMode:
    found = _union_modes.get(net)
    if found is None:
        found = _union_modes[net] = UnionMode(net)
    return found


def _soft(down) -> list:
    return [sample * SOFT_WEIGHT ** (len(down) - i) for i, sample in enumerate(down)]


def _conditional_only(sample: torch.Tensor) -> torch.Tensor:
    half = sample.shape[0] // 2
    return torch.cat([torch.zeros_like(sample[:half]), sample[half:]])


def guided_class(base, union: bool = False):
    import diffusers

    table = UNION_GUIDED if union else GUIDED
    name = table.get(type(base).__name__)
    if name is None:
        if type(base).__name__ in table.values():
            return type(base)
        return None
    return getattr(diffusers, name)


def is_flux(base) -> bool:
    return hasattr(base, "transformer")


def is_union(net) -> bool:
    """An SDXL ControlNet Union (FLUX's Unions are FluxControlNetModels)."""
    return type(net).__name__ == "ControlNetUnionModel"


def controlled(pipe, base, nets: list, guide_ids: tuple):
    """The ControlNet pipeline of `base`'s kind with `nets` (one a unit), and the SD
    units' UnitNets (None for FLUX; an SDXL Union's: [its UnionMode], all its units'
    nets being that one Union); made once per loaded pipeline, kind and nets. It
    follows `base`'s current scheduler."""
    union = is_union(nets[0])
    if union and any(net is not nets[0] for net in nets):
        raise ValueError("an SDXL ControlNet Union takes all of a call's units")
    cls = guided_class(base, union)
    if cls is None:
        raise ValueError(f"ControlNet units do not apply to a {type(base).__name__} call")
    made = _runners.setdefault(pipe, {})
    key = (cls.__name__, guide_ids[:1] if union else guide_ids)
    found = made.get(key)
    if found is None:
        from diffusers import FluxMultiControlNetModel, MultiControlNetModel

        if union:
            units, controlnet = [union_mode(nets[0])], nets[0]
        elif is_flux(base):
            units, controlnet = None, FluxMultiControlNetModel(nets)
        else:
            units = [UnitNet(net) for net in nets]
            controlnet = MultiControlNetModel(units)
        extra = {}
        if "requires_safety_checker" in inspect.signature(cls.__init__).parameters:
            extra["requires_safety_checker"] = False
        runner = cls.from_pipe(base, controlnet=controlnet, **extra)
        runner.set_progress_bar_config(disable=True)
        prompt_cache.share(pipe, runner)  # the same text encoders: the same cached prompts
        if memory_mode(pipe) == "low" and pipe.device.type == "cuda":  # pragma: no cover - GPU only
            runner.enable_model_cpu_offload(device=pipe.device)
        while len(made) >= MOST_RUNNERS:
            made.pop(next(iter(made)))
        found = made[key] = (runner, units)
    runner, units = found
    if runner.scheduler is not base.scheduler:
        runner.scheduler = base.scheduler
    return runner, units


def batched(pictures: list) -> torch.Tensor:
    """The rows' maps (RGB pictures, or H×W×3 float arrays: the inpaint condition) as one
    float tensor (rows, 3, H, W), pictures scaled to 0..1."""
    arrays = [np.asarray(p, dtype=np.float32) / 255.0 if isinstance(p, PILImage.Image) else np.asarray(p, np.float32)
              for p in pictures]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def takes(runner, name: str) -> bool:
    return name in inspect.signature(type(runner).__call__).parameters


def arguments(runner, units_nets, arguments: dict, units: list[dict], maps: list[list], union_types: list,
              guidance: float) -> dict:
    """The call's arguments with the units': maps[r][u] is row r's map of unit u;
    union_types[u] the unit's mode on a Union (None on any other ControlNet)."""
    out = {key: value for key, value in arguments.items() if takes(runner, key)}
    flux = is_flux(runner)
    union = type(runner).__name__ in UNION_GUIDED.values()
    out["controlnet_conditioning_scale"] = [float(unit["weight"]) for unit in units]
    out["control_guidance_start"] = [float(unit["start"]) for unit in units]
    out["control_guidance_end"] = [float(unit["end"]) for unit in units]
    # One batch a unit, each row its own map: a tensor (rows, 3, H, W) in 0..1 (the SD
    # pipelines but text to image take no list of the rows' pictures per unit).
    batches = [batched([row[u] for row in maps]) for u in range(len(units))]
    if flux:
        out["control_image"] = batches
        out["control_mode"] = list(union_types)
    elif union:
        _check_modes(runner.controlnet.config.num_control_type, units, union_types)
        out["control_image"], out["control_mode"] = batches, list(union_types)
        [state] = units_nets
        state.mode, state.cfg = units[0].get("control_mode") or "balanced", float(guidance) > 1.0
    else:
        out["control_image" if takes(runner, "control_image") else "image"] = batches
        cfg = float(guidance) > 1.0
        for net, unit in zip(units_nets, units):
            net.mode, net.cfg = unit.get("control_mode") or "balanced", cfg
    return out


def _check_modes(modes: int, units: list[dict], union_types: list) -> None:
    """GuideError when a unit's mode is not one the SDXL Union has (xinsir's first Union has
    six: no tile, no repaint)."""
    from services.generation.preprocess import SDXL_UNION_MODES  # (opencv: loaded when a unit needs it)

    for unit, mode in zip(units, union_types):
        if mode >= modes:
            raise GuideError(f"The ControlNet Union {unit.get('model_name') or unit['model']} has {modes} control "
                             f"modes, not the {unit['preprocessor']} preprocessor's ({mode}, "
                             f"{SDXL_UNION_MODES[mode]}): xinsir's ProMax has all eight; choose another "
                             "preprocessor or ControlNet.")
