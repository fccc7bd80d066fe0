"""FLUX.2 klein through the real worker, on the tiny demo-flux2 built in code (a 27-layer
tiny Qwen3 read at layers 9, 18 and 27, Flux2Transformer2DModel, the 32-channel FLUX.2
VAE). tests/integration/test_families.py runs it with the other families (text to image
and image to image the same for a seed, previews over Socket.IO, its scheduler); this
module shows what is FLUX.2's own: its card, its LoRA, inpainting through
Flux2KleinInpaintPipeline, edits with several reference pictures (optional: text alone
still makes a picture), and two users' tasks in one call."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import redis
from PIL import Image as PILImage

from services.core import keys
from tests.helpers import wait_for
from tests.integration.helpers import ApiUser, calls_holding, post_upload

FLUX2 = {"model": "demo-flux2", "width": 64, "height": 64, "steps": 2, "seed": 41}
FLUX2_TOLERANCE = {"max": 2, "mean": 0.1}  # levels of 255, as tests/integration/test_batching.py's


@pytest.fixture(scope="module")
def flux2_stack(stack_factory):
    # test_families.py's settings: the same stack when both run.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    return shared.app


@pytest.fixture(scope="module")
def flux2_user(flux2_stack):
    return ApiUser(flux2_stack.test_client(), "flux2user")


def flux2_task(user, **params) -> dict:
    response = user.submit(**{**FLUX2, **params})
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=180)
    assert task["state"] == "done", task
    return task


def flux2_pixels(user, task, index: int = 0) -> np.ndarray:
    data = user.get(task["images"][index]["url"]).data
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def flux2_blocks(seed: int) -> np.ndarray:
    blocks = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1)


def flux2_upload(user, seed: int) -> str:
    """An uploaded 64x64 picture of 8 px coloured blocks (its id)."""
    buffer = io.BytesIO()
    PILImage.fromarray(flux2_blocks(seed)).save(buffer, format="PNG")
    response = post_upload(user, buffer.getvalue(), "start.png")
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_flux2_card_renders_text_alone_and_keeps_a_preview(flux2_stack, flux2_user):
    card = {m["id"]: m for m in flux2_user.get("/api/v1/models").get_json()["items"]}["demo-flux2"]
    assert (card["family"], card["family_label"], card["variant"]) == ("flux2", "FLUX.2", "klein")
    assert card["latent_channels"] == 32 and card["size_step"] == 16 and card["inpainting"] == "standard"
    assert card["edits"] and card["edit_optional"] and card["edit_each"] and card["max_references"] == 4
    assert not card["uses_guidance"] and not card["uses_negative_prompt"]

    first = flux2_task(flux2_user, width=96, height=64)  # no edit: text alone (edits are optional)
    assert flux2_pixels(flux2_user, first).shape == (64, 96, 3) and not first.get("edit")
    conn = redis.Redis.from_url(flux2_stack.config["REDIS_URL"])
    preview = conn.get(keys.preview(first["id"]))  # the packed 128-channel latents, unpacked
    assert preview is not None and preview.startswith(b"data:image/jpeg;base64,")
    refused = flux2_user.submit(**FLUX2, negative_prompt="blurry")
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "negative_prompt"


def test_the_flux2_lora_changes_the_pixels_and_leaves_no_trace(flux2_user):
    plain = flux2_task(flux2_user)
    with_lora = flux2_task(flux2_user, loras=[{"id": "demo-lora-flux2", "weight": 1.0}])
    assert with_lora["loras"][0]["id"] == "demo-lora-flux2"
    assert np.abs(flux2_pixels(flux2_user, with_lora) - flux2_pixels(flux2_user, plain)).mean() > 1
    after = flux2_task(flux2_user)
    assert (flux2_pixels(flux2_user, after) == flux2_pixels(flux2_user, plain)).all()
    refused = flux2_user.submit(**FLUX2, loras=[{"id": "demo-lora-flux", "weight": 1.0}])
    assert refused.status_code == 422 and "is a FLUX.2 model" in refused.get_json()["error"]["message"]


def test_flux2_inpaints_inside_the_mask_and_keeps_the_rest(flux2_user):
    start = flux2_upload(flux2_user, 3)
    mask = PILImage.new("RGB", (64, 64), "black")
    mask.paste((255, 255, 255), (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    data_url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    task = flux2_task(flux2_user, init_image=start, mask=data_url, strength=0.9)
    painted = flux2_pixels(flux2_user, task)
    original = flux2_blocks(3).astype(np.int16)
    far = np.ones((64, 64), bool)
    far[8:56, 8:56] = False  # more than the mask blur (4 px) away from the 16..48 square
    assert np.abs(painted - original)[far].max() <= 2  # kept: the input's own pixels
    assert np.abs(painted - original)[24:40, 24:40].mean() > 10  # repainted


def test_a_flux2_edit_takes_each_reference_picture(flux2_user):
    first, second, third = (flux2_upload(flux2_user, seed) for seed in (5, 6, 7))
    one = flux2_task(flux2_user, prompt="put them together", edit={"images": [first, second]})
    assert one["edit"]["images"] == [first, second] and flux2_pixels(flux2_user, one).shape == (64, 64, 3)
    again = flux2_task(flux2_user, prompt="put them together", edit={"images": [first, second]})
    assert (flux2_pixels(flux2_user, again) == flux2_pixels(flux2_user, one)).all()
    # Another second reference, other pixels: each picture is its own reference (the tiny
    # random transformer attends to reference tokens only faintly: any change shows it).
    other = flux2_task(flux2_user, prompt="put them together", edit={"images": [first, third]})
    assert (flux2_pixels(flux2_user, other) != flux2_pixels(flux2_user, one)).any()
    alone = flux2_task(flux2_user, prompt="put them together")
    assert (flux2_pixels(flux2_user, alone) != flux2_pixels(flux2_user, one)).any()
    assert one["cost"] == 3 * alone["cost"]  # each reference's tokens cost about what the result's do
    too_many = flux2_user.submit(**FLUX2, edit={"images": [first, second, third, first, second]})
    assert too_many.status_code == 422 and "at most 4 pictures" in too_many.get_json()["error"]["message"]


# --- two users' tasks in one call -----------------------------------------------------

@pytest.fixture(scope="module")
def flux2_batch_stack(stack_factory):
    # test_family_chroma.py's batching stack (images per call 8; every family's demo
    # models): the same settings, so the new families' modules share it.
    shared = stack_factory(DAYDREAM_MAX_BATCH=8, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50,
                           DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker = shared.worker
    return app


def test_two_users_flux2_tasks_share_one_call_and_match_their_solo_runs(flux2_batch_stack):
    app = flux2_batch_stack
    blocker_user, first, second = (ApiUser(app.test_client(), f"flux2batch{n}") for n in range(3))
    wanted = [(first, {"prompt": "a red door", "seed": 701}), (second, {"prompt": "a blue sky", "seed": 702})]
    # A long FLUX.2 task keeps the worker busy (its steps and size keep it out of the batch).
    response = blocker_user.submit(**{**FLUX2, "steps": 150, "width": 128, "height": 128})
    assert response.status_code == 202, response.get_json()
    blocker = response.get_json()["id"]
    wait_for(lambda: blocker_user.get(f"/api/v1/tasks/{blocker}").get_json()["state"] == "running", 120,
             message="the blocker to start")
    ids = []
    for user, params in wanted:
        response = user.submit(**{**FLUX2, **params})
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    blocker_user.post(f"/api/v1/tasks/{blocker}/cancel")
    done = [user.wait_task(task_id, timeout=180) for (user, _), task_id in zip(wanted, ids)]
    assert [task["state"] for task in done] == ["done", "done"], done
    [call] = calls_holding(app, ids)  # one call held both users' tasks
    assert sorted(call["tasks"]) == sorted(ids) and call["images"] == 2

    together = [flux2_pixels(user, task) for (user, _), task in zip(wanted, done)]
    user, params = wanted[0]
    solo = user.wait_task(user.submit(**{**FLUX2, **params}).get_json()["id"], timeout=180)
    assert solo["state"] == "done" and calls_holding(app, [solo["id"]])[0]["images"] == 1
    diff = np.abs(together[0] - flux2_pixels(user, solo))
    assert diff.max() <= FLUX2_TOLERANCE["max"] and diff.mean() <= FLUX2_TOLERANCE["mean"], (diff.max(), diff.mean())
    assert np.abs(together[0] - together[1]).mean() > 5  # each row its own prompt and seed
