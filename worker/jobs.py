"""The generation job. RQ calls run_task(task_id); the task row holds everything else.

The app and the pipeline live as long as the worker process: each job pushes a fresh
app context and reuses the loaded pipeline (see qworker.DaydreamWorker)."""
from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import torch
from flask import Flask

from services import events, queue, storage
from services import tasks as task_service
from worker.pipelines import ModelLoadError, PipelineCache, apply_scheduler, img2img_from

log = logging.getLogger(__name__)

_app: Flask | None = None
_cache: PipelineCache | None = None
WORKER_NAME = f"{socket.gethostname()}.{os.getpid()}"


def get_app() -> Flask:
    global _app
    if _app is None:
        from app import create_app

        _app = create_app(web=False)
    return _app


def pipelines() -> PipelineCache:
    global _cache
    if _cache is None:
        config = get_app().config
        _cache = PipelineCache(Path(config["MODELS_PATH"]), device=config["DEVICE"])
    return _cache


def record_worker_state(**fields) -> None:
    """What staff and tests can see of this worker: loaded model, loads, jobs done."""
    conn = queue.connection()
    name = queue.key("workers", WORKER_NAME)
    conn.hset(name, mapping={k: str(v) for k, v in fields.items()})
    conn.expire(name, 24 * 3600)


def load_model(spec: str):
    cache = pipelines()
    pipe = cache.get(spec)
    record_worker_state(model=cache.loaded_spec, loads=cache.loads, heartbeat=time.time())
    return pipe


def run_task(task_id: str) -> str:
    with get_app().app_context():
        task = task_service.start_task(task_id, WORKER_NAME)
        if task is None:
            return "skipped: the task is no longer queued"
        try:
            generate(task)
        except Exception as exc:
            log.exception("task %s failed", task_id)
            task_service.fail_task(task_id, readable_error(exc))
            raise  # RQ records the failure in its failed-job registry
        finally:
            queue.connection().hincrby(queue.key("workers", WORKER_NAME), "jobs", 1)
        return "done"


def readable_error(exc: Exception) -> str:
    if isinstance(exc, ModelLoadError):
        return f"{exc} Your tokens were refunded."
    if isinstance(exc, torch.OutOfMemoryError):
        return ("The GPU ran out of memory. Try a smaller size or fewer samples. "
                "Your tokens were refunded.")
    return (f"Generation failed ({exc.__class__.__name__}: {exc}). "
            "Your tokens were refunded; try again, and tell staff if it keeps happening.")


class Progress:
    """Throttled progress: Redis for readers of the API, a Socket.IO event for the page."""

    def __init__(self, task, total: int, hz: int):
        self.task, self.total = task, total
        self.room = task.user.room
        self.interval = 1.0 / max(hz, 1)
        self.started = time.monotonic()
        self.last_sent = 0.0

    def step(self, done: int, total: int | None = None) -> None:
        total = total or self.total
        now = time.monotonic()
        per_step = (now - self.started) / max(done, 1)
        eta_s = round(per_step * (total - done), 1)
        if done < total and now - self.last_sent < self.interval:
            return
        self.last_sent = now
        queue.set_progress(self.task.id, done, total, eta_s)
        events.emit_task(self.room, {"id": self.task.id, "state": "running", "step": done,
                                     "total": total, "eta_s": eta_s, "position": None})


def generate(task) -> None:
    config = get_app().config
    pipe = load_model(task.model)
    apply_scheduler(pipe, task.scheduler)
    generators = [torch.Generator("cpu").manual_seed(task.seed + i) for i in range(task.samples)]
    progress = Progress(task, task.steps, config["PROGRESS_HZ"])
    progress.step(0)

    def on_step_end(pipeline, step_index, _timestep, callback_kwargs):
        progress.step(step_index + 1, getattr(pipeline, "num_timesteps", None))
        return callback_kwargs

    common = dict(prompt=task.prompt, negative_prompt=task.negative_prompt or None,
                  num_inference_steps=task.steps, guidance_scale=task.guidance,
                  num_images_per_prompt=task.samples, generator=generators,
                  callback_on_step_end=on_step_end)
    if task.init_image_id:
        from PIL import Image as PILImage

        init = storage.get_image(task.user, task.init_image_id)
        with PILImage.open(storage.path_of(init)) as source:
            init_picture = source.convert("RGB").resize((task.width, task.height))
        result = img2img_from(pipe)(image=init_picture, strength=task.strength, **common)
    else:
        result = pipe(width=task.width, height=task.height, **common)

    for index, picture in enumerate(result.images):
        metadata = {**task.parameters(), "seed": task.seed + index, "task_id": task.id,
                    "index": index}
        storage.save_image(user_id=task.user_id, picture=picture, metadata=metadata,
                           task_id=task.id, index=index, seed=task.seed + index)
    from extensions import db

    db.session.commit()
    task_service.complete_task(task)
