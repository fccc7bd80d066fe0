"""Qwen-Image through the real worker, on the tiny demo-qwen (a two-layer Qwen2.5-VL behind a
byte-level BPE Qwen2 tokenizer, the MMDiT, Wan's 3D VAE) and demo-qwen-edit (the same
weights as Qwen-Image-Edit; demo-qwen-edit-plus as Edit Plus). Its text-to-image,
image-to-image, same-seed pixels, previews and scheduler run with every family's in
test_families.py (MODELS); here: its card, its guidance (Qwen's true CFG) and negative
prompt, its LoRA, inpainting, an edit, an Edit Plus edit, and two users' tasks in one call."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.helpers import wait_for
from tests.integration.helpers import ApiUser, calls_holding, upload_blocks


@pytest.fixture(scope="module")
def qwen_stack(stack_factory):
    # test_families.py's settings: the same stack when both run.
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    return shared.app


@pytest.fixture(scope="module")
def qwen_user(qwen_stack):
    return ApiUser(qwen_stack.test_client(), "qwenuser")


def qwen_render(user, **params) -> tuple[dict, np.ndarray]:
    response = user.submit(**{"prompt": "a harbour at noon", "model": "demo-qwen", "width": 64,
                              "height": 64, "steps": 2, "seed": 31, **params})
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=180)
    assert task["state"] == "done", task.get("error")
    picture = PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).convert("RGB")
    return task, np.asarray(picture, dtype=np.int16)


def test_its_card_is_listed_and_guidance_and_the_negative_prompt_act(qwen_user):
    items = {m["id"]: m for m in qwen_user.get("/api/v1/models").get_json()["items"]}
    model, editor = items["demo-qwen"], items["demo-qwen-edit"]
    assert (model["family"], model["family_label"], model["variant"]) == ("qwen", "Qwen-Image", "")
    assert model["uses_guidance"] and model["uses_negative_prompt"] and model["inpainting"] == "standard"
    assert (model["latent_channels"], model["size_step"], model["schedulers"]) == (16, 16, ["flow_euler"])
    assert (editor["variant"], editor["edits"], editor["max_references"], editor["edit_each"]) == ("edit", True, 3, False)
    assert editor["edit_reference_pixels"] == [1024 * 1024] * 2 and model["edit_reference_pixels"] is None
    assert items["demo-lora-qwen"]["family"] == "qwen"

    _, guided = qwen_render(qwen_user, guidance=4.0)
    _, unguided = qwen_render(qwen_user, guidance=1.0)
    _, negative = qwen_render(qwen_user, guidance=4.0, negative_prompt="fog")
    # (The random demo weights heed the text little: the pixels move a little, but move.)
    assert not np.array_equal(guided, unguided)  # true CFG runs (against Qwen's empty " ")
    assert not np.array_equal(negative, guided)  # and against the negative prompt given


def test_its_lora_changes_the_pixels_and_leaves_no_trace(qwen_user):
    _, plain = qwen_render(qwen_user)
    task, with_lora = qwen_render(qwen_user, loras=[{"id": "demo-lora-qwen", "weight": 1.0}])
    assert task["loras"][0]["id"] == "demo-lora-qwen"
    assert np.abs(with_lora - plain).mean() > 1
    _, after = qwen_render(qwen_user)
    assert np.array_equal(after, plain)  # the adapter is off for a task without it


def test_qwen_inpaints_inside_the_mask_and_keeps_the_rest(qwen_user):
    upload, start = upload_blocks(qwen_user, 5)
    mask = PILImage.new("RGB", (64, 64), "black")
    mask.paste((255, 255, 255), (16, 16, 48, 48))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    task, painted = qwen_render(qwen_user, init_image=upload, strength=0.9,
                                mask="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode())
    assert painted.shape == (64, 64, 3) and task["mask"]
    far = np.ones((64, 64), bool)
    far[8:56, 8:56] = False  # more than the mask blur (4 px) from the 16..48 square
    assert np.abs(painted - start)[far].max() <= 2  # the input's own pixels
    assert np.abs(painted - start)[24:40, 24:40].mean() > 10  # repainted


def test_qwen_image_edit_edits_two_pictures_by_instruction_and_records_them(qwen_user):
    first, _ = upload_blocks(qwen_user, 6)
    second, _ = upload_blocks(qwen_user, 7)
    # (guidance 1: one pass a step; the edit pipeline encodes its reference at a megapixel)
    task, picture = qwen_render(qwen_user, model="demo-qwen-edit", prompt="make it winter", guidance=1.0,
                                width=96, height=64, edit={"images": [first, second]})
    assert picture.shape == (64, 96, 3) and task["edit"]["images"] == [first, second]
    metadata = qwen_user.get(task["images"][0]["metadata_url"]).get_json()
    assert metadata["family"] == "qwen" and metadata["edit"]["images"] == [first, second]
    refused = qwen_user.submit(prompt="x", model="demo-qwen-edit", edit={"images": [first] * 4})
    assert refused.status_code == 422 and "at most 3" in refused.get_json()["error"]["message"]


def test_a_small_qwen_image_edit_is_charged_for_the_megapixel_reference_it_computes(qwen_user):
    # A 64 × 64 result is charged ceil(13 × 64² / (50 × 512²)) = 1 and its reference, which
    # QwenImageEditPipeline encodes at 1024², ceil(13 × 1024² / (50 × 512²)) = 2 (before: 1 + 1).
    picture, _ = upload_blocks(qwen_user, 10)
    body = {"model": "demo-qwen-edit", "prompt": "make it winter", "guidance": 1.0, "width": 64, "height": 64,
            "steps": 13, "edit": {"images": [picture]}}
    estimate = qwen_user.post("/api/v1/estimate", json=body).get_json()["cost"]
    before = qwen_user.me()["tokens"]
    task, _ = qwen_render(qwen_user, **body)
    assert task["cost"] == estimate == before - qwen_user.me()["tokens"] == 1 + 2



def test_qwen_image_edit_plus_takes_each_picture_through_the_worker_and_repeats_for_a_seed(qwen_user):
    card = {m["id"]: m for m in qwen_user.get("/api/v1/models").get_json()["items"]}["demo-qwen-edit-plus"]
    assert (card["family"], card["variant"], card["edits"], card["max_references"]) == ("qwen", "edit-plus", True, 3)
    first, _ = upload_blocks(qwen_user, 8)
    second, _ = upload_blocks(qwen_user, 9)
    # (QwenImageEditPlusPipeline encodes each picture at a megapixel: two of them, twice)
    edit = {"model": "demo-qwen-edit-plus", "prompt": "put the boats in the snow", "guidance": 1.0, "width": 96,
            "height": 64, "edit": {"images": [first, second]}}
    task, picture = qwen_render(qwen_user, **edit)
    assert picture.shape == (64, 96, 3) and task["prompt"] == "put the boats in the snow"
    assert task["edit"]["images"] == [first, second] and task["model"] == "demo-qwen-edit-plus"
    metadata = qwen_user.get(task["images"][0]["metadata_url"]).get_json()
    assert metadata["edit"]["images"] == [first, second] and metadata["edit_images"] == [first, second]
    _, again = qwen_render(qwen_user, **edit)
    assert np.array_equal(again, picture)  # the same seed, the same pixels
    # Each picture its own reference (card edit_each): the base once more for each, as estimated.
    body = {"prompt": "x", "width": 96, "height": 64, "steps": 2, "guidance": 1.0}
    base = qwen_user.post("/api/v1/estimate", json={**body, "model": "demo-qwen"}).get_json()["cost"]
    estimate = qwen_user.post("/api/v1/estimate", json={**body, **edit}).get_json()["cost"]
    assert task["cost"] == estimate == 3 * base and card["edit_each"]


# --- two users' tasks in one call -----------------------------------------------------

@pytest.fixture(scope="module")
def qwen_batch_stack(stack_factory):
    # Images per call 8 (a CPU worker makes one otherwise) and every family's demo models:
    # the new families' batching settings (test_family_zimage.py's), one stack for them all.
    shared = stack_factory(DAYDREAM_MAX_BATCH=8, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50,
                           DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker = shared.worker
    return app


def qwen_pixels(user, task) -> np.ndarray:
    picture = PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).convert("RGB")
    return np.asarray(picture, dtype=np.int16)


def test_two_users_qwen_tasks_share_one_call_and_match_their_solo_runs(qwen_batch_stack):
    app = qwen_batch_stack
    blocker_user, first, second = (ApiUser(app.test_client(), f"qwenbatch{n}") for n in range(3))
    wanted = [(first, {"prompt": "a red door", "seed": 801}), (second, {"prompt": "a blue sky", "seed": 802})]
    # A long Qwen-Image task keeps the worker busy (its steps keep it out of the batch).
    response = blocker_user.submit(prompt="wait", model="demo-qwen", width=256, height=256, steps=150)
    assert response.status_code == 202, response.get_json()
    blocker = response.get_json()["id"]
    wait_for(lambda: blocker_user.get(f"/api/v1/tasks/{blocker}").get_json()["state"] == "running", 180,
             message="the blocker to start")
    ids = []
    for user, params in wanted:
        response = user.submit(model="demo-qwen", width=64, height=64, steps=2, **params)
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    blocker_user.post(f"/api/v1/tasks/{blocker}/cancel")
    done = [user.wait_task(task_id, timeout=180) for (user, _), task_id in zip(wanted, ids)]
    assert [task["state"] for task in done] == ["done", "done"], done
    [call] = calls_holding(app, ids)  # one call held both users' tasks
    assert sorted(call["tasks"]) == sorted(ids) and call["images"] == 2

    together = [qwen_pixels(user, task) for (user, _), task in zip(wanted, done)]
    user, params = wanted[0]
    solo = user.wait_task(user.submit(model="demo-qwen", width=64, height=64, steps=2, **params)
                          .get_json()["id"], timeout=180)
    assert solo["state"] == "done" and calls_holding(app, [solo["id"]])[0]["images"] == 1
    diff = np.abs(together[0] - qwen_pixels(user, solo))
    assert diff.max() <= 2 and diff.mean() <= 0.1, (diff.max(), diff.mean())  # (test_batching's tolerance)
    assert np.abs(together[0] - together[1]).mean() > 5  # each row its own prompt and seed
