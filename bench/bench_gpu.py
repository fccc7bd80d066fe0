"""The GPU set: step rates of the real architectures, memory against the planner, and the
worker benchmarks at real size, in one run under 10 minutes.

Needs a CUDA GPU and nothing from the network: the models are real-size architectures
with random weights, built on the GPU (bench/real_models.py). Run by `make bench-gpu`;
on a machine without CUDA it says so and exits 0.

1. + 2. The worker benchmarks (bench/bench_worker.py) with SD 1.5 at 512², float16:
   through-the-worker time per task ÷ the bare diffusers call (target ≤ 1.03), and
   images/s of 4 users submitting at once with DAYDREAM_MAX_BATCH=4 ÷ with 1 (target
   ≥ 1.8). The SD 1.5 folder is saved once (float16, 1.7 GB) under bench/.models/.
3. Step rates (it/s of the denoising loop) of bare diffusers calls, one model at a time
   (built, measured, freed): SD 1.5 at 512² and SDXL at 1024² (float16, guidance on: a
   step is a UNet call on 2 rows), FLUX.2 klein 4B, Z-Image Turbo and FLUX.1 dev at 1024²
   (bfloat16, one transformer call a step; their text encoders are left out and random
   prompt embeddings of the real shapes passed instead). Each eager; compiled
   (worker/pipelines/compiling.compile_pipeline, what DAYDREAM_COMPILE does; the first
   call's compile time printed); and in fast mode (worker/pipelines/fast.enabled, the
   family's diffusers step cache: first-block cache for FLUX.1, TaylorSeer for FLUX.2
   and Z-Image; none for the UNets), with the full denoiser calls counted (a forward
   hook on the last attention projection, which a skipped or predicted step does not
   run). With random weights the first-block cache's skips are not a trained model's.
4. GPU memory: the peak (torch.cuda.max_memory_allocated) with a model's weights in place,
   over its eager calls (one of them decoding with the VAE) and fast-mode call, against the memory planner's
   estimate (services/generation/planner.plan for that family on this GPU, quantization
   off), less the text encoders the bench does not build and the CUDA context
   (planner.OVERHEAD), which max_memory_allocated does not count; with the ratio.
   A model that needs more than the GPU has free is skipped with a line saying so (and
   one that fails or runs out of memory says so; the others still run).
5. A time budget (--budget, 570 s from the start): the models run smallest first; a
   model's compiled run is skipped, saying so, when what is left would not cover its
   compile and the eager runs of the models after it. At the end, on CUDA, the table is
   written into README.md between <!-- bench-gpu:start --> and <!-- bench-gpu:end -->
   with the GPU's name and the date (--no-readme: not).

    python -m bench.bench_gpu [--only rates|worker] [--steps 20] [--models DIR]
                              [--device cuda] [--tiny] [--no-compile] [--budget 570]
                              [--arch sd15,flux1,...] [--no-readme]

`--device cpu --tiny` runs every code path on tiny models of the same structures on a CPU
(a smoke test; its figures mean nothing; compiling uses torch.compile's "eager" backend
there, since inductor's C++ build takes minutes on a small CPU). Exit status 1 when a
worker target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import functools
import gc
import io
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench import real_models  # noqa: E402
from services.generation import planner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MODELS = ROOT / "bench" / ".models"  # git-ignored cache of the saved random-weight models
TINY_SIZES = {"sd15": 64, "sdxl": 128, "flux1": 128, "zimage": 128, "flux2-klein": 128}
# Smallest first: when the budget runs short, the biggest models lose their compiled run.
ORDER = ("sd15", "sdxl", "flux2-klein", "zimage", "flux1")
# Seconds on a current GPU (an H100 class; 20 steps): build + warm-up + eager + fast, and
# torch.compile's first call + a timed compiled run. What the budget plans with.
EAGER_RESERVE_S = {"sd15": 15, "sdxl": 30, "flux2-klein": 25, "zimage": 35, "flux1": 50}
COMPILE_RESERVE_S = {"sd15": 50, "sdxl": 90, "flux2-klein": 70, "zimage": 90, "flux1": 130}
MARK_START, MARK_END = "<!-- bench-gpu:start -->", "<!-- bench-gpu:end -->"
GB = 1024**3


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def dtype_for(arch: str, cuda: bool) -> torch.dtype:
    """float16 for the UNets (as the worker runs them), bfloat16 for the transformers;
    float32 on a CPU."""
    if not cuda:
        return torch.float32
    return torch.float16 if arch in real_models.ARCHITECTURES else torch.bfloat16


@contextlib.contextmanager
def compile_backend(backend: str | None):
    """torch.compile with `backend` while in the block (None: as it is)."""
    if backend is None:
        yield
        return
    original = torch.compile
    torch.compile = functools.partial(original, backend=backend)
    try:
        yield
    finally:
        torch.compile = original


def step_rate(pipe, inputs: dict, size: int, steps: int, device: str, output_type: str = "latent"
              ) -> tuple[float, float]:
    """(it/s of the denoising loop, seconds of the whole call): the time from the end of
    the first step to the end of the last, over steps - 1 (the first step's warm-up and
    the text encoding left out); latents out unless `output_type` says otherwise."""
    marks: list[float] = []

    def on_step_end(_pipe, _i, _t, kwargs):
        _sync(device)
        marks.append(time.perf_counter())
        return kwargs

    started = time.perf_counter()
    pipe(**inputs, num_inference_steps=steps, width=size, height=size,
         generator=torch.Generator("cpu").manual_seed(0), output_type=output_type,
         callback_on_step_end=on_step_end)
    _sync(device)
    total = time.perf_counter() - started
    rate = (len(marks) - 1) / (marks[-1] - marks[0]) if len(marks) > 1 and marks[-1] > marks[0] else float("nan")
    return rate, total


class CallCounter:
    """Counts the denoiser's full computations: calls of the last attention projection
    (a Linear), which a step skipped by the first-block cache or predicted by TaylorSeer
    does not make. Counted for one UNet call on 2 rows as for a transformer call: 1."""

    def __init__(self, denoiser):
        linears = [(name, m) for name, m in denoiser.named_modules()
                   if isinstance(m, torch.nn.Linear) and ("attn" in name or "attention" in name)]
        self.name, module = linears[-1]
        self.calls = 0
        self._handle = module.register_forward_pre_hook(self._count)

    def _count(self, *_args) -> None:
        self.calls += 1

    def take(self) -> int:
        calls, self.calls = self.calls, 0
        return calls

    def remove(self) -> None:
        self._handle.remove()


def compile_allowed(arch: str, later: list[str], seconds_left: float, scale: float = 1.0) -> bool:
    """Whether `arch`'s compiled run fits: the time left covers its compile and the eager
    runs of the models after it (`scale`: 0 for tiny models, whose reserves are nothing)."""
    needed = COMPILE_RESERVE_S[arch] + sum(EAGER_RESERVE_S[a] for a in later)
    return seconds_left >= needed * scale


@dataclass
class Row:
    arch: str
    size: int
    params_b: float = 0.0  # parameters on the GPU, billions
    eager: float | None = None
    compiled: float | None = None
    compile_s: float | None = None
    compiled_note: str = ""  # why not compiled
    fast: float | None = None
    fast_method: str | None = None
    calls: tuple[int, int] | None = None  # full denoiser calls: (eager, fast) for the same steps
    peak: int | None = None  # bytes
    planned: int | None = None  # the planner's peak for the whole model (bytes)
    planned_held: int | None = None  # of it, what the bench holds (no text encoders, no CUDA context)
    plan_label: str = ""
    skipped: str = ""  # why the whole model was skipped

    @property
    def label(self) -> str:
        return real_models.LABELS[self.arch]


def planner_estimate(arch: str, gpu_total: int) -> tuple[int, int, str]:
    """(the planner's peak bytes for the whole model, of it what the bench holds, its
    label) on a GPU of gpu_total bytes, quantization off (the bench runs bf16/fp16)."""
    family, variant = real_models.PLANNER_MODEL[arch]
    plan = planner.plan(family, variant, gpu_total_bytes=gpu_total, quant_setting="none")
    held = plan.expected_bytes - planner.OVERHEAD
    if arch in real_models.TRANSFORMER_ARCHITECTURES and plan.offload == "none":
        spec = planner.SPECS[planner.spec_key(family, variant)]
        held -= sum(int(p * planner.BYTES_PER_PARAM[spec.precision]) for p in spec.text_encoders)
    return plan.expected_bytes, held, plan.label


def needed_bytes(arch: str, dtype: torch.dtype, size: int, tiny: bool) -> int:
    """The weights (counted on the meta device) and the planner's working memory for the
    picture: what must be free to build and run `arch`."""
    params = real_models.parameter_count(real_models.make_pipeline(arch, device="meta", tiny=tiny))
    family, variant = real_models.PLANNER_MODEL[arch]
    working = planner.SPECS[planner.spec_key(family, variant)].working_gb * GB * (size * size / 1024**2)
    return int(params * torch.finfo(dtype).bits // 8 + working)


def measure_model(arch: str, device: str, steps: int, tiny: bool, compile: bool, allow_compile) -> Row:
    """Item 3 and 4 for one model: built, measured eager, fast and compiled, freed."""
    from worker.pipelines import fast
    from worker.pipelines.compiling import compile_pipeline

    cuda = torch.device(device).type == "cuda"
    dtype = dtype_for(arch, cuda)
    size = TINY_SIZES[arch] if tiny else real_models.NATIVE_SIZE[arch]
    row = Row(arch, size)
    if cuda:
        gpu_total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        free = torch.cuda.mem_get_info(torch.device(device))[0]
        needed = needed_bytes(arch, dtype, size, tiny)
        if needed > free:
            row.skipped = (f"needs about {needed / GB:.1f} GB, the GPU has {free / GB:.1f} GB free "
                           f"of {gpu_total / GB:.0f} GB")
            return row
    else:
        gpu_total = 80 * GB  # (the planner's figures for an 80 GB GPU, printed beside nothing measured)
    row.planned, row.planned_held, row.plan_label = planner_estimate(arch, gpu_total)
    pipe = real_models.make_pipeline(arch, device=device, dtype=dtype, tiny=tiny)
    if cuda:  # from here: the weights as they run and the calls (a UNet is built in float32, then cast)
        _free()
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    denoiser = real_models.denoiser(pipe)
    row.params_b = real_models.parameter_count(pipe) / 1e9
    inputs = real_models.prompt_inputs(arch, device=device, dtype=dtype, tiny=tiny)
    counter = CallCounter(denoiser)
    try:
        step_rate(pipe, inputs, size, 2, device, output_type="pil")  # warm-up, through the VAE (memory)
        counter.take()
        row.eager, _ = step_rate(pipe, inputs, size, steps, device)
        eager_calls = counter.take()
        family = real_models.PLANNER_MODEL[arch][0]
        with fast.enabled(pipe, family, demo=tiny) as method:
            if method is not None:
                counter.take()
                row.fast, _ = step_rate(pipe, inputs, size, steps, device)
                row.fast_method = method.name
                row.calls = (eager_calls, counter.take())
        if cuda:
            row.peak = torch.cuda.max_memory_allocated(torch.device(device))
    finally:
        counter.remove()
    if not compile:
        row.compiled_note = "skipped (--no-compile)"
    elif not allow_compile():
        row.compiled_note = "skipped: the time budget is short (--budget)"
    else:
        try:
            with compile_backend(None if cuda else "eager"):
                compile_pipeline(pipe)
                _, row.compile_s = step_rate(pipe, inputs, size, 3, device)  # compiles for this shape
                row.compiled, _ = step_rate(pipe, inputs, size, steps, device)
        except Exception as exc:  # noqa: BLE001 - a compiler missing on the machine: say so, go on
            row.compiled_note = f"failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
    del pipe, denoiser, inputs, counter
    _free()
    return row


def describe_row(row: Row, tiny: bool) -> list[str]:
    """The lines printed for a row: rates, then memory."""
    head = f"  {row.label}{' (tiny)' if tiny else ''} at {row.size}²"
    if row.skipped:
        return [f"{head}: skipped: {row.skipped}"]
    line = f"{head}: eager {row.eager:.2f} it/s"
    if row.compiled is not None:
        line += f", compiled {row.compiled:.2f} it/s (×{row.compiled / row.eager:.2f}; first call {row.compile_s:.0f} s)"
    else:
        line += f"; compiled: {row.compiled_note}"
    if row.fast is not None:
        line += (f", fast {row.fast:.2f} it/s (×{row.fast / row.eager:.2f}; {row.fast_method}, "
                 f"full denoiser calls {row.calls[1]}/{row.calls[0]})")
    else:
        line += "; fast: none for this family (diffusers' step caches are for transformers)"
    params = f"{row.params_b:.2f} B" if row.params_b >= 0.1 else f"{row.params_b * 1000:.1f} M"
    line += f"  [{params} parameters on the device]"
    memory = f"    memory of {row.label}: planner {row.planned / GB:.1f} GB for the whole model ({row.plan_label})"
    if row.peak is not None:
        memory += (f"; of it what the bench holds {row.planned_held / GB:.1f} GB; measured peak "
                   f"{row.peak / GB:.1f} GB = ×{row.peak / row.planned_held:.2f} of the estimate")
    else:
        memory += "; no GPU memory measured on a CPU"
    return [line, memory]


def measure_rates(device: str, steps: int, tiny: bool, compile: bool, deadline: float,
                  archs: tuple[str, ...] = ORDER) -> list[Row]:
    """Items 3 and 4, one model at a time, smallest first."""
    rows = []
    for n, arch in enumerate(archs):
        later = list(archs[n + 1:])
        allow = functools.partial(lambda a, rest: compile_allowed(a, rest, deadline - time.monotonic(),
                                                                  0.0 if tiny else 1.0), arch, later)
        started = time.perf_counter()
        try:
            row = measure_model(arch, device, steps, tiny, compile, allow)
        except torch.cuda.OutOfMemoryError as exc:
            _free()
            row = Row(arch, real_models.NATIVE_SIZE[arch], skipped=f"out of GPU memory ({str(exc).splitlines()[0][:120]})")
        except Exception as exc:  # noqa: BLE001 - one model failing must not cost the others' figures
            _free()
            row = Row(arch, real_models.NATIVE_SIZE[arch],
                      skipped=f"failed ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})")
        for line in describe_row(row, tiny):
            print(line, flush=True)
        print(f"    ({time.perf_counter() - started:.0f} s)", flush=True)
        rows.append(row)
    return rows


def run_worker_benches(device: str, models: Path, tiny: bool) -> tuple[int, list[str]]:
    """Items 1 and 2 with the saved SD 1.5 folder (bench/bench_worker.py's run()): its
    status and its ratio lines (for the README)."""
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
    out = _Tee(sys.stdout)
    with contextlib.redirect_stdout(out):
        status = bench_worker.run(settings)
    wanted = ("ratio started→done / bare", "ratio images/s on / off", "batching off", "batching on")
    return status, [line.strip() for line in out.getvalue().splitlines() if line.strip().startswith(wanted)]


class _Tee(io.StringIO):
    """Writes to `stream` and keeps a copy."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text)
        return super().write(text)

    def flush(self) -> None:
        self.stream.flush()


def table(rows: list[Row], worker_lines: list[str], gpu: str, steps: int, when: str,
          worker_title: str = "SD 1.5 at 512²") -> str:
    """The README section: a Markdown table of the rows and the worker's ratios."""
    def rate(value):
        return "—" if value is None else f"{value:.2f}"

    out = [f"`make bench-gpu` on **{gpu}**, {when}, torch {torch.__version__} (random weights of the real "
           f"sizes; {steps} steps; SD 1.5 and SDXL float16 with guidance, the others bfloat16):", "",
           "| Model | Size | Eager it/s | Compiled it/s (first call) | Fast it/s (method, full calls) | "
           "VRAM peak | Planner (whole / held) | Peak ÷ held |",
           "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row.skipped:
            out.append(f"| {row.label} | {row.size}² | skipped: {row.skipped} | | | | | |")
            continue
        compiled = (f"{row.compiled:.2f} ({row.compile_s:.0f} s)" if row.compiled is not None
                    else row.compiled_note)
        fast_text = (f"{row.fast:.2f} ({row.fast_method}, {row.calls[1]}/{row.calls[0]})"
                     if row.fast is not None else "—")
        peak = f"{row.peak / GB:.1f} GB" if row.peak is not None else "—"
        ratio = f"{row.peak / row.planned_held:.2f}" if row.peak is not None else "—"
        out.append(f"| {row.label} | {row.size}² | {rate(row.eager)} | {compiled} | {fast_text} | {peak} | "
                   f"{row.planned / GB:.1f} / {row.planned_held / GB:.1f} GB | {ratio} |")
    if worker_lines:
        out += ["", f"Through the real worker, {worker_title}:", ""] + [f"- {line}" for line in worker_lines]
    return "\n".join(out)


def write_readme(text: str, readme: Path = README) -> None:
    """Put `text` between the bench-gpu markers of the README (added after the `gpu:`
    figures line when the markers are not there yet)."""
    content = readme.read_text(encoding="utf-8")
    block = f"{MARK_START}\n{text}\n{MARK_END}"
    if MARK_START in content and MARK_END in content:
        content = re.sub(re.escape(MARK_START) + r".*?" + re.escape(MARK_END), lambda _m: block, content,
                         count=1, flags=re.S)
    else:
        content = content.rstrip("\n") + "\n\n" + block + "\n"
    readme.write_text(content, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("rates", "worker"), default=None)
    parser.add_argument("--steps", type=int, default=20, help="steps of a timed call (item 3)")
    parser.add_argument("--models", type=Path, default=MODELS, help="where the saved models are kept")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="tiny models of the same structure (smoke test)")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--budget", type=float, default=570, help="seconds for the whole run (compiled runs "
                                                                   "of the biggest models are skipped past it)")
    parser.add_argument("--arch", default=",".join(ORDER), help="models of item 3, comma-separated")
    parser.add_argument("--no-readme", action="store_true", help="do not write the table into README.md")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error("--steps must be at least 2")
    archs = tuple(a for a in ORDER if a in args.arch.split(","))
    unknown = set(args.arch.split(",")) - set(ORDER)
    if unknown or not archs:
        parser.error(f"--arch: one or more of {', '.join(ORDER)}")
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
    name = torch.cuda.get_device_name(torch.device(device)) if cuda else f"CPU ({os.cpu_count()} cores)"
    if cuda:
        name += f", {torch.cuda.get_device_properties(torch.device(device)).total_memory / GB:.0f} GB"
    print(f"GPU set on {name}, torch {torch.__version__}, budget {args.budget:.0f} s"
          f"{', tiny models (smoke test: figures mean nothing)' if args.tiny else ''}", flush=True)
    status = 0
    worker_lines: list[str] = []
    rows: list[Row] = []
    if args.only in (None, "worker"):
        print("worker benchmarks (items 1 and 2):", flush=True)
        worker_status, worker_lines = run_worker_benches(device, args.models, args.tiny)
        status |= worker_status
        _free()
    if args.only in (None, "rates"):
        print(f"step rates (it/s of the denoising loop, {args.steps} steps) eager, compiled and fast, bare "
              f"diffusers calls, and memory against the planner, {name}:", flush=True)
        rows = measure_rates(device, args.steps, args.tiny, not args.no_compile, deadline, archs)
    left = deadline - time.monotonic()
    print(f"GPU set done: {args.budget - left:.0f} s of the {args.budget:.0f} s budget", flush=True)
    text = table(rows, worker_lines, name, args.steps, datetime.date.today().isoformat(),
                 "tiny SD 1.5 at 64²" if args.tiny else "SD 1.5 at 512²")
    if cuda and not args.tiny and not args.no_readme:
        write_readme(text)
        print(f"table written into {README.name} between {MARK_START} and {MARK_END}", flush=True)
    else:
        print("table (written into README.md only by a full run on CUDA):\n" + text, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
