"""Guides (issue 25): ControlNet units and reference images, inputs any task kind may take.

Render asks this package twice: once per task before its calls (inputs: each unit's map
at the task's size, each reference's picture) and once per call, after the kind built it
(guide_call: the kind's runner and arguments made into the guided ones). The batch key
holds every unit's and reference's settings (batch_key), so a call's rows share them;
each row has its own maps.

  loading.py     guide models by catalog id: demo folders, <models>/controlnet/ folders and
                 single files, <models>/ipadapter/ files (image encoder beside) and FLUX
                 Redux folders; cached per loaded pipeline
  maps.py        a unit's map: preprocess.run (as the detect route), fitted by resize mode
  control.py     the ControlNet pipeline of the kind (from_pipe), units' weights, step
                 ranges, control modes and per-row maps
  references.py  IP-Adapter loaded for one call and unloaded after it; FLUX Redux tokens

What each family takes (validation, services/generation/guides.py, refuses the rest):
  - ControlNet on SD 1.x, SDXL and FLUX.1: text to image, image to image and inpaint.
    Control modes balanced / prompt / control on SD 1.x and SDXL; FLUX.1 takes
    "balanced" only (diffusers' FLUX ControlNet pipelines have no guess mode and no
    per-layer weights). A FLUX ControlNet Union's mode is the preprocessor's union_type.
    An SDXL ControlNet Union (ControlNetUnionModel) takes all of a task's units in one
    model, each its mode (the preprocessor's sdxl_union_type), weight and step range,
    sharing one control mode (control.py). Hires fix and upscale tasks take no units.
  - IP-Adapter references on SD 1.x and SDXL (every kind above) and FLUX.1 (text to
    image, image to image, inpaint; not together with a FLUX ControlNet on image to image
    or inpaint, whose diffusers pipelines take no IP-Adapter). FLUX Redux with any FLUX
    kind (untested with real Redux weights; a tiny Redux-shaped model is tested).
A unit of weight 0 (or an empty step range) and a reference of weight 0 are left out of
the call: the pixels are those of a task without them."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from worker.guides import control, loading, maps, references
from worker.guides.loading import GuideError

__all__ = ["GuideError", "TaskGuides", "active_references", "active_units", "batch_key", "guide_call", "inputs"]

UNIT_KEYS = ("model", "preprocessor", "weight", "start", "end", "control_mode", "resize_mode", "processor_res",
             "threshold_a", "threshold_b", "pixel_perfect")


@dataclass
class TaskGuides:
    """What a task's guides read once before its calls."""

    maps: list = field(default_factory=list)  # per active unit: its map at the task's size
    references: list = field(default_factory=list)  # per active reference: its picture (RGB)


def active_units(task) -> list[dict]:
    """The task's ControlNet units that act: weight above 0 and a step range."""
    return [unit for unit in getattr(task, "control", None) or ()
            if float(unit.get("weight", 1.0)) > 0 and float(unit.get("start", 0.0)) < float(unit.get("end", 1.0))]


def active_references(task) -> list[dict]:
    return [ref for ref in getattr(task, "reference_images", None) or () if float(ref.get("weight", 1.0)) > 0]


def batch_key(task) -> tuple:
    """What must be equal for tasks with guides to share a call: every unit's settings (not
    its picture: each row has its own map) and every reference's model, weight and picture."""
    units = tuple(tuple(_plain(unit.get(key)) for key in UNIT_KEYS) for unit in getattr(task, "control", None) or ())
    refs = tuple((ref.get("model"), _plain(ref.get("weight")), ref.get("image"))
                 for ref in getattr(task, "reference_images", None) or ())
    return (units, refs) if units or refs else ()


def _plain(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def inputs(task, kind_input, models_path: Path, device: str | None = None) -> TaskGuides | None:
    """The task's maps and reference pictures (None: it has no guides that act).
    kind_input: what the kind's inputs() gave (the inpaint kind's canvas and mask serve
    the "inpaint" preprocessor)."""
    units, refs = active_units(task), active_references(task)
    if not units and not refs:
        return None
    made = TaskGuides()
    for unit in units:
        if unit.get("preprocessor") == "inpaint":
            if getattr(kind_input, "canvas", None) is None:
                raise GuideError("The inpaint preprocessor needs the task's picture and mask.")
            made.maps.append(maps.inpaint_map(kind_input.canvas, kind_input.mask))
        else:
            made.maps.append(maps.control_map(maps.picture_of(task, unit["image"]), unit, int(task.width),
                                              int(task.height), Path(models_path), device))
    made.references = [maps.picture_of(task, ref["image"]) for ref in refs]
    return made


def pipeline_of(runner):
    """The diffusers pipeline a kind's runner calls: itself, or the one a wrapper of the
    kind holds as .runner (the inpaint kind's MultipliedNoise)."""
    if hasattr(runner, "components"):
        return runner
    inner = getattr(runner, "runner", None)
    if inner is not None and hasattr(inner, "components"):
        return inner
    raise GuideError("Guides do not apply to this kind of task.")


def _with_pipeline(runner, pipeline):
    if hasattr(runner, "components"):
        return pipeline
    runner.runner = pipeline
    return runner


def guide_call(pipe, head, rows: list, runner, arguments: dict, prepared: dict, kind_inputs: dict,
               models_path: Path, follow_links: bool = False):
    """The kind's call (runner, arguments) made into the guided one for `rows` (their tasks
    share head's guides: batch_key). prepared: task id -> inputs(); kind_inputs: task id ->
    the kind's inputs(). Unchanged for a batch without guides that act."""
    units, refs = active_units(head), active_references(head)
    if not units and not refs:
        return runner, arguments
    base = pipeline_of(runner)
    if units:
        found = [loading.guide(unit["model"], unit.get("model_name")) for unit in units]
        flux = control.is_flux(base)
        fused = next((guide for guide in found if guide.architecture == "union" and not flux), None)
        if fused is not None and any(guide.id != fused.id for guide in found):
            raise GuideError(f"{fused.name} is a ControlNet Union, which takes all of a task's units: give every "
                             "unit that ControlNet, or none.")
        nets = [loading.controlnet(pipe, guide, models_path, follow_links) for guide in found]
        guided, unit_nets = control.controlled(pipe, base, nets, tuple(guide.id for guide in found))
        union_types = [_union_type(unit, guide, models_path, flux) for unit, guide in zip(units, found)]
        row_maps = [[_condition(made, kind_inputs.get(row.task.id), arguments, flux or fused is not None)
                     for made in prepared[row.task.id].maps] for row in rows]
        arguments = control.arguments(guided, unit_nets, arguments, units, row_maps, union_types, head.guidance)
        runner, base = _with_pipeline(runner, guided), guided
    if refs:
        found = [loading.guide(ref["model"], ref.get("model_name")) for ref in refs]
        pictures = prepared[head.id].references
        weights = [float(ref["weight"]) for ref in refs]
        redux = [i for i, guide in enumerate(found) if guide.architecture == "redux"]
        if redux:
            models = [loading.redux(pipe, found[i], models_path, follow_links) for i in redux]
            arguments = references.redux_arguments(base, arguments, models, [weights[i] for i in redux],
                                                   [pictures[i] for i in redux])
        adapters = [i for i, guide in enumerate(found) if guide.architecture != "redux"]
        if adapters:
            if not hasattr(base, "load_ip_adapter"):
                raise GuideError("Reference images cannot be used with this kind of task on this model "
                                 "(with a FLUX ControlNet, only text to image takes them).")
            loaded = [loading.ip_adapter(pipe, found[i], models_path, follow_links) for i in adapters]
            runner = references.WithIPAdapters(runner, base, loaded, [weights[i] for i in adapters],
                                               [pictures[i] for i in adapters])
    return runner, arguments


def _condition(made, kind_input, arguments: dict, rgb: bool):
    """A row's map as its call takes it (the inpaint kind's "only masked" crop applied;
    rgb: an inpaint map as RGB, the area black, as FLUX's pipelines and an SDXL Union's
    repaint mode take it)."""
    box = getattr(kind_input, "box", None)
    size = (int(arguments["width"]), int(arguments["height"])) if box is not None else None
    return maps.as_condition(made, box, size, minus_one=not rgb)


def _union_type(unit: dict, guide, models_path: Path, flux: bool):
    """A ControlNet Union's mode for the unit's preprocessor: FLUX's union_type (canny's 0
    when it has none), SDXL's sdxl_union_type (the lines' when it has none); None for any
    other ControlNet."""
    if guide.architecture != "union":
        return None
    from services.generation import preprocess

    info = preprocess.find(unit.get("preprocessor") or "none", models_path) or {}
    value = info.get("union_type" if flux else "sdxl_union_type")
    if value is None:
        return 0 if flux else preprocess.SDXL_UNION_LINES
    return int(value)
