"""Model access and image caps (issue 27), on the native, A1111 and OpenAI APIs.

A pupil sees only the models and LoRAs their class allows, in every list, and a task
naming another one is refused (422 model_not_available naming the field), whatever
the API; their default falls back to a model they may use. A model limited to some
tiers is for those tiers only. A class's daily cap answers 429 image_cap with
Retry-After and the time it resets, in each API's error shape; the hourly cap counts
the images of this hour, the task asked for included. A plan's hourly cap does the
same, charging nothing for what it refuses. One shared stack (a worker runs the demo
models: the compatibility routes need one); the plans are its app's setting, read per
request, so a test sets its own plans for a while."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.helpers import unique
from tests.integration.helpers import ApiUser, make_staff, pupil_in_new_class, sign_in, studio_config, user_row

SMALL = {"width": 64, "height": 64, "steps": 2}


@pytest.fixture(scope="module")
def shared(stack_factory):
    return stack_factory(DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000).app


@pytest.fixture(scope="module")
def model_staff(shared) -> dict:
    return make_staff(shared, unique("modelstaff"))


def listed(user: ApiUser) -> dict[str, list]:
    """What each API lists to the user: {native models, native loras, native default,
    A1111 models, A1111 loras, OpenAI models}."""
    items = user.get("/api/v1/models").get_json()["items"]
    return {
        "models": [i["id"] for i in items if i["kind"] == "model"],
        "loras": [i["id"] for i in items if i["kind"] == "lora"],
        "default": [i["id"] for i in items if i["kind"] == "model" and i["default"]],
        "a1111": [m["model_name"] for m in user.get("/sdapi/v1/sd-models").get_json()],
        "a1111_loras": [lora["path"] for lora in user.get("/sdapi/v1/loras").get_json()],
        "openai": [m["id"] for m in user.get("/v1/models").get_json()["data"]],
    }


def test_a_pupil_sees_and_uses_only_what_the_class_allows_on_every_api(shared):
    pupil, _ = pupil_in_new_class(shared, allowed_models=["demo-sdxl"], allowed_loras=[])
    seen = listed(pupil)
    assert seen == {"models": ["demo-sdxl"], "loras": [], "default": ["demo-sdxl"], "a1111": ["demo-sdxl"],
                    "a1111_loras": [], "openai": ["demo-sdxl"]}
    assert pupil.get("/v1/models/demo").status_code == 404
    page = shared.test_client()
    sign_in(page, pupil.username, pupil.password)
    studio, _ = studio_config(page)
    assert [m["id"] for m in studio["models"]] == ["demo-sdxl"] and studio["loras"] == []
    assert list(studio["model_defaults"]) == ["demo-sdxl"]
    # The A1111 default follows: the server's default is not theirs, so the first allowed one.
    assert "Demo SDXL" in pupil.get("/sdapi/v1/options").get_json()["sd_model_checkpoint"]
    # No model named: theirs (the estimate checks the task as a submit does).
    assert pupil.post("/api/v1/estimate", json={"prompt": "a hut", **SMALL}).status_code == 200

    native = pupil.submit(model="demo", **SMALL)
    error = native.get_json()["error"]
    assert native.status_code == 422 and error["code"] == "model_not_available" and error["field"] == "model"
    assert error["message"].startswith("'demo' is not available to you: your class ") \
        and error["message"].endswith("allows Demo SDXL (tiny, paints noise)")
    lora = pupil.submit(model="demo-sdxl", loras=[{"id": "demo-lora-sdxl", "weight": 0.5}], **SMALL)
    assert lora.status_code == 422 and lora.get_json()["error"]["field"] == "loras"
    assert "allows none" in lora.get_json()["error"]["message"]
    tag = pupil.submit(model="demo-sdxl", prompt="a hut <lora:demo-sdxl-lora:0.5>", **SMALL)
    assert tag.status_code == 422 and tag.get_json()["error"]["code"] == "model_not_available"

    a1111 = pupil.post("/sdapi/v1/txt2img", json={"prompt": "a hut", **SMALL,
                                                  "override_settings": {"sd_model_checkpoint": "demo"}})
    assert a1111.status_code == 422, a1111.get_json()
    assert a1111.get_json()["error"] == "NotAvailable" and "not available to you" in a1111.get_json()["detail"]
    chosen = pupil.post("/sdapi/v1/options", json={"sd_model_checkpoint": "Demo (tiny, paints noise)"})
    assert chosen.status_code == 422 and "your class" in chosen.get_json()["detail"]

    openai = pupil.post("/v1/images/generations", json={"prompt": "a hut", "model": "demo", "size": "64x64"})
    assert openai.status_code == 422, openai.get_json()
    assert openai.get_json()["error"]["code"] == "model_not_available" and openai.get_json()["error"]["param"] == "model"
    assert pupil.me()["tokens"] == 10000  # nothing charged

    # Another user, in no class, sees every enabled model.
    other = listed(ApiUser(shared.test_client(), unique("free")))
    assert {"demo", "demo-sdxl", "demo-flux"} <= set(other["models"]) and other["default"] == ["demo"]
    assert "demo-lora-sdxl" in other["loras"]


def test_a_model_limited_to_a_tier_is_for_that_tier_only(shared, model_staff):
    user = ApiUser(shared.test_client(), unique("plain"))
    client = shared.test_client()
    wrong = client.patch("/api/v1/admin/models/demo-sd3", json={"tiers": ["gold"]}, headers=model_staff)
    assert wrong.status_code == 422 and wrong.get_json()["error"]["field"] == "tiers"
    limited = client.patch("/api/v1/admin/models/demo-sd3", json={"tiers": ["pro", "plus"]}, headers=model_staff)
    assert limited.status_code == 200 and limited.get_json()["tiers"] == ["plus", "pro"]
    try:
        assert "demo-sd3" not in listed(user)["models"]
        refused = user.submit(model="demo-sd3", **SMALL)
        assert refused.status_code == 422
        assert refused.get_json()["error"]["message"] == ("'demo-sd3' is not available to you: your plan (Free) "
                                                          "does not include it; it comes with Plus, Pro")
        promoted = client.patch(f"/api/v1/admin/users/{user.data['id']}", json={"tier": "pro"}, headers=model_staff)
        assert promoted.status_code == 200, promoted.get_json()
        assert "demo-sd3" in listed(user)["models"]
        assert user.post("/api/v1/estimate", json={"prompt": "a hut", "model": "demo-sd3", **SMALL}).status_code == 200
    finally:
        assert client.patch("/api/v1/admin/models/demo-sd3", json={"tiers": None}, headers=model_staff).status_code == 200


def next_midnight_utc() -> str:
    now = datetime.now(timezone.utc)
    return (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")


def test_the_daily_cap_answers_429_with_when_it_resets_in_every_api_shape(shared):
    pupil, _ = pupil_in_new_class(shared, images_per_day=2)
    assert pupil.submit(samples=2, **SMALL).status_code == 202
    words = "You have made 2 images today; your class allows 2; more from 00:00"

    native = pupil.submit(**SMALL)
    assert native.status_code == 429 and 0 < int(native.headers["Retry-After"]) <= 24 * 3600
    error = native.get_json()["error"]
    assert error["code"] == "image_cap" and error["message"] == words
    assert error["cap"]["period"] == "day" and error["cap"]["limit"] == 2 and error["cap"]["made"] == 2
    assert error["cap"]["resets_at"].startswith(next_midnight_utc())

    a1111 = pupil.post("/sdapi/v1/txt2img", json={"prompt": "a hut", **SMALL})
    assert a1111.status_code == 429 and int(a1111.headers["Retry-After"]) > 0
    assert a1111.get_json()["error"] == "ImageCapReached" and a1111.get_json()["detail"] == words

    openai = pupil.post("/v1/images/generations", json={"prompt": "a hut", "size": "64x64"})
    assert openai.status_code == 429 and int(openai.headers["Retry-After"]) > 0
    assert openai.get_json()["error"]["code"] == "image_cap" and openai.get_json()["error"]["message"] == words
    assert openai.get_json()["error"]["type"] == "rate_limit_exceeded"


def test_the_hourly_cap_counts_this_hour_with_the_task_asked_for(shared):
    pupil, _ = pupil_in_new_class(shared, images_per_hour=3)
    next_hour = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%H:00")
    assert pupil.submit(**SMALL).status_code == 202
    over = pupil.submit(samples=4, **SMALL)
    assert over.status_code == 429 and int(over.headers["Retry-After"]) <= 3600
    assert over.get_json()["error"]["message"] == (
        f"You have made 1 image this hour and this task makes 4; your class allows 3; more from {next_hour}")
    assert pupil.submit(samples=2, **SMALL).status_code == 202
    full = pupil.submit(**SMALL)
    assert full.status_code == 429
    assert full.get_json()["error"]["message"] == (
        f"You have made 3 images this hour; your class allows 3; more from {next_hour}")


def test_a_plans_hourly_cap_refuses_the_next_image_on_the_native_and_a1111_apis_charging_nothing(shared, model_staff):
    from extensions import db
    from models import Task

    user = ApiUser(shared.test_client(), unique("hourly"))
    saved = shared.config["TIERS_JSON"]
    shared.config["TIERS_JSON"] = '[{"id": "free"}, {"id": "hourly", "images_per_hour": 3}]'  # (read per request)
    try:
        moved = shared.test_client().patch(f"/api/v1/admin/users/{user.data['id']}", json={"tier": "hourly"},
                                           headers=model_staff)
        assert moved.status_code == 200, moved.get_json()
        assert user.submit(samples=2, **SMALL).status_code == 202  # samples are images
        assert user.submit(**SMALL).status_code == 202
        tokens = user.me()["tokens"]

        asked_at = datetime.now(timezone.utc).replace(tzinfo=None)
        native = user.submit(**SMALL)
        answered_at = datetime.now(timezone.utc).replace(tzinfo=None)
        # It resets at the next full hour (the clock is UTC here); Retry-After counts the seconds to it.
        next_hour = asked_at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        words = f"You have made 3 images this hour; your plan allows 3; more from {next_hour:%H:%M}"
        assert native.status_code == 429, native.get_json()
        error = native.get_json()["error"]
        assert error["code"] == "image_cap" and error["message"] == words
        assert error["cap"]["period"] == "hour" and error["cap"]["limit"] == 3 and error["cap"]["made"] == 3
        assert error["cap"]["resets_at"].startswith(f"{next_hour:%Y-%m-%dT%H:%M:%S}")
        assert int((next_hour - answered_at).total_seconds()) <= int(native.headers["Retry-After"]) \
            <= int((next_hour - asked_at).total_seconds()) + 1

        a1111 = user.post("/sdapi/v1/txt2img", json={"prompt": "a hut", **SMALL})
        assert a1111.status_code == 429 and 0 < int(a1111.headers["Retry-After"]) <= 3600
        assert a1111.get_json()["error"] == "ImageCapReached" and a1111.get_json()["detail"] == words

        assert user.me()["tokens"] == tokens  # nothing charged, and no task kept, for the refused ones
        user_id = user_row(shared, user.username).id
        with shared.app_context():
            kept = db.session.scalar(sa.select(sa.func.count()).select_from(Task).where(Task.user_id == user_id))
        assert kept == 2
    finally:
        shared.config["TIERS_JSON"] = saved
