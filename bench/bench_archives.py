"""How much memory and time does building a ZIP archive of 1,000 images take?

Makes 1,000 PNG files of realistic size once (512×512 with Daydream's metadata
chunks, about 0.5 MB each, kept in a temporary folder between runs), then, in one
run and interleaved so that drift on a noisy machine hits both alike:

  A  builds the archive with the project's archive code (services/library/archives.py,
     write_zip_file: what the archive worker runs) in a fresh subprocess, which
     reports the time of the build and its peak RSS growth (from /proc: VmHWM after
     the build minus VmRSS before it, the peak reset just before);
  B  runs `zip -0 -q -j` (stored, no compression) on the same files.

Targets: peak RSS growth under 32 MB (the archive is never held in memory) and a
build time within 1.2× of `zip -0`'s (medians).

    python -m bench.bench_archives [--count 1000] [--side 512] [--repeats 3] [--folder DIR]

Exit status 1 when a target is missed. `measure()` is what tests/unit/
test_archive_bench.py runs on a few small images.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RSS_MB = 32.0
TARGET_RATIO = 1.2
BASES = 8  # distinct pictures; every file still differs (its own metadata chunk)


# --------------------------------------------------------------------------- files


def _pictures(side: int, count: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for _ in range(count):
        # Smooth colour fields with fine grain: compresses like a generated image does.
        low = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(low).resize((side, side), Image.BICUBIC)).astype(np.int16)
        grain = rng.normal(0, 6, (side, side, 3)).astype(np.int16)
        yield Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def _text_chunk(key: str, text: str) -> bytes:
    data = key.encode("latin-1") + b"\0" + text.encode("latin-1")
    return struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))


def make_files(folder: Path, count: int, side: int = 512) -> list[Path]:
    """count PNGs in folder, made once: BASES pictures encoded as the worker does
    (services.library.imaging.encode_png), each file with a chunk of its own inserted."""
    from services.library import imaging

    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"image-{n:05d}.png" for n in range(count)]
    done_marker = folder / f".complete-{count}-{side}"
    if done_marker.exists() and all(p.exists() for p in paths):
        return paths
    bases = []
    for n, picture in enumerate(_pictures(side, min(BASES, count))):
        bases.append(imaging.encode_png(picture, {
            "prompt": f"a lighthouse on a cliff at dusk, oil painting, study {n}", "negative_prompt": "blurry",
            "width": side, "height": side, "steps": 30, "guidance": 7.5, "seed": 1000 + n,
            "scheduler": "euler", "model": "demo"}))
    header = 8 + 25  # PNG signature + IHDR chunk
    for n, path in enumerate(paths):
        base = bases[n % len(bases)]
        path.write_bytes(base[:header] + _text_chunk("bench", f"file {n}") + base[header:])
    done_marker.touch()
    return paths


def items(paths: list[Path]) -> list[tuple[str, str, dict]]:
    """What services.library.archives.write_zip takes: path, entry name, manifest row."""
    return [(str(p), f"task{n // 4:05d}_{n % 4}.png",
             {"file": f"task{n // 4:05d}_{n % 4}.png", "image_id": f"image{n:05d}", "task_id": f"task{n // 4:05d}",
              "prompt": "a lighthouse on a cliff at dusk, oil painting", "negative_prompt": "blurry",
              "width": 512, "height": 512, "steps": 30, "guidance": 7.5, "seed": 1000 + n,
              "scheduler": "euler", "model": "demo", "strength": "", "created_at": "2025-01-01T00:00:00"})
            for n, p in enumerate(paths)]


# --------------------------------------------------------------------------- measuring


def _proc_status(key: str) -> int:
    """A figure of /proc/self/status, in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} is not in /proc/self/status")


def _child(list_path: str, output: str) -> None:
    """Runs in the subprocess: build the archive with the project's code, report JSON."""
    from services.library.archives import write_zip_file

    paths = [Path(line) for line in Path(list_path).read_text().splitlines() if line]
    todo = items(paths)
    try:  # reset the peak, so VmHWM measures the build alone
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        peak_reset = True
    except OSError:
        peak_reset = False
    before = _proc_status("VmRSS")
    started = time.perf_counter()
    size = write_zip_file(todo, Path(output))
    seconds = time.perf_counter() - started
    peak = _proc_status("VmHWM")
    print(json.dumps({"seconds": seconds, "rss_before": before, "rss_peak": peak, "size": size,
                      "peak_reset": peak_reset}))


def run_project(paths: list[Path], output: Path) -> dict:
    list_path = output.with_suffix(".list")
    list_path.write_text("\n".join(str(p) for p in paths))
    result = subprocess.run([sys.executable, "-m", "bench.bench_archives", "--child", str(list_path), str(output)],
                            cwd=ROOT, capture_output=True, text=True, check=True)
    list_path.unlink()
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_zip(paths: list[Path], output: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["zip", "-0", "-q", "-j", str(output), "-@"], input="\n".join(str(p) for p in paths),
                   text=True, check=True)
    return time.perf_counter() - started


@dataclass
class Measurement:
    count: int
    total_bytes: int
    project_s: list[float] = field(default_factory=list)
    zip_s: list[float] = field(default_factory=list)
    rss_growth: list[int] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    peak_reset: bool = True
    zip_entries: int = 0  # entries in the project's last archive

    @property
    def ratio(self) -> float:
        return statistics.median(self.project_s) / statistics.median(self.zip_s)

    @property
    def rss_growth_mb(self) -> float:
        return max(self.rss_growth) / (1 << 20)

    def passed(self, target_ratio: float = TARGET_RATIO, target_rss_mb: float = TARGET_RSS_MB) -> bool:
        return self.ratio <= target_ratio and self.rss_growth_mb < target_rss_mb


def measure(paths: list[Path], repeats: int = 3, workdir: Path | None = None) -> Measurement:
    """Build the archive of paths with the project's code (A) and with zip -0 (B),
    repeats times each, interleaved (A B, B A, ...)."""
    import zipfile

    if shutil.which("zip") is None:
        raise RuntimeError("the `zip` command is missing: apt-get install zip")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="daydream-bench-out-"))
    workdir.mkdir(parents=True, exist_ok=True)
    m = Measurement(count=len(paths), total_bytes=sum(p.stat().st_size for p in paths))
    for repeat in range(repeats):
        for variant in ("AB" if repeat % 2 == 0 else "BA"):
            output = workdir / f"bench-{variant}.zip"
            output.unlink(missing_ok=True)
            if variant == "A":
                report = run_project(paths, output)
                m.project_s.append(report["seconds"])
                m.rss_growth.append(max(0, report["rss_peak"] - report["rss_before"]))
                m.peak_reset = m.peak_reset and report["peak_reset"]
                with zipfile.ZipFile(output) as built:
                    m.zip_entries = len(built.namelist())
            else:
                m.zip_s.append(run_zip(paths, output))
            m.order.append(variant)
            output.unlink(missing_ok=True)
    return m


def report(m: Measurement) -> str:
    ms = lambda values: ", ".join(f"{v * 1000:.0f}" for v in values)  # noqa: E731
    lines = [
        f"archive of {m.count} PNGs, {m.total_bytes / (1 << 20):.0f} MB in all; runs in order {' '.join(m.order)}",
        f"  project (services/library/archives.py): {ms(m.project_s)} ms  (median {statistics.median(m.project_s) * 1000:.0f} ms)",
        f"  zip -0:                         {ms(m.zip_s)} ms  (median {statistics.median(m.zip_s) * 1000:.0f} ms)",
        f"  time ratio project / zip -0: {m.ratio:.2f}  (target ≤ {TARGET_RATIO})  "
        f"{'PASS' if m.ratio <= TARGET_RATIO else 'FAIL'}",
        f"  peak RSS growth while building: {m.rss_growth_mb:.1f} MB  (target < {TARGET_RSS_MB:.0f} MB)  "
        f"{'PASS' if m.rss_growth_mb < TARGET_RSS_MB else 'FAIL'}"
        + ("" if m.peak_reset else "  (peak could not be reset: measured against the start-up peak)"),
        f"  ratio of the archive's size to RSS growth: {m.total_bytes / max(1, max(m.rss_growth)):.0f}×",
        "PASS" if m.passed() else "FAIL",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_archives", description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--folder", type=Path, default=None, help="where the PNGs are made (kept between runs)")
    parser.add_argument("--child", nargs=2, metavar=("LIST", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    for name in ("count", "side", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    folder = args.folder or Path(tempfile.gettempdir()) / f"daydream-bench-archives-{args.side}"
    started = time.perf_counter()
    paths = make_files(folder, args.count, args.side)
    print(f"{len(paths)} PNG files ready in {folder} ({time.perf_counter() - started:.1f} s)", flush=True)
    with tempfile.TemporaryDirectory(prefix="daydream-bench-out-", dir=folder.parent) as out:
        m = measure(paths, args.repeats, Path(out))
    print(report(m), flush=True)
    return 0 if m.passed() else 1


if __name__ == "__main__":
    sys.exit(main())
