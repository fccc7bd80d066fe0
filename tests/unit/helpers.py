"""Helpers of the unit tests (tests/helpers.py is shared by every folder)."""
from __future__ import annotations

from types import SimpleNamespace

import fakeredis
import torch
from diffusers import EulerDiscreteScheduler
from PIL import Image as PILImage

import worker
from services.core import events
from tests.helpers import instance_env, make_app
from worker import jobs
from worker.batching import BatchLimits
from worker.render import RenderContext
from worker.schedulers import apply_scheduler

STEPS = 1  # the stand-in's steps a call (the last step's progress is always sent)


class RoundTripStandIn:
    """Stands in for a loaded StableDiffusionPipeline (the family is read from the class
    name, set below): a scheduler, the UNet's and VAE's configs, and a call that runs
    the step callback once a step and returns one picture a prompt."""

    def __init__(self):
        self.scheduler = EulerDiscreteScheduler()
        self.unet = SimpleNamespace(config=SimpleNamespace(cross_attention_dim=32))
        self.vae = SimpleNamespace(config=SimpleNamespace(latent_channels=4))
        self.device = torch.device("cpu")
        self.num_timesteps = STEPS
        self._interrupt = False

    def __call__(self, *, prompt, num_inference_steps, callback_on_step_end=None, width, height, **_ignored):
        latents = torch.zeros(len(prompt), 4, height // 8, width // 8)
        for step in range(num_inference_steps):
            if callback_on_step_end is not None:
                callback_on_step_end(self, step, 999 - step, {"latents": latents})
        return SimpleNamespace(images=[PILImage.new("RGB", (width, height), (40, 90, 160)) for _ in prompt])


RoundTripStandIn.__name__ = "StableDiffusionPipeline"


def stand_in_worker_app(tmp_path, monkeypatch):
    """An app on a SQLite file whose worker code (worker/jobs.run_next) runs in this
    process with fakeredis, no events published and RoundTripStandIn as the pipeline."""
    app = make_app(instance_env(tmp_path / "instance", "redis://127.0.0.1:1/0", tmp_path / "models",
                                DAYDREAM_STARTING_TOKENS=1000, DAYDREAM_RATE_LIMITS=0, DAYDREAM_DEVICE="cpu",
                                DAYDREAM_PROGRESS_HZ=1))
    fake = fakeredis.FakeRedis()
    app.extensions["daydream_redis"] = fake
    app.extensions["daydream_redis_probe"] = fake
    monkeypatch.setattr(worker, "_app", app)  # worker.get_app(): this app
    monkeypatch.setattr(events, "_emit", lambda *_args, **_kwargs: None)  # nothing is published
    pipe = RoundTripStandIn()

    def stand_in_pipeline(_context, head):
        apply_scheduler(pipe, head.scheduler)
        return pipe

    monkeypatch.setattr(jobs.ServiceContext, "pipeline", stand_in_pipeline)
    return app


class MemoryRender(RenderContext):
    """Render's surroundings in memory around one loaded pipeline: up to 8 images a call,
    nothing canceled or stopped, calls not recorded. A test's own adds progress and save."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.limits = BatchLimits(configured=8)

    def pipeline(self, head):
        apply_scheduler(self.pipe, head.scheduler)
        return self.pipe

    def images_per_call(self, head) -> int:
        return 8

    def canceled(self, task) -> bool:
        return False

    def stop_wanted(self, tasks) -> set[str]:
        return set()

    def record_call(self, tasks, images, seconds, step_work, steps) -> None:
        pass
