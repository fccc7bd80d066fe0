"""Fast mode through the real server and worker (issue 28): staff let users choose it on
the tiny FLUX.1 demo; a fast task's record, picture parameters and metadata (what Reuse
reads) say so; fast tasks share a call with each other and not with a plain one.

It runs on the batching stack that test_family_flux2.py and test_family_chroma.py share
(images per call 8): on a CPU the worker otherwise makes one image a call, and the
batches are what this shows."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.helpers import wait_for
from tests.integration.helpers import ApiUser, calls_holding, make_staff

FAST_TASK = {"model": "demo-flux", "width": 64, "height": 64, "steps": 4}


@pytest.fixture(scope="module")
def fast_stack(stack_factory):
    shared = stack_factory(DAYDREAM_MAX_BATCH=8, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50,
                           DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker = shared.worker
    return app


@pytest.fixture(scope="module")
def fast_staff(fast_stack):
    client = fast_stack.test_client()
    staff = make_staff(fast_stack, "faststaff")
    yield client, staff
    # (the stack is shared: demo-flux goes back to off for the other modules)
    client.patch("/api/v1/admin/models/demo-flux", json={"fast_mode": "off"}, headers=staff)


def test_staff_choice_a_fast_tasks_record_and_reuse_and_its_own_batches(fast_stack, fast_staff):
    client, staff = fast_staff
    refused = client.patch("/api/v1/admin/models/demo", json={"fast_mode": "on"}, headers=staff)
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "fast_mode"
    changed = client.patch("/api/v1/admin/models/demo-flux", json={"fast_mode": "optional", "reason": "speed"},
                           headers=staff)
    assert changed.status_code == 200 and changed.get_json()["fast_mode"] == "optional"
    audit = client.get("/api/v1/admin/audit?action=models.update", headers=staff).get_json()
    assert any(e.get("details", {}).get("fast_mode") == {"from": "off", "to": "optional"}
               for e in audit.get("items", [])), audit

    blocker_user, first, plain_user, second = (ApiUser(fast_stack.test_client(), f"fastuser{n}") for n in range(4))
    flux = {m["id"]: m for m in first.get("/api/v1/models").get_json()["items"]}["demo-flux"]
    assert flux["fast_mode"] == "optional" and flux["fast"]["method"] == "first-block cache"

    # A long task keeps the worker busy while the three are queued (its steps keep it apart).
    response = blocker_user.submit(**{**FAST_TASK, "steps": 150, "width": 128, "height": 128})
    assert response.status_code == 202, response.get_json()
    blocker = response.get_json()["id"]
    wait_for(lambda: blocker_user.get(f"/api/v1/tasks/{blocker}").get_json()["state"] == "running", 120,
             message="the blocker to start")
    wanted = [(first, {"fast": True, "seed": 801}), (second, {"fast": True, "seed": 802}),
              (plain_user, {"seed": 803})]
    ids = []
    for user, params in wanted:
        response = user.submit(**FAST_TASK, prompt="a harbour", **params)
        assert response.status_code == 202, response.get_json()
        ids.append(response.get_json()["id"])
    blocker_user.post(f"/api/v1/tasks/{blocker}/cancel")
    done = [user.wait_task(task_id, timeout=180) for (user, _), task_id in zip(wanted, ids)]
    assert [task["state"] for task in done] == ["done"] * 3, done
    calls = calls_holding(fast_stack, ids)
    assert [sorted(call["tasks"]) for call in calls] == [sorted(ids[:2]), [ids[2]]]  # fast with fast only

    fast_task, plain_task = done[0], done[2]
    assert fast_task["fast"] is True and "fast" not in plain_task
    picture = PILImage.open(io.BytesIO(first.get(fast_task["images"][0]["url"]).data))
    assert "Fast mode: first-block cache" in picture.text["parameters"]
    plain_picture = PILImage.open(io.BytesIO(plain_user.get(plain_task["images"][0]["url"]).data))
    assert "Fast mode" not in plain_picture.text["parameters"]
    meta = first.get(fast_task["images"][0]["metadata_url"]).get_json()  # (what Reuse reads)
    assert meta["fast"] is True and meta["family"] == "flux"

    # Reuse: the metadata sent back as a task runs fast again, the same picture for its seed
    # (alone now, not in a call of two: within a level or two, as batching allows).
    again = first.submit(**{k: meta[k] for k in ("model", "prompt", "width", "height", "steps", "seed", "fast")})
    assert again.status_code == 202, again.get_json()
    rerun = first.wait_task(again.get_json()["id"], timeout=180)
    assert rerun["fast"] is True
    solo = np.asarray(PILImage.open(io.BytesIO(first.get(rerun["images"][0]["url"]).data)).convert("RGB"), np.int16)
    diff = np.abs(solo - np.asarray(picture.convert("RGB"), np.int16))
    assert diff.max() <= 2 and diff.mean() <= 0.1, (diff.max(), diff.mean())
