"""Text to image: the loaded pipeline itself, at the task's size."""
from __future__ import annotations

from worker.kinds.base import TaskKind


class TextToImage(TaskKind):
    name = "txt2img"

    def applies(self, task) -> bool:
        return True  # every task that no more particular kind takes

    def build_call(self, pipe, head, rows, inputs):
        return pipe, {**self.prompt_arguments(head, rows), "width": head.width, "height": head.height}
