"""Translating A1111 and OpenAI requests into Daydream task parameters
(services/generation/compat/), without Redis, a database or a worker: the catalog
is replaced by a small table of its own."""
from __future__ import annotations

import base64

import pytest
from flask import Flask

from services.core.errors import QueueFull, TooLarge, ValidationError
from services.generation import loratags
from services.generation.compat import a1111, common, holding, openai
from services.generation.families import card

CARDS = {"demo": card("sd1"), "flux": card("flux", variant="schnell")}
LORAS = {"demo-lora-sd1": {"name": "demo-sd1-lora", "family": "sd1"}}


@pytest.fixture
def catalog(monkeypatch):
    monkeypatch.setattr(common.catalog, "cards", lambda: CARDS)
    monkeypatch.setattr(common.catalog, "default_model", lambda: "demo")
    monkeypatch.setattr(common.catalog, "lora_table", lambda: LORAS)
    monkeypatch.setattr(common, "resolve_model", lambda user, name, field: name or "demo")


@pytest.fixture
def bare_app():
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1024
    with app.app_context():
        yield


def test_sizes_are_width_x_height_or_auto():
    assert openai.parse_size("512x768") == (512, 768)
    assert openai.parse_size(" 64 X 64 ") == (64, 64)
    assert openai.parse_size("auto") is None and openai.parse_size(None) is None
    for bad in ("big", "512", "512x", "-5x5", 512, "1x2x3"):
        with pytest.raises(ValidationError) as raised:
            openai.parse_size(bad)
        assert raised.value.field == "size"
    assert openai.parse_size("99999x1") == (99999, 1)  # in range or not: the task's validation says


def test_lora_tags_in_the_prompt_name_enabled_loras(catalog):
    prompt, loras = loratags.extract_loras("a boat, <lora:demo-sd1-lora:0.6>, at dusk")
    assert prompt == "a boat, at dusk" and loras == [{"id": "demo-lora-sd1", "weight": 0.6}]
    assert loratags.extract_loras("<lora:DEMO-SD1-LORA.safetensors> x")[1] == [{"id": "demo-lora-sd1", "weight": 1.0}]
    for bad in ("<lora:unknown:1>", "<lora:demo-sd1-lora:heavy>", "<hypernet:h:1>"):
        with pytest.raises(ValidationError) as raised:
            loratags.extract_loras(bad)
        assert raised.value.field == "prompt"
    with pytest.raises(ValidationError, match=r"<lora:unknown> is not an available LoRA; see GET /api/v1/models"):
        loratags.apply_to_request({"prompt": "x <lora:unknown:0.5>"})


def test_on_the_native_api_tags_join_the_loras_list_and_a_tag_sets_a_listed_weight(catalog, monkeypatch):
    monkeypatch.setattr(common.catalog, "lora_table", lambda: dict(LORAS, ink={"name": "Ink", "family": "sd1"}))
    plain = {"prompt": "a boat", "loras": [{"id": "ink", "weight": 0.5}]}
    assert loratags.apply_to_request(plain) is plain  # no tag: the request as it is
    tagged = loratags.apply_to_request({"prompt": "a boat <lora:demo-sd1-lora:0.8>", "steps": 2})
    assert tagged == {"prompt": "a boat", "steps": 2, "loras": [{"id": "demo-lora-sd1", "weight": 0.8}]}
    both = loratags.apply_to_request({"prompt": "<lora:Ink:1.2> a boat, <lora:demo-sd1-lora>",
                                      "loras": [{"id": "ink", "weight": 0.5}, "other"]})
    assert both["prompt"] == "a boat"
    assert both["loras"] == [{"id": "ink", "weight": 1.2}, "other", {"id": "demo-lora-sd1", "weight": 1.0}]
    # A `loras` that is not a list is left for the task's validation to refuse.
    assert loratags.apply_to_request({"prompt": "<lora:ink>", "loras": "ink"})["loras"] == "ink"
    assert loratags.apply_to_request(["not", "an", "object"]) == ["not", "an", "object"]


def test_a1111_samplers_map_to_daydream_schedulers(catalog):
    assert a1111.scheduler_key("Euler a", "automatic", "demo") == "euler_a"
    assert a1111.scheduler_key("DPM++ 2M", "Karras", "demo") == "dpmpp_2m_karras"
    assert a1111.scheduler_key("DPM++ 2M Karras", None, "demo") == "dpmpp_2m_karras"
    assert a1111.scheduler_key("PLMS", "", "demo") == "pndm"
    assert a1111.scheduler_key(None, None, "demo") is None
    assert a1111.scheduler_key("Euler", "Simple", "flux") == "flow_euler"  # FLUX's own Euler
    with pytest.raises(ValidationError) as raised:
        a1111.scheduler_key("Heun", None, "demo")
    assert raised.value.field == "sampler_name"


@pytest.mark.parametrize("sampler, schedule, key, label", [
    ("Euler a", "Karras", "euler_a_karras", "Karras"), ("Euler a Karras", None, "euler_a_karras", "Karras"),
    ("euler_a", "karras", "euler_a_karras", "Karras"), ("Euler a Karras", "Automatic", "euler_a_karras", "Karras"),
    ("Euler", "Exponential", "euler_exponential", "Exponential"),
    ("Euler a", "exponential", "euler_a_exponential", "Exponential"),
    ("DPM++ 2M Karras", "Exponential", "dpmpp_2m_exponential", "Exponential"),  # the schedule type sent wins
    ("DPM++ SDE", "Exponential", "dpmpp_sde_exponential", "Exponential"),
    ("UniPC", "Karras", "unipc_karras", "Karras"),
    (None, "Karras", "euler_karras", "Karras"),  # the model's default sampler (Euler) on that schedule
])
def test_any_sampler_that_can_takes_a_karras_or_exponential_schedule(catalog, sampler, schedule, key, label):
    assert a1111.scheduler_key(sampler, schedule, "demo") == key
    assert a1111.schedule_label(key) == label
    assert a1111.schedule_label("euler_a") == "Automatic"


@pytest.mark.parametrize("sampler, schedule, model, words", [
    ("DDIM", "Karras", "demo", "Karras works here with DPM++ 2M, DPM++ SDE, Euler, Euler a, UniPC"),
    ("Euler", "Karras", "flux", "FLUX.1 models keep their own schedule"),
    ("Euler a", "Beta", "demo", "'beta' is not supported"),
])
def test_a_schedule_that_cannot_be_had_is_refused_naming_what_can(catalog, sampler, schedule, model, words):
    with pytest.raises(ValidationError) as raised:
        a1111.scheduler_key(sampler, schedule, model)
    assert raised.value.field == "scheduler" and words in raised.value.message


def test_the_samplers_list_names_samplers_and_leaves_schedules_to_their_list(catalog):
    names = a1111.sampler_names()
    assert {"Euler", "Euler a", "DPM++ 2M", "DPM++ 2M Karras", "DPM++ SDE Karras", "UniPC"} <= set(names)
    assert "Euler a Karras" not in names and "Euler Exponential" not in names


def test_the_parameters_echo_only_the_fields_a1111_defines():
    class Task:
        prompt, negative_prompt, steps, guidance, width, height, samples = "a boat", "", 2, 7.0, 64, 64, 1
        scheduler, strength = "euler_a_karras", 0.5

    body = {"prompt": "a boat <lora:x:1>", "steps": 2, "sampler_name": "Euler a", "scheduler": "Karras",
            "auth": "someone:their-token", "url": "http://127.0.0.1:7860", "send_images": True,
            "override_settings": {"sd_model_checkpoint": "demo"}, "hr_scale": 2, "whatever": 1}
    echoed = a1111.a1111_parameters(Task(), body)
    assert "auth" not in echoed and "url" not in echoed and "whatever" not in echoed
    assert echoed["send_images"] is True and echoed["override_settings"] == {"sd_model_checkpoint": "demo"}
    assert echoed["sampler_name"] == "Euler a Karras" and echoed["scheduler"] == "Karras"
    assert echoed["prompt"] == "a boat <lora:x:1>" and echoed["hr_scale"] == 2
    image = a1111.a1111_parameters(Task(), {**body, "init_images": ["abc"], "mask_blur": 4}, img2img=True)
    assert image["init_images"] is None and image["mask_blur"] == 4 and image["denoising_strength"] == 0.5
    assert "hr_scale" not in image and "auth" not in image


def test_an_a1111_body_becomes_task_parameters(catalog):
    params = a1111.a1111_params(None, {
        "prompt": "a boat", "negative_prompt": "fog", "steps": 2, "cfg_scale": 6, "width": 64,
        "height": 64, "seed": -1, "batch_size": 2, "n_iter": 2, "sampler_name": "Euler a",
        "styles": [], "enable_hr": False, "alwayson_scripts": {"ADetailer": {"args": [False]}},
        "eta": 1.0, "s_noise": 1, "something_new": "ignored"}, img2img=False)
    assert params == {"prompt": "a boat", "model": "demo", "samples": 4, "negative_prompt": "fog",
                      "steps": 2, "guidance": 6, "width": 64, "height": 64, "scheduler": "euler_a"}
    # FLUX.1 schnell takes no guidance and no negative prompt: dropped, not refused.
    flux = a1111.a1111_params(None, {"prompt": "a boat", "cfg_scale": 7, "negative_prompt": "fog",
                                      "override_settings": {"sd_model_checkpoint": "flux"}}, img2img=False)
    assert "guidance" not in flux and "negative_prompt" not in flux and flux["model"] == "flux"
    image = a1111.a1111_params(None, {"prompt": "x", "denoising_strength": 0.4, "resize_mode": 2}, img2img=True)
    assert image["strength"] == 0.4 and image["init_fit"] == "contain"


def test_an_img2img_mask_brings_a1111s_inpaint_fields_as_daydreams(catalog):
    # webuiapi's img2img sends these always; with a mask they are the inpaint settings.
    sent = {"prompt": "x", "mask": "bWFzaw==", "mask_blur": 4, "inpainting_fill": 0, "inpaint_full_res": True,
            "inpaint_full_res_padding": 0, "inpainting_mask_invert": 0, "initial_noise_multiplier": 1}
    params = a1111.a1111_params(None, sent, img2img=True)
    assert {k: params[k] for k in ("mask_blur", "masked_content", "inpaint_area", "inpaint_padding",
                                   "mask_invert", "initial_noise_multiplier")} == {
        "mask_blur": 4, "masked_content": "fill", "inpaint_area": "masked", "inpaint_padding": 0,
        "mask_invert": False, "initial_noise_multiplier": 1.0}
    assert "mask" not in params  # (stored by the view, then passed by its id)
    # A1111's defaults where the client sends nothing: original content, the whole picture.
    bare = a1111.a1111_params(None, {"prompt": "x", "mask": "bWFzaw==", "mask_blur_x": 2, "mask_blur_y": 9,
                                     "inpainting_mask_invert": 1, "inpaint_full_res": "false"}, img2img=True)
    assert bare["mask_blur"] == 9 and bare["masked_content"] == "original" and bare["inpaint_area"] == "whole"
    assert bare["inpaint_padding"] == 32 and bare["mask_invert"] is True
    assert a1111.a1111_params(None, {**sent, "inpainting_fill": 3}, img2img=True)["masked_content"] == "latent_nothing"
    # Without a mask A1111 ignores them, and so does this.
    plain = a1111.a1111_params(None, {**sent, "mask": ""}, img2img=True)
    assert not {"mask_blur", "masked_content", "inpaint_area", "mask_invert"} & set(plain)


@pytest.mark.parametrize("change, field", [
    ({"inpainting_fill": 4}, "inpainting_fill"), ({"inpainting_fill": True}, "inpainting_fill"),
    ({"mask_blur": 65}, "mask_blur"), ({"mask_blur": 2.5}, "mask_blur"),
    ({"mask_blur": None, "mask_blur_y": -1}, "mask_blur_y"),
    ({"inpaint_full_res": "maybe"}, "inpaint_full_res"), ({"inpainting_mask_invert": 2}, "inpainting_mask_invert"),
    ({"inpaint_full_res_padding": 300}, "inpaint_full_res_padding"),
    ({"initial_noise_multiplier": 3}, "initial_noise_multiplier"),
    ({"latent_mask": "bWFzaw=="}, "latent_mask"),
])
def test_a_bad_inpaint_field_is_refused_by_a1111s_name(catalog, change, field):
    with pytest.raises(ValidationError) as raised:
        a1111.a1111_params(None, {"prompt": "x", "mask": "bWFzaw==", "mask_blur": 4, **change}, img2img=True)
    assert raised.value.field == field
    assert common.rename_fields(raised.value, a1111.A1111_NAMES).field == field


def test_daydreams_inpaint_complaints_name_a1111s_fields():
    for ours, theirs in (("masked_content", "inpainting_fill"), ("inpaint_area", "inpaint_full_res"),
                         ("inpaint_padding", "inpaint_full_res_padding"), ("mask_invert", "inpainting_mask_invert"),
                         ("mask", "mask"), ("mask_blur", "mask_blur")):
        renamed = common.rename_fields(ValidationError(ours, "is wrong"), a1111.A1111_NAMES)
        assert renamed.field == theirs and renamed.message == f"{theirs}: is wrong"


def test_an_inpaint_task_is_echoed_in_a1111s_shapes_without_the_mask(catalog):
    class Task:
        prompt, negative_prompt, steps, guidance, width, height, samples = "a boat", "", 2, 7.0, 64, 64, 1
        scheduler, strength, model, loras, mask_image_id = "euler_a", 0.75, "demo", None, "m" * 22
        inpaint = {"mask_blur": 6, "inpaint_area": "masked", "inpaint_padding": 16, "masked_content": "latent_noise",
                   "mask_invert": True, "noise_multiplier": 1.2, "outpaint": {"left": 0, "right": 0, "top": 0,
                                                                              "bottom": 0}}

    echoed = a1111.a1111_parameters(Task(), {"prompt": "a boat", "mask": "bWFzaw==", "init_images": ["x"],
                                             "inpainting_fill": 2}, img2img=True)
    assert echoed["mask"] is None and echoed["init_images"] is None
    assert (echoed["mask_blur"], echoed["inpainting_fill"], echoed["inpaint_full_res"],
            echoed["inpaint_full_res_padding"], echoed["inpainting_mask_invert"],
            echoed["initial_noise_multiplier"]) == (6, 2, True, 16, 1, 1.2)
    info = a1111.inpaint_info(Task())
    assert info["extra_generation_params"] == {
        "Mask blur": 6, "Inpaint area": "Only masked", "Masked content": "latent noise",
        "Masked area padding": 16, "Mask mode": "Inpaint not masked", "Noise multiplier": 1.2}
    assert info["is_using_inpainting_conditioning"] is False  # (a model of the standard kind)
    Task.mask_image_id = None  # image-to-image: nothing added
    assert a1111.inpaint_info(Task()) == {} and "inpainting_fill" not in a1111.a1111_parameters(
        Task(), {"prompt": "a boat"}, img2img=True)


@pytest.mark.parametrize("body, field", [
    ({"enable_hr": True}, "enable_hr"), ({"restore_faces": True}, "restore_faces"),
    ({"styles": ["cinematic"]}, "styles"), ({"subseed_strength": 0.3}, "subseed_strength"),
    ({"script_name": "x/y/z plot"}, "script_name"), ({"batch_size": "2"}, "batch_size"),
    ({"n_iter": 0}, "n_iter"), ({"send_images": "yes"}, "send_images"),
    ({"override_settings": {"CLIP_stop_at_last_layers": 2}}, "override_settings.CLIP_stop_at_last_layers"),
    ({"alwayson_scripts": {"Regional Prompter": {"args": [True]}}}, "alwayson_scripts"),
    ({"resize_mode": 7}, "resize_mode"),
])
def test_what_would_change_the_picture_unseen_is_refused(catalog, body, field):
    with pytest.raises(ValidationError) as raised:
        a1111.a1111_params(None, {"prompt": "x", **body}, img2img=True)
    assert raised.value.field == field
    assert common.rename_fields(raised.value, a1111.A1111_NAMES).field == field  # named as the client did


def test_daydream_fields_are_renamed_to_the_clients():
    renamed = common.rename_fields(ValidationError("guidance", "must be between 0 and 30"), a1111.A1111_NAMES)
    assert renamed.field == "cfg_scale" and renamed.message == "cfg_scale: must be between 0 and 30"
    assert common.rename_fields(ValidationError("samples", "too many"), openai.OPENAI_NAMES).field == "n"


def test_an_openai_request_becomes_task_parameters(catalog):
    params = openai.openai_params(None, {"prompt": "a fox", "model": "dall-e-3", "n": "2", "size": "64x64",
                                         "quality": "hd", "style": "vivid", "user": "x"}, edit=False)
    assert params == {"prompt": "a fox", "model": "demo", "samples": 2, "width": 64, "height": 64}
    for body, field in (({"prompt": ""}, "prompt"), ({"prompt": "x", "n": "many"}, "n"),
                        ({"prompt": "x", "output_format": "webp"}, "output_format"),
                        ({"prompt": "x", "background": "transparent"}, "background"),
                        ({"prompt": "x", "response_format": "gif"}, "response_format")):
        with pytest.raises(ValidationError) as raised:
            openai.openai_params(None, body, edit=False)
        assert raised.value.field == field


def test_base64_images_are_decoded_or_refused(bare_app):
    assert a1111.decode_base64_image("data:image/png;base64," + base64.b64encode(b"abc").decode(), "f") == b"abc"
    assert a1111.decode_base64_image(base64.b64encode(b"abcd").decode().rstrip("="), "f") == b"abcd"
    for bad in ("not base64 at all!", "", 5, "https://example.com/cat.png"):
        with pytest.raises(ValidationError):
            a1111.decode_base64_image(bad, "init_images")
    with pytest.raises(TooLarge):
        a1111.decode_base64_image("A" * 4000, "init_images")


def test_a_process_holds_at_most_its_share_of_waiting_requests():
    app = Flask(__name__)
    app.config["COMPAT_MAX_WAITING"] = 2
    with app.app_context():
        with holding.Holding(), holding.Holding():
            with pytest.raises(QueueFull) as raised:
                with holding.Holding():
                    pass
            assert raised.value.status == 429 and raised.value.headers["Retry-After"]
        with holding.Holding():  # the slots are free again
            pass


def test_without_a_setting_half_the_web_threads_may_wait(monkeypatch):
    app = Flask(__name__)
    monkeypatch.setenv("DAYDREAM_WEB_THREADS", "16")
    with app.app_context():
        assert holding.max_waiting() == 8
    monkeypatch.delenv("DAYDREAM_WEB_THREADS")
    with app.app_context():
        assert holding.max_waiting() == 32


UPSCALER_LIST = [{"id": "lanczos", "name": "Lanczos"}, {"id": "nearest", "name": "Nearest"},
                 {"id": "demo-esrgan-x2", "name": "Demo ESRGAN ×2"}]


@pytest.fixture
def hr_upscalers(monkeypatch):
    monkeypatch.setattr(a1111.upscalers, "available", lambda: UPSCALER_LIST)
    monkeypatch.setattr(a1111.upscalers, "find", lambda key: next((u for u in UPSCALER_LIST if u["id"] == key), None))


def test_enable_hr_brings_a1111s_hires_fields_as_daydreams_hires(catalog, hr_upscalers):
    # webuiapi's txt2img sends these always; with enable_hr on they are the hires fix.
    sent = {"prompt": "x", "enable_hr": True, "hr_scale": 2, "hr_upscaler": "Latent (bicubic antialiased)",
            "hr_second_pass_steps": 0, "hr_resize_x": 0, "hr_resize_y": 0, "hr_checkpoint_name": None,
            "hr_sampler_name": None, "hr_scheduler": None, "hr_prompt": "", "hr_negative_prompt": "",
            "denoising_strength": 0.7, "firstphase_width": 0, "firstphase_height": 0}
    assert a1111.a1111_params(None, sent, img2img=False)["hires"] == {
        "upscaler": "latent-bicubic-antialiased", "scale": 2.0, "steps": 0, "denoising": 0.7}
    assert "hires" not in a1111.a1111_params(None, {**sent, "enable_hr": False}, img2img=False)
    sized = a1111.a1111_params(None, {**sent, "hr_resize_x": 1024, "hr_resize_y": 768, "hr_upscaler": "Demo ESRGAN ×2",
                                      "hr_second_pass_steps": 12, "hr_prompt": "sharp", "hr_negative_prompt": "blur",
                                      "hr_sampler_name": "Euler a", "hr_checkpoint_name": "Use same checkpoint"},
                               img2img=False)["hires"]
    assert sized == {"upscaler": "demo-esrgan-x2", "width": 1024, "height": 768, "steps": 12, "denoising": 0.7,
                     "prompt": "sharp", "negative_prompt": "blur", "scheduler": "euler_a"}
    for name, key in (("None", "lanczos"), ("Lanczos", "lanczos"), ("Nearest", "nearest"), (None, "latent"),
                      ("Latent (nearest-exact)", "latent-nearest-exact"), ("demo-esrgan-x2", "demo-esrgan-x2")):
        assert a1111.a1111_params(None, {**sent, "hr_upscaler": name}, img2img=False)["hires"]["upscaler"] == key
    # FLUX takes no negative prompt: the hires one is dropped as the first pass's is.
    flux = a1111.a1111_params(None, {**sent, "hr_negative_prompt": "blur",
                                     "override_settings": {"sd_model_checkpoint": "flux"}}, img2img=False)
    assert "negative_prompt" not in flux["hires"]


@pytest.mark.parametrize("body, field", [
    ({"hr_upscaler": "R-ESRGAN 4x+"}, "hr_upscaler"), ({"hr_scale": 8}, "hr_scale"),
    ({"hr_second_pass_steps": 2.5}, "hr_second_pass_steps"), ({"denoising_strength": 2}, "denoising_strength"),
    ({"hr_checkpoint_name": "other.safetensors"}, "hr_checkpoint_name"), ({"hr_sampler_name": "Nope"}, "hr_sampler_name"),
    ({"hr_prompt": 3}, "hr_prompt"),
])
def test_bad_hires_fields_are_refused_naming_them(catalog, hr_upscalers, body, field):
    with pytest.raises(ValidationError) as raised:
        a1111.a1111_params(None, {"prompt": "x", "enable_hr": True, **body}, img2img=False)
    assert raised.value.field == field
    assert common.rename_fields(raised.value, a1111.A1111_NAMES).field == field
    # Validation's complaints about the hires fix (the final size's limits) name hr_scale.
    assert common.rename_fields(ValidationError("hires", "too big"), a1111.A1111_NAMES).field == "hr_scale"


def test_a_hires_task_is_answered_in_a1111s_shapes(hr_upscalers):
    class Task:
        prompt, negative_prompt, steps, guidance, width, height, samples = "a boat", "", 2, 7.0, 64, 64, 1
        scheduler, strength, loras = "euler_a", None, None
        hires = {"scale": 2.0, "width": 128, "height": 128, "upscaler": "latent", "steps": 4, "denoising": 0.5,
                 "prompt": "", "negative_prompt": "", "scheduler": None}

    echoed = a1111.a1111_parameters(Task(), {"prompt": "a boat", "enable_hr": True, "hr_scale": 2})
    assert {k: echoed[k] for k in ("enable_hr", "hr_scale", "hr_upscaler", "hr_second_pass_steps", "hr_resize_x",
                                   "denoising_strength", "width", "height")} == {
        "enable_hr": True, "hr_scale": 2.0, "hr_upscaler": "Latent", "hr_second_pass_steps": 4, "hr_resize_x": 0,
        "denoising_strength": 0.5, "width": 64, "height": 64}
    assert a1111.hires_info(Task()) == {"denoising_strength": 0.5, "extra_generation_params": {
        "Hires upscale": 2.0, "Hires steps": 4, "Hires upscaler": "Latent"}}
    Task.hires = {**Task.hires, "scale": None, "width": 128, "height": 96, "upscaler": "demo-esrgan-x2", "steps": 0}
    extras = a1111.hires_info(Task())["extra_generation_params"]
    assert extras == {"Hires resize": "128x96", "Hires upscaler": "Demo ESRGAN ×2"}
    assert a1111.hires_echo(Task())["hr_resize_y"] == 96
    Task.hires = None
    assert a1111.hires_info(Task()) == {} and "enable_hr" not in a1111.a1111_parameters(Task(), {"prompt": "x"})
