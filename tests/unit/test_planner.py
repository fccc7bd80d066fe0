"""The memory planner (services/generation/planner.py): the plan of each family on each
GPU size, printed as the README's table and held to sane expectations."""
from services.generation import planner
from services.generation.planner import GB, GPU_SIZES_GB, plan


def test_the_whole_table_is_sane():
    rows = dict(planner.table())
    for name, labels in rows.items():
        print(f"{name:16}", " | ".join(labels))
    assert len(rows) == len(planner.TABLE_ROWS)
    for key in planner.TABLE_ROWS:
        family, _, variant = key.partition("-")
        plans = [plan(family, variant, gpu_total_bytes=size * GB) for size in GPU_SIZES_GB]
        # More memory never makes a plan worse: offload only goes down as the GPU grows.
        order = [planner.OFFLOADS.index(p.offload) if p.fits else 3 for p in plans]
        assert order == sorted(order, reverse=True), (key, [p.label for p in plans])
        # Anything fits an 80 GB GPU without offload.
        assert plans[-1].fits and plans[-1].offload == "none", (key, plans[-1].label)
        for p, size in zip(plans, GPU_SIZES_GB):
            assert p.expected_bytes <= size * GB or not p.fits, (key, size, p.label)


def test_sd15_fits_6gb_at_fp16():
    p = plan("sd1", "", gpu_total_bytes=6 * GB)
    assert (p.fits, p.offload, p.precision, p.quant) == (True, "none", "fp16", None)
    assert p.label.startswith("fp16, ") and p.label.endswith("fits")


def test_flux_dev_bf16_on_8gb_offloads_or_asks_for_a_gguf():
    p = plan("flux", "dev", gpu_total_bytes=8 * GB, quant_setting="none")
    assert p.precision == "bf16" and p.quant is None
    assert p.offload != "none" or not p.fits
    assert "GGUF" in p.label
    # With NF4/fp8 allowed it is quantized rather than streamed.
    auto = plan("flux", "dev", gpu_total_bytes=12 * GB)
    assert auto.quant in ("nf4", "fp8") and auto.offload == "model" and auto.fits


def test_flux2_dev_on_24gb_needs_quantization_or_offload():
    for setting in ("auto", "none"):
        p = plan("flux2", "dev", gpu_total_bytes=24 * GB, quant_setting=setting)
        assert p.quant is not None or p.offload != "none", p.label
    assert not plan("flux2", "dev", gpu_total_bytes=8 * GB, quant_setting="none").fits


def test_a_model_that_cannot_fit_says_why():
    p = plan("qwen", "", gpu_total_bytes=6 * GB, quant_setting="none")
    assert not p.fits
    assert p.label.startswith("needs ") and "this GPU has 6.0 GB" in p.label and "GGUF" in p.label
    assert "Qwen-Image" in p.why


def test_a_gguf_file_is_planned_at_its_own_size():
    small = plan("flux", "dev", "Q4_K", int(6.8 * GB), gpu_total_bytes=16 * GB)
    assert small.fits and small.offload == "none" and small.quant == "Q4_K"
    assert small.label.startswith("Q4_K GGUF") and small.expected_bytes > 6.8 * GB
    big = plan("flux", "dev", "Q8_0", int(12.7 * GB), gpu_total_bytes=16 * GB)
    assert big.expected_bytes > small.expected_bytes or big.offload != "none"


def test_the_cpu_and_the_demo_models():
    cpu = plan("flux2", "dev", device="cpu")
    assert cpu.fits and cpu.label == "CPU: no GPU memory limit, slow" and cpu.expected_bytes == 0
    assert plan("flux", "", "Q8_0", 10, device="cpu").label == "CPU: Q8_0 GGUF: no GPU memory limit, slow"
    demo = plan("flux", "schnell", gpu_total_bytes=6 * GB, demo=True)
    assert demo.fits and demo.offload == "none"


def test_which_gpu_the_plans_are_for():
    assert planner.gpu_of_workers({}) is None
    assert planner.gpu_of_workers({"w": {"model": "demo"}}) is None  # (an old worker: says nothing)
    gpus = {"a": {"device": "cuda", "gpu_total_bytes": 8 * GB}, "b": {"device": "cuda", "gpu_total_bytes": 24 * GB}}
    assert planner.gpu_of_workers(gpus)["gpu_total_bytes"] == 24 * GB
    assert planner.gpu_of_workers({**gpus, "c": {"device": "cpu"}}) == {"device": "cpu"}


def test_variants_and_sizes_pick_the_row():
    assert planner.spec_key("sd3", "", int(5 * GB)) == "sd3-medium"
    assert planner.spec_key("sd3", "") == "sd3-large"
    assert planner.spec_key("flux2", "klein") == "flux2-klein-4b"
    assert planner.spec_key("flux2", "klein-9b") == "flux2-klein-9b"
    assert planner.spec_key(None, "") == "sd1"
