"""The generation job. RQ calls run_next(); it claims the fairest queued task
(services/generation/tasks.py, claim_next) and renders it. The task row holds
everything else.

The app and the pipeline live as long as the worker process: each job pushes a fresh
app context and reuses the loaded pipeline (see qworker.DaydreamWorker)."""
from __future__ import annotations

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
from worker import get_app
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
)
from worker.previews import PreviewThrottle, preview_data_url

log = logging.getLogger(__name__)

_cache: PipelineCache | None = None
WORKER_NAME = f"{socket.gethostname()}.{os.getpid()}"
loaded_model_id: str | None = None


def pipelines() -> PipelineCache:
    global _cache
    if _cache is None:
        config = get_app().config
        _cache = PipelineCache(Path(config["MODELS_PATH"]), device=config["DEVICE"], vram=config["VRAM"])
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
    """Run the fairest queued task. The argument names the submit that queued this job,
    for the logs; fairness may pick another user's task first."""
    with get_app().app_context():
        task = task_service.claim_next(WORKER_NAME, loaded_model_id)
        if task is None:
            return "nothing to run"
        task_service.announce_queue()
        try:
            generate(task)
        except Exception as exc:
            log.exception("task %s failed", task.id)
            if isinstance(exc, torch.OutOfMemoryError):
                free_memory()  # the next task starts with the memory this one held
            task_service.fail_task(task.id, readable_error(exc))
            raise  # RQ records the failure in its failed-job registry
        finally:
            _quietly(redis_client.connection().hincrby, redis_client.key("workers", WORKER_NAME), "jobs", 1)
        return f"ran task {task.id}"


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
    if isinstance(exc, (ModelLoadError, LoraError)):
        return f"{exc} Your tokens were refunded."
    if isinstance(exc, torch.OutOfMemoryError):
        return ("The GPU ran out of memory. Try a smaller size or fewer samples (staff: "
                "DAYDREAM_VRAM=low fits larger models on small cards). Your tokens were refunded.")
    return (f"Generation failed ({exc.__class__.__name__}: {exc}). "
            "Your tokens were refunded; try again, and tell staff if it keeps happening.")


class Progress:
    """Throttled progress over all samples: Redis for readers of the API, a Socket.IO
    event (with a preview of the current step, when wanted) for the page."""

    def __init__(self, task, *, hz: int, preview_hz: int | None, estimate_s: float | None = None):
        self.task = task
        self.family = "sd1"  # the model's (previews: how to read its latents)
        self.estimate_s = estimate_s  # the server's run estimate (estimates.run_seconds), if any
        self.room = task.user.room
        self.interval = 1.0 / max(hz, 1)
        self.previews = PreviewThrottle(preview_hz) if preview_hz else None
        self.started = time.monotonic()
        self.last_sent = 0.0
        self.steps_done = 0
        self.per_sample = task.effective_steps
        # Step timing, to keep the warm-up of a first step (a worker's first run, a new
        # size) out of the rate: each sample's first step, and its later steps' span.
        self.sample_started = self.started
        self.first_steps: list[float] = []
        self.spans: dict[int, list] = {}  # sample -> [end of step 1, end of its latest step, steps]

    def total(self) -> int:
        return self.per_sample * self.task.samples

    def seconds_per_step(self, now: float | None = None) -> float | None:
        """Measured seconds per step so far, everything (decoding, saving) included but the
        warm-up: a first step slower than the later ones counts as one of those. None
        until a step after a first one was measured."""
        now = time.monotonic() if now is None else now
        span = sum(last - first for first, last, _ in self.spans.values())
        intervals = sum(steps - 1 for _, _, steps in self.spans.values())
        if intervals <= 0 or self.steps_done <= 0:
            return None
        steady = span / intervals
        warm_up = sum(max(0.0, first - steady) for first in self.first_steps)
        return max(now - self.started - warm_up, steady * self.steps_done) / self.steps_done

    def eta(self) -> float | None:
        """Seconds left. Before a step is measured: the server's run estimate (None when
        it has none: "estimating…"); then the measured time per step × the steps left
        over all samples (image-to-image: only the steps it runs)."""
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
            if self.steps_done == 0:
                return None
            rate = (now - self.started) / self.steps_done  # one step to go by
        return round(rate * left_steps, 1)

    def step(self, sample: int, done_in_sample: int, per_sample: int | None, latents=None) -> None:
        self.per_sample = per_sample or self.per_sample
        self.steps_done = sample * self.per_sample + done_in_sample
        now = time.monotonic()
        if done_in_sample == 1:
            self.first_steps.append(now - self.sample_started)
            self.spans[sample] = [now, now, 1]
        elif done_in_sample > 1 and sample in self.spans:
            self.spans[sample][1:] = [now, done_in_sample]
        last = self.steps_done >= self.total()
        if not last and now - self.last_sent < self.interval:
            return
        self.last_sent = now
        payload = {"id": self.task.id, "state": "running", "step": self.steps_done,
                   "total": self.total(), "eta_s": self.eta(), "position": None,
                   "sample": sample, "samples": self.task.samples}
        if latents is not None and self.previews is not None and self.previews.due():
            payload["preview"] = preview_data_url(latents, family=self.family,
                                                  height=self.task.height, width=self.task.width)
        _quietly(queue.set_progress, self.task.id, self.steps_done, self.total(), payload["eta_s"])
        events.emit_task(self.room, payload)  # publishes with a timeout, never raises

    def image_ready(self, images: list) -> None:
        self.sample_started = time.monotonic()  # the next sample's first step starts now
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
    return lora_path(spec, pipelines().models_path, family)


def _takes_size(runner) -> bool:
    import inspect

    return "width" in inspect.signature(type(runner).__call__).parameters


def generate(task) -> None:
    """Render the samples one by one, so each image appears as soon as it is ready and
    a cancel takes effect at the next step."""
    config = get_app().config
    pipe = load_model(task.model)
    family = family_of(pipe)
    apply_scheduler(pipe, task.scheduler)
    apply_loras(pipe, list(task.loras or []), lambda lora_id: _lora_file(lora_id, family))
    init_picture = None
    if task.init_image_id:
        from PIL import Image as PILImage

        from worker.init_image import fit_picture

        init = storage.get_image(task.user, task.init_image_id)
        with PILImage.open(storage.path_of(init)) as source:
            init_picture = fit_picture(source, task.width, task.height, task.init_fit)
        runner = img2img_from(pipe)
    else:
        runner = pipe
    previews = config["PREVIEWS"] and task.user.previews
    progress = Progress(task, hz=config["PROGRESS_HZ"],
                        preview_hz=config["PREVIEW_HZ"] if previews else None,
                        estimate_s=_quietly(estimates.run_seconds, task))
    progress.family = family
    progress.step(0, 0, None)
    images = []
    started = time.monotonic()
    for index in range(task.samples):
        stop = {"requested": False}
        seed = task.seed + index
        generator = torch.Generator("cpu").manual_seed(seed)
        apply_scheduler(pipe, task.scheduler, seed=seed)  # (DPM++ SDE seeds its noise from it)
        if init_picture is not None:
            runner = img2img_from(pipe)  # follows the scheduler just set

        def on_step_end(pipeline, step_index, _timestep, callback_kwargs, index=index, stop=stop):
            wanted = _quietly(queue.stop_requested, task.id)
            if wanted is None:  # Redis cannot say: the row can
                wanted = _canceled(task)
            if wanted:
                stop["requested"] = True
                pipeline._interrupt = True  # diffusers skips the remaining steps
                _quietly(redis_client.connection().set, redis_client.key("stopped", task.id),
                         progress.steps_done, ex=3600)
                return callback_kwargs
            progress.step(index, step_index + 1, getattr(pipeline, "num_timesteps", None),
                          callback_kwargs.get("latents"))
            return callback_kwargs

        common = dict(prompt=task.prompt, num_inference_steps=task.steps, guidance_scale=task.guidance,
                      generator=generator, callback_on_step_end=on_step_end,
                      callback_on_step_end_tensor_inputs=["latents"])
        if task.negative_prompt:  # (the web tier refuses one for a family that ignores it)
            common["negative_prompt"] = task.negative_prompt
        if init_picture is not None:
            if _takes_size(runner):  # (SD 3, FLUX: else they resize to their default size)
                common.update(width=task.width, height=task.height)
            result = runner(image=init_picture, strength=task.strength, **common)
        else:
            result = runner(width=task.width, height=task.height, **common)
        if stop["requested"] or _canceled(task):
            log.info("task %s canceled while running", task.id)
            return
        metadata = {**task.parameters(), "seed": seed, "task_id": task.id, "index": index,
                    "family": family}
        images.append(storage.save_image(user_id=task.user_id, picture=result.images[0],
                                         metadata=metadata, task_id=task.id, index=index, seed=seed,
                                         board_id=boards.live_board_id(task.user_id, task.board_id)))
        db.session.commit()
        progress.image_ready(images)
    per_step = progress.seconds_per_step()
    if per_step is None:  # one step a sample: nothing to tell a warm-up by
        per_step = (time.monotonic() - started) / max(progress.per_sample * task.samples, 1)
    estimates.record_step_time(task.model, task.width, task.height, per_step)
    task_service.complete_task(task)
