"""A tiny image classifier for the image check's tests (worker/safety.py): a ViT with
random weights, 32×32 pictures, labels ["normal", "nsfw"], whose head is set so that it
says the same label for every picture (weights 0, bias ±10): `flag_all` makes every
image unsafe, `pass_all` none. Saved with save_pretrained beside a ViTImageProcessor,
the way a real detector's folder looks.

Run as a script (the tests do, so transformers stays out of their process):

    python tests/safety_model.py FOLDER flag|pass [FOLDER flag|pass ...]"""
from __future__ import annotations

import sys
from pathlib import Path

LABELS = ["normal", "nsfw"]


def build_classifier(folder: Path, *, flag_all: bool) -> Path:
    """Write the classifier into folder (a model folder for <models>/safety/)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32,
                       id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)})
    torch.manual_seed(0)
    model = ViTForImageClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([-10.0, 10.0] if flag_all else [10.0, -10.0]))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


if __name__ == "__main__":
    pairs = list(zip(sys.argv[1::2], sys.argv[2::2]))
    if not pairs or len(sys.argv) % 2 != 1 or any(verdict not in ("flag", "pass") for _, verdict in pairs):
        sys.exit("usage: python tests/safety_model.py FOLDER flag|pass [FOLDER flag|pass ...]")
    for folder, verdict in pairs:  # several in one process: torch and transformers load once
        print(build_classifier(Path(folder), flag_all=verdict == "flag"))
