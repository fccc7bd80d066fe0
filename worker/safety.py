"""The image check (DAYDREAM_SAFETY=off|flag|block): an image classifier the worker
loads once, beside the pipeline, and runs on every image it makes (the images of one
call together).

The classifier is any transformers image-classification model folder in SAFETY_PATH
(<models>/safety/: the folder itself, or the first folder in it, by name, that holds a
config.json), for example an NSFW detector. An image is unsafe when the probabilities of
the model's labels named in SAFETY_LABELS (its id2label names, case-insensitive) add up
to SAFETY_THRESHOLD or more (a multi-label model: the highest of them).

- flag: the image is kept with review = "held": only staff see it until they release
  or delete it (services/moderation/review.py).
- block: the image is not kept; the task is refunded that image's share of its cost,
  and its message says so. A task whose every image was withheld fails (refunded in full).
  This module only gives verdicts; the worker counts what it withheld and the task's end
  is services/generation/tasks.py's (finish_checked).

While the setting is on and the classifier is missing or does not load, the worker
takes no task (qworker.DaydreamWorker waits, retrying every SAFETY_RETRY seconds) and
says why in its heartbeat (`safety`), which /healthz and Admin → Queue show: it never
serves an unchecked image."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from worker import get_app

log = logging.getLogger(__name__)

MODES = ("off", "flag", "block")
CHUNK = 16  # pictures per classifier call

_classifier: "Classifier | None" = None
_status = "starting"  # until load() runs (qworker preload)


class SafetyUnavailable(RuntimeError):
    """The setting is on but the classifier is not loaded: no image may be served."""


@dataclass
class Verdict:
    label: str  # the top label
    score: float  # its probability
    unsafe_score: float  # the unsafe labels' probability (summed), or the highest (multi-label)
    unsafe: bool

    @property
    def text(self) -> str:
        """What Image.safety_label keeps: "nsfw 0.97"."""
        return f"{self.label} {self.score:.2f}"[:80]


class Classifier:
    def __init__(self, folder: Path, labels: list[str], threshold: float, device: str):
        import torch
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        self.folder = folder
        try:
            # use_fast=False: the PIL processor (the fast ones need torchvision).
            self.processor = AutoImageProcessor.from_pretrained(folder, use_fast=False)
        except (TypeError, ValueError):
            self.processor = AutoImageProcessor.from_pretrained(folder)
        self.model = AutoModelForImageClassification.from_pretrained(folder).eval().to(device)
        self.device = device
        self.threshold = threshold
        self.names = {int(i): str(name) for i, name in (self.model.config.id2label or {}).items()}
        wanted = {label.strip().lower() for label in labels}
        self.unsafe_ids = [i for i, name in self.names.items() if name.strip().lower() in wanted]
        if not self.unsafe_ids:
            raise ValueError(f"none of its labels ({', '.join(self.names.values()) or 'none'}) is in "
                             f"DAYDREAM_SAFETY_LABELS ({', '.join(labels)})")
        self.multi_label = getattr(self.model.config, "problem_type", None) == "multi_label_classification"
        self._torch = torch

    def check(self, pictures: list) -> list[Verdict]:
        torch = self._torch
        verdicts: list[Verdict] = []
        for start in range(0, len(pictures), CHUNK):
            part = [picture.convert("RGB") for picture in pictures[start:start + CHUNK]]
            inputs = self.processor(images=part, return_tensors="pt")
            inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
            with torch.inference_mode():
                logits = self.model(**inputs).logits.float()
            probs = (logits.sigmoid() if self.multi_label else logits.softmax(-1)).cpu()
            for row in probs:
                top = int(row.argmax())
                unsafe = row[self.unsafe_ids]
                score = float(unsafe.max() if self.multi_label else unsafe.sum())
                verdicts.append(Verdict(self.names.get(top, str(top)), float(row[top]), score,
                                        score >= self.threshold))
        return verdicts


def mode() -> str:
    return get_app().config["SAFETY"]


def enabled() -> bool:
    return mode() != "off"


def status() -> str:
    """What the heartbeat says: "off", "ok", or why the worker takes no task ("starting",
    "missing: …", "error: …")."""
    if _status == "starting" and not enabled():
        return "off"
    return _status


def ready() -> bool:
    """May this worker take tasks? (The setting is off, or its classifier is loaded.)"""
    return _status in ("off", "ok")


def find_folder(path: Path) -> Path | None:
    """The classifier's folder: path itself when it holds a config.json, else the first
    folder in it (by name) that does."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    if path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_dir() and (child / "config.json").is_file():
                return child
    return None


def load() -> bool:
    """Load the classifier when the setting is on and it is not loaded yet; True when
    the worker may take tasks. The outcome is what status() says."""
    global _classifier, _status
    config = get_app().config
    setting = config["SAFETY"]
    if setting == "off":
        _status = "off"
        return True
    if setting not in MODES:
        _status = f"error: DAYDREAM_SAFETY is {setting!r}; use off, flag or block"
        return False
    if _classifier is not None:
        _status = "ok"
        return True
    folder = find_folder(config["SAFETY_PATH"])
    if folder is None:
        _status = f"missing: no image classifier in {config['SAFETY_PATH']}"
        return False
    try:
        from worker.pipelines.memory import resolve_device

        device, _ = resolve_device(config["DEVICE"])
        _classifier = Classifier(folder, config["SAFETY_LABELS"], config["SAFETY_THRESHOLD"], device)
    except Exception as exc:  # a broken folder: say why, take no task
        log.warning("could not load the image classifier in %s: %s", folder, exc)
        _status = f"error: the image classifier in {folder} did not load ({exc.__class__.__name__}: {exc})"[:500]
        return False
    _status = "ok"
    log.info("image check (%s) with the classifier in %s; unsafe labels: %s", setting, folder,
             ", ".join(_classifier.names[i] for i in _classifier.unsafe_ids))
    return True


def check(pictures: list) -> list[Verdict | None]:
    """One verdict per picture (None each when the check is off). Raises
    SafetyUnavailable when the check is on and the classifier is not loaded."""
    if not enabled():
        return [None] * len(pictures)
    if _classifier is None:
        raise SafetyUnavailable(f"The image check is on but its classifier is not loaded ({_status}).")
    return _classifier.check(list(pictures)) if pictures else []


def withheld(verdict: Verdict | None) -> bool:
    """block: this image is not kept."""
    return verdict is not None and verdict.unsafe and mode() == "block"


def mark(image, verdict: Verdict | None) -> None:
    """The verdict on a saved image: its label, and held for review when unsafe (flag)."""
    if verdict is None:
        return
    image.safety_label = verdict.text
    if verdict.unsafe:
        image.review = "held"

