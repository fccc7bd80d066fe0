"""Image to image: the family's image-to-image pipeline made from the loaded one's
components, starting from the task's init picture fitted to its size
(worker/init_image.py) and denoising `strength` of the way. Tasks share a call at the
same strength; each row has its own picture."""
from __future__ import annotations

import inspect

from PIL import Image as PILImage

from services.library import storage
from worker.init_image import fit_picture
from worker.kinds.base import TaskKind
from worker.pipelines.cache import img2img_from


def takes_size(runner) -> bool:
    """Does the pipeline take width and height? (SD 3 and FLUX's image-to-image do: else
    they resize to their default size.)"""
    return "width" in inspect.signature(type(runner).__call__).parameters


class ImageToImage(TaskKind):
    name = "img2img"

    def applies(self, task) -> bool:
        return task.init_image_id is not None

    def batch_key(self, task) -> tuple:
        return (float(task.strength or 0),)

    def inputs(self, task):
        init = storage.get_image(task.user, task.init_image_id)
        with PILImage.open(storage.path_of(init)) as source:
            return fit_picture(source, task.width, task.height, task.init_fit)

    def build_call(self, pipe, head, rows, inputs):
        runner = img2img_from(pipe)  # follows the scheduler just set on pipe
        arguments = {**self.prompt_arguments(head, rows),
                     "image": [inputs[row.task.id] for row in rows], "strength": head.strength}
        if takes_size(runner):
            arguments.update(width=head.width, height=head.height)
        return runner, arguments

    def infotext_fields(self, task) -> dict:
        return {"init_image": task.init_image_id, "strength": task.strength, "init_fit": task.init_fit}
