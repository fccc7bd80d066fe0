"""Upscaler files: what is read from <models>/upscalers/ and how, without Flask or a database.

A file is read without running pickled code: .safetensors by safetensors, .pth/.pt only by
torch.load(weights_only=True); a pickle that needs code is refused (UnsafeFile) and nothing
runs. The state dict is handed to spandrel (ModelLoader().load_from_state_dict), which never
opens the file itself. The scan reads each file's scale and architecture in a child process
(`describe_files`: `python -m services.generation.upscaler_files FILE…`), so the web process
never imports torch or spandrel. The built-in resamplers and the demo upscaler's names are
here too; services/generation/upscalers.py is what the rest of the service asks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

FOLDER = "upscalers"  # under the models folder
FILES = (".safetensors", ".pth", ".pt")
# The built-in resamplers: {id: name}. Never rows; always offered.
BUILTINS = {"lanczos": "Lanczos", "nearest": "Nearest"}
DEMO_ID = "demo-esrgan-x2"  # the tiny demo ESRGAN ×2 (worker/demo_upscaler.py)
DEMO_NAME = "Demo ESRGAN ×2"
DEMO_SCALE, DEMO_ARCHITECTURE = 2, "ESRGAN"
PROBE_TIMEOUT = 300  # seconds for the child process that reads the files of one scan


class UpscalerFileError(Exception):
    """An upscaler file that cannot be used; the message says why (no paths beyond its name)."""


class UnsafeFile(UpscalerFileError):
    """A .pth/.pt whose pickle asks to run code: refused, nothing ran."""


class Unsupported(UpscalerFileError):
    """Weights of an architecture spandrel does not know (or not an upscaler)."""


# --- reading files (torch and spandrel imported here, lazily) -----------------------------

def read_state_dict(path: Path) -> dict:
    """The tensors of an upscaler file, read without running pickled code."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, ValueError) as exc:
            raise UpscalerFileError(f"{path.name} could not be read as safetensors: {exc}") from exc
    elif suffix in (".pth", ".pt"):
        import pickle

        import torch

        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if not _names_code(exc):
                raise UpscalerFileError(f"{path.name} could not be read: {_pickle_reason(exc)}") from exc
            raise UnsafeFile(
                f"{path.name} was refused: its pickle asks to run code ({_pickle_reason(exc)}), and only "
                "plain weights are read. Convert it to .safetensors, or get a weights-only file") from exc
        except Exception as exc:  # (damaged files fail in many ways)
            if "TorchScript" in str(exc):
                raise UnsafeFile(f"{path.name} was refused: it is a TorchScript program, not weights "
                                 "(it could run code). Convert it to .safetensors") from exc
            raise UpscalerFileError(f"{path.name} could not be read: {str(exc)[:300] or type(exc).__name__}") from exc
    else:
        raise UpscalerFileError(f"{path.name} is not a .safetensors, .pth or .pt file")
    if not isinstance(state, dict):
        raise Unsupported(f"{path.name} holds no weights (a {type(state).__name__}, not a state dict)")
    from spandrel import canonicalize_state_dict

    return canonicalize_state_dict(state)


def _names_code(exc: Exception) -> bool:
    """Whether the weights-only reader stopped at something a pickle would call or build (a
    global other than plain tensors and containers), rather than at damaged bytes."""
    text = str(exc)
    return "GLOBAL" in text.upper() or "REDUCE" in text.upper() or "Unsupported class" in text


def _pickle_reason(exc: Exception) -> str:
    """What the weights-only reader refused, from torch's message (e.g. "posix.system")."""
    import re

    text = str(exc)
    found = re.search(r"(?:unsupported )?GLOBAL ([\w.]+)", text, re.IGNORECASE)
    if found:
        return f"it names {found.group(1)}"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def load_descriptor(path: Path, device="cpu"):
    """The spandrel model of an upscaler file (an ImageModelDescriptor, on `device`)."""
    from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError

    path = Path(path)
    state = read_state_dict(path)
    try:
        # The state dict is ours: spandrel never opens (nor unpickles) the file itself.
        model = ModelLoader(device=device).load_from_state_dict(state)
    except UnsupportedModelError as exc:
        raise Unsupported(f"{path.name} is not an upscaler model of an architecture Daydream reads") from exc
    except Exception as exc:  # (weights of the right names and the wrong shapes, …)
        raise UpscalerFileError(f"{path.name} could not be loaded: {str(exc)[:300] or type(exc).__name__}") from exc
    if not isinstance(model, ImageModelDescriptor):
        raise Unsupported(f"{path.name} is not an upscaler (a {model.purpose} model)")
    if model.input_channels not in (1, 3) or model.output_channels not in (1, 3):
        raise Unsupported(f"{path.name} takes {model.input_channels} channels in and gives "
                          f"{model.output_channels}: not an RGB upscaler")
    return model.eval()


def describe(path: Path) -> dict:
    """{"scale", "architecture"} of an upscaler file, or {"error", "unsupported"} saying why not."""
    try:
        model = load_descriptor(path)
    except Unsupported as exc:
        return {"error": str(exc), "unsupported": True}
    except UpscalerFileError as exc:
        return {"error": str(exc), "unsupported": False}
    except Exception as exc:  # noqa: BLE001 (anything else a damaged file does: said, not raised)
        return {"error": f"{Path(path).name} could not be read: {str(exc)[:300] or type(exc).__name__}",
                "unsupported": False}
    return {"scale": int(model.scale), "architecture": model.architecture.name}


def describe_files(paths: list[Path], timeout: float = PROBE_TIMEOUT) -> dict[str, dict]:
    """describe() of each file, run in a child process (torch and spandrel stay out of the web
    process, and a file that takes it down takes down only the child). {path: description}."""
    if not paths:
        return {}
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run([sys.executable, "-m", "services.generation.upscaler_files", *map(str, paths)],
                              cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {str(p): {"error": f"{Path(p).name} was not read within {timeout:.0f} s", "unsupported": False}
                for p in paths}
    try:
        found = json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None
    except ValueError:
        found = None
    if not isinstance(found, dict):
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:300]
        return {str(p): {"error": f"{Path(p).name} could not be read: {why}", "unsupported": False} for p in paths}
    return {str(p): found.get(str(p)) or {"error": f"{Path(p).name} was not read", "unsupported": False}
            for p in paths}


def _main(argv: list[str]) -> int:
    print(json.dumps({p: describe(Path(p)) for p in argv}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
