"""What the studio panel needs of the server: an init image of another shape fitted as
asked (init_fit, stored on the task), the demo model's quick defaults on the page, and
a queue-full message that says once that nothing was charged."""
from __future__ import annotations

import io
import re

from PIL import Image as PILImage
from PIL import ImageDraw

from tests.helpers import instance_env, make_app
from tests.integration.helpers import ApiUser, post_upload, sign_in, studio_config


def landscape_png() -> bytes:
    picture = PILImage.new("RGB", (600, 400), (255, 255, 255))
    ImageDraw.Draw(picture).rectangle((0, 0, 49, 399), fill=(255, 0, 0))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def result_pixels(user, image) -> bytes:
    return PILImage.open(io.BytesIO(user.get(image["url"]).data)).convert("RGB").tobytes()


def test_a_600x400_init_image_is_fitted_as_asked_and_the_choice_is_stored(make_user):
    user = make_user()
    init = post_upload(user, landscape_png(), "wide.png").get_json()
    assert (init["width"], init["height"]) == (600, 400)
    done = {}
    for fit in ("cover", "contain"):
        response = user.submit(init_image=init["id"], init_fit=fit, width=128, height=128, steps=4,
                               strength=0.5, seed=11)
        assert response.status_code == 202, response.get_json()
        assert response.get_json()["init_fit"] == fit
        task = user.wait_task(response.get_json()["id"])
        assert task["state"] == "done", task
        assert task["init_fit"] == fit
        image = task["images"][0]
        assert (image["width"], image["height"]) == (128, 128)
        assert user.get(image["metadata_url"]).get_json()["init_fit"] == fit
        done[fit] = result_pixels(user, image)
    # The same seed, strength and picture: only the fitting differs, and so does the result.
    assert done["cover"] != done["contain"]


def test_init_fit_is_checked_and_defaults_to_cover(make_user):
    user = make_user()
    init = post_upload(user, landscape_png(), "wide.png").get_json()
    bad = user.submit(init_image=init["id"], init_fit="stretch")
    assert bad.status_code == 422 and bad.get_json()["error"]["field"] == "init_fit"
    plain = user.submit(init_image=init["id"]).get_json()
    assert plain["init_fit"] == "cover"
    assert user.submit().get_json()["init_fit"] is None  # text to image: nothing to fit


def test_the_studio_starts_the_demo_model_small_and_quick(client, make_user):
    user = make_user()
    sign_in(client, user.username, user.password)
    config, html = studio_config(client)
    assert (config["defaults"]["width"], config["defaults"]["height"], config["defaults"]["steps"]) == (256, 256, 8)
    assert config["model_defaults"]["demo"]["steps"] == 8
    assert config["user_id"]  # the browser keeps the panel per user (memory.js)
    assert re.search(r'id="steps" name="steps"[^>]*value="8"', html)
    assert re.search(r'id="width" name="width"[^>]*value="256"', html)
    # The API's defaults for an omitted field are the model card's, the same as the panel's.
    task = user.post("/api/v1/tasks", json={"prompt": "a default task"}).get_json()
    assert (task["width"], task["height"], task["steps"]) == (256, 256, 8)


def test_the_queue_full_message_says_once_that_nothing_was_charged(tmp_path, redis_url, models_path):
    env = instance_env(tmp_path, redis_url, models_path, DAYDREAM_USER_QUEUE_LIMIT=1, DAYDREAM_QUEUE_LIMIT=1)
    client = make_app(env).test_client()
    first, second = ApiUser(client, "fullfirst"), ApiUser(client, "fullsecond")
    assert first.submit().status_code == 202
    mine = first.submit().get_json()["error"]["message"]
    full = second.submit().get_json()["error"]["message"]
    for message in (mine, full):
        assert message.count("Nothing was charged") == 1, message
    assert full == "The queue is full; try again shortly. Nothing was charged."
