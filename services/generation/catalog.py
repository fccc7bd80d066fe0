"""What a task may ask for: the models and LoRAs staff enabled, and the schedulers.

Models are rows: the built-in demo model (always there; the other families' demo models
when DAYDREAM_DEMO_MODELS asks), the one DAYDREAM_MODEL names, and whatever a scan of
the models folder finds (disabled until staff enable them). LoRAs are rows too (`lora`),
found under <models>/loras/. Every row has a family, hence a card (families.py). A task
stores the model's id; the worker looks the spec up here. Upscaler models are rows too
(`upscaler`, files under <models>/upscalers/, with their scale and architecture; the demo
ESRGAN ×2 with the demo models): they are neither models nor LoRAs here, and
services/generation/upscalers.py offers them with the built-in resamplers. Guide models
(issue 25) are rows too (`adapter` "controlnet" or "ipadapter", files under
<models>/controlnet/ and <models>/ipadapter/ read by guide_files.py, the demo guides with
the demo models): enabled_guides() and guide_table() offer them, never enabled_models()."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import sqlalchemy as sa
from flask import current_app

from extensions import db
from models import AiModel, ModelState
from services.accounts import tiers as tier_settings
from services.core import audit, liveness
from services.core.errors import NotFound, ServiceError, ValidationError
from services.generation import families, fast
from services.generation import guide_files, planner, upscaler_files
from services.generation.families import Card
from services.generation.model_files import ModelsFolder
from services.generation.schedulers import DEFAULT_SCHEDULER, SCHEDULERS

__all__ = ["DEFAULT_SCHEDULER", "schedulers", "models", "model_ids", "default_model"]

DEMO_ID = "demo"
DEMO_FOLDER = "daydream-demo"  # where the worker builds the demo models: not scan results
CHECKPOINTS = (".safetensors", ".ckpt", ".gguf")  # (a .gguf: a quantized denoiser, gguf_files.py)
LORA_FOLDER = "loras"
# Folders of the models folder that hold no models of their own (configs for single
# files, the image classifier, the preprocessors' annotator weights).
NOT_MODELS = ("configs", "safety", "annotators")
# States in which a model or LoRA cannot be enabled (a scan that reads it again clears them).
UNUSABLE = (ModelState.ERROR.value, ModelState.UNSUPPORTED.value)


def schedulers() -> dict[str, str]:
    return dict(SCHEDULERS)


def models_folder() -> Path:
    return Path(current_app.config["MODELS_PATH"])


def folder_rules() -> ModelsFolder:
    """The models folder with its link rule (DAYDREAM_MODELS_FOLLOW_LINKS)."""
    return ModelsFolder(models_folder(), current_app.config.get("MODELS_FOLLOW_LINKS", False))


def local_path(spec: str) -> Path:
    path = Path(spec)
    return path if path.is_absolute() else models_folder() / spec


def model_kind(spec: str) -> str:
    if families.demo_family(spec):
        return "demo"
    if spec.endswith(CHECKPOINTS):
        return "single_file"
    try:
        if folder_rules().resolve(spec).is_dir():
            return "folder"
    except OSError:  # a link out of the folder, or a folder that cannot be looked at
        return "folder"
    return "hub"


def _slug(spec: str) -> str:
    name = _display_name(spec)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60] or "model"


def _unique_id(spec: str) -> str:
    base = _slug(spec)
    candidate, n = base, 2
    while db.session.get(AiModel, candidate) is not None:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def _display_name(spec: str) -> str:
    if _is_upscaler_file(spec):
        return Path(spec).stem
    if _is_guide_spec(spec):  # a guide file without its suffix, a guide folder as it is
        rel = Path(spec)
        return rel.stem if rel.suffix.lower() in guide_files.WEIGHTS + guide_files.PICKLES else rel.name
    name = Path(spec).name if model_kind(spec) != "hub" else spec
    return Path(name).stem if name.endswith(CHECKPOINTS) else name


def _is_guide_spec(spec: str) -> bool:
    rel = Path(spec)
    return not rel.is_absolute() and len(rel.parts) > 1 and rel.parts[0] in guide_files.FOLDERS


def _is_upscaler_file(spec: str) -> bool:
    rel = Path(spec)
    return (not rel.is_absolute() and len(rel.parts) > 1 and rel.parts[0] == upscaler_files.FOLDER
            and rel.suffix.lower() in upscaler_files.FILES)


DEMO_NAMES = {"demo": "Demo (tiny, paints noise)", "demo-sdxl": "Demo SDXL (tiny, paints noise)",
              "demo-sd3": "Demo SD 3 (tiny, paints noise)", "demo-flux": "Demo FLUX.1 schnell (tiny, paints noise)",
              # (named so that it sorts after demo-flux: the first FLUX model listed paints)
              "demo-kontext": "Demo Kontext, FLUX.1 (tiny, edits into noise)",
              "demo-zimage": "Demo Z-Image Turbo (tiny, paints noise)",
              "demo-qwen": "Demo Qwen-Image (tiny, paints noise)",
              "demo-qwen-edit": "Demo Qwen-Image-Edit (tiny, edits into noise)",
              "demo-qwen-edit-plus": "Demo Qwen-Image-Edit Plus (tiny, edits into noise)",
              "demo-chroma": "Demo Chroma (tiny, paints noise)",
              "demo-flux2": "Demo FLUX.2 klein (tiny, paints noise)"}
DEMO_GUIDE_NAMES = {"demo-controlnet-sd1": "Demo ControlNet SD 1.x (tiny, random)",
                    "demo-controlnet-sdxl": "Demo ControlNet SDXL (tiny, random)",
                    "demo-controlnet-flux": "Demo ControlNet Union FLUX.1 (tiny, random)",
                    "demo-ipadapter-sd1": "Demo IP-Adapter SD 1.x (tiny, random)",
                    "demo-controlnet-sdxl-union": "Demo ControlNet Union SDXL (tiny, random)"}

# A hub id's family before its first load, from its name (the load then says for sure).
_HUB_HINTS = (("z-image", "zimage", "turbo"), ("qwen-image", "qwen", ""), ("chroma", "chroma", ""),
              ("flux.1-schnell", "flux", "schnell"), ("kontext", "flux", "kontext"), ("flux", "flux", "dev"),
              ("stable-diffusion-3", "sd3", ""), ("sd3", "sd3", ""), ("xl", "sdxl", ""),
              ("stable-diffusion-2", "sd2", "v-prediction"))


def detect(spec: str) -> families.Detected | None:
    """The family of a model spec from its files (None: not known before it loads)."""
    demo = families.DEMO_MODELS.get(spec)
    if demo:
        return families.Detected(demo, families.demo_variant(spec))
    kind = model_kind(spec)
    rules = folder_rules()
    try:
        if kind == "folder":
            return families.detect_folder(rules.resolve(spec), rules.check)
        if kind == "single_file":
            role, found = families.detect_file(rules.resolve(spec), rules.check)
            return found if role == "model" else None
    except (OSError, families.UnknownModel):
        return None
    if kind == "hub":
        lowered = spec.lower()
        for hint, family, variant in _HUB_HINTS:
            if hint in lowered:
                return families.Detected(family, _dedicated_hint(lowered, family) or variant)
    return None


def _dedicated_hint(lowered: str, family: str) -> str:
    """The variant of a dedicated inpainting or editing model on the hub, from its name
    (FLUX.1 Fill; FLUX.1 Kontext; an SD "inpainting" model); "" for any other."""
    if family == "flux" and "kontext" in lowered:
        return "kontext"
    if family == "qwen" and "edit" in lowered:  # Qwen-Image-Edit, Edit Plus (2509 and later)
        return families.qwen_by_name(families.Detected("qwen"), lowered.rsplit("/", 1)[-1]).variant
    if family == "zimage":  # Turbo or base, by the repository's name
        return families.zimage_variant(lowered.rsplit("/", 1)[-1])
    if family == "flux" and "fill" in lowered:
        return "fill"
    if family in ("sd1", "sd2", "sdxl") and "inpainting" in lowered:
        return "inpainting"
    return ""


def _set_family(row: AiModel, found: families.Detected | None) -> None:
    if found is None:
        return
    row.family, row.variant = found.family, found.variant or None
    row.native_width, row.native_height = found.native_width, found.native_height
    if found.size_bytes is not None:  # (a file's: the memory planner reads them)
        row.quant, row.size_bytes = found.quant, found.size_bytes


def demo_families() -> list[str]:
    """The families whose demo models are offered: SD 1.x always, the rest as asked."""
    wanted = {w.strip().lower() for w in (current_app.config.get("DEMO_MODELS") or "").split(",") if w.strip()}
    every = list(families.DEMO_MODELS.values())
    if "all" in wanted:
        return every
    return [f for f in every if f == "sd1" or f in wanted]


def ensure_models() -> None:
    """The demo rows and the DAYDREAM_MODEL row exist; exactly one row is the default.
    Idempotent and cheap; runs once per process."""
    ext = current_app.extensions
    if ext.get("daydream_models_synced"):
        return
    try:
        with db.session.no_autoflush:
            _sync_builtin_models()
        db.session.commit()
    except sa.exc.IntegrityError:  # another process or request did the same just now
        db.session.rollback()
    ext["daydream_models_synced"] = True


def _sync_builtin_models() -> None:
    offered = demo_families()
    made: dict[str, AiModel] = {}  # (pending rows are not found by session.get under no_autoflush)
    for model_id, family in families.DEMO_MODELS.items():
        row = db.session.get(AiModel, model_id)
        lora_id = f"demo-lora-{family}"
        if family not in offered:  # offered by an earlier start, not by this one
            for old in (row, db.session.get(AiModel, lora_id)):
                if old is not None and old.source == "builtin" and not old.is_default:
                    old.enabled = False
            continue
        if row is None:
            row = AiModel(id=model_id, name=DEMO_NAMES[model_id], spec=model_id, kind="demo",
                          source="builtin", enabled=True)
            db.session.add(row)
        made[model_id] = row
        row.enabled = True
        _set_family(row, detect(model_id))
        # One LoRA a family (demo-kontext's is demo-flux's): made once.
        lora = made.get(lora_id) or db.session.get(AiModel, lora_id)
        if lora is None:
            lora = AiModel(id=lora_id, name=f"demo-{family}-lora", spec=lora_id, kind="demo",
                           source="builtin", enabled=True, lora=True, family=family)
            db.session.add(lora)
        made[lora_id] = lora
        lora.enabled = True
    asked = bool(current_app.config.get("DEMO_MODELS", "").strip())
    _sync_demo_upscaler(asked)
    _sync_demo_guides([f for f in offered if asked])
    configured = current_app.config["MODEL"]
    if configured in families.DEMO_MODELS:
        row = made.get(configured) or db.session.get(AiModel, configured)
    else:
        row = db.session.scalar(sa.select(AiModel).where(AiModel.spec == configured))
    if row is None:
        row = AiModel(id=_unique_id(configured), name=_display_name(configured), spec=configured,
                      kind=model_kind(configured), source="env", enabled=True)
        _set_family(row, detect(configured))
        db.session.add(row)
    elif row.family is None:
        _set_family(row, detect(configured))
    row.enabled = True
    if db.session.scalar(sa.select(sa.func.count()).select_from(AiModel)
                         .where(AiModel.is_default, AiModel.enabled, AiModel.lora.is_(False))) == 0:
        row.is_default = True


def _sync_demo_upscaler(offered: bool) -> None:
    """The demo upscaler's row: enabled while demo models are asked for (DAYDREAM_DEMO_MODELS),
    disabled when a later start asks for none. Its file is built by the worker on first use."""
    row = db.session.get(AiModel, upscaler_files.DEMO_ID)
    if row is None:
        if not offered:
            return
        row = AiModel(id=upscaler_files.DEMO_ID, name=upscaler_files.DEMO_NAME, spec=upscaler_files.DEMO_ID,
                      kind="demo", source="builtin", enabled=True, upscaler=True)
        db.session.add(row)
    row.scale, row.architecture = upscaler_files.DEMO_SCALE, upscaler_files.DEMO_ARCHITECTURE
    if row.source == "builtin":
        row.enabled = offered


def _sync_demo_guides(offered: list[str]) -> None:
    """The demo guides' rows (families.DEMO_GUIDES): enabled while demo models of their
    family are asked for (DAYDREAM_DEMO_MODELS), disabled when a later start asks for none.
    The worker builds their files on first use (worker/demo_guides.py)."""
    for guide_id, (adapter, family, architecture) in families.DEMO_GUIDES.items():
        row = db.session.get(AiModel, guide_id)
        if row is None:
            if family not in offered:
                continue
            row = AiModel(id=guide_id, name=DEMO_GUIDE_NAMES[guide_id], spec=guide_id, kind="demo",
                          source="builtin", enabled=True)
            db.session.add(row)
        row.adapter, row.family, row.architecture = adapter, family, architecture
        row.control_modes = families.DEMO_GUIDE_MODES.get(guide_id)
        if row.source == "builtin":
            row.enabled = family in offered


def enabled_models() -> list[AiModel]:
    ensure_models()
    return list(db.session.scalars(sa.select(AiModel).where(AiModel.enabled, AiModel.lora.is_(False),
                                                            AiModel.upscaler.is_(False), AiModel.adapter.is_(None))
                                   .order_by(AiModel.is_default.desc(), AiModel.name)))


def enabled_loras() -> list[AiModel]:
    ensure_models()
    return list(db.session.scalars(sa.select(AiModel).where(AiModel.enabled, AiModel.lora.is_(True))
                                   .order_by(AiModel.family, AiModel.name)))


def model_to_dict(row: AiModel, staff: bool = False, plan: bool = False) -> dict:
    """A model or LoRA as the API shows it: a model with its card, and with `plan` (or for
    staff) its memory plan, which reads the workers' heartbeats in Redis (the pages that
    list models without it, /docs say, need no Redis); for staff also its spec, state and
    whether it is enabled (a family not served is not guessed as SD 1.x).
    An upscaler model is kind "upscaler" with its scale and architecture; a guide is kind
    "controlnet" or "ipadapter" with its family, architecture and control_modes (a Union's)."""
    if row.upscaler:
        return _upscaler_to_dict(row, staff)
    if row.adapter:
        return _guide_to_dict(row, staff)
    data = {"id": row.id, "name": row.name, "kind": "lora" if row.lora else "model",
            "format": row.kind, "family": row.family or "sd1"}
    if not row.lora:
        data["default"] = row.is_default
        data.update(families.card_of(row).to_dict())
        if plan or staff:
            data["plan"] = plan_of(row).api()
        data["fast_mode"] = row.fast_mode if fast.available(row.family) else "off"
    else:
        family = families.FAMILIES.get(data["family"])
        data["family_label"] = family.label if family else data["family"]
    if staff:
        data.update(spec=row.spec, enabled=row.enabled, state=row.state, error=row.error,
                    source=row.source, default=row.is_default, tiers=row.tiers, quant=row.quant,
                    size_bytes=row.size_bytes)
        if row.family not in families.FAMILIES and row.kind != "demo":
            data.update(family=None, family_label="Unsupported" if row.state == ModelState.UNSUPPORTED.value
                        else "Unknown")
    return data


# --- the memory plan (services/generation/planner.py) -------------------------------

_GPU_TTL_S = 2.0  # the workers' GPUs are read at most this often per process
_gpu_seen: dict = {}


def worker_gpu() -> dict | None:
    """The GPU the plans are for: the live workers' (planner.gpu_of_workers), None when no
    worker says (none is up, or Redis is away)."""
    now = time.monotonic()
    if _gpu_seen and now - _gpu_seen["at"] < _GPU_TTL_S:
        return _gpu_seen["gpu"]
    try:
        gpu = planner.gpu_of_workers(liveness.alive_workers())
    except redis.RedisError:
        gpu = None
    _gpu_seen.update(at=now, gpu=gpu)
    return gpu


def plan_of(row: AiModel) -> planner.Plan:
    """How a model runs on the workers' GPU (CPU, or none known: the CPU's plan)."""
    return planner.plan_row(row, worker_gpu(), current_app.config.get("QUANT", "auto"))


def check_fits(model_id: str) -> None:
    """A 422 model_does_not_fit when the ready workers report a GPU that the model cannot
    fit even with offload (a CPU worker, or none known, never refuses)."""
    row = db.session.get(AiModel, model_id)
    gpu = worker_gpu()
    if row is None or gpu is None or gpu.get("device") != "cuda":
        return
    plan = plan_of(row)
    if not plan.fits:
        raise ServiceError(f"{row.name} does not fit this server's GPU: {plan.why}.", code="model_does_not_fit",
                           field="model", status=422)


def _upscaler_to_dict(row: AiModel, staff: bool) -> dict:
    data = {"id": row.id, "name": row.name, "kind": "upscaler", "format": row.kind, "scale": row.scale,
            "architecture": row.architecture, "builtin": False}
    if staff:
        data.update(spec=row.spec, enabled=row.enabled, state=row.state, error=row.error, source=row.source,
                    default=False, family=None, family_label=None)
    return data


def _guide_to_dict(row: AiModel, staff: bool) -> dict:
    family = families.FAMILIES.get(row.family or "")
    data = {"id": row.id, "name": row.name, "kind": row.adapter, "format": row.kind, "family": row.family,
            "family_label": family.label if family else None, "architecture": row.architecture,
            "control_modes": row.control_modes}
    if staff:
        data.update(spec=row.spec, enabled=row.enabled, state=row.state, error=row.error, source=row.source,
                    default=False)
        if family is None:
            data["family_label"] = "Unsupported" if row.state == ModelState.UNSUPPORTED.value else "Unknown"
    return data


def models() -> list[dict]:
    return [model_to_dict(m) for m in enabled_models()]


def enabled_guides(adapter: str | None = None) -> list[AiModel]:
    """The guide models staff enabled ("controlnet" or "ipadapter" ones only, if asked)."""
    ensure_models()
    query = sa.select(AiModel).where(AiModel.enabled, AiModel.adapter.is_not(None))
    if adapter is not None:
        query = query.where(AiModel.adapter == adapter)
    return list(db.session.scalars(query.order_by(AiModel.adapter, AiModel.family, AiModel.name)))


def guides() -> list[dict]:
    """The enabled guides as GET /models lists them (kind "controlnet" | "ipadapter")."""
    return [model_to_dict(m) for m in enabled_guides()]


def guide_table() -> dict[str, dict]:
    """{guide id: {name, family, adapter, architecture, control_modes}} of the enabled guides
    (control_modes: a Union's number of control modes; None: not a Union, or not known)."""
    return {m.id: {"name": m.name, "family": m.family, "adapter": m.adapter, "architecture": m.architecture,
                   "control_modes": m.control_modes} for m in enabled_guides()}


def enabled_upscalers() -> list[AiModel]:
    ensure_models()
    return list(db.session.scalars(sa.select(AiModel).where(AiModel.enabled, AiModel.upscaler.is_(True))
                                   .order_by(AiModel.name)))


def builtin_upscaler(upscaler_id: str) -> dict | None:
    """A built-in resampler ("lanczos", "nearest") as services/generation/upscalers.py gives it."""
    if upscaler_id not in upscaler_files.BUILTINS:
        return None
    return {"id": upscaler_id, "name": upscaler_files.BUILTINS[upscaler_id], "scale": None, "architecture": None,
            "builtin": True}


def upscaler_to_dict(row: AiModel) -> dict:
    return {"id": row.id, "name": row.name, "scale": row.scale, "architecture": row.architecture,
            "builtin": False}


def upscaler_items() -> list[dict]:
    """The upscalers as the models list shows them (kind "upscaler"): the built-in resamplers,
    then the enabled upscaler models."""
    items = [builtin_upscaler(key) for key in upscaler_files.BUILTINS]
    items += [upscaler_to_dict(row) for row in enabled_upscalers()]
    return [{"id": u["id"], "name": u["name"], "kind": "upscaler",
             "format": "builtin" if u["builtin"] else "single_file", "scale": u["scale"],
             "architecture": u["architecture"], "builtin": u["builtin"]} for u in items]


def loras() -> list[dict]:
    return [model_to_dict(m) for m in enabled_loras()]


def model_ids() -> list[str]:
    return [m.id for m in enabled_models()]


def cards() -> dict[str, Card]:
    """{model id: card} of the enabled models."""
    return {m.id: families.card_of(m) for m in enabled_models()}


def fast_modes() -> dict[str, str]:
    """{model id: fast_mode} of the enabled models (services/generation/fast.py)."""
    return {m.id: m.fast_mode or "off" for m in enabled_models()}


def lora_table() -> dict[str, dict]:
    """{LoRA id: {name, family}} of the enabled LoRAs."""
    return {m.id: {"name": m.name, "family": m.family or "sd1"} for m in enabled_loras()}


def card_for(model_id: str) -> Card:
    row = db.session.get(AiModel, model_id)
    return families.card_of(row) if row is not None else families.card("sd1")


def default_model() -> str:
    ensure_models()
    row = db.session.scalar(sa.select(AiModel).where(AiModel.is_default, AiModel.enabled,
                                                     AiModel.lora.is_(False), AiModel.upscaler.is_(False),
                                                     AiModel.adapter.is_(None)))
    return row.id if row else DEMO_ID


def is_demo_default() -> bool:
    return model_kind(spec_of(default_model()) or DEMO_ID) == "demo"


def spec_of(model_id: str) -> str | None:
    ensure_models()
    row = db.session.get(AiModel, model_id)
    return row.spec if row else None


def row_of(model_id: str) -> AiModel | None:
    ensure_models()
    return db.session.get(AiModel, model_id)


# --- staff ---------------------------------------------------------------------------

def all_models() -> list[AiModel]:
    ensure_models()
    return list(db.session.scalars(sa.select(AiModel).order_by(AiModel.adapter.is_not(None), AiModel.upscaler,
                                                               AiModel.lora, AiModel.adapter, AiModel.source,
                                                               AiModel.name)))


def _walk(rules: ModelsFolder):
    """(relative path, role, what) for every model and LoRA in the models folder: a
    folder with model_index.json is one model (its parts are not looked into); files
    under loras/ are LoRAs; another .safetensors file is a checkpoint only when its
    tensors say so (a LoRA elsewhere is still a LoRA; a VAE or an embedding is neither).
    Roles: model, lora, error / lora_error (unreadable: what says why), unsupported /
    lora_unsupported (another family: what says which), skipped (not a model, or not
    read: a link out of the folder, an entry that cannot be listed; what says why),
    upscaler (a .safetensors/.pth/.pt file under upscalers/: what is its path, read by
    scan() in one child process; nothing else under upscalers/ is a model), guide (a
    ControlNet or IP-Adapter under controlnet/ or ipadapter/: what is a guide_files.Found,
    which says why one cannot be used; nothing else there is a model)."""

    def descend(rel: Path, path: Path) -> bool:
        if path.name.startswith(".") or path.name.startswith(DEMO_FOLDER):
            return False
        if len(rel.parts) == 1 and path.name in NOT_MODELS:
            return False
        if len(rel.parts) > 1 and rel.parts[0] in guide_files.FOLDERS and guide_files.is_guide_folder(path):
            return False  # one guide (or an image encoder): its files are its own
        try:
            return not (path / "model_index.json").is_file()
        except OSError:  # cannot be looked into: the walk says why
            return True

    for entry in rules.walk(descend):
        rel, path = entry.rel, entry.path
        if rel.parts and (rel.name.startswith(".") or rel.name.startswith(DEMO_FOLDER)
                          or (len(rel.parts) == 1 and rel.name in NOT_MODELS)):
            continue
        if any(part.startswith(".") or part.startswith(DEMO_FOLDER) for part in rel.parts[:-1]):
            continue
        under_loras = bool(rel.parts) and rel.parts[0] == LORA_FOLDER
        if entry.why:
            yield rel, "skipped", entry.why
            continue
        if rel.parts and rel.parts[0] == upscaler_files.FOLDER:
            if not entry.is_dir and len(rel.parts) > 1 and path.suffix.lower() in upscaler_files.FILES:
                yield rel, "upscaler", path
            continue
        if rel.parts and rel.parts[0] in guide_files.FOLDERS:
            found = guide_files.describe(rel, path, entry.is_dir, rules.root, rules.check)
            if found is not None:
                yield rel, "guide", found
            continue
        if entry.is_dir:
            index = path / "model_index.json"
            try:
                has_index = index.is_file() or index.is_symlink()
            except OSError:
                has_index = False
            if has_index:
                try:
                    yield rel, "model", families.detect_folder(path, rules.check)
                except families.Unsupported as exc:
                    yield rel, "unsupported", str(exc)
                except families.UnknownModel as exc:
                    yield rel, "error", str(exc)
            continue
        if path.suffix.lower() not in CHECKPOINTS:
            continue
        try:
            role, found = families.detect_file(path, rules.check)
        except families.Unsupported as exc:
            if under_loras or exc.lora:
                yield rel, "lora_unsupported", str(exc)
            else:
                yield rel, "unsupported", str(exc)
            continue
        except (OSError, families.NotSafetensors) as exc:
            # Damaged (or still downloading): listed with the reason, so staff see it.
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            if under_loras:
                yield rel, "lora_error", f"{path.name} could not be read as a LoRA: {why}"
            else:
                yield rel, "error", f"{path.name} could not be read: {why}"
            continue
        except families.UnknownModel:
            continue  # a VAE, an embedding, …: not a model
        if under_loras and role == "model":
            continue  # a checkpoint among the LoRAs: not one
        yield rel, role, found


@dataclass
class ScanResult:
    models: list[AiModel]
    skipped: list[dict]  # [{path, why}]: what the scan did not read, and why


def scan(reason: str = "") -> ScanResult:
    """Find the models and LoRAs in the models folder (see _walk); new ones are added
    disabled, vanished ones marked missing. What could not be read (a link out of the
    folder, an unreadable entry) is skipped and said; a known model's files among them
    put it in the error state."""
    ensure_models()
    found: dict[str, tuple] = {}
    skipped: list[dict] = []
    for rel, role, what in _walk(folder_rules()):
        if role == "skipped":
            skipped.append({"path": str(rel), "why": what})
        else:
            found[str(rel)] = (role, what)
    _describe_upscalers(found)
    known = {m.spec: m for m in db.session.scalars(sa.select(AiModel))}
    for item in skipped:  # a model found before, unreadable now: says why
        row = known.get(item["path"])
        if row is not None and row.source == "scan" and row.adapter:
            found[item["path"]] = ("guide", guide_files.Found(row.adapter, row.kind == "folder", state="error",
                                                              why=item["why"], family=row.family))
        elif row is not None and row.source == "scan":
            found[item["path"]] = ("upscaler_error" if row.upscaler else "lora_error" if row.lora else "error",
                                   item["why"])
    audit.record("models.scan", target_type="models", target_id="", target_name=str(models_folder()), reason=reason,
                 details={"added": sorted(set(found) - set(known)),
                          "missing": sorted(s for s, m in known.items() if m.source == "scan" and s not in found),
                          "skipped": [item["path"] for item in skipped]})
    for spec in sorted(set(found) - set(known)):
        role, what = found[spec]
        is_upscaler = role.startswith("upscaler")
        kind = ("single_file" if is_upscaler else ("folder" if what.is_dir else "single_file") if role == "guide"
                else model_kind(spec))
        row = AiModel(id=_unique_id(spec), name=_display_name(spec), spec=spec, kind=kind, source="scan",
                      enabled=False, lora=role in ("lora", "lora_error", "lora_unsupported"), upscaler=is_upscaler,
                      adapter=what.adapter if role == "guide" else None)
        db.session.add(row)
        _apply_scan(row, role, what)
        db.session.flush()
    for spec, row in known.items():
        if row.source != "scan":
            continue
        if spec not in found:
            row.state = ModelState.MISSING.value
            continue
        if row.state == ModelState.MISSING.value:
            row.state, row.error = ModelState.AVAILABLE.value, None
        _apply_scan(row, *found[spec])
    db.session.commit()
    return ScanResult(all_models(), skipped)


def _describe_upscalers(found: dict[str, tuple]) -> None:
    """The scale and architecture of each upscaler file the walk found, read in one child
    process (services/generation/upscaler_files.py): roles upscaler (what: (scale, architecture)),
    upscaler_unsupported or upscaler_error (what: why)."""
    files = {spec: what for spec, (role, what) in found.items() if role == "upscaler"}
    described = upscaler_files.describe_files(list(files.values()))
    for spec, path in files.items():
        info = described.get(str(path)) or {"error": f"{Path(spec).name} was not read", "unsupported": False}
        if info.get("error"):
            found[spec] = ("upscaler_unsupported" if info.get("unsupported") else "upscaler_error", info["error"])
        else:
            found[spec] = ("upscaler", (info["scale"], info["architecture"]))


def _apply_scan(row: AiModel, role: str, what) -> None:
    if role == "guide":
        _apply_guide(row, what)
    elif role == "upscaler":
        if row.state in UNUSABLE:
            row.state, row.error = ModelState.AVAILABLE.value, None
        row.scale, row.architecture = what
    elif role == "upscaler_unsupported":
        row.state, row.error, row.scale, row.architecture = ModelState.UNSUPPORTED.value, what, None, None
    elif role == "upscaler_error":
        row.state, row.error = ModelState.ERROR.value, what
    elif role in ("model", "lora"):
        if row.state in UNUSABLE:  # readable now; a failed load says so again
            row.state, row.error = ModelState.AVAILABLE.value, None
        if role == "model":
            _set_family(row, what)
        else:
            row.family = what
    elif role in ("unsupported", "lora_unsupported"):  # listed as such, cannot be enabled
        row.state, row.error, row.family = ModelState.UNSUPPORTED.value, what, None
    else:  # unreadable: listed with the reason, cannot be enabled until fixed
        row.state, row.error = ModelState.ERROR.value, what


def _apply_guide(row: AiModel, found: guide_files.Found) -> None:
    row.adapter, row.family = found.adapter, found.family
    if found.guide is not None:
        if row.state in UNUSABLE:  # readable now; a failed load says so again
            row.state, row.error = ModelState.AVAILABLE.value, None
        row.architecture, row.control_modes = found.guide.architecture, found.guide.control_modes
    else:
        row.state, row.error = found.state, found.why
        if found.state == ModelState.UNSUPPORTED.value:
            row.architecture = row.control_modes = None


def update_model(model_id: str, data: dict) -> AiModel:
    row = db.session.get(AiModel, model_id)
    if row is None:
        raise NotFound("No such model.")
    reason = audit.reason_of(data.get("reason"))
    was = {"enabled": row.enabled, "default": row.is_default}
    tiers = model_tiers(row, data["tiers"]) if "tiers" in data else None
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise ValidationError("enabled", "must be true or false")
        if not data["enabled"] and row.is_default:
            raise ValidationError("enabled", "pick another default model before disabling this one")
        if data["enabled"] and row.state in UNUSABLE:
            raise ValidationError("enabled", _unusable(row))
        row.enabled = data["enabled"]
    if data.get("default") is True:
        if row.lora:
            raise ValidationError("default", "a LoRA cannot be the default model")
        if row.upscaler:
            raise ValidationError("default", "an upscaler cannot be the default model")
        if row.adapter:
            raise ValidationError("default", f"a {guide_files.ADAPTER_LABELS.get(row.adapter, 'guide')} cannot be "
                                  "the default model")
        if row.state == ModelState.MISSING.value:
            raise ValidationError("default", "this model's files are missing; rescan or pick another")
        if row.state in UNUSABLE:
            raise ValidationError("default", _unusable(row))
        db.session.execute(sa.update(AiModel).values(is_default=False))
        row.enabled = row.is_default = True
    if "tiers" in data and tiers != row.tiers:
        was["tiers"], row.tiers = row.tiers, tiers
    if "fast_mode" in data:
        if row.lora or row.upscaler or row.adapter:
            raise ValidationError("fast_mode", "only models have a fast mode")
        mode = fast.check_mode(row.family, data["fast_mode"])
        if mode != row.fast_mode:
            was["fast_mode"], row.fast_mode = row.fast_mode, mode
    now = {"enabled": row.enabled, "default": row.is_default, **({"tiers": row.tiers} if "tiers" in was else {}),
           **({"fast_mode": row.fast_mode} if "fast_mode" in was else {})}
    action = ("models.default" if now["default"] and not was["default"] else
              ("models.enable" if now["enabled"] else "models.disable") if now["enabled"] != was["enabled"]
              else "models.update")
    audit.record(action, target=row, reason=reason,
                 details={k: {"from": was[k], "to": now[k]} for k in now if now[k] != was[k]})
    db.session.commit()
    return row


def model_tiers(row: AiModel, value) -> list[str] | None:
    """Who may use a model or LoRA (issue 27; services/generation/access.py): None, every
    tier, or a list of tier ids (staff may use it whatever the list)."""
    if value is None:
        return None
    if row.upscaler or row.adapter:
        raise ValidationError("tiers", "only models and LoRAs are limited to tiers")
    known = [t["id"] for t in tier_settings.tiers()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError("tiers", f"must be a list of tier ids ({', '.join(known)}), or null for every tier")
    unknown = [v for v in value if v not in known]
    if unknown:
        raise ValidationError("tiers", f"'{unknown[0][:40]}' is not a tier ({', '.join(known)})")
    return [t for t in known if t in value]  # (in the tiers' order, once each)


def _unusable(row: AiModel) -> str:
    what = ("LoRA" if row.lora else "upscaler" if row.upscaler
            else guide_files.ADAPTER_LABELS.get(row.adapter, "guide") if row.adapter else "model")
    if row.state == ModelState.UNSUPPORTED.value:
        return f"this {what} cannot be used: {row.error or 'its family is not supported'}"
    return (f"this {what} cannot be used: {row.error or 'it could not be read'}. "
            "Fix its files and scan the models folder again")


def record_load_result(spec: str, error: str | None, found: families.Detected | None = None) -> None:
    """The worker notes whether a model loaded (and what family it turned out to be),
    for the staff's models page and the model's card."""
    row = db.session.scalar(sa.select(AiModel).where(AiModel.spec == spec))
    if row is not None:
        row.state = ModelState.ERROR.value if error else ModelState.AVAILABLE.value
        row.error = error
        # A demo model's family and variant are the catalog's (demo-kontext runs the demo
        # FLUX weights as an editing model).
        if found is not None and not error and row.kind != "demo":
            _set_family(row, found)
        db.session.commit()
