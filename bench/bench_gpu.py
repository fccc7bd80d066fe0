"""The GPU set: step rates of the real architectures, and the worker benchmarks at real size.

Needs a CUDA GPU and nothing from the network: the models are the real-size SD 1.5 and
SDXL architectures with random weights, built on the GPU (bench/real_models.py). Run by
`make bench-gpu` (about 6-8 minutes on a modern GPU, most of it torch.compile); on a
machine without CUDA it says so and exits 0.

1. + 2. The worker benchmarks (bench/bench_worker.py) with SD 1.5 at 512², float16:
   through-the-worker time per task ÷ the bare diffusers call (target ≤ 1.03), and
   images/s of 4 users submitting at once with DAYDREAM_MAX_BATCH=4 ÷ with 1 (target
   ≥ 1.8). The SD 1.5 folder is saved once (float16, 1.7 GB) under bench/.models/.
3. Step rates (it/s of the denoising loop, classifier-free guidance on, so a step is a
   UNet call on 2 rows) of bare diffusers calls: SD 1.5 at 512² and SDXL at 1024²,
   eager and compiled (torch.compile of the UNet, channels_last: worker/pipelines/compiling.
   compile_pipeline, what DAYDREAM_COMPILE does), in float16, with the GPU's name. The
   compile time (the first call) is printed too. No target: the figures are for the
   README and for comparing machines.

    python -m bench.bench_gpu [--only rates|worker] [--steps 20] [--models DIR]
                              [--device cuda] [--tiny] [--no-compile] [--budget 450]

`--device cpu --tiny` runs every code path on tiny models on a CPU in a minute (a smoke
test; its figures mean nothing). Exit status 1 when a worker target is missed.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench import real_models  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "bench" / ".models"  # git-ignored cache of the saved random-weight models
PROMPT = "a lighthouse on a cliff at sunset, oil painting"
RATE_SIZES = {"sd15": 512, "sdxl": 1024}
TINY_SIZES = {"sd15": 64, "sdxl": 128}
COMPILE_RESERVE_S = 150  # what compiling and timing SDXL may take: skipped when less is left


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def step_rate(pipe, size: int, steps: int, device: str) -> tuple[float, float]:
    """(it/s of the denoising loop, seconds of the whole call): the time from the end of
    the first step to the end of the last, over steps - 1 (the first step's warm-up and
    the text encoding left out); latents out, so no VAE decode."""
    marks: list[float] = []

    def on_step_end(_pipe, _i, _t, kwargs):
        _sync(device)
        marks.append(time.perf_counter())
        return kwargs

    started = time.perf_counter()
    pipe(prompt=PROMPT, num_inference_steps=steps, guidance_scale=7.0, width=size, height=size,
         generator=torch.Generator("cpu").manual_seed(0), output_type="latent",
         callback_on_step_end=on_step_end)
    _sync(device)
    total = time.perf_counter() - started
    rate = (len(marks) - 1) / (marks[-1] - marks[0]) if len(marks) > 1 and marks[-1] > marks[0] else float("nan")
    return rate, total


def measure_rates(device: str, dtype: torch.dtype, steps: int, tiny: bool, compile: bool,
                  deadline: float) -> list[str]:
    """Item 3: eager and compiled it/s of SD 1.5 at 512² and SDXL at 1024²."""
    from worker.pipelines.compiling import compile_pipeline

    lines = []
    for arch in real_models.ARCHITECTURES:
        size = (TINY_SIZES if tiny else RATE_SIZES)[arch]
        started = time.perf_counter()
        pipe = real_models.make_pipeline(arch, device=device, dtype=dtype, tiny=tiny)
        built = time.perf_counter() - started
        params = real_models.parameter_count(pipe.unet) / 1e6
        step_rate(pipe, size, 3, device)  # warm-up (cuDNN picks its kernels)
        eager, _ = step_rate(pipe, size, steps, device)
        line = (f"  {real_models.LABELS[arch]}{' (tiny)' if tiny else ''} at {size}²: eager {eager:.2f} it/s")
        if not compile:
            line += "; compiled: skipped (--no-compile)"
        elif arch == "sdxl" and time.monotonic() > deadline - COMPILE_RESERVE_S:
            line += "; compiled: skipped (the time budget is spent; --budget)"
        else:
            try:
                compile_pipeline(pipe)
                _, first = step_rate(pipe, size, 3, device)  # compiles the graph for this shape
                compiled, _ = step_rate(pipe, size, steps, device)
                line += (f", compiled {compiled:.2f} it/s (×{compiled / eager:.2f}; "
                         f"first call with compiling {first:.0f} s)")
            except Exception as exc:  # noqa: BLE001 - a compiler missing on the machine: say so, go on
                line += f"; compiled: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
        line += f"  [UNet {params:.0f} M parameters, built in {built:.0f} s]"
        print(line, flush=True)
        lines.append(line)
        del pipe
        _free()
    return lines


def run_worker_benches(device: str, models: Path, tiny: bool) -> int:
    """Items 1 and 2 with the saved SD 1.5 folder (bench/bench_worker.py's run())."""
    from bench import bench_worker

    name = "sd15-random-tiny" if tiny else "sd15-random"
    started = time.perf_counter()
    build_device = device if torch.device(device).type == "cuda" else "cpu"
    real_models.build_folder("sd15", models / name, device=build_device, tiny=tiny)
    print(f"  ({name} ready under {models} in {time.perf_counter() - started:.1f} s)", flush=True)
    label = f"SD 1.5 architecture{' (tiny)' if tiny else ''} (random weights), {bench_worker.describe(name, device)}"
    if tiny:
        settings = bench_worker.Settings(model=name, models_path=models, device=device, size=64, steps=4,
                                         repeats=1, tasks_per_user=1, batch_steps=2, label=label)
    else:
        settings = bench_worker.Settings(model=name, models_path=models, device=device, size=512, steps=30,
                                         repeats=3, users=4, tasks_per_user=3, batch_steps=30, warm_rounds=1,
                                         batching_target=True, label=label)
    return bench_worker.run(settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("rates", "worker"), default=None)
    parser.add_argument("--steps", type=int, default=20, help="steps of a timed call (item 3)")
    parser.add_argument("--models", type=Path, default=MODELS, help="where the saved models are kept")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="tiny models of the same structure (smoke test)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--budget", type=float, default=450, help="seconds; SDXL's compile is skipped past it")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    deadline = time.monotonic() + args.budget
    device = args.device
    if device == "auto":
        if not torch.cuda.is_available():
            print(f"GPU benchmarks skipped: torch {torch.__version__} sees no CUDA GPU "
                  "(`python -m bench.bench_gpu --device cpu --tiny` smoke-tests them)", flush=True)
            return 0
        device = "cuda"
    cuda = torch.device(device).type == "cuda"
    if cuda and not torch.cuda.is_available():
        print(f"--device {device}: torch sees no CUDA GPU", file=sys.stderr)
        return 2
    dtype = torch.float16 if cuda else torch.float32
    name = torch.cuda.get_device_name(torch.device(device)) if cuda else f"CPU ({os.cpu_count()} cores)"
    print(f"GPU set on {name}, {str(dtype).removeprefix('torch.')}, torch {torch.__version__}"
          f"{', tiny models (smoke test: figures mean nothing)' if args.tiny else ''}", flush=True)
    status = 0
    if args.only in (None, "worker"):
        status |= run_worker_benches(device, args.models, args.tiny)
        _free()
    if args.only in (None, "rates"):
        print(f"step rates (it/s, denoising loop, guidance on, {args.steps} steps), bare diffusers calls, "
              f"{name}, {str(dtype).removeprefix('torch.')}:", flush=True)
        measure_rates(device, dtype, args.steps, args.tiny, not args.no_compile, deadline)
    return status


if __name__ == "__main__":
    sys.exit(main())
