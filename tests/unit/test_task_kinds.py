"""A task kind is one module (worker/kinds/): a toy kind, defined and registered here
and nowhere else, gets its own batch key and its own infotext, and Render runs it with
the tiny demo pipeline on the CPU. Render's surroundings (the database, Redis, the
images folder) are a RenderContext of the test's that keeps what it is given."""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageOps

from models import Task
from services.library.imaging import read_metadata
from worker.batching import BatchLimits, batch_key, can_join
from worker.demo_model import build_demo_model
from worker.kinds import TaskKind, kind_for, register, registered, unregister
from worker.pipelines.load import load_pipeline
from worker.render import RenderContext, render_batch
from worker.schedulers import apply_scheduler

FLIPS = {"left_right": ImageOps.mirror, "top_bottom": ImageOps.flip}


class Mirror(TaskKind):
    """Text to image, the picture mirrored: tasks that mirror the same way share a call."""

    name = "mirror"

    def applies(self, task) -> bool:
        return getattr(task, "mirror", None) is not None

    def batch_key(self, task) -> tuple:
        return (task.mirror,)

    def inputs(self, task):
        return FLIPS[task.mirror]

    def build_call(self, pipe, head, rows, inputs):
        flips = [inputs[row.task.id] for row in rows]

        def mirrored(**arguments):
            result = pipe(**arguments)
            result.images = [flip(picture) for flip, picture in zip(flips, result.images)]
            return result

        return mirrored, {**self.prompt_arguments(head, rows), "width": head.width, "height": head.height}

    def infotext_fields(self, task) -> dict:
        return {"mirror": task.mirror}


class Steps:
    """A task's progress, counted (worker/progress.Progress sends it to Redis)."""

    def __init__(self):
        self.steps_done, self.calls, self.ready = 0, 0, []

    def begin_call(self, first, images, row=0, done_before=None):
        self.calls += 1

    def step(self, done_in_call, per_call, latents=None):
        self.steps_done += 1

    def seconds_per_step(self):
        return None

    def image_ready(self, images):
        self.ready = list(images)


class Kept(RenderContext):
    """Render's surroundings in memory: the demo pipeline, and what it was told."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.limits = BatchLimits(configured=8)
        self.calls: list[tuple[list[str], int]] = []
        self.finished: dict[str, int] = {}
        self.steps: dict[str, Steps] = {}

    def pipeline(self, head):
        apply_scheduler(self.pipe, head.scheduler)
        return self.pipe

    def images_per_call(self, head) -> int:
        return 8

    def progress(self, task, pipe):
        return self.steps.setdefault(task.id, Steps())

    def canceled(self, task) -> bool:
        return False

    def stop_wanted(self, tasks) -> set[str]:
        return set()

    def record_call(self, tasks, images, seconds, step_work, steps) -> None:
        self.calls.append(([task.id for task in tasks], images))

    def save(self, row, encoded, verdict):
        png = encoded.png.result()
        return SimpleNamespace(task_id=row.task.id, index=row.index, metadata=read_metadata(png),
                               pixels=np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16))

    def finish(self, task, withheld: int) -> None:
        self.finished[task.id] = withheld


def a_task(task_id: str, mirror: str | None = None, **values) -> Task:
    fields = dict(id=task_id, user_id=1, prompt="a lighthouse", negative_prompt="", width=64, height=64,
                  steps=3, guidance=7.0, samples=1, seed=11, scheduler="euler", model="demo", loras=None,
                  init_image_id=None, strength=None, init_fit=None)
    fields.update(values)
    made = Task(**fields)
    if mirror is not None:
        made.mirror = mirror  # what makes it a mirror task (a column, for a real kind)
    return made


@pytest.fixture(scope="module")
def demo_pipe(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    build_demo_model(models / "daydream-demo")
    return load_pipeline("demo", models, device="cpu")


@pytest.fixture
def mirror_kind():
    kind = register(Mirror())
    yield kind
    unregister(kind.name)


def test_a_registered_kind_takes_its_tasks_and_keys_its_batches(mirror_kind):
    assert kind_for(a_task("a", mirror="left_right")) is mirror_kind
    assert kind_for(a_task("b")).name == "txt2img"
    assert kind_for(a_task("c", init_image_id="img", strength=0.5)).name == "img2img"
    # Its own key: the same axis shares a call (prompts and seeds may differ), another does not,
    # and a mirror task never joins a plain one of the same parameters.
    assert can_join(a_task("a", mirror="left_right"), a_task("d", mirror="left_right", prompt="a fox", seed=3))
    assert not can_join(a_task("a", mirror="left_right"), a_task("e", mirror="top_bottom"))
    assert not can_join(a_task("a", mirror="left_right"), a_task("b"))
    assert batch_key(a_task("a", mirror="left_right"))[7] == ("mirror", "left_right")


def test_render_runs_the_toy_kind_in_one_call_with_its_infotext(mirror_kind, demo_pipe):
    plain_context = Kept(demo_pipe)
    plain = render_batch([a_task("plain", seed=21)], plain_context)
    [reference] = plain.images["plain"]

    context = Kept(demo_pipe)
    first, second = a_task("m1", mirror="left_right", samples=2, seed=21), a_task("m2", mirror="left_right", prompt="a fox")
    render = render_batch([first, second], context)

    assert render.kind is mirror_kind
    assert context.calls == [(["m1", "m2"], 3)]  # one call held both tasks' rows
    assert context.finished == {"m1": 0, "m2": 0}
    images = render.images["m1"]
    assert [image.index for image in images] == [0, 1] and len(render.images["m2"]) == 1
    assert context.steps["m1"].ready == images and context.steps["m1"].steps_done == 1 + 3

    # The kind's call ran: image 0 of m1 (seed 21, the same prompt) is the plain picture
    # mirrored, up to the noise of a batched call and PNG rounding.
    mirrored = np.asarray(ImageOps.mirror(Image.fromarray(reference.pixels.astype(np.uint8))), dtype=np.int16)
    assert np.abs(images[0].pixels - mirrored).max() <= 2
    assert np.abs(images[0].pixels - reference.pixels).mean() > 5  # (not symmetric: the flip shows)

    # Its infotext: the kind's field beside the task's parameters and the row's seed.
    metadata = images[1].metadata
    assert metadata["mirror"] == "left_right"
    assert (metadata["seed"], metadata["index"], metadata["task_id"], metadata["family"]) == (22, 1, "m1", "sd1")
    assert metadata["prompt"] == "a lighthouse" and render.images["m2"][0].metadata["prompt"] == "a fox"
    assert "mirror" not in reference.metadata


def test_unregistering_the_kind_leaves_the_built_in_ones():
    names = [kind.name for kind in registered()]
    assert names == ["txt2img", "img2img", "inpaint", "hires", "edit", "upscale"]
    kind = register(Mirror())
    assert kind_for(a_task("a", mirror="left_right")) is kind
    unregister("mirror")
    assert kind_for(a_task("a", mirror="left_right")).name == "txt2img"
