"""Dedicated inpainting models through a real worker: a tiny SD inpainting model (a UNet
of 9 input channels: 4 latent + 1 mask + 4 masked-picture latent) and a tiny FLUX.1 Fill
model (a transformer of 384 input channels: 64 packed latent + 64 packed masked-picture
latent + 256 packed mask), built here from tiny configs with seeded random weights, saved
as diffusers folders. Their cards say "dedicated" (variants "inpainting" and "fill"), and
a masked task on each runs through its own pipeline (the plain text-to-image or
image-to-image call would feed the denoiser 4 or 64 channels and fail): the pixels beyond
the mask and its blur are the input's, the masked ones are repainted."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from tests.helpers import WorkerProcess, instance_env, make_app
from tests.integration.helpers import ApiUser, make_staff, upload_blocks
from worker.demo_families import _t5_encoder, _vae, clip_config, clip_tokenizer, t5_tokenizer
from worker.demo_model import sd15_scheduler

MASK_BOX = (16, 16, 48, 40)


def save_sd_inpainting(folder: Path) -> Path:
    """The demo SD 1.x model's shape with a 9-channel UNet, as StableDiffusionInpaintPipeline."""
    from diffusers import StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer, vocab_size = clip_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=9, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
    pipe = StableDiffusionInpaintPipeline(
        vae=_vae(4), text_encoder=CLIPTextModel(clip_config(tokenizer, vocab_size)), tokenizer=tokenizer,
        unet=unet, scheduler=sd15_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def save_flux_fill(folder: Path) -> Path:
    """The demo FLUX.1 model's shape with a Fill transformer (384 in, 64 out, guidance
    embedded as FLUX.1 Fill dev), as FluxFillPipeline."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    tokenizer, vocab_size = clip_tokenizer(folder / "tokenizer")
    tokenizer_2 = t5_tokenizer()
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=384, out_channels=64, num_layers=1, num_single_layers=2, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
        axes_dims_rope=(4, 4, 8))
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0),
        vae=_vae(16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False, use_post_quant_conv=False,
                 force_upcast=False),
        text_encoder=CLIPTextModel(clip_config(tokenizer, vocab_size)), tokenizer=tokenizer,
        text_encoder_2=_t5_encoder(tokenizer_2, d_model=32), tokenizer_2=tokenizer_2, transformer=transformer)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def dedicated(tmp_path_factory, redis_url):
    """An instance whose default model is the SD inpainting folder (outside the models
    folder, by path) and whose models folder holds the FLUX.1 Fill one (scanned and
    enabled by staff), with a real worker."""
    base = tmp_path_factory.mktemp("dedicated")
    models = base / "models"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(23)
        sd_folder = save_sd_inpainting(base / "outside" / "sd-inpainting")
        save_flux_fill(models / "flux-fill")
    env = instance_env(base / "instance", redis_url, models, DAYDREAM_MODEL=str(sd_folder),
                       DAYDREAM_STARTING_TOKENS=1000)
    app = make_app(env)
    staff = make_staff(app, "inpaintstaff")
    client = app.test_client()
    scanned = {m["id"]: m for m in client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]}
    assert scanned["flux-fill"]["family"] == "flux" and scanned["flux-fill"]["variant"] == "fill", scanned
    enabled = client.patch("/api/v1/admin/models/flux-fill", json={"enabled": True}, headers=staff)
    assert enabled.status_code == 200, enabled.get_json()
    worker = WorkerProcess(env, base / "worker.log").start()
    try:
        yield app, ApiUser(client, "dedicateduser")
    finally:
        worker.stop()


def white_box_data_url(box) -> str:
    mask = PILImage.new("RGB", (64, 64), "black")
    mask.paste((255, 255, 255), box)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_the_cards_say_dedicated_inpainting(dedicated):
    _, user = dedicated
    models = {m["id"]: m for m in user.get("/api/v1/models").get_json()["items"] if m["kind"] == "model"}
    assert (models["sd-inpainting"]["variant"], models["sd-inpainting"]["inpainting"]) == ("inpainting", "dedicated")
    assert (models["flux-fill"]["variant"], models["flux-fill"]["inpainting"]) == ("fill", "dedicated")
    refused = user.submit(model="sd-inpainting", steps=2)  # no picture, no mask
    assert refused.status_code == 422 and refused.get_json()["error"]["field"] == "mask", refused.get_json()


@pytest.mark.parametrize("model", ["sd-inpainting", "flux-fill"])
def test_a_dedicated_model_repaints_the_mask_through_its_own_pipeline(dedicated, model):
    _, user = dedicated
    init, start = upload_blocks(user, 9)
    response = user.submit(model=model, init_image=init, mask=white_box_data_url(MASK_BOX), width=64, height=64,
                           steps=2, seed=12, mask_blur=2)
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=120)
    assert task["state"] == "done", task
    out = np.asarray(PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).convert("RGB"), dtype=np.int16)
    ys, xs = np.mgrid[0:64, 0:64]
    far = (xs < MASK_BOX[0] - 2) | (xs >= MASK_BOX[2] + 2) | (ys < MASK_BOX[1] - 2) | (ys >= MASK_BOX[3] + 2)
    deep = (xs >= MASK_BOX[0] + 2) & (xs < MASK_BOX[2] - 2) & (ys >= MASK_BOX[1] + 2) & (ys < MASK_BOX[3] - 2)
    diff = np.abs(out - start)
    assert diff[far].max() <= 1
    assert (diff[deep].max(axis=-1) > 8).mean() > 0.9
