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

# Bump when the configs below change: an existing folder with an older version
# is rebuilt on the next start.
DEMO_VERSION = 1
MARKER = "daydream-demo.json"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table (the byte-level
    alphabet). Written out here so it does not depend on where a given
    transformers version keeps its copy."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def _write_tokenizer_files(folder: Path) -> int:
    """Write a byte-level CLIP vocabulary with no merges: every text is split
    into single bytes, so any prompt (unicode included) tokenizes without
    unknown tokens. Returns the vocabulary size."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    # CLIP's merges file starts with a version line; the loader skips it.
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return len(vocab)


def _marker_ok(path: Path) -> bool:
    try:
        data = json.loads((path / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return data.get("version") == DEMO_VERSION and (path / "model_index.json").is_file()


def _build(folder: Path) -> None:
    """Make the pipeline and save it (diffusers folder format) into `folder`."""
    import torch

    # Same weights on every machine (so a seed gives the same image everywhere),
    # without resetting the random state of the process that builds it.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        pipe = _make_pipeline(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    # Written last: a folder with the marker is a complete model.
    (folder / MARKER).write_text(json.dumps({"name": "daydream-demo", "version": DEMO_VERSION}) + "\n", encoding="utf-8")


def _make_pipeline(folder: Path):
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    # Written where the pipeline keeps its tokenizer: transformers 5 saves only
    # tokenizer.json, and these two files keep the folder loadable by the
    # slow tokenizer of transformers 4 as well.
    tok_dir = folder / "tokenizer"
    vocab_size = _write_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=77)
    # transformers 5 records the load arguments and would save them as settings.
    for key in ("local_files_only", "is_local"):
        tokenizer.init_kwargs.pop(key, None)

    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            projection_dim=32,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
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


def build_demo_model(path: Path) -> Path:
    """Build the demo model at `path` unless an up-to-date one is there.

    Safe when several processes (web CLI, workers) start at once: each builds
    into its own temporary folder beside `path` and renames it into place;
    whoever comes second finds a complete model there and throws its copy away.
    """
    path = Path(path)
    if _marker_ok(path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-build-", dir=path.parent))
    old: Path | None = None
    try:
        _build(tmp)
        if _marker_ok(path):  # another process finished first
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
            # Lost the race: a complete model was put there meanwhile.
            if not _marker_ok(path):
                raise
        return path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
