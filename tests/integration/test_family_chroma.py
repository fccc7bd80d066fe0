"""Chroma through the real worker, on the tiny demo-chroma built in code (one T5 encoder,
ChromaTransformer2DModel, FLUX.1's VAE). tests/integration/test_families.py runs it with
the other families (text to image and image to image the same for a seed, previews over
Socket.IO, its schedulers); this module shows what is Chroma's own: real guidance with a
negative prompt, its LoRA, inpainting through ChromaInpaintPipeline, and two users'
tasks in one call."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
import redis
from PIL import Image as PILImage

from services.core import keys
from tests.helpers import wait_for
from tests.integration.helpers import ApiUser, calls_holding, upload_blocks

CHROMA = {"model": "demo-chroma", "width": 64, "height": 64, "steps": 2, "seed": 31, "guidance": 4.0,
          "negative_prompt": "blurry"}
TOLERANCE = {"max": 2, "mean": 0.1}  # levels of 255, as tests/integration/test_batching.py's


@pytest.fixture(scope="module")
def chroma_stack(stack_factory):
    # test_families.py's settings: the same stack when both run.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    return shared.app


@pytest.fixture(scope="module")
def chroma_user(chroma_stack):
    return ApiUser(chroma_stack.test_client(), "chromauser")


def chroma_task(user, **params) -> dict:
    response = user.submit(**{**CHROMA, **params})
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=180)
    assert task["state"] == "done", task
    return task


def chroma_pixels(user, task, index: int = 0) -> np.ndarray:
    data = user.get(task["images"][index]["url"]).data
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_chroma_takes_guidance_and_a_negative_prompt_and_sends_previews(chroma_stack, chroma_user):
    card = {m["id"]: m for m in chroma_user.get("/api/v1/models").get_json()["items"]}["demo-chroma"]
    assert card["family"] == "chroma" and card["uses_guidance"] and card["uses_negative_prompt"]
    assert card["size_step"] == 16 and card["latent_channels"] == 16 and card["inpainting"] == "standard"

    first = chroma_task(chroma_user, width=96, height=64)
    assert chroma_pixels(chroma_user, first).shape == (64, 96, 3)
    assert first["negative_prompt"] == "blurry" and first["guidance"] == 4.0
    again = chroma_task(chroma_user, width=96, height=64)
    assert (chroma_pixels(chroma_user, again) == chroma_pixels(chroma_user, first)).all()
    # The negative prompt is the unconditional side of real CFG: another one, other pixels.
    other = chroma_task(chroma_user, width=96, height=64, negative_prompt="sharp and bright")
    assert np.abs(chroma_pixels(chroma_user, other) - chroma_pixels(chroma_user, first)).mean() > 1
    # The latest preview of each task stays in Redis for readers that poll (a JPEG of the
    # packed latents, unpacked).
    conn = redis.Redis.from_url(chroma_stack.config["REDIS_URL"])
    preview = conn.get(keys.preview(first["id"]))
    assert preview is not None and preview.startswith(b"data:image/jpeg;base64,")
    meta = chroma_user.get(first["images"][0]["metadata_url"]).get_json()
    assert meta["family"] == "chroma" and meta["negative_prompt"] == "blurry"


def test_the_chroma_lora_changes_the_pixels_and_leaves_no_trace(chroma_user):
    plain = chroma_task(chroma_user)
    with_lora = chroma_task(chroma_user, loras=[{"id": "demo-lora-chroma", "weight": 1.0}])
    assert with_lora["loras"][0]["id"] == "demo-lora-chroma"
    assert np.abs(chroma_pixels(chroma_user, with_lora) - chroma_pixels(chroma_user, plain)).mean() > 1
    after = chroma_task(chroma_user)
    assert (chroma_pixels(chroma_user, after) == chroma_pixels(chroma_user, plain)).all()
    refused = chroma_user.submit(**CHROMA, loras=[{"id": "demo-lora-flux", "weight": 1.0}])
    assert refused.status_code == 422 and "is a Chroma model" in refused.get_json()["error"]["message"]


def chroma_mask(box) -> str:
    mask = PILImage.new("RGB", (64, 64), "black")
    mask.paste((255, 255, 255), box)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_chroma_inpaints_inside_the_mask_and_keeps_the_rest(chroma_user):
    start = upload_blocks(chroma_user, 3)[0]
    task = chroma_task(chroma_user, init_image=start, mask=chroma_mask((16, 16, 48, 48)), strength=0.9)
    painted = chroma_pixels(chroma_user, task)
    assert painted.shape == (64, 64, 3) and task["mask"]
    blocks = np.random.default_rng(3).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    original = np.repeat(np.repeat(blocks, 8, axis=0), 8, axis=1).astype(np.int16)
    far = np.ones((64, 64), bool)
    far[8:56, 8:56] = False  # more than the mask blur (4 px) away from the 16..48 square
    assert np.abs(painted - original)[far].max() <= 2  # kept: the input's own pixels
    assert np.abs(painted - original)[24:40, 24:40].mean() > 10  # repainted


# --- two users' tasks in one call -----------------------------------------------------

@pytest.fixture(scope="module")
def chroma_batch_stack(stack_factory):
    # Images per call 8 (a CPU worker makes one otherwise) and the demo models of every
    # family: the same settings for each new family's module, so they share this stack.
    shared = stack_factory(DAYDREAM_MAX_BATCH=8, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50,
                           DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker = shared.worker
    return app


def test_two_users_chroma_tasks_share_one_call_and_match_their_solo_runs(chroma_batch_stack):
    app = chroma_batch_stack
    blocker_user, first, second = (ApiUser(app.test_client(), f"chromabatch{n}") for n in range(3))
    wanted = [(first, {"prompt": "a red door", "seed": 601, "negative_prompt": "dark"}),
              (second, {"prompt": "a blue sky", "seed": 602, "negative_prompt": "grey"})]
    # A long Chroma task keeps the worker busy (its steps and size keep it out of the batch).
    blocker = blocker_user.submit(**{**CHROMA, "steps": 150, "width": 128, "height": 128}).get_json()["id"]
    wait_for(lambda: blocker_user.get(f"/api/v1/tasks/{blocker}").get_json()["state"] == "running", 120,
             message="the blocker to start")
    ids = []
    for user, params in wanted:
        response = user.submit(**{**CHROMA, **params})
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    blocker_user.post(f"/api/v1/tasks/{blocker}/cancel")
    done = [user.wait_task(task_id, timeout=180) for (user, _), task_id in zip(wanted, ids)]
    assert [task["state"] for task in done] == ["done", "done"], done
    [call] = calls_holding(app, ids)  # one call held both users' tasks
    assert sorted(call["tasks"]) == sorted(ids) and call["images"] == 2

    together = [chroma_pixels(user, task) for (user, _), task in zip(wanted, done)]
    user, params = wanted[0]
    solo = user.wait_task(user.submit(**{**CHROMA, **params}).get_json()["id"], timeout=180)
    assert solo["state"] == "done" and calls_holding(app, [solo["id"]])[0]["images"] == 1
    diff = np.abs(together[0] - chroma_pixels(user, solo))
    assert diff.max() <= TOLERANCE["max"] and diff.mean() <= TOLERANCE["mean"], (diff.max(), diff.mean())
    assert np.abs(together[0] - together[1]).mean() > 5  # each row its own prompt and seed
