"""LoRAs: each one a named peft adapter, loaded once on the pipeline and switched per
task. A task's LoRA files are resolved first (lora_files: the catalog, the models
folder, the demo LoRAs built on first use), then applied (apply_loras)."""
from __future__ import annotations

import re
from pathlib import Path

from services.generation import catalog, families
from services.generation.model_files import ModelsFolder
from worker.demo_model import build_demo_lora, build_demo_model
from worker.pipelines import info, prompt_cache
from worker.pipelines.errors import LoraError, cause, without_paths
from worker.pipelines.load import demo_folder_name

DEMO_LORA_FOLDER = "daydream-demo-loras"
MAX_RESIDENT_LORAS = 8  # adapters kept loaded per pipeline; the least recently used go first


def adapter_name(lora_id: str) -> str:
    return "lora_" + re.sub(r"\W", "_", lora_id)


def lora_path(spec: str, models_path: Path, family: str, follow_links: bool = False) -> Path:
    """The file of a LoRA spec: a demo LoRA (built on first use), or a path under the models
    folder (OSError when it leads out of it and links out are not followed)."""
    models_path = Path(models_path)
    demo = families.DEMO_LORAS.get(spec)
    if demo is not None:
        model_id = next(m for m, f in families.DEMO_MODELS.items() if f == demo)
        folder = build_demo_model(models_path / demo_folder_name(model_id), demo)
        return build_demo_lora(models_path / DEMO_LORA_FOLDER / f"{demo}.safetensors", demo, folder)
    return ModelsFolder(models_path, follow_links).resolve(spec)


def _unusable(lora: dict, exc: BaseException) -> LoraError:
    return LoraError(f"The LoRA {lora.get('name') or lora['id']} could not be applied "
                     f"({without_paths(cause(exc))}); tell staff it may be damaged or made "
                     "for another kind of model.")


def lora_files(pipe, loras: list[dict], family: str, models_path: Path,
               follow_links: bool = False) -> dict[str, Path]:
    """The files of the task's LoRAs that `pipe` has not loaded yet (lora id -> file), by
    their catalog entries. One that is gone from the catalog or cannot be found raises
    LoraError."""
    loaded = info.record_of(pipe).get("loras", {})
    files = {}
    for lora in loras:
        if adapter_name(lora["id"]) in loaded:
            continue
        try:
            spec = catalog.spec_of(lora["id"])
            if spec is None:
                raise LoraError(f"The LoRA {lora['id']} is no longer available on this server; pick another.")
            files[lora["id"]] = lora_path(spec, models_path, family, follow_links)
        except Exception as exc:
            raise _unusable(lora, exc) from exc
    return files


def apply_loras(pipe, loras: list[dict], files: dict[str, Path]) -> list[str]:
    """Make exactly the task's LoRAs active on `pipe` at their weights; none for a task
    without LoRAs. loras: [{id, name, weight}]; files: lora id -> file, for those not
    loaded yet (lora_files). Each is loaded once as a named peft adapter and kept (up to
    MAX_RESIDENT_LORAS). Returns the active adapter names. A LoRA that cannot be read
    raises LoraError."""
    loaded: dict = info.record_of(pipe).setdefault("loras", {})
    if not loras:
        if loaded:
            pipe.disable_lora()
        return []
    names, weights = [], []
    for lora in loras:
        name = adapter_name(lora["id"])
        if name not in loaded:
            prompt_cache.forget(pipe)  # (the same adapter name may come back with other weights)
            try:
                pipe.load_lora_weights(str(files[lora["id"]]), adapter_name=name)
            except Exception as exc:
                try:
                    pipe.delete_adapters([name])
                except Exception:
                    pass
                raise _unusable(lora, exc) from exc
        loaded.pop(name, None)
        loaded[name] = lora["id"]  # most recently used last
        names.append(name)
        weights.append(float(lora["weight"]))
    while len(loaded) > MAX_RESIDENT_LORAS:
        oldest = next(n for n in loaded if n not in names)
        pipe.delete_adapters([oldest])
        loaded.pop(oldest)
    pipe.enable_lora()
    pipe.set_adapters(names, adapter_weights=weights)
    return names
