"""DAYDREAM_QUANT: what the worker quantizes on loading (worker/pipelines/quant.py), for each
setting, device and family, with no GPU: NF4/fp8 only on CUDA, "auto" only when the
memory plan needs it, a GGUF denoiser as stored (only its large text encoder)."""
import pytest

from services.generation.planner import GB, plan
from worker.pipelines import quant
from worker.pipelines.errors import ModelLoadError


def test_none_and_the_cpu_quantize_nothing():
    assert quant.choose("none", "cuda", "flux")[0] is None
    choice, why = quant.choose("nf4", "cpu", "flux")
    assert choice is None and "CUDA" in why


@pytest.mark.parametrize("setting", ["nf4", "fp8"])
def test_an_explicit_setting_quantizes_the_denoiser_and_the_large_text_encoder(setting):
    choice, _ = quant.choose(setting, "cuda", "flux")
    assert (choice.method, choice.components) == (setting, ("transformer", "text_encoder_2"))
    assert quant.choose(setting, "cuda", "sd3")[0].components == ("transformer", "text_encoder_3")
    assert quant.choose(setting, "cuda", "zimage")[0].components == ("transformer", "text_encoder")


def test_the_unet_families_are_not_quantized_on_loading():
    choice, why = quant.choose("nf4", "cuda", "sdxl")
    assert choice is None and "sdxl" in why


def test_auto_follows_the_plan():
    roomy = plan("flux", "dev", gpu_total_bytes=80 * GB)
    assert quant.choose("auto", "cuda", "flux", plan=roomy)[0] is None
    tight = plan("flux", "dev", gpu_total_bytes=16 * GB)
    choice, why = quant.choose("auto", "cuda", "flux", plan=tight)
    assert choice.method == tight.quant and tight.quant in ("nf4", "fp8") and tight.label in why


def test_a_gguf_denoiser_stays_as_stored_its_text_encoder_may_be_quantized():
    choice, _ = quant.choose("fp8", "cuda", "flux", stored_quant="Q4_K")
    assert choice.components == ("text_encoder_2",)
    tight = plan("flux", "dev", "Q4_K", int(6.8 * GB), gpu_total_bytes=12 * GB)
    choice, _ = quant.choose("auto", "cuda", "flux", stored_quant="Q4_K", plan=tight)
    assert (choice is None) == (tight.encoder_quant is None)


def test_an_unknown_setting_and_a_missing_package_say_what_to_do(monkeypatch):
    with pytest.raises(ModelLoadError, match="use auto, none, nf4, fp8"):
        quant.choose("int3", "cuda", "flux")
    monkeypatch.setattr(quant.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match="pip install 'bitsandbytes"):
        quant.pipeline_config(quant.Choice("nf4", ("transformer",), ""), None)
    with pytest.raises(ModelLoadError, match="torchao"):
        quant.pipeline_config(quant.Choice("fp8", ("transformer",), ""), None)
