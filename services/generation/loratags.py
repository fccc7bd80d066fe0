"""LoRAs named in the prompt, A1111's way: `<lora:name>` or `<lora:name:0.8>`.

Every route reads them the same way (the native API, /sdapi/v1 and /v1): a tag names an
enabled LoRA by its id or name (any case, with or without .safetensors / .ckpt); the
weight is 1 when none is given; the tag is taken out of the prompt the model reads (the
picture's infotext writes it back); a tag that names no enabled LoRA is a 422 naming it,
as is a hypernetwork tag. The studio shows a chip for each tag as it is typed (its
loras.js follows the same rules).

On the native API the tags join the request's `loras` list; a tag for a LoRA that is in
the list already sets its weight (the prompt's text wins, as the studio shows it). The
model's family, the weight range and the most LoRAs a task may take are checked after
the merge, by the task's validation (services/generation/params.py)."""
from __future__ import annotations

import re

from services.core.errors import ValidationError
from services.generation import catalog

EXTRA_NETWORK = re.compile(r"<\s*(lora|lyco|hypernet)\s*:([^:>]*)(?::([^:>]*))?(?::[^>]*)?>", re.IGNORECASE)
NATIVE_LIST = 'GET /api/v1/models (kind "lora")'


def find_lora(name: str) -> str | None:
    """An enabled LoRA's id by its id or name (with or without a file extension), any case."""
    wanted = name.strip().lower()
    for ext in catalog.CHECKPOINTS:
        if wanted.endswith(ext):
            wanted = wanted[: -len(ext)]
    for lora_id, info in catalog.lora_table().items():
        if wanted in (lora_id.lower(), str(info["name"]).lower()):
            return lora_id
    return None


def has_tags(prompt) -> bool:
    return isinstance(prompt, str) and EXTRA_NETWORK.search(prompt) is not None


def extract_loras(prompt, field: str = "prompt", listing: str = "GET /sdapi/v1/loras") -> tuple:
    """(the prompt without its extra-network tags, [{id, weight}] in the order named).
    A LoRA named twice counts once (the first tag). `listing` is where the complaint
    sends the caller to see the LoRAs there are."""
    if not isinstance(prompt, str):
        return prompt, []
    loras: list[dict] = []
    problems: list[str] = []

    def take(match: re.Match) -> str:
        kind, name, weight = match.group(1).lower(), match.group(2).strip(), match.group(3)
        if kind == "hypernet":
            problems.append(f"<hypernet:{name[:80]}>: hypernetworks are not supported; use a LoRA")
            return ""
        lora_id = find_lora(name) if name else None
        if lora_id is None:
            problems.append(f"<lora:{name[:80]}> is not an available LoRA; see {listing}")
            return ""
        try:
            value = 1.0 if weight is None or not weight.strip() else float(weight)
        except ValueError:
            problems.append(f"<lora:{name[:80]}:{weight[:20]}>: the weight must be a number")
            return ""
        if any(item["id"] == lora_id for item in loras):
            return ""  # named twice: once is enough
        loras.append({"id": lora_id, "weight": value})
        return ""

    cleaned = EXTRA_NETWORK.sub(take, prompt)
    if problems:
        raise ValidationError(field, problems[0])
    cleaned = re.sub(r"\s*,\s*(,\s*)+", ", ", re.sub(r"[ \t]{2,}", " ", cleaned)).strip(" ,\t\n")
    return cleaned, loras


def merge(listed, tagged: list[dict]):
    """The request's `loras` with the prompt's: a tag for a listed LoRA sets its weight;
    the others are added after the list. A `loras` that is not a list is left for the
    validation to refuse."""
    if not tagged:
        return listed
    if listed is None:
        return [dict(item) for item in tagged]
    if not isinstance(listed, list):
        return listed
    weights = {item["id"]: item["weight"] for item in tagged}
    merged = []
    for item in listed:
        lora_id = item if isinstance(item, str) else item.get("id") if isinstance(item, dict) else None
        if isinstance(lora_id, str) and lora_id in weights:
            item = {**(item if isinstance(item, dict) else {"id": lora_id}), "weight": weights.pop(lora_id)}
        merged.append(item)
    merged += [item for item in tagged if item["id"] in weights]
    return merged


def apply_to_request(data):
    """A native task request (POST /api/v1/tasks, /api/v1/estimate) with the prompt's
    LoRA tags taken out and merged into its `loras`; anything else as it is."""
    if not isinstance(data, dict) or not has_tags(data.get("prompt")):
        return data
    prompt, tagged = extract_loras(data["prompt"], "prompt", NATIVE_LIST)
    return {**data, "prompt": prompt, "loras": merge(data.get("loras"), tagged)}
