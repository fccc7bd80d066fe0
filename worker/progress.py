"""A running task's progress as its owner sees it: step counts, the ETA and previews,
throttled, in Redis for readers of the API and as Socket.IO events for the page."""
from __future__ import annotations

import logging
import time

import redis

from services.core import events, keys, queue, redis_client
from services.generation import estimates
from worker.previews import PreviewThrottle, safe_preview

log = logging.getLogger(__name__)

_redis_warned_at = -1e9


def quietly(call, *args, **kwargs):
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
            height, width = self.latents_size(latents)
            preview = safe_preview(latents, self.row, family=self.family, channels=self.latent_channels,
                                   height=height, width=width)
            if preview is None:  # none can be made of this model's latents: skipped, not fatal
                self.previews = None
            else:
                payload["preview"] = preview
                # The latest preview, for readers that poll (the A1111 API's progress).
                quietly(redis_client.connection().set, keys.preview(self.task.id),
                         preview, ex=3600)
        quietly(queue.set_progress, self.task.id, self.steps_done, self.total(), payload["eta_s"])
        events.emit_task(self.room, payload)  # publishes with a timeout, never raises

    def latents_size(self, latents) -> tuple[int, int]:
        """(height, width) of the picture `latents` are of: the task's, or in a hires
        fix's second pass its final size (FLUX's packed latents need it to be unpacked)."""
        hires = getattr(self.task, "hires", None)
        if hires and hasattr(latents, "dim") and latents.dim() == 3:
            height, width = int(hires["height"]), int(hires["width"])
            if latents.shape[1] == (height // 16) * (width // 16):
                return height, width
        return self.task.height, self.task.width

    def image_ready(self, images: list) -> None:
        """The task's images so far are stored: an event that shows them, unless they are
        all of them (the task's `done` event lists them; one event a change)."""
        self.steps_done = len(images) * self.per_sample
        if len(images) >= self.task.samples:
            return
        events.emit_task(self.room, {"id": self.task.id, "state": "running", "step": self.steps_done,
                                     "total": self.total(), "eta_s": self.eta(), "position": None,
                                     "images": [image.to_dict() for image in images]})

