"""The generation job. RQ calls run_next(); it claims the fairest queued task and the
queued tasks of the same round that can share its pipeline call (tasks.claim_batch,
worker/batching.py), and renders them together: one call holds the rows of several
tasks, each row with its own prompt, negative prompt and seed. Each task keeps its own
progress, previews, ETA, cancel, refund and state moves. The task rows hold everything
else.

The app and the pipeline live as long as the worker process: each job pushes a fresh
app context and reuses the loaded pipeline (see qworker.DaydreamWorker)."""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

import redis
import torch

from extensions import db
from services.core import events, queue, redis_client
from services.generation import catalog, estimates
from services.generation import tasks as task_service
from services.library import boards, storage
from worker import get_app, safety
from worker import metrics as worker_metrics
from worker.batching import MOST_IMAGES, BatchLimits, Joiner, chunks
from worker.pipelines import (
    LoraError,
    ModelLoadError,
    PipelineCache,
    apply_loras,
    apply_scheduler,
    detected_of,
    family_of,
    free_memory,
    img2img_from,
    lora_path,
    memory_mode,
    resident,
    resolve_device,
    without_paths,
)
from worker.previews import PreviewThrottle, latent_channels, safe_preview

log = logging.getLogger(__name__)

_cache: PipelineCache | None = None
WORKER_NAME = f"{socket.gethostname()}.{os.getpid()}"
loaded_model_id: str | None = None


def pipelines() -> PipelineCache:
    global _cache
    if _cache is None:
        config = get_app().config
        _cache = PipelineCache(Path(config["MODELS_PATH"]), device=config["DEVICE"], vram=config["VRAM"],
                               compile=config["COMPILE"], follow_links=config["MODELS_FOLLOW_LINKS"])
    return _cache


def record_worker_state(**fields) -> None:
    """What staff and tests can see of this worker: loaded model, loads, jobs done."""
    conn = redis_client.connection()
    name = redis_client.key("workers", WORKER_NAME)
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
    _quietly(record_worker_state, model=model_id, loads=cache.loads, heartbeat=time.time(),
             resident=resident(), family=family_of(pipe), memory=memory_mode(pipe) or "")
    return pipe


def run_next(submitted_task_id: str | None = None) -> str:
    """Run the fairest queued task, with the queued tasks that can share its call. The
    argument names the submit that queued this job, for the logs; fairness may pick
    another user's task first. The jobs of the tasks that joined find nothing to run."""
    with get_app().app_context():
        most = get_app().config["MAX_BATCH"] or MOST_IMAGES
        batch = task_service.claim_batch(WORKER_NAME, loaded_model_id, max_images=most,
                                         joins=Joiner(images_per_call))
        if not batch:
            return "nothing to run"
        task_service.announce_queue()
        try:
            generate_batch(batch)
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
            _quietly(redis_client.connection().hincrby, redis_client.key("workers", WORKER_NAME), "jobs", 1)
            worker_metrics.record_tasks([task.id for task in batch])  # GET /metrics (never raises)
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
    return limits.limit(task.model, task.width, task.height, device_type=device_type,
                        free_bytes=free, family=family)


def record_batch(tasks: list, images: int, seconds: float, step_work: float = 0.0) -> None:
    """The worker's recent calls, for staff, tests and benchmarks: which tasks shared a
    call, how many images it held, how long it took and how much of that was the worker's
    own work between steps (progress, previews, the stop check); newest first, the last 100."""
    conn = redis_client.connection()
    name = redis_client.key("batches", WORKER_NAME)
    conn.lpush(name, json.dumps({"tasks": [task.id for task in tasks], "images": images,
                                 "seconds": round(seconds, 4), "step_work": round(step_work, 4),
                                 "at": time.time()}))
    conn.ltrim(name, 0, 99)
    conn.expire(name, 24 * 3600)


def recent_batches(worker_name: str, connection=None) -> list[dict]:
    conn = connection or redis_client.connection()
    return [json.loads(raw) for raw in conn.lrange(redis_client.key("batches", worker_name), 0, -1)]


_redis_warned_at = -1e9


def _quietly(call, *args, **kwargs):
    """Live state in Redis is a convenience for readers: a task goes on rendering (and
    is saved in the database) while Redis is away."""
    global _redis_warned_at
    try:
        return call(*args, **kwargs)
    except redis.RedisError as exc:
        if time.monotonic() - _redis_warned_at > 30:  # once in a while, not every step
            _redis_warned_at = time.monotonic()
            log.warning("Redis unavailable while rendering (going on without it): %s", exc)
        return None


def readable_error(exc: Exception) -> str:
    if isinstance(exc, storage.StorageFull):
        return ("The server's disk is full: the images could not be stored. Your tokens were "
                "refunded; try again later, and tell staff if it keeps happening.")
    # Users see a model's name, never a server path (staff see the full message on
    # Admin → Models and in the log).
    if isinstance(exc, ModelLoadError):
        return f"{exc.user} Your tokens were refunded."
    if isinstance(exc, LoraError):
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


class Progress:
    """Throttled progress of one task: Redis for readers of the API, a Socket.IO event
    (with a preview of the current step, when wanted) for the page.

    Progress counts image-steps: a task of n samples and s steps has n × s of them, and
    each denoising step of a call that holds k of its images does k. A task's images may
    go in one call or several (a limit on images per call, an out-of-memory retry)."""

    def __init__(self, task, *, hz: int, preview_hz: int | None, estimate_s: float | None = None):
        self.task = task
        self.family = "sd1"  # the model's (previews: how to read its latents)
        self.latent_channels: int | None = None  # its VAE's, when it says (previews)
        self.estimate_s = estimate_s  # the server's run estimate (estimates.run_seconds), if any
        self.room = task.user.room
        self.interval = 1.0 / max(hz, 1)
        self.previews = PreviewThrottle(preview_hz) if preview_hz else None
        self.started = time.monotonic()
        self.last_sent = 0.0
        self.steps_done = 0
        self.per_sample = task.effective_steps
        # The current call: the index of its first image of this task, how many it holds,
        # the image-steps done before it, and its row in the call's latents.
        self.first = 0
        self.images = 1
        self.done_before = 0
        self.row = 0
        self.calls = 0
        # Step timing, to keep the warm-up of a first step (a worker's first run, a new
        # size) out of the rate: each call's first step, and its later steps' span.
        self.call_started = self.started
        self.first_steps: list[tuple[float, int]] = []  # (seconds, images in the call)
        self.spans: dict[int, list] = {}  # call -> [end of step 1, end of its latest step, steps, images]

    def total(self) -> int:
        return self.per_sample * self.task.samples

    def begin_call(self, first: int, images: int, row: int = 0, done_before: int | None = None) -> None:
        """A call with `images` of this task's images (from index `first`) starts; `row`:
        where the first of them is in the call's latents."""
        self.first, self.images, self.row = first, max(1, images), row
        self.done_before = first * self.per_sample if done_before is None else done_before
        self.steps_done = self.done_before
        self.calls += 1
        self.call_started = time.monotonic()

    def seconds_per_step(self, now: float | None = None) -> float | None:
        """Measured seconds per image-step so far, everything (decoding, saving) included
        but the warm-up: a first step slower than the later ones counts as one of those.
        None until a step after a first one was measured."""
        now = time.monotonic() if now is None else now
        span = sum(last - first for first, last, _, _ in self.spans.values())
        intervals = sum((steps - 1) * images for _, _, steps, images in self.spans.values())
        if intervals <= 0 or self.steps_done <= 0:
            return None
        steady = span / intervals  # per image-step
        warm_up = sum(max(0.0, first - steady * images) for first, images in self.first_steps)
        return max(now - self.started - warm_up, steady * self.steps_done) / self.steps_done

    def eta(self) -> float | None:
        """Seconds left. Before a step is measured: the server's run estimate (None when
        it has none: "estimating…"); then the measured time per image-step × the
        image-steps left (image-to-image: only the steps it runs)."""
        now = time.monotonic()
        left_steps = self.total() - self.steps_done
        rate = self.seconds_per_step(now)
        if rate is None and self.estimate_s is not None:
            if self.steps_done == 0:
                left = estimates.step_zero_eta(self.estimate_s, self.total(), now - self.started)
            else:
                left = self.estimate_s / max(self.total(), 1) * left_steps
            return round(left, 1)
        if rate is None:
            # Only first steps so far: a lone one carries the warm-up of a first call (a
            # fresh worker, a model just loaded: 6 s for a 0.3 s step), so it says nothing
            # yet ("estimating…"); of several calls' first steps the quickest is the rate.
            if len(self.first_steps) < 2:
                return None
            rate = min(seconds / images for seconds, images in self.first_steps)
        return round(rate * left_steps, 1)

    def step(self, done_in_call: int, per_call: int | None, latents=None) -> None:
        self.per_sample = per_call or self.per_sample
        self.steps_done = self.done_before + self.images * done_in_call
        now = time.monotonic()
        if done_in_call == 1:
            self.first_steps.append((now - self.call_started, self.images))
            self.spans[self.calls] = [now, now, 1, self.images]
        elif done_in_call > 1 and self.calls in self.spans:
            self.spans[self.calls][1:3] = [now, done_in_call]
        last = self.steps_done >= self.total()
        if not last and now - self.last_sent < self.interval:
            return
        self.last_sent = now
        payload = {"id": self.task.id, "state": "running", "step": self.steps_done,
                   "total": self.total(), "eta_s": self.eta(), "position": None,
                   "sample": self.first, "batch": self.images, "samples": self.task.samples}
        if latents is not None and self.previews is not None and self.previews.due():
            preview = safe_preview(latents, self.row, family=self.family, channels=self.latent_channels,
                                   height=self.task.height, width=self.task.width)
            if preview is None:  # none can be made of this model's latents: skipped, not fatal
                self.previews = None
            else:
                payload["preview"] = preview
                # The latest preview, for readers that poll (the A1111 API's progress).
                _quietly(redis_client.connection().set, redis_client.key("preview", self.task.id),
                         preview, ex=3600)
        _quietly(queue.set_progress, self.task.id, self.steps_done, self.total(), payload["eta_s"])
        events.emit_task(self.room, payload)  # publishes with a timeout, never raises

    def image_ready(self, images: list) -> None:
        self.steps_done = len(images) * self.per_sample
        events.emit_task(self.room, {"id": self.task.id, "state": "running", "step": self.steps_done,
                                     "total": self.total(), "eta_s": self.eta(), "position": None,
                                     "images": [image.to_dict() for image in images]})


def _canceled(task) -> bool:
    db.session.refresh(task, ["state"])
    return task.state != "running"


def _lora_file(lora_id: str, family: str) -> Path:
    spec = catalog.spec_of(lora_id)
    if spec is None:
        raise LoraError(f"The LoRA {lora_id} is no longer available on this server; pick another.")
    return lora_path(spec, pipelines().models_path, family, pipelines().follow_links)


def _takes_size(runner) -> bool:
    import inspect

    return "width" in inspect.signature(type(runner).__call__).parameters


def call_pipeline(runner, **kwargs):
    """The one place a pipeline is called (tests put a double of it in a real worker)."""
    return runner(**kwargs)


class Row:
    """One image of a call: its task, its index in the task, its seed."""

    __slots__ = ("task", "index", "seed")

    def __init__(self, task, index: int):
        self.task, self.index, self.seed = task, index, task.seed + index


class Render:
    """What the tasks of one batch share: the pipeline (with scheduler and LoRAs set),
    and per task its progress, init picture and images so far."""

    def __init__(self, tasks: list):
        self.tasks = tasks
        self.head = tasks[0]
        config = get_app().config
        self.pipe = load_model(self.head.model)
        self.family = family_of(self.pipe)
        apply_scheduler(self.pipe, self.head.scheduler)
        apply_loras(self.pipe, list(self.head.loras or []), lambda lora_id: _lora_file(lora_id, self.family))
        self.pictures = {task.id: _init_picture(task) for task in tasks}
        self.progress = {}
        for task in tasks:
            previews = config["PREVIEWS"] and task.user.previews
            progress = Progress(task, hz=config["PROGRESS_HZ"],
                                preview_hz=config["PREVIEW_HZ"] if previews else None,
                                estimate_s=_quietly(estimates.run_seconds, task))
            progress.family = self.family
            progress.latent_channels = latent_channels(self.pipe)
            progress.step(0, None)
            self.progress[task.id] = progress
        self.images = {task.id: [] for task in tasks}
        self.stopped: set[str] = set()  # canceled while running: their rows are dropped
        self.done: set[str] = set()
        self.withheld = {task.id: 0 for task in tasks}  # images the image check did not keep (block)

    def live(self, rows: list[Row]) -> list[Row]:
        """The rows whose task is still running (a cancel drops its rows)."""
        for task in {row.task.id: row.task for row in rows}.values():
            if task.id not in self.stopped and _canceled(task):
                self.stopped.add(task.id)
        return [row for row in rows if row.task.id not in self.stopped]

    def stop_wanted(self, tasks: list) -> set[str]:
        """The tasks of a running call whose stop was asked for: one Redis round trip
        a step; the rows in the database when Redis cannot say."""
        ids = [task.id for task in tasks if task.id not in self.stopped]
        if not ids:
            return set()
        flags = _quietly(redis_client.connection().mget, [redis_client.key("stop", i) for i in ids])
        if flags is None:
            return {task.id for task in tasks if task.id in ids and _canceled(task)}
        return {task_id for task_id, flag in zip(ids, flags) if flag}

    def run(self, rows: list[Row]) -> None:
        """Render `rows` in one call and keep what it made, for the tasks still running."""
        rows = self.live(rows)
        if not rows:
            return
        tasks = list({row.task.id: row.task for row in rows}.values())
        position = 0
        for task in tasks:
            mine = [row for row in rows if row.task.id == task.id]
            self.progress[task.id].begin_call(mine[0].index, len(mine), row=position,
                                              done_before=len(self.images[task.id]) * task.effective_steps)
            position += len(mine)
        seeds = [row.seed for row in rows]
        apply_scheduler(self.pipe, self.head.scheduler, seed=seeds)  # (DPM++ SDE: per-image noise)
        img2img = self.head.init_image_id is not None
        runner = img2img_from(self.pipe) if img2img else self.pipe  # follows the scheduler just set

        spent = [0.0]  # seconds in this callback: the worker's own cost per step

        def on_step_end(pipeline, step_index, _timestep, callback_kwargs):
            entered = time.perf_counter()
            try:
                return step_end(pipeline, step_index, callback_kwargs)
            finally:
                spent[0] += time.perf_counter() - entered

        def step_end(pipeline, step_index, callback_kwargs):
            wanted = self.stop_wanted(tasks)
            for task in tasks:
                if task.id in wanted and task.id not in self.stopped:
                    self.stopped.add(task.id)
                    _quietly(redis_client.connection().set, redis_client.key("stopped", task.id),
                             self.progress[task.id].steps_done, ex=3600)
            if all(task.id in self.stopped for task in tasks):
                pipeline._interrupt = True  # diffusers skips the remaining steps
                return callback_kwargs
            latents = callback_kwargs.get("latents")
            for task in tasks:
                if task.id not in self.stopped:
                    self.progress[task.id].step(step_index + 1, getattr(pipeline, "num_timesteps", None), latents)
            return callback_kwargs

        kwargs = dict(prompt=[row.task.prompt for row in rows], num_inference_steps=self.head.steps,
                      guidance_scale=self.head.guidance, num_images_per_prompt=1,
                      generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
                      callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
        if self.head.negative_prompt:  # (a batch's tasks all have one, or none: batching.batch_key)
            kwargs["negative_prompt"] = [row.task.negative_prompt for row in rows]
        if img2img:
            kwargs.update(image=[self.pictures[row.task.id] for row in rows], strength=self.head.strength)
            if _takes_size(runner):  # (SD 3, FLUX: else they resize to their default size)
                kwargs.update(width=self.head.width, height=self.head.height)
        else:
            kwargs.update(width=self.head.width, height=self.head.height)
        started = time.monotonic()
        compiled_first = config_compile() and note_shape(self.head, len(rows))
        result = call_pipeline(runner, **kwargs)
        seconds = time.monotonic() - started
        # Every picture's PNG and thumbnail start encoding now, side by side (threads), while
        # the bookkeeping and the image check below run; a withheld one's bytes are dropped.
        encoded = [storage.start_encoding(picture, {**row.task.parameters(), "seed": row.seed,
                                                    "task_id": row.task.id, "index": row.index,
                                                    "family": self.family})
                   for row, picture in zip(rows, result.images)]
        if compiled_first:
            log.info("compiled %s for %dx%d, %d image(s) a call: first call %.1f s",
                     self.head.model, self.head.width, self.head.height, len(rows), seconds)
        _quietly(record_batch, tasks, len(rows), seconds, spent[0])
        if not compiled_first:  # (a compiling call's time says nothing of the next ones)
            per_step = self.progress[rows[0].task.id].seconds_per_step() if len(rows) == 1 else None
            if per_step is None:  # one step, or a batch: the call's time per image-step
                per_step = seconds / max(self.head.effective_steps, 1) / len(rows)
            _quietly(estimates.record_step_time, self.head.model, self.head.width, self.head.height, per_step,
                     images=len(rows))
        verdicts = safety.check(result.images)  # the image check (worker/safety.py), one call
        for row, files, verdict in zip(rows, encoded, verdicts):
            task = row.task
            if task.id in self.stopped or _canceled(task):
                self.stopped.add(task.id)
                continue
            if safety.withheld(verdict):
                self.withheld[task.id] += 1
                continue
            self.images[task.id].append(storage.save_image(
                user_id=task.user_id, encoded=files, task_id=task.id,
                index=row.index, seed=row.seed, board_id=boards.live_board_id(task.user_id, task.board_id)))
            safety.mark(self.images[task.id][-1], verdict)
            db.session.commit()
        for task in tasks:
            if task.id in self.stopped:
                log.info("task %s canceled while running", task.id)
                continue
            self.progress[task.id].image_ready(self.images[task.id])
            if len(self.images[task.id]) + self.withheld[task.id] >= task.samples and task.id not in self.done:
                self.done.add(task.id)
                safety.finish_task(task, self.withheld[task.id])  # complete_task when none was withheld


def _init_picture(task):
    if not task.init_image_id:
        return None
    from PIL import Image as PILImage

    from worker.init_image import fit_picture

    init = storage.get_image(task.user, task.init_image_id)
    with PILImage.open(storage.path_of(init)) as source:
        return fit_picture(source, task.width, task.height, task.init_fit)


def generate(task) -> None:
    """Render one task (its samples in as few calls as fit)."""
    generate_batch([task])


def generate_batch(tasks: list) -> None:
    """Render the tasks of a batch: their images in calls of at most images_per_call()
    rows, a task's images together and in order. Out of memory on a call: once at half
    the size, then one image a call, then the error (each task fails and is refunded);
    the size that fits is learned for that model and size."""
    render = Render(tasks)
    head = render.head
    rows = [Row(task, index) for task in tasks for index in range(task.samples)]
    for chunk in chunks(rows, images_per_call(head)):
        _run_fitting(render, chunk, attempt=0)


def _run_fitting(render: "Render", rows: list, attempt: int) -> None:
    try:
        render.run(rows)
    except torch.OutOfMemoryError:
        head = render.head
        if len(rows) <= 1 or attempt >= 2:
            raise
        free_memory()
        fits = limits.out_of_memory(head.model, head.width, head.height, len(rows))
        size = max(1, len(rows) // 2) if attempt == 0 else 1
        log.warning("out of memory with %d images of %s at %dx%d: trying %d a call (from now on at most %d)",
                    len(rows), head.model, head.width, head.height, size, fits)
        if attempt == 1:
            limits.learned[(head.model, int(head.width), int(head.height))] = 1
        for part in chunks(rows, size):
            _run_fitting(render, part, attempt + 1 if size > 1 else 2)


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
