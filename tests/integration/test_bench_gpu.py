"""`make bench-gpu`'s CPU smoke path (`--device cpu --tiny`): every section of the GPU
set runs on tiny models of the same structures, so that it cannot rot between the runs
on a lent GPU: the worker benchmarks (a real worker, batching off and on), then each
model's eager, compiled and fast-mode rates and its memory line, and the table. Its
figures mean nothing; the README is written only by a full run on CUDA."""

import subprocess
import sys

from bench import real_models
from bench.bench_gpu import ORDER, README

ROOT = README.parent


def test_the_smoke_run_prints_every_section_of_the_gpu_set(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bench.bench_gpu", "--device", "cpu", "--tiny", "--steps", "4",
         "--models", str(tmp_path / "models")],
        cwd=ROOT, capture_output=True, text=True, timeout=900, env=None)
    out = result.stdout
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: a worker target missed on this CPU
    lines = out.splitlines()

    def line_with(*words: str) -> str:
        found = [line for line in lines if all(word in line for word in words)]
        assert found, f"no line with {words} in:\n{out[-4000:]}"
        return found[0]

    line_with("ratio started→done / bare")  # 1. the worker ÷ bare diffusers
    line_with("batching off (DAYDREAM_MAX_BATCH=1)")  # 2. 4 users, batching off and on
    line_with("batching on  (DAYDREAM_MAX_BATCH=4)")
    line_with("ratio images/s on / off")
    for arch in ORDER:  # 3. the rates, 4. the memory
        label = real_models.LABELS[arch]
        rates = line_with(f"{label} (tiny) at ", "eager ")
        assert "compiled " in rates and "first call" in rates, rates
        if arch in real_models.TRANSFORMER_ARCHITECTURES:
            assert "fast " in rates and "full denoiser calls" in rates, rates
            full, eager = rates.split("full denoiser calls ")[1].split(")")[0].split("/")
            assert int(full) < int(eager) == 4, rates  # the step cache skipped or predicted some
        else:
            assert "fast: none for this family" in rates, rates
        assert "planner" in line_with(f"memory of {label}:")
    line_with("GPU set done:", "budget")  # 5. the budget and the table
    table_rows = [line for line in lines if line.startswith("| ") and "²" in line]
    assert len(table_rows) == len(ORDER), out[-3000:]
    # The README is written only by a full run on CUDA (other work edits it meanwhile, so
    # the run's own words are checked, not the file's bytes).
    assert "table written into" not in out
    line_with("written into README.md only by a full run on CUDA")
