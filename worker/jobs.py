"""The generation job, RQ's entry (services/core/queue.py enqueues worker.jobs.run_next):
run_next() claims the fairest queued task and the queued tasks of the same round that
can share its pipeline call (tasks.claim_batch, worker/batching.py), and renders them
together (worker/render.py, any task kind of worker/kinds/). If the batch fails, each
of its tasks fails here, refunded (services/generation/tasks.py).

This module also holds what lives as long as the worker process: the pipeline cache
and the loaded model, the images a call may hold, and ServiceContext, what a Render
reads and writes around its calls (the database, Redis, the images folder). Each job
pushes a fresh app context and reuses the loaded pipeline (see qworker.DaydreamWorker)."""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

import torch

from extensions import db
from services.core import keys, redis_client
from services.generation import catalog, estimates
from services.generation import tasks as task_service
from services.library import boards, storage
from worker import get_app, safety
from worker import metrics as worker_metrics
from worker.batching import MOST_IMAGES, BatchLimits, Joiner
from worker.guides import GuideError
from worker.pipelines.cache import PipelineCache
from worker.pipelines import qwen
from worker.pipelines.errors import LoraError, ModelLoadError, without_paths
from worker.pipelines.info import detected_of, family_of, memory_mode, resident
from worker.pipelines.loras import apply_loras, lora_files
from worker.pipelines.memory import free_memory, resolve_device
from worker.previews import latent_channels
from worker.progress import Progress, quietly
from worker.render import RenderContext, render_batch
from worker.schedulers import apply_scheduler

log = logging.getLogger(__name__)

_cache: PipelineCache | None = None
WORKER_NAME = f"{socket.gethostname()}.{os.getpid()}"
loaded_model_id: str | None = None


def pipelines() -> PipelineCache:
    global _cache
    if _cache is None:
        config = get_app().config
        _cache = PipelineCache(Path(config["MODELS_PATH"]), device=config["DEVICE"], vram=config["VRAM"],
                               compile=config["COMPILE"], follow_links=config["MODELS_FOLLOW_LINKS"],
                               prompt_entries=config["PROMPT_CACHE"])
    return _cache


def record_worker_state(**fields) -> None:
    """What staff and tests can see of this worker: loaded model, loads, jobs done."""
    conn = redis_client.connection()
    name = keys.worker_info(WORKER_NAME)
    conn.hset(name, mapping={k: str(v) for k, v in fields.items()})
    conn.expire(name, 24 * 3600)


def load_model(model_id: str):
    """The pipeline for a model id (see services/generation/catalog.py), loading it if another is
    loaded. Records the outcome for the staff's models page."""
    global loaded_model_id
    spec = catalog.spec_of(model_id)
    if spec is None:
        raise ModelLoadError(f"Model '{model_id}' is no longer available on this server: "
                             "pick another model, or ask staff to enable it again.")
    cache = pipelines()
    try:
        pipe = cache.get(spec)
    except ModelLoadError as exc:
        catalog.record_load_result(spec, str(exc))
        loaded_model_id = None
        raise
    if cache.loads and loaded_model_id != model_id:
        catalog.record_load_result(spec, None, detected_of(pipe))
    loaded_model_id = model_id
    quietly(record_worker_state, model=model_id, loads=cache.loads, heartbeat=time.time(),
            resident=resident(), family=family_of(pipe), memory=memory_mode(pipe) or "")
    return pipe


def run_next(submitted_task_id: str | None = None) -> str:
    """Run the fairest queued task, with the queued tasks that can share its call. The
    argument names the submit that queued this job, for the logs; fairness may pick
    another user's task first. The jobs of the tasks that joined find nothing to run."""
    began = time.perf_counter()
    with get_app().app_context():
        most = get_app().config["MAX_BATCH"] or MOST_IMAGES
        batch = task_service.claim_batch(WORKER_NAME, loaded_model_id, max_images=most,
                                         joins=Joiner(images_per_call))
        if not batch:
            quietly(record_job, [], time.perf_counter() - began, 0.0)
            return "nothing to run"
        task_service.announce_queue()
        render = None
        try:
            render = generate_batch(batch)
        except Exception as exc:
            log.exception("tasks %s failed", ", ".join(task.id for task in batch))
            if isinstance(exc, torch.OutOfMemoryError):
                free_memory()  # the next task starts with the memory this one held
            message, reason = readable_error(exc), short_reason(exc)
            for task in batch:  # a task that was done or canceled already stays so; one
                # that delivered some of its images ends done, refunded the others' share
                task_service.fail_task(task.id, message, reason)
            raise  # RQ records the failure in its failed-job registry
        finally:
            worker_metrics.record_tasks([task.id for task in batch])  # GET /metrics (never raises)
            quietly(record_job, batch, time.perf_counter() - began, render.call_seconds if render else 0.0)
        return f"ran task{'s' if len(batch) > 1 else ''} {', '.join(task.id for task in batch)}"


# --- how many images a call holds ------------------------------------------------

limits = BatchLimits()


def images_per_call(task) -> int:
    """The images one call may hold for the task's model and size (worker/batching.py)."""
    config = get_app().config
    limits.configured = config["MAX_BATCH"]
    device, _ = resolve_device(config["DEVICE"])
    device_type = torch.device(device).type
    free = None
    if device_type == "cuda" and limits.configured is None:  # pragma: no cover - GPU only
        free, _total = torch.cuda.mem_get_info(torch.device(device))
    family = family_of(pipelines().pipe) if pipelines().pipe is not None and loaded_model_id == task.model else None
    if family is not None and qwen.one_image_a_call(pipelines().pipe):
        return 1
    return limits.limit(task.model, task.width, task.height, device_type=device_type,
                        free_bytes=free, family=family)


def record_batch(tasks: list, images: int, seconds: float, step_work: float = 0.0, steps: int = 0) -> None:
    """The worker's recent calls, for staff, tests and benchmarks: which tasks shared a
    call, how many images it held, how long it took, how much of that was the worker's
    own work between steps (progress, previews, the stop check), and how many steps it
    ran (fewer than asked when its tasks were stopped); newest first, the last 100."""
    conn = redis_client.connection()
    name = keys.worker_batches(WORKER_NAME)
    conn.lpush(name, json.dumps({"tasks": [task.id for task in tasks], "images": images,
                                 "seconds": round(seconds, 4), "step_work": round(step_work, 4),
                                 "steps": steps, "at": time.time()}))
    conn.ltrim(name, 0, 99)
    conn.expire(name, 24 * 3600)


def record_job(tasks: list, seconds: float, call_seconds: float) -> None:
    """A job ended: its tasks (none: it found nothing to run), its wall time from the
    claim to the end (metrics included) and the part of it in pipeline calls; the rest
    is the worker's fixed cost (bench/bench_e2e.py). Newest first, the last 100, in
    one round trip with the count of jobs staff see."""
    with redis_client.connection().pipeline(transaction=False) as pipe:
        if tasks:  # (staff's "jobs done" counts jobs that ran something)
            pipe.hincrby(keys.worker_info(WORKER_NAME), "jobs", 1)
        name = keys.worker_jobs(WORKER_NAME)
        pipe.lpush(name, json.dumps({"tasks": [task.id for task in tasks], "seconds": round(seconds, 5),
                                     "call_seconds": round(call_seconds, 5), "at": time.time()}))
        pipe.ltrim(name, 0, 99)
        pipe.expire(name, 24 * 3600)
        pipe.execute()


def recent_batches(worker_name: str, connection=None) -> list[dict]:
    conn = connection or redis_client.connection()
    return [json.loads(raw) for raw in conn.lrange(keys.worker_batches(worker_name), 0, -1)]


def readable_error(exc: Exception) -> str:
    if isinstance(exc, storage.StorageFull):
        return ("The server's disk is full: the images could not be stored. Your tokens were "
                "refunded; try again later, and tell staff if it keeps happening.")
    # Users see a model's name, never a server path (staff see the full message on
    # Admin → Models and in the log).
    if isinstance(exc, ModelLoadError):
        return f"{exc.user} Your tokens were refunded."
    if isinstance(exc, (LoraError, GuideError)):
        return f"{without_paths(str(exc))} Your tokens were refunded."
    if isinstance(exc, torch.OutOfMemoryError):
        return ("The GPU ran out of memory. Try a smaller size or fewer samples (staff: "
                "DAYDREAM_VRAM=low fits larger models on small cards). Your tokens were refunded.")
    return (f"Generation failed ({exc.__class__.__name__}: {without_paths(str(exc))}). "
            "Your tokens were refunded; try again, and tell staff if it keeps happening.")


def short_reason(exc: Exception) -> str:
    """Why some of a task's images are missing, in a few words (the task's message when
    it delivered the others)."""
    if isinstance(exc, storage.StorageFull):
        return "the server's disk is full"
    if isinstance(exc, torch.OutOfMemoryError):
        return "the GPU ran out of memory"
    return f"{exc.__class__.__name__}: {without_paths(str(exc))}"[:200]


class ServiceContext(RenderContext):
    """What a Render reads and writes around its calls, in the worker: the loaded
    pipeline, the settings, the tasks' rows, Redis (progress, stops, timings: a
    convenience, so a task goes on while Redis is away) and the images folder."""

    def __init__(self):
        self.limits = limits  # the worker's: what an out-of-memory error taught lasts its life
        self.models_path = pipelines().models_path  # (guide models, annotators)
        self.follow_links = pipelines().follow_links
        self.stored: list = []  # images save() added whose rows are not committed yet

    def pipeline(self, head):
        pipe = load_model(head.model)
        apply_scheduler(pipe, head.scheduler)
        loras = list(head.loras or [])
        cache = pipelines()
        apply_loras(pipe, loras, lora_files(pipe, loras, family_of(pipe), cache.models_path, cache.follow_links))
        return pipe

    def images_per_call(self, head) -> int:
        return images_per_call(head)

    def progress(self, task, pipe) -> Progress:
        config = get_app().config
        previews = config["PREVIEWS"] and task.user.previews
        progress = Progress(task, hz=config["PROGRESS_HZ"], preview_hz=config["PREVIEW_HZ"] if previews else None,
                            estimate_s=quietly(estimates.run_seconds, task))
        progress.family = family_of(pipe)
        progress.latent_channels = latent_channels(pipe)
        return progress

    def canceled(self, task) -> bool:
        db.session.refresh(task, ["state"])
        return task.state != "running"

    def stop_wanted(self, tasks: list) -> set[str]:
        """One Redis round trip a step; the rows in the database when Redis cannot say."""
        if not tasks:
            return set()
        flags = quietly(redis_client.connection().mget, [keys.stop(task.id) for task in tasks])
        if flags is None:
            return {task.id for task in tasks if self.canceled(task)}
        return {task.id for task, flag in zip(tasks, flags) if flag}

    def first_compiled_call(self, head, images: int) -> bool:
        return config_compile() and note_shape(head, images)

    def record_call(self, tasks: list, images: int, seconds: float, step_work: float, steps: int) -> None:
        quietly(record_batch, tasks, images, seconds, step_work, steps)

    def record_step_time(self, head, seconds_per_step: float, images: int) -> None:
        quietly(estimates.record_step_time, head.model, head.width, head.height, seconds_per_step, images=images)

    def verdicts(self, pictures: list) -> list:
        return safety.check(pictures)

    def save(self, row, encoded, verdict):
        task = row.task
        image = storage.save_image(user_id=task.user_id, encoded=encoded, task_id=task.id, index=row.index,
                                   seed=row.seed, board_id=boards.live_board_id(task.user_id, task.board_id))
        safety.mark(image, verdict)
        self.stored.append(image)  # (its row is committed by keep() or finish())
        return image

    def keep(self, images: list) -> bool:
        # Committed only while the task is running (a cancel meanwhile rolls them back,
        # so what the cancel refunded is what was not kept): their files go too.
        stored, self.stored = self.stored, []
        if not stored:
            db.session.commit()
            return True
        with _files_go_unless_kept(stored):
            if task_service.keep_images(stored[0].task_id):
                return True
        for image in stored:
            storage.delete_files(image)
        return False

    def finish(self, task, withheld: int) -> None:
        # The rows save() added go in the transaction of the task's end (complete_task
        # when none was withheld): done is never seen without them. A task that ended
        # meanwhile (canceled) rolled them back: their files go too.
        stored, self.stored = self.stored, []
        with _files_go_unless_kept(stored):
            ended = task_service.finish_checked(task, withheld)
        if not ended:
            db.session.rollback()
            for image in stored:
                storage.delete_files(image)


@contextmanager
def _files_go_unless_kept(stored: list):
    """A database error while committing stored images' rows (the task then fails, refunded
    for what it did not deliver): the rows are rolled back, so their files go too, and
    nothing is left on disk that no row names."""
    files = storage.files_of(stored)
    try:
        yield
    except BaseException:
        try:
            db.session.rollback()
            storage.remove_files(files)
        except Exception:  # the first error is the one to report
            log.exception("could not remove the files of images whose rows were lost")
        raise


def generate(task) -> None:
    """Render one task (its samples in as few calls as fit)."""
    generate_batch([task])


def generate_batch(tasks: list):
    """Render the tasks of a batch (worker/render.render_batch); the Render."""
    return render_batch(tasks, ServiceContext())


# --- torch.compile (DAYDREAM_COMPILE) ----------------------------------------------

_shapes_seen: set = set()


def config_compile() -> bool:
    return bool(get_app().config["COMPILE"])


def note_shape(task, images: int) -> bool:
    """True the first time a call of this model, size and batch runs (compiled: that
    call compiles the graph for the shape, so its time is the compile time)."""
    shape = (task.model, task.width, task.height, images)
    if shape in _shapes_seen:
        return False
    _shapes_seen.add(shape)
    return True
