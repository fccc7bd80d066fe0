"""A kind of call: what the worker does with a task of that kind, in one place.

A kind says which tasks are its own (applies), what may share one pipeline call beside
what every kind shares (batch_key), what it reads once per task before its calls
(inputs: an init picture, a mask), how a batch's rows become a pipeline call
(build_call), what becomes of each picture the call made before it is stored
(finish_picture: inpainting pastes it over its input) and what it records in each
image's parameters (infotext_fields).
worker/render.py runs any kind; worker/batching.py keys batches by it. A new kind is a
module with a TaskKind subclass, registered (register) where worker/kinds/__init__.py
imports the built-in ones."""
from __future__ import annotations

from collections.abc import Callable


class TaskKind:
    """One kind of call (text-to-image, image-to-image, …). Subclasses set `name` and
    override what differs from text-to-image."""

    name: str = ""

    def applies(self, task) -> bool:
        """Is `task` of this kind? (kind_for asks the kinds registered last first.)"""
        raise NotImplementedError

    def batch_key(self, task) -> tuple:
        """What must be equal, beyond what every kind shares (model, size, steps,
        scheduler, guidance, LoRAs, a negative prompt or none), for tasks of this kind
        to share a call (worker/batching.batch_key)."""
        return ()

    def inputs(self, task):
        """What the kind reads once per task before its calls (None: nothing)."""

    def build_call(self, pipe, head, rows: list, inputs: dict) -> tuple[Callable, dict]:
        """The pipeline to call for `rows` (each with .task, .index, .seed; their tasks
        share `head`'s batch key) and its arguments, generators and step callback
        aside (Render adds those). inputs: task id -> what inputs() returned."""
        raise NotImplementedError

    def finish_picture(self, row, picture, inputs: dict):
        """The picture of `row` as it is stored, from the one the call made (Render calls
        it before encoding and before the image check). inputs: task id -> what inputs()
        returned. The default keeps the picture as it is."""
        return picture

    def infotext_fields(self, task) -> dict:
        """What an image of this kind records beside the task's parameters (its PNG's
        metadata and the A1111 infotext, services/library/imaging.py)."""
        return {}

    @staticmethod
    def prompt_arguments(head, rows: list) -> dict:
        """The arguments every kind's call takes: a prompt (and a negative prompt, when
        the batch has them) per row, the steps and the guidance."""
        arguments = {"prompt": [row.task.prompt for row in rows], "num_inference_steps": head.steps,
                     "guidance_scale": head.guidance, "num_images_per_prompt": 1}
        if head.negative_prompt:  # (a batch's tasks all have one, or none: batching.batch_key)
            arguments["negative_prompt"] = [row.task.negative_prompt for row in rows]
        return arguments

    def __repr__(self) -> str:
        return f"<TaskKind {self.name}>"


_kinds: dict[str, TaskKind] = {}


def register(kind: TaskKind) -> TaskKind:
    """Add a kind (a kind of the same name is replaced). Returns it."""
    if not kind.name:
        raise ValueError("a task kind needs a name")
    _kinds.pop(kind.name, None)
    _kinds[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    _kinds.pop(name, None)


def registered() -> list[TaskKind]:
    """The kinds, in the order they were registered."""
    return list(_kinds.values())


def kind_for(task) -> TaskKind:
    """The kind of `task`: of the kinds that apply to it, the one registered last (a more
    particular kind is registered after the general one it refines)."""
    for kind in reversed(list(_kinds.values())):
        if kind.applies(task):
            return kind
    raise LookupError(f"no task kind applies to task {getattr(task, 'id', task)!r}")
