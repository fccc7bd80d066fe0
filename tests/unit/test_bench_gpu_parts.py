"""bench/bench_gpu.py's pure parts: the time budget's choice of compiled runs, the
planner's estimate beside the measured peak, and the table written into the README
between its markers (the whole run is smoke-tested by tests/integration/test_bench_gpu.py)."""

from bench import bench_gpu
from bench.bench_gpu import GB, MARK_END, MARK_START, Row


def test_the_budget_skips_a_compiled_run_that_would_not_leave_time_for_the_models_after_it():
    later = ["zimage", "flux1"]
    needed = bench_gpu.COMPILE_RESERVE_S["flux2-klein"] + bench_gpu.EAGER_RESERVE_S["zimage"] + \
        bench_gpu.EAGER_RESERVE_S["flux1"]
    assert bench_gpu.compile_allowed("flux2-klein", later, needed)
    assert not bench_gpu.compile_allowed("flux2-klein", later, needed - 1)
    assert not bench_gpu.compile_allowed("flux1", [], bench_gpu.COMPILE_RESERVE_S["flux1"] - 1)
    assert bench_gpu.compile_allowed("flux1", [], 0, scale=0.0)  # tiny models: no reserve


def test_the_planner_estimate_leaves_out_the_text_encoders_only_where_the_bench_builds_none():
    whole, held, label = bench_gpu.planner_estimate("flux1", 80 * GB)
    assert "fits" in label
    # FLUX.1 dev: CLIP-L and T5-XXL (4.9 B parameters, bf16) and the CUDA context are not held.
    assert 9.0 * GB < whole - held < 10.5 * GB
    whole, held, _label = bench_gpu.planner_estimate("sdxl", 80 * GB)
    assert whole - held == bench_gpu.planner.OVERHEAD  # SDXL's encoders are built and counted


def _rows():
    done = Row("flux1", 1024, params_b=12.0, eager=2.0, compiled=3.0, compile_s=90, fast=4.0,
               fast_method="first-block cache", calls=(20, 9), peak=30 * GB, planned=34 * GB,
               planned_held=24 * GB, plan_label="bf16, 34 GB, fits")
    short = Row("zimage", 1024, params_b=6.2, eager=3.0, compiled_note="skipped: the time budget is short",
                planned=21 * GB, planned_held=12 * GB, peak=13 * GB)
    skipped = Row("sdxl", 1024, skipped="needs about 9.0 GB, the GPU has 6.0 GB free of 8 GB")
    return [done, short, skipped]


def test_the_table_shows_each_rate_the_memory_ratio_and_why_a_figure_is_missing():
    text = bench_gpu.table(_rows(), ["ratio images/s on / off: 2.10"], "NVIDIA H100, 80 GB", 20, "2026-12-07")
    assert "NVIDIA H100, 80 GB" in text and "2026-12-07" in text
    flux = next(line for line in text.splitlines() if line.startswith("| FLUX.1 dev"))
    assert "| 2.00 | 3.00 (90 s) | 4.00 (first-block cache, 9/20) | 30.0 GB | 34.0 / 24.0 GB | 1.25 |" in flux
    assert "skipped: the time budget is short" in text
    assert "skipped: needs about 9.0 GB" in text
    assert "- ratio images/s on / off: 2.10" in text
    lines = bench_gpu.describe_row(_rows()[0], tiny=False)
    assert "full denoiser calls 9/20" in lines[0] and "×1.25 of the estimate" in lines[1]


def test_the_table_goes_between_the_readme_markers_and_replaces_the_last_one(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Daydream\n\n- `gpu`: figures below.\n", encoding="utf-8")
    bench_gpu.write_readme("first table", readme)
    assert readme.read_text(encoding="utf-8").endswith(f"{MARK_START}\nfirst table\n{MARK_END}\n")
    readme.write_text(readme.read_text(encoding="utf-8") + "\n## After\n", encoding="utf-8")
    bench_gpu.write_readme("second table", readme)
    content = readme.read_text(encoding="utf-8")
    assert "first table" not in content and content.count(MARK_START) == 1
    assert f"{MARK_START}\nsecond table\n{MARK_END}\n\n## After\n" in content
