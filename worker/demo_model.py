"""The built-in "demo" model: a tiny Stable Diffusion pipeline made in code.

It has the shape of a real SD 1.x model (CLIP text encoder, UNet with cross
attention, a VAE whose latents are 1/8 of the image, the SD 1.5 noise schedule),
but with random, untrained weights that are a few megabytes, so the whole
service runs (and is tested) on a machine with no GPU and no network. Its
images are coloured noise; that is expected.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

# The tokenizer helpers live with the other families' parts; imported here too, where
# they were first (bench/bench_previews.py uses _write_tokenizer_files).
from worker import demo_families
from worker.demo_families import _write_tokenizer_files, clip_config, clip_tokenizer, write_lora  # noqa: F401
from worker.demo_chroma import make_chroma
from worker.demo_flux2 import make_flux2
from worker.demo_qwen import make_qwen
from worker.demo_zimage import make_zimage

# Each family's maker (but SD 1.x's, below): demo_families' and the newer families' own
# modules (worker/demo_<family>.py).
MAKERS = {**demo_families.MAKERS, "zimage": make_zimage, "chroma": make_chroma, "flux2": make_flux2, "qwen": make_qwen}

# Bump when the configs below change: an existing folder with an older version
# is rebuilt on the next start.
# DEMO_VERSION is the SD 1.x model's; each family has its own.
DEMO_VERSION = 1
DEMO_VERSIONS = {"sd1": DEMO_VERSION, "sdxl": 2, "sd3": 1, "flux": 1, "zimage": 1, "chroma": 1, "flux2": 1, "qwen": 1}
DEMO_FAMILIES = tuple(DEMO_VERSIONS)
MARKER = "daydream-demo.json"


def _marker_ok(path: Path, family: str = "sd1") -> bool:
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    # Markers written before there were families have none: those are sd1.
    return (
        data.get("family", "sd1") == family
        and data.get("version") == DEMO_VERSIONS[family]
        and (path / "model_index.json").is_file()
    )


def _build(folder: Path, family: str = "sd1") -> None:
    """Make the pipeline and save it (diffusers folder format) into `folder`."""
    import torch

    make = _make_pipeline if family == "sd1" else MAKERS[family]
    # Same weights on every machine (so a seed gives the same image everywhere),
    # without resetting the random state of the process that builds it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe = make(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    # Written last: a folder with the marker is a complete model.
    marker = {"name": "daydream-demo", "version": DEMO_VERSIONS[family], "family": family}
    (folder / MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")


def _make_pipeline(folder: Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer, vocab_size = clip_tokenizer(folder / "tokenizer")

    text_encoder = CLIPTextModel(clip_config(tokenizer, vocab_size))
    unet = UNet2DConditionModel(
        sample_size=8,  # latent size; the pipeline's default image is 8 * 8 = 64 px
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    )
    # Four blocks -> three 2x downsamples -> latents are 1/8 of the image, as in
    # real SD, so sizes, latents and previews behave the same as in production.
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
    )
    return assemble_pipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)


def sd15_scheduler():
    """The SD 1.5 training schedule. The extra keys are the ones SD 1.5's
    scheduler_config.json carries, so other schedulers made with from_config (DDIM,
    PNDM) get the same settings as with a real model."""
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
    )
    scheduler.register_to_config(clip_sample=False, set_alpha_to_one=False, skip_prk_steps=True)
    return scheduler


def assemble_pipeline(*, unet, vae, text_encoder, tokenizer):
    """A text-to-image pipeline of these parts, with no safety checker."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sd15_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def build_demo_model(path: Path, family: str = "sd1") -> Path:
    """Build the demo model of `family` ("sd1", "sdxl", "sd3" or "flux") at `path`
    unless an up-to-date one of that family is there (build_folder: safe when several
    processes start at once)."""
    if family not in DEMO_VERSIONS:
        raise ValueError(f"unknown demo family {family!r}; one of {', '.join(DEMO_FAMILIES)}")
    return build_folder(Path(path), lambda folder: _marker_ok(folder, family), lambda tmp: _build(tmp, family))


def build_folder(path: Path, complete, build) -> Path:
    """Make the folder `path` with build(folder) unless complete(path) says it is there.

    Safe when several processes (web CLI, workers) start at once: each builds into its
    own temporary folder beside `path` and renames it into place; whoever comes second
    finds a complete folder there and throws its copy away. The demo models and the demo
    guides (worker/demo_guides.py) are built so."""
    path = Path(path)
    if complete(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-build-", dir=path.parent))
    old: Path | None = None
    try:
        build(tmp)
        if complete(path):  # another process finished first
            return path
        if path.exists():
            # An older version (or a broken leftover): move it aside first, since
            # a folder cannot be renamed over a non-empty one.
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}-old-", dir=path.parent))
            try:
                os.replace(path, old / "model")
            except FileNotFoundError:
                pass  # another process moved it already
        try:
            os.replace(tmp, path)
        except OSError:
            # Lost the race: a complete folder was put there meanwhile.
            if not complete(path):
                raise
        return path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def build_demo_lora(lora_path: Path, family: str = "sd1", model_folder: Path | None = None) -> Path:
    """Write the tiny LoRA of the demo model of `family` to `lora_path` (a
    .safetensors file in diffusers' LoRA format) and return that path.

    It is made on the demo model in `model_folder`, which is built there first when
    it holds no up-to-date demo model of that family (default: a folder
    "daydream-demo-<family>" beside the file). Its weights are seeded, so every
    build writes the same bytes; the file is written beside `lora_path` and renamed
    into place, so a reader never sees half of it and racing builders are harmless.
    The file carries no family metadata: the family shows in its tensor names.
    """
    if family not in DEMO_VERSIONS:
        raise ValueError(f"unknown demo family {family!r}; one of {', '.join(DEMO_FAMILIES)}")
    lora_path = Path(lora_path)
    if model_folder is None:
        model_folder = lora_path.parent / f"daydream-demo-{family}"
    model_folder = build_demo_model(Path(model_folder), family)
    lora_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{lora_path.name}-build-", dir=lora_path.parent))
    try:
        written = write_lora(tmp, "lora.safetensors", family, model_folder)
        os.replace(written, lora_path)
        return lora_path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
