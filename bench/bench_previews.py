"""How much do live previews slow a generation down, for every model family?

For SD 1.x it builds the real Stable Diffusion 1.5 architecture (UNet, VAE, CLIP
ViT-L/14 text encoder, about 1.07 billion parameters) with random weights, so nothing
is downloaded; SDXL, SD 3 and FLUX run as the tiny demo models (worker/demo_model.py:
the real architectures are too big to build quickly on a CPU). SD 2.x previews are
SD 1.x's (same factors, same latents). Each pipeline is timed in one run, with the two
variants interleaved so that drift on a noisy machine hits both alike:

  A  a step callback that does nothing,
  B  a step callback that makes a preview (worker.previews.preview_data_url, with the
     family's factors; FLUX's packed latents unpacked first) at EVERY step: the worst
     case; the worker throttles to a few a second.

The figure that decides PASS/FAIL is the preview's own cost, timed directly around the
preview calls, as a share of a step of the same pipeline without previews (target:
under 5%). The end-to-end difference B - A is printed too, but with a preview costing
a millisecond against steps of seconds it is mostly noise. A tiny demo model's step
takes milliseconds, far less than a real model's, so its ratio is a harsh upper bound
of the real one; each family's row says which model it timed.

    python -m bench.bench_previews [--families sd1,sdxl,sd3,flux] [--demo] [--size 256]
                                   [--steps 4] [--repeats 3] [--device auto]

Exit status 1 when the target is missed. `measure()` takes any SD 1.x/SDXL/SD 3/FLUX
pipeline; tests/unit/test_bench_smoke.py runs it on the tiny demo models.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench import real_models  # noqa: E402
from services.generation.families import PIPELINE_FAMILIES  # noqa: E402
from worker.previews import preview_data_url  # noqa: E402

TARGET_PERCENT = 5.0
BENCH_FAMILIES = ("sd1", "sdxl", "sd3", "flux")
FAMILY_LABELS = {"sd1": "SD 1.x", "sdxl": "SDXL", "sd3": "SD 3", "flux": "FLUX"}
PROMPT = "a lighthouse on a cliff at sunset, oil painting"
NEGATIVE_PROMPT = "blurry"


# --------------------------------------------------------------------------- model


def parameter_count(pipe) -> int:
    return sum(p.numel() for module in pipe.components.values() if isinstance(module, torch.nn.Module)
               for p in module.parameters())


def load_demo_pipeline(family: str, folder: Path, device: str = "cpu"):
    """The tiny demo model of `family`, built under `folder`, on `device`."""
    from diffusers import DiffusionPipeline

    from worker.demo_model import build_demo_model

    path = build_demo_model(folder / f"daydream-demo-{family}", family)
    pipe = DiffusionPipeline.from_pretrained(path, local_files_only=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def family_of(pipe) -> str:
    return PIPELINE_FAMILIES.get(type(pipe).__name__, "sd1")


def _denoiser(pipe):
    return pipe.unet if getattr(pipe, "unet", None) is not None else pipe.transformer


def encode(pipe, family: str, prompt: str, negative_prompt: str, device, guided: bool) -> dict:
    """The prompt encoded once, as the pipeline's keyword arguments: text encoding is a
    per-image cost, and leaving it out of the step time makes the check stricter."""
    negative = negative_prompt if guided else None
    with torch.no_grad():
        if family == "sd1":
            embeds, negative_embeds = pipe.encode_prompt(prompt, device, 1, guided, negative_prompt=negative)
            return {"prompt_embeds": embeds, "negative_prompt_embeds": negative_embeds}
        if family == "flux":  # no negative prompt; guidance is distilled or embedded
            embeds, pooled, _ = pipe.encode_prompt(prompt=prompt, prompt_2=None, device=device)
            return {"prompt_embeds": embeds, "pooled_prompt_embeds": pooled}
        if family == "sdxl":
            out = pipe.encode_prompt(prompt, device=device, num_images_per_prompt=1,
                                     do_classifier_free_guidance=guided, negative_prompt=negative)
        else:  # sd3
            out = pipe.encode_prompt(prompt=prompt, prompt_2=None, prompt_3=None, device=device,
                                     do_classifier_free_guidance=guided, negative_prompt=negative)
    embeds, negative_embeds, pooled, negative_pooled = out
    return {"prompt_embeds": embeds, "negative_prompt_embeds": negative_embeds,
            "pooled_prompt_embeds": pooled, "negative_pooled_prompt_embeds": negative_pooled}


# --------------------------------------------------------------------------- measuring


@dataclass
class Measurement:
    size: int
    steps: int
    repeats: int
    device: str
    dtype: str
    family: str = "sd1"
    model: str = "SD 1.5 architecture"
    plain_step_s: list[float] = field(default_factory=list)  # per repeat: total / steps, variant A
    preview_step_s: list[float] = field(default_factory=list)  # per repeat: total / steps, variant B
    preview_cost_s: list[float] = field(default_factory=list)  # per repeat: preview calls alone / steps
    previews: int = 0
    last_preview: str = ""
    order: list[str] = field(default_factory=list)

    @property
    def step_s(self) -> float:
        """Median time per step without previews."""
        return statistics.median(self.plain_step_s)

    @property
    def step_with_previews_s(self) -> float:
        return statistics.median(self.preview_step_s)

    @property
    def preview_per_step_s(self) -> float:
        return statistics.median(self.preview_cost_s)

    @property
    def overhead(self) -> float:
        """Preview time per step as a fraction of a step without previews."""
        return self.preview_per_step_s / self.step_s

    @property
    def end_to_end(self) -> float:
        """(with - without) / without, from the whole-run timings (noisy)."""
        return self.step_with_previews_s / self.step_s - 1.0

    def passed(self, target_percent: float = TARGET_PERCENT) -> bool:
        return self.overhead * 100.0 < target_percent


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(pipe, *, size: int, steps: int = 4, repeats: int = 3, guidance_scale: float = 7.5,
            prompt: str = PROMPT, negative_prompt: str = NEGATIVE_PROMPT, seed: int = 0,
            warmup: bool = True, family: str | None = None, model: str | None = None) -> Measurement:
    """Time `pipe` (SD 1.x, SDXL, SD 3 or FLUX; `family` defaults to the pipeline's) at
    size x size with a do-nothing step callback (A) and a preview-every-step callback
    (B), interleaved A B, B A, A B, ... so that a linear drift affects both the same.
    Each run starts from the same seed and the same (pre-encoded) prompt, and returns
    latents (no VAE decode: that is a per-image cost, and leaving it out makes the
    per-step share larger, i.e. the check stricter)."""
    family = family or family_of(pipe)
    device = pipe._execution_device
    dtype = _denoiser(pipe).dtype
    guided = guidance_scale > 1.0 and family != "flux"
    embeds = encode(pipe, family, prompt, negative_prompt, device, guided)
    result = Measurement(size=size, steps=steps, repeats=repeats, device=str(device),
                         dtype=str(dtype).replace("torch.", ""), family=family,
                         model=model or f"{FAMILY_LABELS.get(family, family)} {type(pipe).__name__}")

    def run(with_previews: bool, n_steps: int) -> tuple[float, float, int]:
        spent = 0.0
        made = 0

        def on_step_end(_pipe, _step_index, _timestep, callback_kwargs):
            nonlocal spent, made
            if with_previews:
                # Wait for the step's queued GPU work first: it is not the preview's cost.
                _sync(device)
                started = time.perf_counter()
                result.last_preview = preview_data_url(callback_kwargs["latents"], 0, family,
                                                       height=size, width=size)
                spent += time.perf_counter() - started
                made += 1
            return callback_kwargs

        generator = torch.Generator("cpu").manual_seed(seed)
        _sync(device)
        started = time.perf_counter()
        pipe(
            **embeds,
            width=size,
            height=size,
            num_inference_steps=n_steps,
            guidance_scale=guidance_scale,
            generator=generator,
            output_type="latent",
            callback_on_step_end=on_step_end,
        )
        _sync(device)
        return time.perf_counter() - started, spent, made

    if warmup:  # first calls allocate, pick kernels, import the JPEG encoder
        run(True, 1)
        result.last_preview = ""

    for repeat in range(repeats):
        for variant in ("AB" if repeat % 2 == 0 else "BA"):
            total, spent, made = run(variant == "B", steps)
            result.order.append(variant)
            if variant == "A":
                result.plain_step_s.append(total / steps)
            else:
                result.preview_step_s.append(total / steps)
                result.preview_cost_s.append(spent / steps)
                result.previews += made
    return result


# --------------------------------------------------------------------------- report


def rss_mib() -> tuple[float | None, float | None]:
    """(current, peak) resident set size of this process in MiB, where known."""
    current = peak = None
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    current = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    if peak is None:
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        except (ImportError, OSError):
            pass
    return current, peak


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds >= 0.01 else f"{seconds * 1000:.3f} ms"


def report(m: Measurement, *, target_percent: float = TARGET_PERCENT, extra: dict[str, str] | None = None) -> str:
    rows = [
        ("pipeline", f"{m.model}, {m.size}x{m.size}, {m.steps} steps, {m.device} {m.dtype}"),
        ("runs", f"{m.repeats} per variant, order {' '.join(m.order)} (A = no previews, B = preview every step)"),
        *(extra or {}).items(),
        ("step, no previews", f"{_ms(m.step_s)}  (median of total/steps; runs: {', '.join(_ms(s) for s in m.plain_step_s)})"),
        ("step, previews", f"{_ms(m.step_with_previews_s)}  (median of total/steps; runs: "
                           f"{', '.join(_ms(s) for s in m.preview_step_s)})"),
        ("preview per step", f"{_ms(m.preview_per_step_s)}  (timed around the {m.previews} preview calls alone)"),
        ("end-to-end B/A-1", f"{m.end_to_end * 100:+.2f}%  (whole-run difference: run-to-run noise dominates it)"),
        ("overhead", f"{m.overhead * 100:.3f}% of a step  (preview per step / step, no previews; target < {target_percent:g}%)"),
        ("result", "PASS" if m.passed(target_percent) else "FAIL"),
    ]
    width = max(len(key) for key, _ in rows) + 2
    title = f"Live previews ({FAMILY_LABELS.get(m.family, m.family)}): cost per denoising step"
    return "\n".join([title] + [f"  {key:<{width}}{value}" for key, value in rows])


def summary(results: list[Measurement], target_percent: float = TARGET_PERCENT) -> str:
    """One line per family: preview cost / step = ratio, against the target."""
    lines = ["Summary: preview per step / step without previews (target < %g%%)" % target_percent]
    for m in results:
        lines.append(f"  {FAMILY_LABELS.get(m.family, m.family):<7}{m.overhead * 100:7.3f}%  "
                     f"({_ms(m.preview_per_step_s)} / {_ms(m.step_s)}; {m.model})  "
                     f"{'PASS' if m.passed(target_percent) else 'FAIL'}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_previews", description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(BENCH_FAMILIES),
                        help=f"comma-separated, of {', '.join(BENCH_FAMILIES)} (default all)")
    parser.add_argument("--demo", action="store_true",
                        help="SD 1.x on the tiny demo model too, not the SD 1.5 architecture (quick)")
    parser.add_argument("--size", type=int, default=None,
                        help="SD 1.5 image side in pixels (default 256 on CPU, 512 on CUDA)")
    parser.add_argument("--demo-size", type=int, default=128, help="image side for the tiny demo models (default 128)")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:N")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--target", type=float, default=TARGET_PERCENT, help="pass below this overhead, in percent")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        parser.error("--steps and --repeats must be at least 1")
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in families if f not in BENCH_FAMILIES]
    if unknown or not families:
        parser.error(f"--families: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(BENCH_FAMILIES)}")

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    on_gpu = device.startswith("cuda")
    size = args.size or (512 if on_gpu else 256)
    if size % 8:
        parser.error("--size must be a multiple of 8")
    if args.demo_size % 16:
        parser.error("--demo-size must be a multiple of 16 (SD 3 and FLUX)")
    dtype = torch.float16 if on_gpu else torch.float32
    torch.set_num_threads(args.threads)

    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="daydream-bench-previews-") as tmp:
        for family in families:
            began = time.perf_counter()
            if family == "sd1" and not args.demo:
                pipe = real_models.make_pipeline("sd15", device=device, dtype=dtype)
                side, model = size, "SD 1.5 architecture"
            else:
                pipe = load_demo_pipeline(family, Path(tmp), device)
                side, model = args.demo_size, f"tiny {FAMILY_LABELS[family]} demo model"
            built = time.perf_counter() - began
            m = measure(pipe, size=side, steps=args.steps, repeats=args.repeats, family=family, model=model)
            took = time.perf_counter() - began
            current, peak = rss_mib()
            extra = {
                "parameters": f"{parameter_count(pipe) / 1e9:.3f} B (random weights)",
                "threads": f"{torch.get_num_threads()} torch CPU threads",
                "rss": f"{current:.0f} MiB now, {peak:.0f} MiB peak" if current and peak else "unknown",
            }
            if on_gpu:
                extra["gpu memory"] = f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB peak allocated"
            extra["time"] = f"{built:.1f} s to build the model, {took:.1f} s in all"
            print(report(m, target_percent=args.target, extra=extra), flush=True)
            print(flush=True)
            results.append(m)
            del pipe
    print(summary(results, args.target), flush=True)
    return 0 if all(m.passed(args.target) for m in results) else 1


if __name__ == "__main__":
    sys.exit(main())
