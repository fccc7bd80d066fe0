"""A model whose VAE has a latent channel count no preview factors fit (6: not in
worker/previews.py's LATENT_RGB nor BY_CHANNELS) still renders through the real worker:
its previews are skipped, not fatal, and the skip is logged once."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
import redis
from PIL import Image as PILImage

from services.core import keys
from tests.integration.helpers import ApiUser, make_staff
from worker.demo_families import clip_config, clip_tokenizer
from worker.demo_model import assemble_pipeline

ODD_CHANNELS = 6
SKIP_LOG = "no live preview for a sd1 model (VAE latent channels: 6"


@pytest.fixture(scope="module")
def skip_stack(stack_factory):
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    app = shared.app
    app.worker = shared.worker
    return app


def build_odd_vae_model(folder: Path) -> Path:
    """A tiny SD 1.x diffusers folder (as worker/demo_model.py's demo) whose VAE and UNet
    work on 6 latent channels."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    if (folder / "model_index.json").is_file():
        return folder
    torch.manual_seed(0)
    tokenizer, vocab_size = clip_tokenizer(folder / "tokenizer")
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=ODD_CHANNELS, out_channels=ODD_CHANNELS, block_out_channels=(32, 64),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32, attention_head_dim=8,
        norm_num_groups=32)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 16, 16), layers_per_block=1,
        latent_channels=ODD_CHANNELS, norm_num_groups=4, sample_size=64)
    pipe = assemble_pipeline(unet=unet, vae=vae, text_encoder=CLIPTextModel(clip_config(tokenizer, vocab_size)),
                             tokenizer=tokenizer)
    pipe.save_pretrained(folder)
    return folder


def test_a_vae_of_unknown_latent_channels_renders_without_previews_and_logs_the_skip_once(skip_stack):
    build_odd_vae_model(Path(skip_stack.config["MODELS_PATH"]) / "odd-vae")
    staff = make_staff(skip_stack, "oddvaeboss")
    client = skip_stack.test_client()
    items = client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]
    row = next(m for m in items if m.get("spec") == "odd-vae")
    assert row["family"] == "sd1", row
    enabled = client.patch(f"/api/v1/admin/models/{row['id']}", json={"enabled": True}, headers=staff)
    assert enabled.status_code == 200, enabled.get_json()

    user = ApiUser(skip_stack.test_client(), "oddvaeuser")
    response = user.submit(prompt="a cat", model=row["id"], width=64, height=64, steps=3, seed=5)
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=180)
    assert task["state"] == "done", task
    picture = PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data))
    assert picture.size == (64, 64)
    # With DAYDREAM_PREVIEW_HZ=50 every step would store one; none could be made.
    assert redis.Redis.from_url(skip_stack.config["REDIS_URL"]).get(keys.preview(task["id"])) is None
    assert skip_stack.worker.output().count(SKIP_LOG) == 1, skip_stack.worker.output()[-3000:]
