"""Uploads keep their size (up to the server's upload limits) and are fitted to each
task's size by the worker: the panel's size when it was uploaded does not matter."""
from __future__ import annotations

import io

from PIL import Image as PILImage

from tests.helpers import image_bytes
from tests.integration.helpers import post_upload


def size_of(user, url: str) -> tuple[int, int]:
    response = user.get(url)
    assert response.status_code == 200, response.data[:300]
    return PILImage.open(io.BytesIO(response.data)).size


def test_an_upload_is_kept_at_its_size_and_fitted_to_each_task(make_user):
    user = make_user("fitter")
    upload = post_upload(user, image_bytes((640, 480)))
    assert upload.status_code == 201, upload.get_json()
    image = upload.get_json()
    assert (image["width"], image["height"]) == (640, 480)
    assert size_of(user, image["url"]) == (640, 480)

    # The same upload at a small size, then a larger one of another shape.
    for width, height, fit in ((256, 256, "contain"), (640, 448, "cover")):
        submitted = user.submit(width=width, height=height, steps=2, strength=0.5,
                                init_image=image["id"], init_fit=fit)
        assert submitted.status_code == 202, submitted.get_json()
        task = user.wait_task(submitted.get_json()["id"], timeout=180)
        assert task["state"] == "done", task.get("error")
        assert task["init_image"] == image["id"] and task["init_fit"] == fit
        assert size_of(user, task["images"][0]["url"]) == (width, height)

    # The upload itself is untouched by the tasks.
    assert size_of(user, image["url"]) == (640, 480)
    again = user.get(f"/api/v1/images/{image['id']}").get_json()
    assert (again["width"], again["height"]) == (640, 480)
