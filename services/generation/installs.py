"""Installing a model from Admin → Models (a model job of kind "install", model_jobs.py):
a Hugging Face repo id ("owner/name", with a revision, a variant, a file selection and an
access token if it needs one) or an https URL to a .safetensors or .gguf file.

start_install checks what staff asked for (a 422 with the reason) and queues the job on the
archive worker; run_install (worker/install_jobs.py calls it) downloads through the SSRF
guard (downloads.py, fetch_guard.py) into a `.part` (a URL) or a hidden staging folder (a
repo), checks the free disk space first, the sha256 where known (the hub's LFS sha256, or
the one staff gave for a URL) and the file headers (safetensors, GGUF) before anything is
moved into place, then scans the models folder: the model appears disabled, ready to
enable, and the row gets its id.

Nothing that needs unpickling is installed from the network (.ckpt, .pth, .pt, .bin, …).
An access token never reaches the database or the logs: it waits in a short-lived Redis
key for the job to read it, and is sent only to the hub's own host."""
from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import struct
from pathlib import Path, PurePosixPath
from urllib.parse import quote, unquote, urlsplit

import sqlalchemy as sa
from flask import current_app

from extensions import db
from models import AiModel, ModelJob, User
from services.core import audit, keys, redis_client
from services.core.errors import Conflict, Unavailable, ValidationError
from services.generation import catalog, families, fetch_guard, model_jobs
from services.generation.downloads import Cancelled, DownloadError, Settings, download, fetch_json

log = logging.getLogger(__name__)

WEIGHTS = (".safetensors", ".gguf")
PICKLES = (".ckpt", ".pth", ".pt", ".bin", ".pkl", ".pickle", ".joblib", ".npy", ".npz")
# What a repo install takes besides the weights: configs, tokenizers, the scheduler.
SMALL_FILES = (".json", ".txt", ".model", ".tiktoken")
STAGING = ".installing"  # hidden: the scan never looks into it
TOKEN_TTL = 7 * 24 * 3600
MAX_TOKEN = 400
FREE_MARGIN = 64 * 1024 * 1024  # left free beside the download
_REPO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$")
_VARIANT = re.compile(r"^[A-Za-z0-9_]{1,20}$")
_SHA = re.compile(r"^[0-9a-f]{64}$")
UNPICKLING = "needs unpickling; not installed from the network"


# --- what staff ask for ----------------------------------------------------------------

def _text(data: dict, name: str, limit: int) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(name, "must be text")
    if len(value.strip()) > limit:
        raise ValidationError(name, f"use at most {limit} characters")
    return value.strip()


def _suffix(name: str) -> str:
    return PurePosixPath(name.lower()).suffix


def _url_file_name(url: str) -> str:
    parts = urlsplit(url)
    name = unquote(PurePosixPath(parts.path).name)
    return name


def _check_url(url: str) -> str:
    """The file name the URL's file gets in the models folder."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as exc:
        raise ValidationError("source", f"the URL cannot be read ({exc})") from exc
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise ValidationError("source", "http:// URLs are refused: models are fetched over https only")
    if scheme != "https":
        raise ValidationError("source", "give a Hugging Face repo id (owner/name) or an https:// URL")
    name = _url_file_name(url)
    suffix = _suffix(name)
    if suffix in PICKLES:
        raise ValidationError("source", f"{name} is a {suffix} file: it {UNPICKLING}. "
                                        "Install its .safetensors version")
    if suffix not in WEIGHTS:
        raise ValidationError("source", "the URL must lead to a .safetensors or .gguf file")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    if not safe or _suffix(safe) != suffix:
        raise ValidationError("source", "the URL's file name cannot be used")
    try:  # the URL's form and a literal address now; a name's addresses when the job runs
        fetch_guard.check_url(url, _allow(), resolve=None)
    except fetch_guard.Refused as exc:
        raise ValidationError("source", str(exc)) from exc
    return safe


def _check_files(value) -> list[str]:
    if value in (None, "", []):
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items) or len(items) > 50:
        raise ValidationError("files", "must be a file name, a glob (*.safetensors) or a list of them (at most 50)")
    out = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item.startswith("/") or ".." in PurePosixPath(item).parts or len(item) > 300:
            raise ValidationError("files", f"{item!r} is not a file of the repo")
        if _suffix(item) in PICKLES:
            raise ValidationError("files", f"{item} {UNPICKLING}")
        out.append(item)
    return out


def _allow() -> frozenset[str]:
    return fetch_guard.allow_list(current_app.config["INSTALL_ALLOW_HOSTS"])


def parse_request(data: dict) -> tuple[str, dict, str, str]:
    """(source, options, destination relative to the models folder, token) of a request."""
    source = _text(data, "source", 2048)
    if not source:
        raise ValidationError("source", "give a Hugging Face repo id (owner/name) or an https:// URL")
    token = _text(data, "token", MAX_TOKEN)
    if "://" in source:
        for name in ("revision", "variant", "files"):
            if data.get(name) not in (None, "", []):
                raise ValidationError(name, "applies to a repo id only, not a URL")
        file_name = _check_url(source)
        sha = _text(data, "sha256", 64).lower()
        if sha and not _SHA.match(sha):
            raise ValidationError("sha256", "must be 64 hexadecimal digits")
        return source, {"type": "url", **({"sha256": sha} if sha else {})}, file_name, token
    if _text(data, "sha256", 64):
        raise ValidationError("sha256", "applies to a URL only: a repo's files have the hub's own checksums")
    if not _REPO.match(source) or ".." in source or "--" in source:
        raise ValidationError("source", "a repo id is owner/name (letters, digits, . _ -), e.g. "
                                        "Tongyi-MAI/Z-Image-Turbo; a URL must start with https://")
    revision = _text(data, "revision", 100) or "main"
    if not _REVISION.match(revision) or ".." in revision:
        raise ValidationError("revision", "a branch, tag or commit (letters, digits, . _ - /)")
    variant = _text(data, "variant", 20)
    if variant and not _VARIANT.match(variant):
        raise ValidationError("variant", "a variant is a short name such as fp16 or bf16")
    files = _check_files(data.get("files"))
    options = {"type": "hub", "revision": revision, **({"variant": variant} if variant else {}),
               **({"files": files} if files else {})}
    return source, options, source.replace("/", "--"), token


def start_install(user: User, data: dict, *, retry_of: str | None = None) -> ModelJob:
    """Check the request, add the job row (and its audit row), queue it (202). retry_of:
    the failed or cancelled job this one starts again (retry_install)."""
    source, options, destination, token = parse_request(data)
    if retry_of:
        options["retry_of"] = retry_of
    reason = audit.reason_of(data.get("reason"))
    folder = catalog.models_folder()
    if (folder / destination).exists() or (folder / destination).is_symlink():
        raise Conflict(f"{destination} is in the models folder already; remove it first, or scan to add it.",
                       code="already_installed")
    busy = db.session.scalar(sa.select(ModelJob.id).where(ModelJob.destination == destination,
                                                           ModelJob.state.in_(model_jobs.UNFINISHED)))
    if busy:
        raise Conflict(f"{destination} is being installed already (job {busy}).", code="already_installing")
    job = ModelJob(kind="install", source=source, options=options, destination=destination,
                   created_by_id=user.id)
    db.session.add(job)
    db.session.flush()
    audit.record("models.install", target_type="model_job", target_id=job.id, target_name=source[:255],
                 reason=reason, details={**options, "destination": destination, "token": bool(token)})
    db.session.commit()
    try:
        if token:
            redis_client.connection().set(keys.install_token(job.id), token, ex=TOKEN_TTL)
        model_jobs.enqueue(job)
    except Exception as exc:
        log.error("queueing install %s failed: %s", job.id, exc.__class__.__name__)
        model_jobs.finish(job.id, model_jobs.FAILED, error="The queue was unavailable; ask again.")
        raise Unavailable("The queue (Redis) is unavailable; try again in a moment.", headers={"Retry-After": "10"})
    model_jobs.announce(job.id)
    return job


def request_of(job: ModelJob) -> dict:
    """The install request a job was started with (without its token: that is never kept)."""
    options = job.options or {}
    names = ("sha256",) if options.get("type") == "url" else ("revision", "variant", "files")
    return {"source": job.source, **{name: options[name] for name in names if options.get(name)}}


def retry_install(user: User, job_id: str, data: dict) -> ModelJob:
    """Start a failed or cancelled install again: a new job with the same source and
    settings (a repo's token, never kept, is given again in `token`); its download takes up
    the .part or staging folder the last one kept. 409 for another kind or state."""
    job = model_jobs.get_job(job_id)
    if job.kind != "install":
        raise Conflict(f"This job is a {job.kind}: only an install is started again this way "
                       f"(ask for the {job.kind} again with its form).", code="not_an_install")
    if job.state not in (model_jobs.FAILED, model_jobs.CANCELLED):
        raise Conflict(f"This install is {job.state}: only a failed or cancelled install is started again.",
                       code="not_retryable")
    asked = {**request_of(job), "reason": data.get("reason")}
    if data.get("token") not in (None, ""):
        asked["token"] = data["token"]
    return start_install(user, asked, retry_of=job.id)


# --- the job ---------------------------------------------------------------------------

def _settings(token: str | None, progress: model_jobs.Progress) -> Settings:
    config = current_app.config
    return Settings(allow=_allow(), ca_bundle=config["INSTALL_CA_BUNDLE"], retries=config["INSTALL_RETRIES"],
                    backoff=config["INSTALL_BACKOFF"], max_wait=config["INSTALL_MAX_WAIT"],
                    pause=progress.pause, on_retry=progress.retrying,
                    token=token or None, token_host=(urlsplit(config["HF_ENDPOINT"]).hostname or "").lower())


def _check_space(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed + FREE_MARGIN > free:
        raise DownloadError(f"Not enough free disk space: the download needs {_size(needed)} (and "
                            f"{_size(FREE_MARGIN)} to spare) and the models folder's disk has {_size(free)} free.")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{count} bytes"


def check_header(path: Path, name: str) -> None:
    """A safetensors file's header must parse and its tensors fit the file exactly; a GGUF
    file must start with GGUF and a known version. DownloadError says what is wrong."""
    suffix = _suffix(name)
    size = path.stat().st_size
    if suffix == ".gguf":
        with open(path, "rb") as handle:
            head = handle.read(8)
        if len(head) < 8 or head[:4] != b"GGUF":
            raise DownloadError(f"{name} is not a GGUF file (it does not start with GGUF).")
        (version,) = struct.unpack("<I", head[4:8])
        if version not in (1, 2, 3):
            raise DownloadError(f"{name} is a GGUF file of an unknown version ({version}).")
        return
    if suffix != ".safetensors":
        return
    try:
        header = families.safetensors_header(path)
    except families.NotSafetensors as exc:
        raise DownloadError(f"{exc}.") from exc
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
    ends = [t.get("data_offsets", [0, 0])[1] for k, t in header.items() if k != "__metadata__" and isinstance(t, dict)]
    if 8 + length + max(ends, default=0) != size:
        raise DownloadError(f"{name} is not a whole safetensors file: its header names "
                            f"{8 + length + max(ends, default=0)} bytes, the file has {size}.")


def _install_url(job: ModelJob, settings: Settings, progress) -> Path:
    folder = catalog.models_folder()
    dest = folder / job.destination
    part = dest.with_name(dest.name + ".part")

    def on_size(total, done):
        if total is not None:
            _check_space(folder, total - done)

    try:
        size, digest = download(job.source, part, settings, on_size=on_size, on_progress=progress)
        progress(size, size, force=True)
        wanted = (job.options or {}).get("sha256")
        if wanted and digest != wanted:
            raise DownloadError(f"The file's sha256 is {digest}, not the {wanted} given: it was not installed.")
        check_header(part, dest.name)
        if dest.exists():
            raise DownloadError(f"{job.destination} appeared in the models folder meanwhile; it was left as it is.")
        os.replace(part, dest)
    except (DownloadError, Cancelled) as exc:
        if isinstance(exc, Cancelled) or not exc.keep_part:
            part.unlink(missing_ok=True)
        raise
    job.sha256 = digest
    return dest


def _variant_of(name: str) -> str | None:
    """fp16 of unet/diffusion_pytorch_model.fp16.safetensors (and of its shards and index)."""
    base = PurePosixPath(name).name
    if base.endswith(".json") and ".index." in base:
        tail = base.split(".index.", 1)[1][:-len(".json")]
        return tail or None
    stem = base[:-len(_suffix(base))] if _suffix(base) else base
    parts = stem.split(".")
    if len(parts) < 2:
        return None
    return re.sub(r"-\d{5}-of-\d{5}$", "", parts[-1]) or None


def choose_files(siblings: list[dict], options: dict) -> list[dict]:
    """The repo's files to fetch: those the selection names, else model_index.json and its
    components' configs, tokenizers and safetensors weights (of the variant where it has
    them). Never a pickle, ONNX or Flax file."""
    files = {s["rfilename"]: s for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str)}
    safe = {n: s for n, s in files.items()
            if ".." not in PurePosixPath(n).parts and not n.startswith("/") and _suffix(n) not in PICKLES}
    selection = options.get("files")
    if selection:
        chosen = [n for n in safe if any(fnmatch.fnmatch(n, g) for g in selection)
                  and _suffix(n) in WEIGHTS + SMALL_FILES]
        if not chosen:
            raise DownloadError(f"No file of the repo matches {', '.join(selection)} (pickles are never fetched).")
        return [safe[n] for n in sorted(chosen)]
    if "model_index.json" not in safe:
        raise DownloadError("The repo has no model_index.json (it is not a diffusers folder): name the file "
                            "to install under Files, e.g. the .safetensors or .gguf file you want.")
    variant = options.get("variant")
    chosen = ["model_index.json"]
    folders: dict[str, list[str]] = {}
    for name in safe:
        parts = PurePosixPath(name).parts
        if len(parts) == 2 and not parts[0].startswith("."):
            folders.setdefault(parts[0], []).append(name)
    for folder, names in sorted(folders.items()):
        small = [n for n in names if _suffix(n) in SMALL_FILES and not (n.endswith(".json") and ".index." in n)]
        weights = [n for n in names if _suffix(n) == ".safetensors" or (n.endswith(".json") and ".index." in n)]
        if variant and any(_variant_of(n) == variant for n in weights):
            weights = [n for n in weights if _variant_of(n) == variant]
        else:
            weights = [n for n in weights if _variant_of(n) is None]
        chosen += small + weights
    return [safe[n] for n in sorted(set(chosen))]


def _hub_size(entry: dict) -> int | None:
    lfs = entry.get("lfs") if isinstance(entry.get("lfs"), dict) else {}
    size = lfs.get("size", entry.get("size"))
    return size if isinstance(size, int) and size >= 0 else None


def _install_hub(job: ModelJob, settings: Settings, progress) -> Path:
    config = current_app.config
    endpoint, options = config["HF_ENDPOINT"], job.options or {}
    revision = quote(options.get("revision") or "main", safe="")
    info = fetch_json(f"{endpoint}/api/models/{job.source}/revision/{revision}?blobs=true", settings)
    siblings = info.get("siblings")
    if not isinstance(siblings, list):
        raise DownloadError("The hub's answer lists no files for this repo.")
    wanted = choose_files(siblings, options)
    total = sum(_hub_size(entry) or 0 for entry in wanted)
    folder = catalog.models_folder()
    staging = folder / STAGING / job.destination  # (by destination: a later install of it resumes)
    staging.mkdir(parents=True, exist_ok=True)
    done_before = sum((staging / e["rfilename"]).stat().st_size for e in wanted if (staging / e["rfilename"]).exists())
    _check_space(folder, max(total - done_before, 0))
    progress(done_before, total, force=True)
    finished = 0
    try:
        for entry in wanted:
            name = entry["rfilename"]
            target = staging / name
            size = _hub_size(entry)
            if target.exists() and size is not None and target.stat().st_size == size:
                finished += size
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_name(target.name + ".part")
            url = f"{endpoint}/{job.source}/resolve/{revision}/{quote(name)}"
            base = finished
            got, digest = download(url, part, settings,
                                   on_progress=lambda done, _t: progress(base + done, total))
            lfs = entry.get("lfs") if isinstance(entry.get("lfs"), dict) else {}
            if lfs.get("sha256") and digest != lfs["sha256"]:
                part.unlink(missing_ok=True)
                raise DownloadError(f"{name}'s sha256 is {digest}, not the hub's {lfs['sha256']}: nothing was installed.")
            if size is not None and got != size:
                part.unlink(missing_ok=True)
                raise DownloadError(f"{name} has {got} bytes, not the hub's {size}: nothing was installed.")
            check_header(part, name)
            os.replace(part, target)
            finished += got
        progress(finished, max(total, finished), force=True)
        if (staging / "model_index.json").is_file():
            try:
                json.loads((staging / "model_index.json").read_text())
            except ValueError as exc:
                raise DownloadError("The repo's model_index.json is not JSON.") from exc
        dest = folder / job.destination
        if dest.exists():
            raise DownloadError(f"{job.destination} appeared in the models folder meanwhile; it was left as it is.")
        os.replace(staging, dest)
    except Cancelled:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except DownloadError as exc:
        if not exc.keep_part:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return dest


def _added_model(dest: Path) -> AiModel | None:
    rel = dest.relative_to(catalog.models_folder()).as_posix()
    rows = db.session.scalars(sa.select(AiModel).where(sa.or_(AiModel.spec == rel, AiModel.spec.like(rel + "/%")))
                              .order_by(AiModel.spec)).all()
    return rows[0] if rows else None


def run_install(job_id: str) -> str:
    """The install job (the archive worker runs it): download, check, move into place, scan."""
    if not model_jobs.start(job_id):
        redis_client.connection().delete(keys.install_token(job_id))
        return "skipped"
    conn = redis_client.connection()
    raw = conn.get(keys.install_token(job_id))
    token = raw.decode() if isinstance(raw, bytes) else raw
    job = db.session.get(ModelJob, job_id)
    progress = model_jobs.Progress(job_id, Cancelled)
    try:
        settings = _settings(token, progress)
        kind = (job.options or {}).get("type")
        dest = (_install_url if kind == "url" else _install_hub)(job, settings, progress)
        sha = job.sha256
        db.session.commit()
        catalog.scan("installed by model job " + job_id)
        row = _added_model(dest)
        if row is not None and row.state in ("unsupported", "error"):
            why = row.error or row.state
            model_jobs.finish(job_id, model_jobs.DONE, model_id=row.id, sha256=sha,
                              error=f"Installed, but it cannot be used: {why}")
            return "done"
        model_jobs.finish(job_id, model_jobs.DONE, model_id=row.id if row else None, sha256=sha,
                          error=None if row else "Installed, but the scan did not find a model in it.")
        return "done"
    except Cancelled:
        db.session.rollback()
        return "cancelled"
    except DownloadError as exc:
        db.session.rollback()
        model_jobs.finish(job_id, model_jobs.FAILED, error=str(exc))
        return "failed"
    except Exception as exc:
        db.session.rollback()
        log.exception("install %s failed", job_id)
        model_jobs.finish(job_id, model_jobs.FAILED, error=f"The install failed ({exc.__class__.__name__}: {exc}).")
        return "failed"
    finally:
        try:
            conn.delete(keys.install_token(job_id))
        except Exception:
            pass
