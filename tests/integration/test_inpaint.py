"""Inpainting and outpainting through the real worker, on the tiny demo model of each
family (SD 1.x, SDXL, SD 3, FLUX.1 schnell): the pixels the mask (plus its blur radius)
does not reach are the input's, the masked ones are repainted; "only masked" renders the
crop and pastes it back in place; outpainting widens the picture and keeps the original;
an inverted mask swaps the two; and two users' inpaint tasks share one call, each
matching its solo run within test_batching.py's tolerance."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image as PILImage

from services.core import queue as queue_service
from services.core import redis_client
from tests.helpers import wait_for
from tests.integration.helpers import ApiUser, post_upload

CENTRE = (24, 24, 40, 40)  # the centre mask of a 64 × 64 picture (x0, y0, x1, y1)
BLUR = 4  # the default mask_blur
BATCH_TOLERANCE = {"max": 2, "mean": 0.1}  # levels of 255, as tests/integration/test_batching.py's


@pytest.fixture(scope="module")
def worker_inpaint_stack(stack_factory):
    # test_families.py's settings: the same stack when both run.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    return shared.app


@pytest.fixture(scope="module")
def brush_user(worker_inpaint_stack):
    return ApiUser(worker_inpaint_stack.test_client(), "workerbrush")


def block_picture(seed: int, size=(64, 64)) -> np.ndarray:
    """Coloured blocks of 8 px: a picture the model's noise is easily told from."""
    blocks = np.random.default_rng(seed).integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)


def upload_picture(user, pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    PILImage.fromarray(pixels).save(buffer, format="PNG")
    response = post_upload(user, buffer.getvalue(), "start.png")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def mask_data_url(box, size=(64, 64)) -> str:
    """An RGB PNG, white (repaint) in `box`, as a data URL."""
    mask = PILImage.new("RGB", size, "black")
    mask.paste((255, 255, 255), box)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def distance_from(box, size) -> np.ndarray:
    """Each pixel's distance (the larger of x and y) from the box; inside it, minus the
    distance to its edge (so > r: more than r outside, < -r: more than r inside)."""
    ys, xs = np.mgrid[0:size[1], 0:size[0]]
    outside = np.maximum(np.maximum(np.maximum(box[0] - xs, xs - (box[2] - 1)), 0),
                         np.maximum(np.maximum(box[1] - ys, ys - (box[3] - 1)), 0))
    inside = np.minimum(np.minimum(xs - box[0], box[2] - 1 - xs), np.minimum(ys - box[1], box[3] - 1 - ys)) + 1
    return np.where(outside > 0, outside, -np.maximum(inside, 0))


def inpainted(user, **params) -> tuple[dict, np.ndarray]:
    response = user.submit(**{"width": 64, "height": 64, "steps": 2, "seed": 77, **params})
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=120)
    assert task["state"] == "done", task
    image = PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).convert("RGB")
    return task, np.asarray(image, dtype=np.int16)


@pytest.mark.parametrize("model", ["demo", "demo-sdxl", "demo-sd3", "demo-flux"])
def test_a_centre_mask_repaints_the_centre_and_keeps_the_rest(brush_user, model):
    start = block_picture(1)
    task, out = inpainted(brush_user, model=model, init_image=upload_picture(brush_user, start),
                          mask=mask_data_url(CENTRE))
    assert out.shape == (64, 64, 3) and task["mask"] and task["inpaint"]["mask_blur"] == BLUR
    distance, diff = distance_from(CENTRE, (64, 64)), np.abs(out - start)
    assert diff[distance > BLUR].max() <= 1  # beyond the mask and its blur: the input's pixels
    inside = diff[distance < -BLUR].max(axis=-1)
    assert (inside > 8).mean() > 0.9, inside.mean()  # within it, repainted
    png = PILImage.open(io.BytesIO(brush_user.get(task["images"][0]["url"]).data))
    assert "Mask blur: 4, Inpaint area: Whole picture, Masked content: original" in png.info["parameters"]


@pytest.mark.parametrize("model", ["demo-flux", "demo"])
def test_outpainting_64_px_to_the_right_widens_the_picture_and_keeps_it(brush_user, model):
    start = block_picture(3)
    task, out = inpainted(brush_user, model=model, init_image=upload_picture(brush_user, start),
                          outpaint={"right": 64})
    assert (task["width"], task["height"]) == (128, 64) and out.shape == (64, 128, 3)
    assert task["inpaint"]["outpaint"] == {"left": 0, "right": 64, "top": 0, "bottom": 0}
    assert np.abs(out[:, :64 - BLUR] - start[:, :64 - BLUR]).max() <= 1  # the original region
    new = out[:, 64 + BLUR:]
    edge = np.repeat(start[:, -1:], new.shape[1], axis=1)  # what the new area was pre-filled with
    assert np.abs(new - edge).mean() > 8  # painted over


def test_an_inverted_mask_keeps_the_centre_and_repaints_around_it(brush_user):
    start = block_picture(4)
    _, out = inpainted(brush_user, model="demo", init_image=upload_picture(brush_user, start),
                       mask=mask_data_url(CENTRE), mask_invert=True)
    distance, diff = distance_from(CENTRE, (64, 64)), np.abs(out - start)
    assert diff[distance < -BLUR].max() <= 1  # the mask's square is kept
    around = diff[distance > BLUR].max(axis=-1)
    assert (around > 8).mean() > 0.9  # and the rest repainted


@pytest.mark.parametrize("model", ["demo", "demo-sdxl"])
def test_only_masked_renders_the_crop_and_pastes_it_back_in_place(brush_user, model):
    # No blur and no padding: the crop is the mask's own square, so a crop pasted even a
    # pixel off would leave a strip of the mask as the input's.
    start, box = block_picture(2), (8, 40, 24, 56)
    init = upload_picture(brush_user, start)
    settings = {"model": model, "init_image": init, "mask": mask_data_url(box), "mask_blur": 0}
    _, whole = inpainted(brush_user, **settings)
    task, only = inpainted(brush_user, **settings, inpaint_area="masked", inpaint_padding=0)
    assert task["inpaint"]["inpaint_area"] == "masked" and only.shape == (64, 64, 3)
    distance, diff = distance_from(box, (64, 64)), np.abs(only - start)
    assert diff[distance > 0].max() == 0
    changed = diff[distance <= 0].max(axis=-1) > 8
    assert changed.mean() > 0.95, changed.mean()
    for edge in (changed.reshape(16, 16)[0], changed.reshape(16, 16)[-1],
                 changed.reshape(16, 16)[:, 0], changed.reshape(16, 16)[:, -1]):
        assert edge.mean() > 0.6  # each side of the square repainted
    # ...by another render than the whole picture's (the crop at the model's native size).
    assert np.abs(only - whole)[distance <= 0].mean() > 5


# --- batching ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def inpaint_batch_stack(stack_factory):
    # test_batching.py's settings (images per call 8): the same stack when both run.
    shared = stack_factory(DAYDREAM_MAX_BATCH=8, DAYDREAM_STARTING_TOKENS=10000, DAYDREAM_PREVIEW_HZ=50)
    app = shared.app
    app.worker = shared.worker
    return app


def inpaint_worker_calls(app, task_ids) -> list[dict]:
    """The worker's calls (oldest first) that held any of `task_ids`."""
    from worker.jobs import recent_batches

    with app.app_context():
        [name] = [n for n, w in queue_service.workers().items() if w["pid"] == app.worker.proc.pid]
        calls = list(reversed(recent_batches(name, redis_client.connection())))
    return [call for call in calls if set(task_ids) & set(call["tasks"])]


def test_two_users_inpaint_tasks_share_one_call_and_match_their_solo_runs(inpaint_batch_stack):
    app = inpaint_batch_stack
    blocker_user, first, second = (ApiUser(app.test_client(), f"workerbrushbatch{n}") for n in range(3))
    params = [
        (first, {"prompt": "a red door", "seed": 501, "init_image": upload_picture(first, block_picture(5)),
                 "mask": mask_data_url(CENTRE)}),
        (second, {"prompt": "a blue sky", "seed": 502, "init_image": upload_picture(second, block_picture(6)),
                  "mask": mask_data_url((0, 0, 32, 24))}),
    ]
    common = {"width": 64, "height": 64, "steps": 4, "strength": 0.8}
    blocker = blocker_user.submit(width=256, height=256, steps=150).get_json()["id"]
    wait_for(lambda: blocker_user.get(f"/api/v1/tasks/{blocker}").get_json()["state"] == "running", 60,
             message="the blocker to start")
    ids = []
    for user, wanted in params:
        response = user.submit(**common, **wanted)
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    blocker_user.post(f"/api/v1/tasks/{blocker}/cancel")
    done = [user.wait_task(task_id, timeout=120) for (user, _), task_id in zip(params, ids)]
    assert [task["state"] for task in done] == ["done", "done"], done
    [call] = inpaint_worker_calls(app, ids)  # one call held both users' tasks
    assert sorted(call["tasks"]) == sorted(ids) and call["images"] == 2

    def pixels(user, task):
        data = user.get(task["images"][0]["url"]).data
        return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)

    batched = [pixels(user, task) for (user, _), task in zip(params, done)]
    for (user, wanted), together in zip(params, batched):
        solo = user.wait_task(user.submit(**common, **wanted).get_json()["id"], timeout=120)
        assert solo["state"] == "done", solo
        assert inpaint_worker_calls(app, [solo["id"]])[0]["images"] == 1
        diff = np.abs(together - pixels(user, solo))
        assert diff.max() <= BATCH_TOLERANCE["max"], diff.max()
        assert diff.mean() <= BATCH_TOLERANCE["mean"], diff.mean()
    assert np.abs(batched[0] - batched[1]).mean() > 5  # each row its own picture and mask
