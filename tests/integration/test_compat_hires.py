"""Hires fix through the AUTOMATIC1111 API, spoken to by the real `webuiapi` client against
the real web server and worker: txt2img(enable_hr=True, hr_scale=2) gives a picture twice
the size, answered in A1111's shapes (info, parameters, the PNG's infotext)."""
from __future__ import annotations

import json

import pytest
import webuiapi

from services.generation.params import task_cost
from tests.helpers import a1111_infotext_fields, unique
from tests.integration.helpers import ApiUser, make_staff


@pytest.fixture(scope="module")
def hires_a1111_stack(stack_factory):
    # (test_compat_a1111.py's stack: shared)
    shared = stack_factory(web=1, DAYDREAM_PREVIEW_HZ=50)
    app = shared.app
    app.server = shared.web(1)
    app.staff = make_staff(app, unique("chief"))
    return app


@pytest.fixture(scope="module")
def hires_webui(hires_a1111_stack):
    user = ApiUser(hires_a1111_stack.test_client(), unique("hiresweb"))
    token = user.headers["Authorization"][7:]
    api = webuiapi.WebUIApi(baseurl=f"{hires_a1111_stack.server.url}/sdapi/v1", username=user.username,
                            password=token, sampler="Euler a", steps=2)
    return user, api


def test_webuiapi_txt2img_with_enable_hr_doubles_the_size(hires_webui):
    user, api = hires_webui
    before = user.me()["tokens"]
    result = api.txt2img(prompt="a lighthouse", width=64, height=64, steps=2, seed=21, enable_hr=True, hr_scale=2,
                         hr_second_pass_steps=4, denoising_strength=0.5)
    assert len(result.images) == 1 and result.images[0].size == (128, 128)
    info = result.info
    # A1111's info: the first pass's size, the second pass's denoising, the hires fields as its infotext has them.
    assert (info["width"], info["height"]) == (64, 64) and info["denoising_strength"] == 0.5
    assert info["extra_generation_params"]["Hires upscale"] == 2 and info["extra_generation_params"]["Hires steps"] == 4
    assert info["extra_generation_params"]["Hires upscaler"] == "Latent"
    fields = a1111_infotext_fields(info["infotexts"][0])
    assert fields["Hires upscale"] == "2" and fields["Hires upscaler"] == "Latent" and fields["Size"] == "64x64"
    assert fields["Denoising strength"] == "0.5"
    parameters = result.parameters
    assert parameters["enable_hr"] is True and parameters["hr_scale"] == 2 and parameters["hr_upscaler"] == "Latent"
    assert parameters["hr_second_pass_steps"] == 4 and parameters["denoising_strength"] == 0.5
    # An ordinary task of the caller's, charged both passes.
    task = user.get(f"/api/v1/tasks/{info['daydream_task_id']}").get_json()
    assert task["hires"]["width"] == 128 and task["cost"] == task_cost(2, 64, 64, 1) + task_cost(2, 128, 128, 1)
    assert user.me()["tokens"] == before - task["cost"]


def test_a_final_size_and_a_named_upscaler(hires_webui):
    user, api = hires_webui
    result = api.txt2img(prompt="a harbour", width=64, height=64, steps=2, seed=3, enable_hr=True,
                         hr_resize_x=128, hr_resize_y=96, hr_upscaler="Lanczos", denoising_strength=0.5)
    assert result.images[0].size == (128, 96)
    assert result.info["extra_generation_params"]["Hires resize"] == "128x96"
    assert result.parameters["hr_resize_x"] == 128 and result.parameters["hr_upscaler"] == "Lanczos"
    json.dumps(result.info)  # (plain JSON, as A1111's)
