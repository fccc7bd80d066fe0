"""How much memory and time does a tiled model upscale take, against the untiled one?

Upscales a 1024×1024 picture to 2048×2048 on the CPU with an ESRGAN ×2 (the demo
upscaler's shape, worker/demo_upscaler.py: spandrel's RRDBNet) through the project's code
(worker/upscalers.py, upscale), in one run and interleaved so that drift on a noisy
machine hits both alike:

  A  tiled, at the default settings (DAYDREAM_UPSCALE_TILE=512, DAYDREAM_UPSCALE_OVERLAP=32);
  B  untiled: the whole picture through the model at once.

Each run is a fresh subprocess (a clean peak), which loads the model and makes the picture
first, then reports the upscale's time and its peak RSS growth (from /proc: VmHWM after the
upscale minus VmRSS before it, the peak reset just before) and the process's whole peak.

Targets: peak RSS growth tiled / untiled ≤ 0.5 and time tiled / untiled ≤ 1.3 (medians;
the tiles share 32 pixels, so some of the picture is computed twice). The largest pixel
difference between the two results is printed too (the tiles are blended, not cut).

    python -m bench.bench_upscale [--side 1024] [--repeats 3] [--tile 512] [--overlap 32]

Exit status 1 when a target is missed. `run_child()` and `report()` are what
tests/unit/test_upscalers.py runs on a small picture.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RSS_RATIO = 0.5
TARGET_TIME_RATIO = 1.3
UNTILED = 1 << 20  # a tile larger than any picture: one call


def _proc_status(key: str) -> int:
    """A figure of /proc/self/status, in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} is not in /proc/self/status")


def picture(side: int):
    """Smooth colour fields with fine grain, like a generated picture."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    low = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(low).resize((side, side), Image.BICUBIC)).astype(np.int16)
    grain = rng.normal(0, 6, (side, side, 3)).astype(np.int16)
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def run_child(model: Path, side: int, tile: int, overlap: int, output: Path | None = None) -> dict:
    """Upscale a side×side picture ×2 with the model at these tile settings (the measuring
    half of a run; the subprocess calls it). Returns seconds and RSS figures in bytes."""
    import torch

    from worker import upscalers

    torch.set_grad_enabled(False)
    upscaler = {"id": "bench", "name": "bench", "builtin": False, "path": str(model)}
    source = picture(side)
    upscalers.load_model(Path(model), "cpu")  # loaded before the measure: the model is not what is measured
    try:  # reset the peak, so VmHWM measures the upscale alone
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        peak_reset = True
    except OSError:
        peak_reset = False
    before = _proc_status("VmRSS")
    started = time.perf_counter()
    result = upscalers.upscale(source, upscaler, (2 * side, 2 * side), tile=tile, overlap=overlap, device="cpu")
    seconds = time.perf_counter() - started
    peak = _proc_status("VmHWM")
    if output is not None:
        import numpy as np

        np.save(output, np.asarray(result))
    return {"seconds": seconds, "rss_before": before, "rss_peak": peak, "peak_reset": peak_reset,
            "size": list(result.size)}


def run(model: Path, side: int, tile: int, overlap: int, output: Path | None = None) -> dict:
    """run_child in a fresh subprocess."""
    command = [sys.executable, "-m", "bench.bench_upscale", "--child", str(model), str(side), str(tile),
               str(overlap), str(output or "")]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class Measurement:
    side: int
    tile: int
    overlap: int
    tiled_s: list[float] = field(default_factory=list)
    untiled_s: list[float] = field(default_factory=list)
    tiled_growth: list[int] = field(default_factory=list)
    untiled_growth: list[int] = field(default_factory=list)
    tiled_peak: list[int] = field(default_factory=list)
    untiled_peak: list[int] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    peak_reset: bool = True
    max_difference: int | None = None  # the largest pixel difference between the two results

    @property
    def time_ratio(self) -> float:
        return statistics.median(self.tiled_s) / statistics.median(self.untiled_s)

    @property
    def rss_ratio(self) -> float:
        return statistics.median(self.tiled_growth) / max(1, statistics.median(self.untiled_growth))

    def passed(self, target_rss: float = TARGET_RSS_RATIO, target_time: float = TARGET_TIME_RATIO) -> bool:
        return self.rss_ratio <= target_rss and self.time_ratio <= target_time


def measure(model: Path, side: int = 1024, repeats: int = 3, tile: int = 512, overlap: int = 32,
            workdir: Path | None = None) -> Measurement:
    """Tiled (A) and untiled (B), repeats times each, interleaved (A B, B A, ...)."""
    import numpy as np

    workdir = Path(workdir or tempfile.mkdtemp(prefix="daydream-bench-upscale-"))
    m = Measurement(side=side, tile=tile, overlap=overlap)
    outputs: dict[str, Path] = {}
    for repeat in range(repeats):
        for variant in ("AB" if repeat % 2 == 0 else "BA"):
            output = workdir / f"{variant}.npy" if variant not in outputs else None
            report = run(model, side, tile if variant == "A" else UNTILED, overlap if variant == "A" else 0, output)
            if output is not None:
                outputs[variant] = output
            growth = max(0, report["rss_peak"] - report["rss_before"])
            if variant == "A":
                m.tiled_s.append(report["seconds"])
                m.tiled_growth.append(growth)
                m.tiled_peak.append(report["rss_peak"])
            else:
                m.untiled_s.append(report["seconds"])
                m.untiled_growth.append(growth)
                m.untiled_peak.append(report["rss_peak"])
            m.peak_reset = m.peak_reset and report["peak_reset"]
            m.order.append(variant)
    tiled, untiled = (np.load(outputs[v]).astype(np.int16) for v in "AB")
    m.max_difference = int(np.abs(tiled - untiled).max())
    for path in outputs.values():
        path.unlink(missing_ok=True)
    return m


def report(m: Measurement) -> str:
    mib = lambda values: ", ".join(f"{v / (1 << 20):.0f}" for v in values)  # noqa: E731
    secs = lambda values: ", ".join(f"{v:.2f}" for v in values)  # noqa: E731
    lines = [
        f"ESRGAN ×2 upscale {m.side}² → {2 * m.side}² on the CPU; tiled: tile {m.tile}, overlap {m.overlap}; "
        f"runs in order {' '.join(m.order)}",
        f"  tiled:   {secs(m.tiled_s)} s  (median {statistics.median(m.tiled_s):.2f} s); peak RSS growth "
        f"{mib(m.tiled_growth)} MiB; process peak {mib(m.tiled_peak)} MiB",
        f"  untiled: {secs(m.untiled_s)} s  (median {statistics.median(m.untiled_s):.2f} s); peak RSS growth "
        f"{mib(m.untiled_growth)} MiB; process peak {mib(m.untiled_peak)} MiB",
        f"  peak RSS growth ratio tiled / untiled: {m.rss_ratio:.2f}  (target ≤ {TARGET_RSS_RATIO})  "
        f"{'PASS' if m.rss_ratio <= TARGET_RSS_RATIO else 'FAIL'}"
        + ("" if m.peak_reset else "  (peak could not be reset: measured against the start-up peak)"),
        f"  time ratio tiled / untiled: {m.time_ratio:.2f}  (target ≤ {TARGET_TIME_RATIO})  "
        f"{'PASS' if m.time_ratio <= TARGET_TIME_RATIO else 'FAIL'}",
    ]
    if m.max_difference is not None:
        lines.append(f"  largest pixel difference tiled vs untiled: {m.max_difference} of 255")
    lines.append("PASS" if m.passed() else "FAIL")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_upscale", description=__doc__.split("\n")[0])
    parser.add_argument("--side", type=int, default=1024, help="the input's side; the result is twice it")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--child", nargs=5, metavar=("MODEL", "SIDE", "TILE", "OVERLAP", "OUTPUT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        model, side, tile, overlap, output = args.child
        print(json.dumps(run_child(Path(model), int(side), int(tile), int(overlap), Path(output) if output else None)))
        return 0
    for name in ("side", "repeats", "tile"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    from worker.demo_upscaler import build_demo_upscaler

    with tempfile.TemporaryDirectory(prefix="daydream-bench-upscale-") as folder:
        model = build_demo_upscaler(Path(folder) / "esrgan-x2.safetensors")
        m = measure(model, args.side, args.repeats, args.tile, args.overlap, Path(folder))
    print(report(m), flush=True)
    return 0 if m.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
