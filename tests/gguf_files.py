"""Writing tiny GGUF files for the tests, with the `gguf` package (no torch): the weight
matrices quantized (Q8_0 where a row is a multiple of its 32-weight block, else F16), the
rest F32, as the GGUF denoisers people share are made. The tensor names are kept as given
(diffusers' layout here: diffusers' GGUF loader takes them as they are)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import gguf
import numpy as np


def write_gguf(path: Path, tensors: dict[str, np.ndarray], quant: str = "Q8_0",
               architecture: str = "flux") -> Counter:
    """Write `tensors` to a GGUF file; returns how many tensors of each type it holds."""
    kind = gguf.GGMLQuantizationType[quant]
    block, _ = gguf.GGML_QUANT_SIZES[kind]
    writer = gguf.GGUFWriter(str(path), architecture)
    types: Counter = Counter()
    for name, value in tensors.items():
        array = np.asarray(value, dtype=np.float32)
        if array.ndim >= 2 and array.shape[-1] % block == 0 and name.endswith(".weight"):
            data = gguf.quants.quantize(array, kind)
            writer.add_tensor(name, data, raw_shape=data.shape, raw_dtype=kind)
            types[quant] += 1
        elif array.ndim >= 2:
            writer.add_tensor(name, array.astype(np.float16))
            types["F16"] += 1
        else:
            writer.add_tensor(name, array)
            types["F32"] += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return types


def gguf_from_safetensors(source: Path, path: Path, quant: str = "Q8_0", architecture: str = "flux") -> Counter:
    """A GGUF file of a .safetensors denoiser's weights (a diffusers folder's transformer)."""
    from safetensors.numpy import load_file

    return write_gguf(path, load_file(str(source)), quant, architecture)
