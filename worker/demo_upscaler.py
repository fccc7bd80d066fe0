"""The demo upscaler: a tiny ESRGAN (RRDBNet) ×2 made in code, "demo-esrgan-x2".

It has the shape spandrel reads as ESRGAN (one RRDB block of 16 filters), with seeded
weights that pass the picture through (nearest ×2) plus a little texture from the random
trunk: a few hundred kilobytes, so the upscale path runs (and is tested) with no download.
It is not a good upscaler; it is a real one."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

DEMO_UPSCALER_VERSION = 1
FOLDER = "daydream-demo-upscalers"  # under the models folder (not a scan result)
FILE = "esrgan-x2.safetensors"


def demo_upscaler_path(models_path: Path) -> Path:
    return Path(models_path) / FOLDER / FILE


def make_state_dict(scale: int = 2, filters: int = 16, blocks: int = 1, texture: float = 0.15) -> dict:
    """The seeded weights (old-arch ESRGAN keys, "model.N…")."""
    import torch
    from spandrel.architectures.ESRGAN import ESRGAN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(24)
        net = ESRGAN(in_nc=3, out_nc=3, num_filters=filters, num_blocks=blocks, scale=scale)
        convs = [m for m in net.model if isinstance(m, torch.nn.Conv2d)]
        trunk = [m for m in net.model[1].modules() if isinstance(m, torch.nn.Conv2d)]
        with torch.no_grad():
            for conv in trunk:  # the texture: small random weights in the residual trunk
                conv.weight.mul_(texture)
                conv.bias.zero_()
            for conv in convs:  # fea conv, up convs, hr convs: the picture through channels 0–2
                conv.weight.mul_(0.02)
                conv.bias.zero_()
                for c in range(3):
                    conv.weight[c, :, :, :] *= 0.1
                    conv.weight[c, c, 1, 1] = 1.0
        return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}


def build_demo_upscaler(path: Path) -> Path:
    """Write the demo upscaler to `path` (a .safetensors file) unless the current version is
    there; written beside it and renamed into place, so racing builders are harmless."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("daydream_demo_upscaler") == str(DEMO_UPSCALER_VERSION):
                return path
    except Exception:  # missing or unreadable: (re)built below
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    os.close(fd)
    try:
        save_file(make_state_dict(), tmp, metadata={"daydream_demo_upscaler": str(DEMO_UPSCALER_VERSION)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
