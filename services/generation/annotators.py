"""Annotators: the ControlNet preprocessors that are models (soft edges, line art, depth,
normals, pose, straight lines), run through the controlnet_aux package with weight files
from <models>/annotators/ (the file names of the lllyasviel/Annotators repository; see
README, "ControlNet preprocessors"). One is offered only when all its files are there and
the package imports; nothing is ever downloaded.

They need torch. The worker runs them in its own process (`run` without child_timeout,
the loaded detector cached); the web tier runs them in a short-lived child process with
a timeout (`python -m services.generation.annotators run …`), so torch never enters the
web process and a file that takes the child down takes down only the child. The weight
files are read by torch.load with its default weights_only=True: a pickle that asks to
run code is refused. services/generation/preprocess.py is what the rest of the service asks.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image as PILImage

FOLDER = "annotators"  # under the models folder
PACKAGES = ("controlnet_aux", "torch", "cv2")
IMPORT_TIMEOUT = 120  # seconds for the child that checks the package imports
RECHECK_AFTER = 300  # a failed import check is tried again after this many seconds
ERROR_LENGTH = 300


class AnnotatorError(Exception):
    """An annotator that could not run here; the message says why (file names, no paths)."""


@dataclass(frozen=True)
class Annotator:
    id: str  # sd-webui-controlnet's module name, so A1111 clients' names are ids here
    label: str
    module: str  # controlnet_aux's subpackage
    detector: str  # its class, loaded with from_pretrained(<models>/annotators)
    files: tuple[str, ...]  # what from_pretrained reads, all needed
    call: dict = field(default_factory=dict)  # the detector's own keyword arguments
    # threshold_a / threshold_b: the detector's keyword, and the settings the studio shows
    thresholds: dict = field(default_factory=lambda: {"a": None, "b": None})
    keywords: dict = field(default_factory=dict)  # {"a": "thr_v", …}
    union_type: int | None = None  # FLUX ControlNet Union mode (preprocess.BUILTINS says)
    sdxl_union_type: int | None = None  # SDXL ControlNet Union mode (preprocess.SDXL_UNION_MODES)


HED = ("hed", "HEDdetector", ("ControlNetHED.pth",))
PIDI = ("pidi", "PidiNetDetector", ("table5_pidinet.pth",))
LINEART = ("lineart", "LineartDetector", ("sk_model.pth", "sk_model2.pth"))
POSE = ("open_pose", "OpenposeDetector", ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"))


def _annotators(*items: Annotator) -> dict[str, Annotator]:
    return {item.id: item for item in items}


ANNOTATORS = _annotators(
    Annotator("softedge_hed", "Soft edge (HED)", *HED, union_type=0, sdxl_union_type=2),
    Annotator("softedge_hedsafe", "Soft edge (HED, safe)", *HED, call={"safe": True}, union_type=0,
              sdxl_union_type=2),
    Annotator("softedge_pidinet", "Soft edge (PiDiNet)", *PIDI, union_type=0, sdxl_union_type=2),
    Annotator("softedge_pidisafe", "Soft edge (PiDiNet, safe)", *PIDI, call={"safe": True}, union_type=0,
              sdxl_union_type=2),
    Annotator("scribble_hed", "Scribble (HED, from a photo)", *HED, call={"scribble": True}, union_type=0,
              sdxl_union_type=2),
    Annotator("scribble_pidinet", "Scribble (PiDiNet, from a photo)", *PIDI, call={"scribble": True},
              union_type=0, sdxl_union_type=2),
    Annotator("lineart_realistic", "Line art (realistic, from a photo)", *LINEART, union_type=0, sdxl_union_type=3),
    Annotator("lineart_coarse", "Line art (coarse, from a photo)", *LINEART, call={"coarse": True}, union_type=0,
              sdxl_union_type=3),
    Annotator("lineart_anime", "Line art (anime)", "lineart_anime", "LineartAnimeDetector", ("netG.pth",),
              union_type=0, sdxl_union_type=3),
    Annotator("depth_midas", "Depth (MiDaS)", "midas", "MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",),
              union_type=2, sdxl_union_type=1),
    Annotator("normal_bae", "Normal map (BAE)", "normalbae", "NormalBaeDetector", ("scannet.pt",), sdxl_union_type=4),
    Annotator("openpose", "OpenPose (body)", *POSE, union_type=4, sdxl_union_type=0),
    Annotator("openpose_hand", "OpenPose (body and hands)", *POSE, call={"include_hand": True}, union_type=4,
              sdxl_union_type=0),
    Annotator("openpose_face", "OpenPose (body and face)", *POSE, call={"include_face": True}, union_type=4,
              sdxl_union_type=0),
    Annotator("openpose_full", "OpenPose (body, hands and face)", *POSE,
              call={"include_hand": True, "include_face": True}, union_type=4, sdxl_union_type=0),
    Annotator("mlsd", "Straight lines (M-LSD)", "mlsd", "MLSDdetector", ("mlsd_large_512_fp32.pth",),
              thresholds={"a": {"label": "Value threshold", "min": 0.01, "max": 2.0, "default": 0.1, "step": 0.01},
                          "b": {"label": "Distance threshold", "min": 0.01, "max": 20.0, "default": 0.1,
                                "step": 0.01}},
              keywords={"a": "thr_v", "b": "thr_d"}, union_type=0, sdxl_union_type=3),
)


def folder_of(models_path) -> Path:
    return Path(models_path) / FOLDER


def present(models_path) -> list[Annotator]:
    """The annotators whose files are all under <models_path>/annotators/."""
    if models_path is None:
        return []
    folder = folder_of(models_path)
    try:
        names = {entry.name for entry in folder.iterdir() if entry.is_file()}
    except OSError:  # no folder (the usual case), or one that cannot be read
        return []
    return [item for item in ANNOTATORS.values() if set(item.files) <= names]


_checked: dict = {}  # {module: (imports, when checked)}
_check_lock = threading.Lock()


def importable(modules: set[str]) -> set[str]:
    """Those of controlnet_aux's subpackages `modules` that import here (torch and OpenCV
    with them), checked once in a child process: importing them takes seconds and brings
    torch. A failure is checked again after RECHECK_AFTER seconds."""
    if not all(importlib.util.find_spec(name) for name in PACKAGES):
        return set()
    with _check_lock:
        now = time.monotonic()
        unknown = sorted(m for m in modules if m not in _checked
                         or (not _checked[m][0] and now - _checked[m][1] >= RECHECK_AFTER))
        if unknown:
            try:
                done = subprocess.run([sys.executable, "-m", "services.generation.annotators", "probe", *unknown],
                                      env=_child_env(), cwd=_root(), capture_output=True, text=True,
                                      timeout=IMPORT_TIMEOUT)
                lines = done.stdout.strip().splitlines()
                found = set(json.loads(lines[-1])) if lines else set()
            except (OSError, ValueError, TypeError, subprocess.TimeoutExpired):
                found = set()
            _checked.update({m: (m in found, now) for m in unknown})
        return {m for m in modules if _checked[m][0]}


def installed(models_path) -> list[Annotator]:
    """The annotators this install can run: their files present and their module importable."""
    found = present(models_path)
    usable = importable({item.module for item in found}) if found else set()
    return [item for item in found if item.module in usable]


def detector_module(name: str):
    """controlnet_aux.<name>, imported without the package's __init__ when the package is
    not imported yet: that __init__ imports every detector (segment-anything, timm's model
    registry, mediapipe's check), several times the work of the one that is needed."""
    import importlib
    import types

    if "controlnet_aux" in sys.modules:
        return importlib.import_module(f"controlnet_aux.{name}")
    spec = importlib.util.find_spec("controlnet_aux")
    package = types.ModuleType("controlnet_aux")
    package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
    sys.modules["controlnet_aux"] = package
    try:
        return importlib.import_module(f"controlnet_aux.{name}")
    finally:
        # A later `import controlnet_aux` gets the real package (the subpackages imported
        # here are reused by it).
        if sys.modules.get("controlnet_aux") is package:
            del sys.modules["controlnet_aux"]


# --- running ---------------------------------------------------------------------------

def _root() -> Path:
    return Path(__file__).resolve().parents[2]


def _child_env() -> dict:
    root = str(_root())
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
            "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}


def _stamp(folder: Path, files: tuple[str, ...]) -> tuple:
    """The files' sizes and times: a file replaced on disk is loaded again."""
    try:
        return tuple((name, (folder / name).stat().st_size, (folder / name).stat().st_mtime_ns) for name in files)
    except OSError as exc:
        raise AnnotatorError(f"a weight file is missing: {Path(exc.filename or '').name}") from exc


@functools.lru_cache(maxsize=2)
def _detector(annotator_id: str, folder: str, stamp: tuple, device: str):
    annotator = ANNOTATORS[annotator_id]
    try:
        module = detector_module(annotator.module)
        detector = getattr(module, annotator.detector).from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 (a damaged or foreign file fails in many ways)
        names = ", ".join(annotator.files)
        why = (str(exc).replace(folder + os.sep, "").replace(folder, "<models>/annotators")[:ERROR_LENGTH]
               or type(exc).__name__)  # names of files, never the server's paths
        raise AnnotatorError(f"{annotator.id} could not load {names}: {why}") from exc
    return detector.to(device)


def run_here(picture: PILImage.Image, annotator_id: str, *, size: tuple[int, int], resolution: int,
             threshold_a=None, threshold_b=None, models_path, device: str | None = None) -> PILImage.Image:
    """The annotator's map of `picture` in this process (torch imported here), RGB at `size`."""
    import numpy as np
    import torch

    annotator = ANNOTATORS[annotator_id]
    folder = folder_of(models_path)
    detector = _detector(annotator_id, str(folder), _stamp(folder, annotator.files), device or "cpu")
    kwargs = {**annotator.call, "detect_resolution": resolution, "image_resolution": resolution,
              "output_type": "np"}
    for name, value in (("a", threshold_a), ("b", threshold_b)):
        if name in annotator.keywords and value is not None:
            kwargs[annotator.keywords[name]] = value
    source = picture.convert("RGB")
    if source.size != size:
        source = source.resize(size, PILImage.Resampling.LANCZOS)
    try:
        with torch.inference_mode():
            found = detector(np.asarray(source, dtype=np.uint8), **kwargs)
    except Exception as exc:  # noqa: BLE001 (said, not raised: the caller answers it)
        raise AnnotatorError(f"{annotator_id} failed: {str(exc)[:ERROR_LENGTH] or type(exc).__name__}") from exc
    found = np.asarray(found)
    if found.ndim == 3 and found.shape[2] == 1:
        found = found[:, :, 0]
    result = PILImage.fromarray(np.ascontiguousarray(found.astype(np.uint8))).convert("RGB")
    return result if result.size == size else result.resize(size, PILImage.Resampling.BILINEAR)


def run_in_child(picture: PILImage.Image, annotator_id: str, *, size: tuple[int, int], resolution: int,
                 threshold_a=None, threshold_b=None, models_path, timeout: float) -> PILImage.Image:
    """run_here in a child process that must finish within `timeout` seconds."""
    with tempfile.TemporaryDirectory(prefix="daydream-annotator-") as work:
        source, target = Path(work) / "in.png", Path(work) / "out.png"
        picture.convert("RGB").save(source, format="PNG", compress_level=1)
        job = {"annotator": annotator_id, "size": list(size), "resolution": resolution,
               "threshold_a": threshold_a, "threshold_b": threshold_b, "models_path": str(models_path),
               "source": str(source), "target": str(target)}
        try:
            done = subprocess.run([sys.executable, "-m", "services.generation.annotators", "run", json.dumps(job)],
                                  cwd=_root(), env=_child_env(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AnnotatorError(f"{annotator_id} did not finish within {timeout:.0f} s") from None
        lines = done.stdout.strip().splitlines()
        try:
            answer = json.loads(lines[-1]) if lines else None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            raise AnnotatorError(f"{annotator_id} failed: {why[:ERROR_LENGTH]}")
        if answer.get("error"):
            raise AnnotatorError(str(answer["error"])[:ERROR_LENGTH * 2])
        with PILImage.open(target) as made:
            return made.convert("RGB")


def run(picture: PILImage.Image, annotator_id: str, *, size: tuple[int, int], resolution: int,
        threshold_a=None, threshold_b=None, models_path, child_timeout: float | None = None,
        device: str | None = None) -> PILImage.Image:
    """An annotator's map, RGB at `size`: here, or in a child with child_timeout."""
    if annotator_id not in ANNOTATORS:
        raise AnnotatorError(f"{annotator_id} is not an annotator")
    arguments = {"size": size, "resolution": resolution, "threshold_a": threshold_a,
                 "threshold_b": threshold_b, "models_path": models_path}
    if child_timeout is not None:
        return run_in_child(picture, annotator_id, timeout=child_timeout, **arguments)
    return run_here(picture, annotator_id, device=device, **arguments)


def _probe(modules: list[str]) -> list[str]:
    """Those of controlnet_aux's subpackages that import."""
    found = []
    for name in modules:
        try:
            detector_module(name)
        except Exception:  # noqa: BLE001 (a missing dependency, a broken install: not offered)
            continue
        found.append(name)
    return found


def _main(argv: list[str]) -> int:
    if argv[:1] == ["probe"]:
        print(json.dumps(_probe(argv[1:])))
        return 0
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m services.generation.annotators run JOB_JSON | probe MODULE…", file=sys.stderr)
        return 2
    job = json.loads(argv[1])
    try:
        with PILImage.open(job["source"]) as source:
            picture = source.convert("RGB")
        made = run_here(picture, job["annotator"], size=tuple(job["size"]), resolution=job["resolution"],
                        threshold_a=job["threshold_a"], threshold_b=job["threshold_b"],
                        models_path=job["models_path"])
        made.save(job["target"], format="PNG")
    except AnnotatorError as exc:
        print(json.dumps({"error": str(exc)}))
        return 0
    print(json.dumps({"ok": True}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
