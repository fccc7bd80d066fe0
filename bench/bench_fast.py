"""How much denoiser work and time does fast mode save (issue 28)?

On the tiny demo model of each family that has fast mode (services/generation/fast.py:
FLUX.1, FLUX.2, Z-Image, Qwen-Image, SD 3), loaded on the CPU through the worker's
PipelineCache, in one run: the same picture with and without the family's step cache
(worker/pipelines/fast.py, the demo models' settings), interleaved so that drift on a
noisy machine hits both alike. Denoiser work is counted as forward calls of the first
linear layer of each attention module of the transformer (a skipped block or a predicted
attention does not reach it); time is the median of the pipeline calls.

Targets, per family: attention calls fast / plain < 1 (fewer calls) and time fast /
plain < 1. On the tiny models the denoiser is a small share of a call (the text encoder
and the VAE are as large as it), so the time saved is less than on real models.

    python -m bench.bench_fast [--steps 8] [--size 128] [--repeats 3] [--families flux,zimage]

Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from services.generation import fast
from services.generation.families import DEMO_MODELS

TARGET_CALL_RATIO = 1.0
TARGET_TIME_RATIO = 1.0


def demo_model_of(family: str) -> str:
    return next(model for model, of in DEMO_MODELS.items() if of == family and model not in
                ("demo-kontext", "demo-qwen-edit", "demo-qwen-edit-plus"))


def attention_layers(transformer) -> list:
    import torch

    attention = [m for name, m in transformer.named_modules() if re.search(r"(attn|attention)$", name)]
    return [next(m for m in a.modules() if isinstance(m, torch.nn.Linear)) for a in attention]


def measure(pipe, family: str, use_fast: bool, steps: int, size: int) -> tuple[int, float]:
    """(attention calls, seconds) of one call."""
    import torch

    from worker.pipelines import fast as pipeline_fast

    calls = [0]
    hooks = [layer.register_forward_hook(lambda *args: calls.__setitem__(0, calls[0] + 1))
             for layer in attention_layers(pipe.transformer)]
    arguments = dict(prompt="a lighthouse at dusk", num_inference_steps=steps, width=size, height=size,
                     generator=torch.Generator().manual_seed(1), output_type="np")
    try:
        started = time.perf_counter()
        if use_fast:
            with pipeline_fast.enabled(pipe, family, demo=True):
                pipe(**arguments)
        else:
            pipe(**arguments)
        return calls[0], time.perf_counter() - started
    finally:
        for hook in hooks:
            hook.remove()


def bench_family(models: Path, family: str, steps: int, size: int, repeats: int) -> dict:
    import torch

    from worker.pipelines.cache import PipelineCache

    torch.set_num_threads(1)
    pipe = PipelineCache(models, device="cpu").get(demo_model_of(family))
    measure(pipe, family, False, steps, size)  # warm-up (first-call allocations)
    plain_times, fast_times, plain_calls, fast_calls = [], [], 0, 0
    for _ in range(repeats):
        plain_calls, seconds = measure(pipe, family, False, steps, size)
        plain_times.append(seconds)
        fast_calls, seconds = measure(pipe, family, True, steps, size)
        fast_times.append(seconds)
    plain_s, fast_s = statistics.median(plain_times), statistics.median(fast_times)
    return {"family": family, "method": fast.METHODS[family].name, "plain_calls": plain_calls,
            "fast_calls": fast_calls, "call_ratio": fast_calls / max(plain_calls, 1),
            "plain_s": plain_s, "fast_s": fast_s, "time_ratio": fast_s / plain_s if plain_s else 1.0}


def report(rows: list[dict]) -> bool:
    print(f"{'family':8} {'method':18} {'attention calls':>16} {'ratio':>6} {'plain s':>8} {'fast s':>8} {'ratio':>6}")
    ok = True
    for row in rows:
        good = row["call_ratio"] < TARGET_CALL_RATIO and row["time_ratio"] < TARGET_TIME_RATIO
        ok = ok and good
        print(f"{row['family']:8} {row['method']:18} {row['fast_calls']:>7} / {row['plain_calls']:<6} "
              f"{row['call_ratio']:6.2f} {row['plain_s']:8.3f} {row['fast_s']:8.3f} {row['time_ratio']:6.2f}"
              f"  {'ok' if good else 'MISSED'}")
    print(f"targets: attention calls fast / plain < {TARGET_CALL_RATIO:g}, time fast / plain < {TARGET_TIME_RATIO:g}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", default=",".join(fast.METHODS))
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    unknown = [f for f in families if f not in fast.METHODS]
    if unknown:
        print(f"no fast mode for: {', '.join(unknown)} (it has: {', '.join(fast.METHODS)})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bench-fast-") as folder:
        rows = [bench_family(Path(folder), family, args.steps, args.size, args.repeats) for family in families]
    return 0 if report(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
