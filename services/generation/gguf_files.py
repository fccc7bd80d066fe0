"""GGUF files of a denoiser (the quantized transformers people share as <name>-Q4_K_S.gguf,
…; tested with FLUX.1 schnell, FLUX.2 klein, Z-Image Turbo, Qwen-Image and Chroma files:
tests/integration/test_gguf_models.py), read without torch: the header's tensor names,
shapes and types, never the weights (the `gguf` package maps the file and reads only the
tensor table). The family comes from the same name tests as a .safetensors file's
(families.detect_checkpoint_keys), the quantization from the most common type of the
weight matrices. Used by the models-folder scan (families.detect_file) and the worker's
loader."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

SUFFIX = ".gguf"
MAGIC = b"GGUF"

# What the scan calls each tensor type: the K-quants by their family (Q4_K_S and Q4_K_M
# files both hold mostly Q4_K matrices), the rest by their own names.
QUANT_NAMES = {"F32": "F32", "F16": "F16", "BF16": "BF16", "F64": "F64"}


class NotGGUF(ValueError):
    """The file is not a readable GGUF file (damaged, cut short, or another format)."""


@dataclass(frozen=True)
class GGUFHeader:
    keys: dict  # {tensor name: {"shape": [numpy order], "dtype": type name}}: a safetensors header's shape
    quant: str  # the most common type of the weight matrices: "Q4_K", "Q8_0", "F16", "BF16", …
    architecture: str  # general.architecture ("flux", "sd3", …) or ""
    size_bytes: int


def _field_text(reader, name: str) -> str:
    field = reader.fields.get(name)
    if field is None:
        return ""
    try:
        value = field.contents()
    except Exception:  # an odd field type: not needed to tell the family
        return ""
    return value if isinstance(value, str) else ""


def quant_of(types: Counter) -> str:
    """The quantization of a file from {type name: count of weight matrices}: the most
    common one (a Q4_K_M file has Q6_K matrices too, but mostly Q4_K ones)."""
    if not types:
        return "F32"
    # Ties (rare): the lower precision names the file (it is what shrank it).
    order = sorted(types.items(), key=lambda item: (-item[1], item[0].startswith("F"), item[0]))
    return QUANT_NAMES.get(order[0][0], order[0][0])


def read_header(path: Path) -> GGUFHeader:
    """The tensor table of a GGUF file. NotGGUF says why a file cannot be read."""
    path = Path(path)
    with open(path, "rb") as handle:  # (an OSError says itself why)
        magic = handle.read(4)
    if magic != MAGIC:
        raise NotGGUF(f"{path.name} is not a GGUF file (it does not start with GGUF)")
    try:
        import gguf  # (the web tier may lack it only in a broken install: said plainly)
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise NotGGUF(f"{path.name} was not read: the gguf package is not installed") from exc
    try:
        reader = gguf.GGUFReader(str(path), "r")
        tensors = list(reader.tensors)
    except Exception as exc:  # the reader raises ValueError, IndexError, struct errors, …
        raise NotGGUF(f"{path.name} is not a readable GGUF file ({type(exc).__name__}: "
                      f"{str(exc)[:120] or 'damaged or cut short'})") from exc
    if not tensors:
        raise NotGGUF(f"{path.name} holds no tensors")
    keys: dict = {}
    types: Counter = Counter()
    for tensor in tensors:
        shape = [int(n) for n in reversed(list(tensor.shape))]  # GGUF lists the fastest axis first
        kind = tensor.tensor_type.name
        keys[tensor.name] = {"shape": shape, "dtype": kind}
        if len(shape) >= 2 and tensor.name.endswith(".weight"):
            types[kind] += 1
    return GGUFHeader(keys, quant_of(types), _field_text(reader, "general.architecture"),
                      path.stat().st_size)
