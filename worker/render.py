"""Render: runs the tasks of one batch, of any kind (worker/kinds), in pipeline calls.

A batch's tasks share a batch key (worker/batching.py), so one kind, one pipeline call
for all their rows: the kind builds the call (build_call), Render adds a generator per
row (image i of a task uses seed + i) and the step callback (progress, previews, stops),
has worker/guides add the task's ControlNet units and reference images (inputs any kind
may take), calls the pipeline, has the kind finish each picture (finish_picture) and keeps it for
its task, with the kind's infotext fields in its parameters. Each task keeps its own
progress, stop, images and end.

What Render needs from around it (the pipeline, where progress goes, whether a task was
canceled, where images are stored, how a task ends) is its RenderContext; the worker's
is worker/jobs.ServiceContext (the database, Redis and the images folder)."""
from __future__ import annotations

import contextlib
import logging
import time

import torch

from services.generation.families import DEMO_MODELS
from services.library import storage
from worker import guides, safety
from worker.batching import BatchLimits, chunks
from worker.kinds import kind_for
from worker.pipelines import fast, qwen
from worker.pipelines.info import family_of
from worker.pipelines.memory import free_memory
from worker.schedulers import apply_scheduler

log = logging.getLogger(__name__)


class Row:
    """One image of a call: its task, its index in the task, its seed."""

    __slots__ = ("index", "seed", "task")

    def __init__(self, task, index: int):
        self.task, self.index, self.seed = task, index, task.seed + index


def call_pipeline(runner, **kwargs):
    """The one place a pipeline is called (tests put a double of it in a real worker)."""
    return runner(**kwargs)


class RenderContext:
    """What a Render needs from around it. The worker's is jobs.ServiceContext; a test
    may give its own."""

    limits: BatchLimits  # images per call learned from out-of-memory errors
    models_path = None  # the models folder: guide models and annotators (worker/guides)
    follow_links = False  # DAYDREAM_MODELS_FOLLOW_LINKS

    def pipeline(self, head):
        """The pipeline for the batch's model, its scheduler and LoRAs set as `head` says."""
        raise NotImplementedError

    def images_per_call(self, head) -> int:
        raise NotImplementedError

    def progress(self, task, pipe):
        """The task's progress (worker/progress.Progress, or what behaves like it)."""
        raise NotImplementedError

    def canceled(self, task) -> bool:
        """Is the task no longer running (canceled, failed elsewhere)?"""
        raise NotImplementedError

    def stop_wanted(self, tasks: list) -> set[str]:
        """The ids of `tasks` whose stop was asked for (asked at every step)."""
        raise NotImplementedError

    def first_compiled_call(self, head, images: int) -> bool:
        """Is this call the first of its shape with a compiled pipeline (its time is the compile's)?"""
        return False

    def record_call(self, tasks: list, images: int, seconds: float, step_work: float, steps: int) -> None:
        """A call ran: its tasks, images, seconds, the worker's own seconds between steps, steps run."""

    def record_step_time(self, head, seconds_per_step: float, images: int) -> None:
        """The measured seconds per image-step of a call of `images` of head's model and size."""

    def verdicts(self, pictures: list) -> list:
        """The image check's verdict on each picture (worker/safety.py; None: not checked)."""
        return [None] * len(pictures)

    def save(self, row: Row, encoded: storage.Encoded, verdict):
        """Store the picture of `row` (encoded: storage.start_encoding's); the image, not yet
        kept: keep() or finish() commits it."""
        raise NotImplementedError

    def keep(self, images: list) -> bool:
        """Commit the images save() stored last (their task has more to come). False: the
        task ended meanwhile (canceled), so they were not kept."""
        return True

    def finish(self, task, withheld: int) -> None:
        """Every image of the task is saved, or withheld (`withheld` of them) by the image
        check: end it, committing the images save() stored last with its end."""
        raise NotImplementedError


class Render:
    """What the tasks of one batch share: the kind, the pipeline (with scheduler and LoRAs
    set), and per task its progress, the kind's inputs and the images so far."""

    def __init__(self, tasks: list, context: RenderContext):
        self.tasks = tasks
        self.head = tasks[0]
        self.context = context
        self.kind = kind_for(self.head)  # (the batch key holds the kind: every task's)
        self.pipe = context.pipeline(self.head)
        self.family = family_of(self.pipe)
        self.inputs = {task.id: self.kind.inputs(task) for task in tasks}
        # Control maps and reference pictures, once per task (None: no guides that act).
        # (The device only where some act: reading it walks the pipeline's modules.)
        device = None
        if any(guides.active_units(task) or guides.active_references(task) for task in tasks):
            device = str(getattr(self.pipe, "_execution_device", None) or self.pipe.device)
        self.guides = {task.id: guides.inputs(task, self.inputs[task.id], context.models_path, device)
                       for task in tasks}
        self.progress = {}
        for task in tasks:
            progress = context.progress(task, self.pipe)
            progress.step(0, None)
            self.progress[task.id] = progress
        self.images = {task.id: [] for task in tasks}
        self.stopped: set[str] = set()  # canceled while running: their rows are dropped
        self.done: set[str] = set()
        self.withheld = {task.id: 0 for task in tasks}  # images the image check did not keep (block)
        self.call_seconds = 0.0  # in pipeline calls, of the batch's time (the rest is the worker's own)

    def live(self, rows: list[Row]) -> list[Row]:
        """The rows whose task is still running (a cancel drops its rows)."""
        for task in {row.task.id: row.task for row in rows}.values():
            if task.id not in self.stopped and self.context.canceled(task):
                self.stopped.add(task.id)
        return [row for row in rows if row.task.id not in self.stopped]

    def record(self, row: Row) -> dict:
        """What the picture of `row` records (its PNG's parameters): the task's parameters,
        the row's seed and index, the family, and the kind's own fields."""
        return {**row.task.parameters(), "seed": row.seed, "task_id": row.task.id, "index": row.index,
                "family": self.family, **self.kind.infotext_fields(row.task)}

    def run(self, rows: list[Row]) -> None:
        """Render `rows` in one call and keep what it made, for the tasks still running."""
        rows = self.live(rows)
        if not rows:
            return
        context = self.context
        tasks = list({row.task.id: row.task for row in rows}.values())
        position = 0
        for task in tasks:
            mine = [row for row in rows if row.task.id == task.id]
            self.progress[task.id].begin_call(mine[0].index, len(mine), row=position,
                                              done_before=len(self.images[task.id]) * task.effective_steps)
            position += len(mine)
        seeds = [row.seed for row in rows]
        apply_scheduler(self.pipe, self.head.scheduler, seed=seeds)  # (DPM++ SDE: per-image noise)
        runner, kwargs = self.kind.build_call(self.pipe, self.head, rows, self.inputs)
        runner, kwargs = guides.guide_call(self.pipe, self.head, rows, runner, kwargs, self.guides, self.inputs,
                                           context.models_path, context.follow_links)
        kwargs = qwen.call_arguments(runner, kwargs)  # (Qwen-Image's guidance is true_cfg_scale)

        spent = [0.0]  # seconds in this callback: the worker's own cost per step
        ran = [0]  # steps the call ran (a call whose tasks all stopped: fewer than asked)

        def on_step_end(pipeline, step_index, _timestep, callback_kwargs):
            entered = time.perf_counter()
            ran[0] = step_index + 1
            try:
                return step_end(pipeline, step_index, callback_kwargs)
            finally:
                spent[0] += time.perf_counter() - entered

        def step_end(pipeline, step_index, callback_kwargs):
            wanted = context.stop_wanted([task for task in tasks if task.id not in self.stopped])
            for task in tasks:
                if task.id in wanted and task.id not in self.stopped:
                    self.stopped.add(task.id)
            if all(task.id in self.stopped for task in tasks):
                pipeline._interrupt = True  # diffusers skips the remaining steps
                return callback_kwargs
            latents = callback_kwargs.get("latents")
            for task in tasks:
                if task.id not in self.stopped:
                    self.progress[task.id].step(step_index + 1, getattr(pipeline, "num_timesteps", None), latents)
            return callback_kwargs

        kwargs.update(generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
                      callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
        started = time.monotonic()
        compiled_first = context.first_compiled_call(self.head, len(rows))
        # Fast mode (a batch's tasks all are, or none: batching.batch_key): the family's
        # step cache on the transformer for this call only.
        with fast.enabled(self.pipe, self.family, demo=self.head.model in DEMO_MODELS) if self.head.fast \
                else contextlib.nullcontext():
            result = call_pipeline(runner, **kwargs)
        seconds = time.monotonic() - started
        self.call_seconds += seconds
        # Every picture's PNG and thumbnail start encoding now, side by side (threads), while
        # the bookkeeping and the image check below run; a withheld one's bytes are dropped.
        pictures = [self.kind.finish_picture(row, picture, self.inputs) for row, picture in zip(rows, result.images)]
        encoded = [storage.start_encoding(picture, self.record(row)) for row, picture in zip(rows, pictures)]
        if compiled_first:
            log.info("compiled %s for %dx%d, %d image(s) a call: first call %.1f s",
                     self.head.model, self.head.width, self.head.height, len(rows), seconds)
        context.record_call(tasks, len(rows), seconds, spent[0], ran[0])
        # (a compiling call's time says nothing of the next ones; a kind whose call is not
        # denoising steps at the task's size, an upscale or a hires fix, records none)
        if not compiled_first and getattr(self.kind, "records_step_time", True):
            per_step = self.progress[rows[0].task.id].seconds_per_step() if len(rows) == 1 else None
            if per_step is None:  # one step, or a batch: the call's time per image-step
                per_step = seconds / max(self.head.effective_steps, 1) / len(rows)
            context.record_step_time(self.head, per_step, len(rows))
        verdicts = context.verdicts(pictures)  # the image check (worker/safety.py), one call
        made = list(zip(rows, encoded, verdicts))
        for task in tasks:
            # A task's images of this call are stored (files written, rows added), then
            # committed with its end when they are its last (one transaction: the rows
            # and running → done; the `done` event lists them), else on their own.
            if task.id in self.stopped or context.canceled(task):
                self.stopped.add(task.id)
                log.info("task %s canceled while running", task.id)
                continue
            added = []
            for row, files, verdict in made:
                if row.task.id != task.id:
                    continue
                if safety.withheld(verdict):
                    self.withheld[task.id] += 1
                    continue
                added.append(context.save(row, files, verdict))
            self.images[task.id] += added
            if len(self.images[task.id]) + self.withheld[task.id] >= task.samples and task.id not in self.done:
                self.done.add(task.id)
                context.finish(task, self.withheld[task.id])
            elif context.keep(added) is False:  # canceled meanwhile: not kept, and no more rendered
                self.images[task.id] = self.images[task.id][:len(self.images[task.id]) - len(added)]
                self.stopped.add(task.id)
                log.info("task %s canceled while running", task.id)
                continue
            self.progress[task.id].image_ready(self.images[task.id])  # (no event once all are in)


def render_batch(tasks: list, context: RenderContext) -> Render:
    """Render the tasks of a batch: their images in calls of at most images_per_call()
    rows, a task's images together and in order. Out of memory on a call: once at half
    the size, then one image a call, then the error (each task fails and is refunded);
    the size that fits is learned for that model and size."""
    render = Render(tasks, context)
    rows = [Row(task, index) for task in tasks for index in range(task.samples)]
    for chunk in chunks(rows, context.images_per_call(render.head)):
        _run_fitting(render, chunk, attempt=0)
    return render


def _run_fitting(render: Render, rows: list, attempt: int) -> None:
    try:
        render.run(rows)
    except torch.OutOfMemoryError:
        head, limits = render.head, render.context.limits
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
