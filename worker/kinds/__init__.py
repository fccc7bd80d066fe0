"""The kinds of call the worker makes, one module a kind (base.py says what a kind is).
The built-in kinds are registered here, the general one first: kind_for() asks the
kinds registered last first."""
from __future__ import annotations

from worker.kinds.base import TaskKind, kind_for, register, registered, unregister
from worker.kinds.edit import Edit
from worker.kinds.hires import HiresFix
from worker.kinds.img2img import ImageToImage
from worker.kinds.inpaint import Inpaint
from worker.kinds.txt2img import TextToImage
from worker.kinds.upscale import Upscale

register(TextToImage())
register(ImageToImage())
register(Inpaint())  # (after image-to-image: an inpaint task has an init picture too)
register(HiresFix())  # (text to image with a hires fix: two passes)
register(Edit())  # (a picture edited by instruction)
register(Upscale())  # (last: an upscale task is one whatever else it holds)

__all__ = ["TaskKind", "kind_for", "register", "registered", "unregister"]
