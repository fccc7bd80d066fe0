"""Run every benchmark: `python -m bench` (or `python -m bench previews` for some).

Each bench module has a `main(argv) -> exit status` and prints its own report
of ratios measured in one run; the exit status is 1 if any of them fails.
"""

from __future__ import annotations

import importlib
import sys
import time

# name -> module; each has main(argv: list[str] | None) -> int
BENCHES = {
    "previews": "bench.bench_previews",
    "archives": "bench.bench_archives",
    "queue": "bench.bench_queue",
    "web": "bench.bench_web",
    "worker": "bench.bench_worker",
    "e2e": "bench.bench_e2e",
    "upscale": "bench.bench_upscale",
    "fast": "bench.bench_fast",
    "gpu": "bench.bench_gpu",  # skips itself (in a second) where torch sees no CUDA GPU
}


def main(argv: list[str] | None = None) -> int:
    names = list(sys.argv[1:] if argv is None else argv) or list(BENCHES)
    unknown = [name for name in names if name not in BENCHES]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHES)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"== bench {name} ==", flush=True)
        started = time.perf_counter()
        status = importlib.import_module(BENCHES[name]).main([])
        print(f"== bench {name}: {'ok' if status == 0 else 'FAILED'} in {time.perf_counter() - started:.1f} s ==\n",
              flush=True)
        if status:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
