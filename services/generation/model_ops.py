"""Convert and merge (issue 26; InvokeAI's model operations), as ModelJob rows.

- convert: a single-file checkpoint of a served family (a .safetensors file; a .ckpt
  only when it is already in the models folder: nothing is unpickled from elsewhere)
  becomes a diffusers folder under the models folder.
- merge: two or three models of one family become one diffusers folder:
  "weighted_sum" A·(1−α) + B·α, or "add_difference" A + (B − C)·α (three models).

Everything a request can get wrong is checked here, before anything is queued: the
models (kind, family, state), the method and α, the destination folder (under the
models folder, new, not a folder the scan reads for other things) and, for a merge, that
the denoisers have the same tensors and shapes (read from the safetensors headers, never
the weights). The job itself runs on the archive worker, which starts
`python -m worker.model_ops <job id>` as a child process (worker/model_ops.py: torch
lives there only); the worker scans the models folder when it is done, so the result is
listed disabled, ready to enable. No torch here."""
from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import sqlalchemy as sa

from extensions import db
from models import AiModel, ModelJob, ModelState
from services.core import audit, transitions
from services.core.errors import NotFound, ValidationError
from services.generation import catalog, families, guide_files, model_jobs, upscaler_files

CONVERT, MERGE = "convert", "merge"
METHODS = {"weighted_sum": "weighted sum, A·(1−α) + B·α",
           "add_difference": "add difference, A + (B − C)·α"}
ACTIVE = model_jobs.UNFINISHED
PARTIAL = ".partial"  # what a job writes into, renamed when complete
MAX_DESTINATION = 200
QUANTIZED = (".gguf",)  # files of quantized weights: neither converted nor merged
# First folders of the models folder that hold other things than models (the scan reads
# them as LoRAs, upscalers, guides, configs…): no destination goes there.
RESERVED = (catalog.LORA_FOLDER, upscaler_files.FOLDER, *guide_files.FOLDERS, *catalog.NOT_MODELS)
_PART = re.compile(r"^[\w][\w .+()-]*$")
# The denoiser's folder in a diffusers model, by family (the one whose tensors are checked).
DENOISER_FOLDERS = ("unet", "transformer")
# The precision a result is saved in: "source" is the source's (a merge: model A's).
DTYPES = ("source", "fp16", "bf16", "fp32")
# safetensors' names of floating types, as DTYPES names them (fp8 fits bf16 exactly).
_HEADER_DTYPES = {"F16": "fp16", "BF16": "bf16", "F32": "fp32", "F64": "fp32",
                  "F8_E4M3": "bf16", "F8_E5M2": "bf16", "F8_E4M3FN": "bf16", "F8_E5M2FNUZ": "bf16"}


# --- destination ---------------------------------------------------------------------

def check_destination(value) -> str:
    """A new folder under the models folder, given relative to it ("merged/my-model")."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("destination", "give the new folder's name (under the models folder)")
    text = value.strip()
    if len(text) > MAX_DESTINATION:
        raise ValidationError("destination", f"use at most {MAX_DESTINATION} characters")
    if "\\" in text or text.startswith(("/", "~")) or Path(text).is_absolute():
        raise ValidationError("destination", "give a folder name under the models folder, not a path "
                              "that starts elsewhere")
    parts = [p for p in text.split("/") if p]
    for part in parts:
        if part in (".", ".."):
            raise ValidationError("destination", "the folder must stay under the models folder ('..' leaves it)")
        if part.startswith(".") or not _PART.match(part):
            raise ValidationError("destination", f"'{part[:60]}' is not a usable folder name: use letters, "
                                  "digits, spaces and - _ . + ( ), not starting with a dot")
        if part.endswith(PARTIAL) or part.lower().endswith(catalog.CHECKPOINTS):
            raise ValidationError("destination", f"'{part[:60]}' ends like a file or an unfinished job's folder")
    if parts[0] in RESERVED or parts[0].startswith(catalog.DEMO_FOLDER):
        raise ValidationError("destination", f"{parts[0]}/ holds other things than models: pick another folder")
    rel = "/".join(parts)
    rules = catalog.folder_rules()
    target = rules.root / rel
    if rules.leaves(target) is not None:
        raise ValidationError("destination", "that folder would lead out of the models folder")
    for path in (target, target.with_name(target.name + PARTIAL)):
        if path.exists() or path.is_symlink():
            raise ValidationError("destination", f"{rules.rel(path)} exists already in the models folder: "
                                  "pick a new name")
    taken = db.session.scalar(sa.select(ModelJob.id).where(ModelJob.destination == rel,
                                                           ModelJob.state.in_(ACTIVE)))
    if taken:
        raise ValidationError("destination", f"another model job (#{taken}) is writing {rel} now")
    return rel


# --- models --------------------------------------------------------------------------

def _model_row(model_id, field: str) -> AiModel:
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValidationError(field, "give a model's id (GET /api/v1/admin/models lists them)")
    row = catalog.row_of(model_id.strip())
    if row is None:
        raise ValidationError(field, f"there is no model '{model_id.strip()[:80]}'")
    what = ("a LoRA" if row.lora else "an upscaler" if row.upscaler
            else f"a {guide_files.ADAPTER_LABELS.get(row.adapter, 'guide')}" if row.adapter else "")
    if what:
        raise ValidationError(field, f"{row.name} is {what}, not a model: only models are converted or merged")
    if row.state in catalog.UNUSABLE or row.state == ModelState.MISSING.value:
        why = row.error or ("its files are missing" if row.state == ModelState.MISSING.value else row.state)
        raise ValidationError(field, f"{row.name} cannot be used: {why}")
    if row.family not in families.FAMILIES:
        raise ValidationError(field, f"{row.name}'s family is not known yet: scan the models folder, or "
                              "let it load once")
    if row.quant or row.spec.lower().endswith(QUANTIZED):
        raise ValidationError(field, f"{row.name} is quantized ({row.quant or 'GGUF'}): only full-precision "
                              "weights are converted or merged")
    return row


def source_path(row: AiModel) -> Path | None:
    """The file or folder a model's weights are in (a demo model's once the worker has
    built it); None for a hub id."""
    if row.kind == "demo":
        spec = families.DEMO_SHARED_FOLDERS.get(row.spec, row.spec)
        name = catalog.DEMO_FOLDER if spec == "demo" else f"{catalog.DEMO_FOLDER}-{spec.removeprefix('demo-')}"
        return catalog.models_folder() / name
    if row.kind == "hub":
        return None
    try:
        return catalog.folder_rules().resolve(row.spec)
    except OSError:
        return None


def _inside_models_folder(path: Path) -> bool:
    root = catalog.models_folder().resolve()
    try:
        return root in path.resolve().parents
    except OSError:
        return False


def check_convert(data: dict) -> tuple[AiModel, str]:
    row = _model_row(data.get("model"), "model")
    if row.kind != "single_file":
        raise ValidationError("model", f"{row.name} is a {'diffusers folder' if row.kind in ('folder', 'demo') else row.kind} "
                              "already: only single-file checkpoints are converted")
    path = source_path(row)
    if path is None or not path.is_file():
        raise ValidationError("model", f"{row.name}'s file is not there any more: scan the models folder")
    if path.suffix.lower() == ".ckpt" and not _inside_models_folder(path):
        raise ValidationError("model", f"{row.name} is a .ckpt (a pickle) outside the models folder: only a "
                              ".ckpt already in the models folder is converted")
    return row, check_destination(data.get("destination"))


def denoiser_shapes(row: AiModel) -> tuple[str, dict] | None:
    """("diffusers" | "checkpoint", {tensor name: shape}) of a model's denoiser, from its
    safetensors headers; None where they cannot be read before loading (a hub id, a
    .ckpt, a demo model not built yet, a file that cannot be read)."""
    path = source_path(row)
    if path is None:
        return None
    try:
        if path.is_dir():
            for name in DENOISER_FOLDERS:
                files = sorted((path / name).glob("*.safetensors"))
                if files:
                    shapes = {}
                    for file in files:
                        shapes.update(_shapes(families.safetensors_header(file)))
                    return "diffusers", shapes
            return None
        if path.suffix.lower() != ".safetensors":
            return None
        header = families.safetensors_header(path)
    except (OSError, families.UnknownModel):
        return None
    keys = {k: v for k, v in _shapes(header).items()}
    unet = {k: v for k, v in keys.items() if k.startswith(("model.diffusion_model.", "diffusion_model."))}
    return "checkpoint", {k.split("diffusion_model.", 1)[1]: v for k, v in unet.items()} if unet else keys


def check_dtype(data: dict) -> str:
    value = data.get("dtype")
    if value in (None, ""):
        return "source"
    if value not in DTYPES:
        raise ValidationError("dtype", "use 'source' (the precision of the source weights; a merge: model A's), "
                              "'fp16', 'bf16' or 'fp32'")
    return value


def source_dtype(row: AiModel) -> str | None:
    """"fp16", "bf16" or "fp32": the precision most of a model's denoiser weights are in,
    from its safetensors headers (None where they cannot be read: a hub id, a .ckpt, a
    demo model not built yet)."""
    path = source_path(row)
    if path is None:
        return None
    try:
        if path.is_dir():
            headers = next(([families.safetensors_header(f) for f in files] for name in DENOISER_FOLDERS
                            if (files := sorted((path / name).glob("*.safetensors")))), [])
            tensors = [t for header in headers for k, t in header.items() if k != "__metadata__"]
        elif path.suffix.lower() == ".safetensors":
            header = families.safetensors_header(path)
            items = [(k, t) for k, t in header.items() if k != "__metadata__"]
            unet = [t for k, t in items if k.startswith(("model.diffusion_model.", "diffusion_model."))]
            tensors = unet or [t for _k, t in items]
        else:
            return None
    except (OSError, families.UnknownModel):
        return None
    count: dict[str, int] = {}
    for tensor in tensors:
        if isinstance(tensor, dict) and tensor.get("dtype") in _HEADER_DTYPES:
            name = _HEADER_DTYPES[tensor["dtype"]]
            count[name] = count.get(name, 0) + math.prod(tensor.get("shape") or ())
    return max(count, key=count.get) if count else None


def save_dtype(job: ModelJob, first: AiModel) -> str:
    """The precision the job saves in: the one asked for, or its (first) source's; float32
    where that cannot be read."""
    asked = (job.options or {}).get("dtype") or "source"
    return (source_dtype(first) or "fp32") if asked == "source" else asked


def _shapes(header: dict) -> dict:
    return {k: tuple(v.get("shape") or ()) for k, v in header.items()
            if k != "__metadata__" and isinstance(v, dict)}


def _same_architecture(rows: list[AiModel]) -> str | None:
    """Why the denoisers cannot be merged tensor by tensor (None: they can, or it is not
    known before loading: the worker checks again)."""
    read = [(row, denoiser_shapes(row)) for row in rows]
    read = [(row, found) for row, found in read if found is not None]
    for (first, (layout_a, a)), (other, (layout_b, b)) in zip(read, read[1:]):
        if layout_a == layout_b:
            if a.keys() != b.keys():
                return f"{first.name} and {other.name} have different denoisers (their tensors differ)"
            wrong = next((k for k in a if a[k] != b[k]), None)
            if wrong:
                return (f"{first.name} and {other.name} have different denoisers ({wrong}: "
                        f"{list(a[wrong])} against {list(b[wrong])})")
        elif _size(a) != _size(b):  # a checkpoint's names are another layout's: compare sizes
            return f"{first.name} and {other.name} have denoisers of different sizes"
    return None


def _size(shapes: dict) -> int:
    return sum(math.prod(shape) for shape in shapes.values())


def check_merge(data: dict) -> tuple[list[AiModel], str, float, str]:
    method = data.get("method", "weighted_sum")
    if method not in METHODS:
        raise ValidationError("method", "use " + " or ".join(f"'{m}' ({d})" for m, d in METHODS.items()))
    ids = data.get("models")
    if not isinstance(ids, list) or not 2 <= len(ids) <= 3:
        raise ValidationError("models", "give two or three model ids: [A, B] or [A, B, C]")
    if method == "add_difference" and len(ids) != 3:
        raise ValidationError("models", "add difference needs three models: A + (B − C)·α")
    if method == "weighted_sum" and len(ids) != 2:
        raise ValidationError("models", "a weighted sum takes two models: A·(1−α) + B·α")
    rows = [_model_row(model_id, "models") for model_id in ids]
    if len({row.id for row in rows}) != len(rows):
        raise ValidationError("models", "give different models")
    for row in rows:
        if not (row.enabled or row.state == ModelState.AVAILABLE.value):
            raise ValidationError("models", f"{row.name} cannot be used: {row.state}")
    mixed = {row.family for row in rows}
    if len(mixed) > 1:
        labels = ", ".join(f"{row.name} is {families.FAMILIES[row.family].label}" for row in rows)
        raise ValidationError("models", f"models of one family only are merged ({labels})")
    alpha = data.get("alpha", 0.5)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) \
            or not 0 <= alpha <= 1:
        raise ValidationError("alpha", "a number from 0 to 1 (0: all of A; 1: all of B, or all of the difference)")
    why = _same_architecture(rows)
    if why:
        raise ValidationError("models", f"{why}: only models of the same architecture are merged")
    return rows, method, float(alpha), check_destination(data.get("destination"))


# --- jobs (the rows, queueing, progress and ending are model_jobs.py's, shared with installs) ---

class Cancelled(Exception):
    """Staff cancelled the job (POST /api/v1/admin/model-jobs/<id>/cancel) while it ran."""


def start_convert(data: dict, user=None) -> ModelJob:
    row, destination = check_convert(data)
    dtype = check_dtype(data)
    return _start(CONVERT, row.id, {"models": [row.id], "family": row.family, "dtype": dtype}, destination,
                  data.get("reason"), user)


def start_merge(data: dict, user=None) -> ModelJob:
    rows, method, alpha, destination = check_merge(data)
    dtype = check_dtype(data)
    ids = [row.id for row in rows]
    return _start(MERGE, ",".join(ids), {"models": ids, "method": method, "alpha": alpha, "dtype": dtype,
                                          "family": rows[0].family}, destination, data.get("reason"), user)


def _start(kind: str, source: str, options: dict, destination: str, reason, user) -> ModelJob:
    reason = audit.reason_of(reason)
    job = ModelJob(kind=kind, state=model_jobs.QUEUED, source=source, options={**options, "stage": "queued"},
                   destination=destination, created_by_id=user.id if user is not None else None)
    db.session.add(job)
    db.session.flush()
    audit.record(f"models.{kind}", target_type="model_job", target_id=job.id, target_name=destination,
                 reason=reason, details=dict(options))
    db.session.commit()
    try:
        model_jobs.enqueue(job)
    except Exception as exc:  # Redis away: the row says so rather than waiting for ever
        model_jobs.finish(job.id, model_jobs.FAILED, error=f"it could not be queued ({type(exc).__name__}); "
                          "try again")
    model_jobs.announce(job.id)
    return model_jobs.get_job(job.id)


def get_job(job_id: str) -> ModelJob:
    job = db.session.get(ModelJob, job_id)
    if job is None or job.kind not in (CONVERT, MERGE):
        raise NotFound("No such model job.")
    return job


def begin(job: ModelJob, runner: str) -> bool:
    """queued → running, by `runner` (the process, "host:pid", so that the archive worker
    can end the jobs of a child that died); False: cancelled before it started, or
    another process took it."""
    if not model_jobs.start(job.id):
        return False
    options = {**(job.options or {}), "runner": runner}
    return transitions.advance(ModelJob, job.id, (model_jobs.RUNNING,), options=options)


def next_queued() -> str | None:
    """The oldest queued convert or merge job: a process that has torch loaded already
    runs it rather than leave it to a new one (whose start costs as much as a small job)."""
    return db.session.scalar(sa.select(ModelJob.id).where(ModelJob.kind.in_((CONVERT, MERGE)),
                                                          ModelJob.state == model_jobs.QUEUED)
                             .order_by(ModelJob.created_at, ModelJob.id).limit(1))


def abandon(runner: str, why: str) -> list[str]:
    """Fail the jobs a process left running (it died, or ran out of time): what it wrote
    goes, the reason stays."""
    jobs = db.session.scalars(sa.select(ModelJob).where(ModelJob.kind.in_((CONVERT, MERGE)),
                                                        ModelJob.state.in_(ACTIVE))).all()
    ended = [job for job in jobs if (job.options or {}).get("runner") == runner]
    for job in ended:
        fail(job, why.format(kind=job.kind))
    return [job.id for job in ended]


def progress(job: ModelJob, stage: str, step: int, steps: int, **more) -> None:
    """The job's stage and step (loading, merging tensor i/N, saving) in its row's options
    (with `more`: saved_dtype) and done_bytes/total_bytes (steps, not bytes, for these
    kinds), sent to staff as a `model_job` event. Cancelled once staff cancelled it."""
    options = {**(job.options or {}), **more, "stage": stage}
    if not transitions.advance(ModelJob, job.id, (model_jobs.RUNNING,), options=options, done_bytes=step,
                               total_bytes=steps):
        raise Cancelled()
    model_jobs.announce(job.id)


def destination_path(job: ModelJob) -> Path:
    return catalog.models_folder() / job.destination


def partial_path(job: ModelJob) -> Path:
    """Where a job writes: renamed to its destination once complete."""
    target = destination_path(job)
    return target.with_name(target.name + PARTIAL)


def done(job: ModelJob) -> None:
    """Scan the models folder, so the new folder is listed (disabled), and end the job."""
    catalog.scan(f"model {job.kind} {job.id}")
    model_id = db.session.scalar(sa.select(AiModel.id).where(AiModel.spec == job.destination))
    steps = db.session.scalar(sa.select(ModelJob.total_bytes).where(ModelJob.id == job.id))
    model_jobs.finish(job.id, model_jobs.DONE, model_id=model_id, done_bytes=steps or 0,
                      options={**(job.options or {}), "stage": "done"})


def fail(job: ModelJob, why: str | None) -> None:
    """A job that cannot finish (or was cancelled: why None): nothing half-written stays,
    the reason is on the row."""
    shutil.rmtree(partial_path(job), ignore_errors=True)
    db.session.rollback()
    if why is not None:
        model_jobs.finish(job.id, model_jobs.FAILED, error=why, options={**(job.options or {}), "stage": "failed"})
