"""Z-Image through the real worker, on the tiny demo-zimage (Turbo: a Qwen3 text encoder
behind a byte-level BPE tokenizer with Qwen3's chat template, the single-stream DiT, FLUX.1's
VAE). Its text-to-image, image-to-image, same-seed pixels, previews and scheduler run with
every family's in test_families.py (MODELS); here: its card's defaults and refusals, its
LoRA, inpainting, and two users' tasks in one call."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.helpers import wait_for
from tests.integration.helpers import ApiUser, calls_holding, upload_blocks


@pytest.fixture(scope="module")
def zimage_stack(stack_factory):
    # test_families.py's settings: the same stack when both run.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    return shared.app


@pytest.fixture(scope="module")
def zimage_user(zimage_stack):
    return ApiUser(zimage_stack.test_client(), "zimageuser")


def zimage_render(user, **params) -> tuple[dict, np.ndarray]:
    response = user.submit(**{"prompt": "a lighthouse at dusk", "model": "demo-zimage", "width": 64,
                              "height": 64, "steps": 2, "seed": 21, **params})
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=120)
    assert task["state"] == "done", task
    picture = PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).convert("RGB")
    return task, np.asarray(picture, dtype=np.int16)


def test_turbo_runs_at_its_cards_defaults_and_refuses_what_it_ignores(zimage_user):
    items = zimage_user.get("/api/v1/models").get_json()["items"]
    model = next(m for m in items if m["id"] == "demo-zimage")
    assert (model["family"], model["variant"], model["family_label"]) == ("zimage", "turbo", "Z-Image")
    assert model["uses_guidance"] is False and model["uses_negative_prompt"] is False
    assert (model["latent_channels"], model["size_step"], model["schedulers"]) == (16, 16, ["flow_euler"])
    assert model["inpainting"] == "standard"
    assert next(m for m in items if m["id"] == "demo-lora-zimage")["family"] == "zimage"

    task, picture = zimage_render(zimage_user, width=None, height=None, steps=None)
    assert (task["steps"], task["guidance"], task["scheduler"]) == (8, 0.0, "flow_euler")
    assert picture.shape == (256, 256, 3)
    for params, field, words in (({"negative_prompt": "blurry"}, "negative_prompt", "ignore negative prompts"),
                                 ({"guidance": 4}, "guidance", "takes no guidance"),
                                 ({"width": 72}, "width", "multiple of 16")):
        refused = zimage_user.submit(prompt="x", model="demo-zimage", **params)
        assert refused.status_code == 422, refused.get_json()
        error = refused.get_json()["error"]
        assert error["field"] == field and words in error["message"], error


def test_its_lora_changes_the_pixels_by_its_weight_and_leaves_no_trace(zimage_user):
    _, plain = zimage_render(zimage_user)
    task, with_lora = zimage_render(zimage_user, loras=[{"id": "demo-lora-zimage", "weight": 1.0}])
    assert task["loras"][0]["id"] == "demo-lora-zimage"
    assert np.abs(with_lora - plain).mean() > 1
    _, after = zimage_render(zimage_user)
    assert np.array_equal(after, plain)  # the adapter is off for a task without it
    _, weaker = zimage_render(zimage_user, loras=[{"id": "demo-lora-zimage", "weight": 0.4}])
    assert not np.array_equal(weaker, plain) and not np.array_equal(weaker, with_lora)


def test_it_inpaints_inside_the_mask_and_keeps_the_rest(zimage_user):
    upload, start = upload_blocks(zimage_user, 4)
    mask = PILImage.new("RGB", (64, 64), "black")
    mask.paste((255, 255, 255), (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    task, painted = zimage_render(zimage_user, init_image=upload, strength=0.9,
                                  mask="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    assert painted.shape == (64, 64, 3) and task["mask"]
    far = np.ones((64, 64), bool)
    far[8:56, 8:56] = False  # more than the mask blur (4 px) from the 16..48 square
    assert np.abs(painted - start)[far].max() <= 2  # the input's own pixels
    assert np.abs(painted - start)[24:40, 24:40].mean() > 10  # repainted


# --- two users' tasks in one call -----------------------------------------------------

@pytest.fixture(scope="module")
def zimage_batch_stack(stack_factory):
    # Images per call 8 (a CPU worker makes one otherwise) and every family's demo models:
    # test_family_chroma.py's batching settings, so the new families share this stack.
    shared = stack_factory(DAYDREAM_MAX_BATCH=8, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50,
                           DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker = shared.worker
    return app


def test_two_users_zimage_tasks_share_one_call_and_match_their_solo_runs(zimage_batch_stack):
    app = zimage_batch_stack
    blocker_user, first, second = (ApiUser(app.test_client(), f"zimagebatch{n}") for n in range(3))
    wanted = [(first, {"prompt": "a red door", "seed": 701}), (second, {"prompt": "a blue sky", "seed": 702})]
    # A long Z-Image task keeps the worker busy (its steps keep it out of the batch).
    response = blocker_user.submit(prompt="wait", model="demo-zimage", width=256, height=256, steps=150)
    assert response.status_code == 202, response.get_json()
    blocker = response.get_json()["id"]
    wait_for(lambda: blocker_user.get(f"/api/v1/tasks/{blocker}").get_json()["state"] == "running", 120,
             message="the blocker to start")
    ids = []
    for user, params in wanted:
        response = user.submit(model="demo-zimage", width=64, height=64, steps=2, **params)
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    blocker_user.post(f"/api/v1/tasks/{blocker}/cancel")
    done = [user.wait_task(task_id, timeout=180) for (user, _), task_id in zip(wanted, ids)]
    assert [task["state"] for task in done] == ["done", "done"], done
    [call] = calls_holding(app, ids)  # one call held both users' tasks
    assert sorted(call["tasks"]) == sorted(ids) and call["images"] == 2

    def pixels(user, task):
        return np.asarray(PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).convert("RGB"),
                          dtype=np.int16)

    together = [pixels(user, task) for (user, _), task in zip(wanted, done)]
    user, params = wanted[0]
    solo = user.wait_task(user.submit(model="demo-zimage", width=64, height=64, steps=2, **params)
                          .get_json()["id"], timeout=180)
    assert solo["state"] == "done" and calls_holding(app, [solo["id"]])[0]["images"] == 1
    diff = np.abs(together[0] - pixels(user, solo))
    assert diff.max() <= 2 and diff.mean() <= 0.1, (diff.max(), diff.mean())  # (test_batching's tolerance)
    assert np.abs(together[0] - together[1]).mean() > 5  # each row its own prompt and seed
