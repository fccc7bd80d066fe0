"""The init image of an image-to-image task, fitted to the task's width × height.

"cover" scales the picture to fill the frame and crops what overflows (centred);
"contain" scales it to fit inside and pads the rest with black. Neither stretches it.
Tasks stored before the choice existed (init_fit NULL) are fitted as "cover"."""
from __future__ import annotations

from PIL import Image as PILImage
from PIL import ImageOps

PAD = (0, 0, 0)


def fit_picture(picture: PILImage.Image, width: int, height: int, fit: str | None) -> PILImage.Image:
    """An RGB copy of `picture` of exactly width × height, fitted as `fit` says."""
    rgb = picture.convert("RGB")
    if fit == "contain":
        return ImageOps.pad(rgb, (width, height), method=PILImage.LANCZOS, color=PAD)
    return ImageOps.fit(rgb, (width, height), method=PILImage.LANCZOS)
