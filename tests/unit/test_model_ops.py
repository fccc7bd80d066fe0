"""Convert and merge (services/generation/model_ops.py, worker/model_ops.py) before
anything is queued: the destination folder, the models a merge takes, the method and α;
and the merge itself, tensor by tensor, on small torch modules."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from extensions import db
from models import AiModel
from services.core.errors import ValidationError
from services.generation import model_ops
from tests.helpers import instance_env, make_app


@pytest.fixture(scope="module")
def ops_app(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("model_ops")
    models = tmp_path / "models"
    (models / "existing").mkdir(parents=True)
    (models / "half.partial").mkdir()
    app = make_app(instance_env(tmp_path / "instance", "redis://127.0.0.1:1/0", models))
    with app.app_context():
        db.session.add_all([
            AiModel(id="sd-a", name="sd-a", spec="sd-a", kind="folder", source="scan", family="sd1",
                    state="available"),
            AiModel(id="sd-b", name="sd-b", spec="sd-b", kind="folder", source="scan", family="sd1",
                    state="available"),
            AiModel(id="sd-c", name="sd-c", spec="sd-c", kind="folder", source="scan", family="sd1",
                    state="available"),
            AiModel(id="xl", name="xl", spec="xl", kind="folder", source="scan", family="sdxl", state="available"),
            AiModel(id="style", name="style", spec="loras/style.safetensors", kind="single_file", source="scan",
                    family="sd1", lora=True, state="available"),
            AiModel(id="broken", name="broken", spec="broken", kind="folder", source="scan", family="sd1",
                    state="error", error="could not be read"),
            AiModel(id="q4", name="q4", spec="flux-q4.gguf", kind="single_file", source="scan", family="sd1",
                    state="available", quant="Q4_K"),
            AiModel(id="pickle", name="pickle", spec="/elsewhere/old.ckpt", kind="single_file", source="env",
                    family="sd1", state="available", enabled=True),
        ])
        db.session.commit()
        yield app, models


def refusal(call, data) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        call(data)
    return caught.value


@pytest.mark.parametrize("destination, says", [
    ("", "give the new folder"), ("   ", "give the new folder"), (None, "give the new folder"),
    ("/srv/models/x", "not a path"), ("~/x", "not a path"), ("a\\b", "not a path"),
    ("../outside", "'..' leaves it"), ("merged/../../x", "'..' leaves it"), (".hidden", "not starting with a dot"),
    ("bad*name", "not a usable folder name"), ("x" * 201, "at most 200"), ("existing", "exists already"),
    ("half", "exists already"), ("loras/mine", "holds other things"), ("configs/sd1", "holds other things"),
    ("daydream-demo-2", "holds other things"), ("model.safetensors", "ends like a file"),
])
def test_a_destination_must_be_a_new_folder_under_the_models_folder(ops_app, destination, says):
    err = refusal(model_ops.check_destination, destination)
    assert err.field == "destination" and says in str(err), str(err)


def test_a_destination_outside_by_a_link_is_refused_and_a_good_one_is_kept_relative(ops_app, tmp_path):
    _, models = ops_app
    # (the tests share one app and models folder: they run in this file's order)
    (tmp_path / "out").mkdir()
    (models / "linked").symlink_to(tmp_path / "out")
    assert "lead out" in str(refusal(model_ops.check_destination, "linked/new"))
    assert model_ops.check_destination(" merged//my model (v2) ") == "merged/my model (v2)"


@pytest.mark.parametrize("data, field, says", [
    ({"models": ["sd-a", "xl"]}, "models", "one family only"),
    ({"models": ["sd-a", "style"]}, "models", "is a LoRA"),
    ({"models": ["sd-a", "broken"]}, "models", "cannot be used: could not be read"),
    ({"models": ["sd-a", "nope"]}, "models", "there is no model 'nope'"),
    ({"models": ["sd-a", "q4"]}, "models", "q4 is quantized (Q4_K)"),
    ({"models": ["sd-a"]}, "models", "two or three"),
    ({"models": "sd-a"}, "models", "two or three"),
    ({"models": ["sd-a", "sd-a"]}, "models", "different models"),
    ({"models": ["sd-a", "sd-b", "sd-c"]}, "models", "takes two models"),
    ({"models": ["sd-a", "sd-b"], "method": "add_difference"}, "models", "needs three"),
    ({"models": ["sd-a", "sd-b"], "method": "average"}, "method", "weighted_sum"),
    ({"models": ["sd-a", "sd-b"], "alpha": 1.5}, "alpha", "from 0 to 1"),
    ({"models": ["sd-a", "sd-b"], "alpha": "half"}, "alpha", "from 0 to 1"),
    ({"models": ["sd-a", "sd-b"], "alpha": True}, "alpha", "from 0 to 1"),
    ({"models": ["sd-a", "sd-b"], "alpha": 0.3, "destination": "../x"}, "destination", "leaves it"),
])
def test_a_merge_is_refused_with_the_field_and_the_reason(ops_app, data, field, says):
    err = refusal(model_ops.check_merge, data)
    assert err.field == field and says in str(err), str(err)


def write_unet(models, name: str, shapes: dict) -> None:
    (models / name / "unet").mkdir(parents=True)
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(models / name / "unet" / "diffusion_pytorch_model.safetensors"))


def test_a_merge_checks_the_denoisers_shapes_from_their_headers(ops_app):
    _, models = ops_app
    write_unet(models, "sd-a", {"conv_in.weight": (8, 4, 3, 3), "conv_in.bias": (8,)})
    write_unet(models, "sd-b", {"conv_in.weight": (8, 9, 3, 3), "conv_in.bias": (8,)})  # (an inpainting UNet)
    write_unet(models, "sd-c", {"conv_in.weight": (8, 4, 3, 3), "conv_in.bias": (8,)})
    err = refusal(model_ops.check_merge, {"models": ["sd-a", "sd-b"], "destination": "m"})
    assert err.field == "models" and "conv_in.weight: [8, 4, 3, 3] against [8, 9, 3, 3]" in str(err)
    rows, method, alpha, destination = model_ops.check_merge({"models": ["sd-a", "sd-c"], "alpha": 0,
                                                              "destination": "merged/m"})
    assert [r.id for r in rows] == ["sd-a", "sd-c"] and (method, alpha, destination) == ("weighted_sum", 0.0,
                                                                                       "merged/m")


def test_only_a_single_file_is_converted_and_a_ckpt_only_from_the_models_folder(ops_app):
    _, models = ops_app
    assert "only single-file checkpoints" in str(refusal(model_ops.check_convert, {"model": "sd-a",
                                                                                   "destination": "x"}))
    pickle = db.session.get(AiModel, "pickle")
    outside = pickle.spec
    err = refusal(model_ops.check_convert, {"model": "pickle", "destination": "x"})
    assert "file is not there" in str(err)  # (not there at all)
    (models / "old.ckpt").write_bytes(b"x")
    pickle.spec = str(models.parent / "old.ckpt")
    (models.parent / "old.ckpt").write_bytes(b"x")
    db.session.commit()
    err = refusal(model_ops.check_convert, {"model": "pickle", "destination": "x"})
    assert err.field == "model" and "outside the models folder" in str(err) and outside.endswith(".ckpt")
    pickle.spec = "old.ckpt"
    db.session.commit()
    row, destination = model_ops.check_convert({"model": "pickle", "destination": "converted/old"})
    assert row.id == "pickle" and destination == "converted/old"


@pytest.mark.parametrize("dtype", ["fp8", "float16", "FP16", 16, True, ["fp16"]])
def test_the_precision_is_checked_and_named_in_the_refusal(ops_app, dtype):
    err = refusal(model_ops.check_dtype, {"dtype": dtype})
    assert err.field == "dtype" and "'source'" in str(err) and "'fp16', 'bf16' or 'fp32'" in str(err)
    assert [model_ops.check_dtype(d) for d in ({}, {"dtype": None}, {"dtype": "bf16"})] == ["source", "source", "bf16"]


def test_the_source_precision_is_read_from_the_denoisers_headers(ops_app):
    from models import ModelJob

    _, models = ops_app
    (models / "half-folder" / "unet").mkdir(parents=True)
    save_file({"w": torch.zeros(64, dtype=torch.float16), "norm": torch.zeros(4)},
              str(models / "half-folder" / "unet" / "diffusion_pytorch_model.safetensors"))
    save_file({"model.diffusion_model.w": torch.zeros(64, dtype=torch.bfloat16),
               "first_stage_model.w": torch.zeros(256), "alphas_cumprod": torch.zeros(8, dtype=torch.float64)},
              str(models / "bf16-checkpoint.safetensors"))
    folder = AiModel(id="hf", spec="half-folder", kind="folder", family="sd1")
    single = AiModel(id="bc", spec="bf16-checkpoint.safetensors", kind="single_file", family="sd1")
    missing = AiModel(id="gone", spec="not-there", kind="folder", family="sd1")
    assert [model_ops.source_dtype(r) for r in (folder, single, missing)] == ["fp16", "bf16", None]
    asked = lambda dtype: ModelJob(kind="convert", options={"dtype": dtype})  # noqa: E731
    assert model_ops.save_dtype(asked("source"), folder) == "fp16"
    assert model_ops.save_dtype(asked("fp32"), folder) == "fp32"
    assert model_ops.save_dtype(asked("source"), missing) == "fp32"  # (unknown: float32)


# --- the merge itself ------------------------------------------------------------------

def pipe_of(seed: int, tied: bool = False):
    torch.manual_seed(seed)
    unet = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 3))
    text = torch.nn.Embedding(5, 3)
    if tied:
        unet[1].weight = torch.nn.Parameter(unet[0].weight.detach().T.contiguous())
    return SimpleNamespace(unet=unet, text_encoder=text, vae=torch.nn.Linear(2, 2))


def tensors(module) -> dict:
    return {k: v.clone() for k, v in module.state_dict().items()}


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_a_weighted_sum_merges_the_denoiser_and_text_encoder_and_keeps_a_s_other_parts(alpha):
    from worker.model_ops import merge_parts

    a, b = pipe_of(1), pipe_of(2)
    before_a, before_b, vae = tensors(a.unet), tensors(b.unet), tensors(a.vae)
    text_a, text_b = tensors(a.text_encoder), tensors(b.text_encoder)
    seen = []
    count = merge_parts([a, b], "weighted_sum", alpha, lambda i, n: seen.append((i, n)))
    assert count == 5 and seen[-1] == (5, 5)
    for key, value in tensors(a.unet).items():
        assert torch.allclose(value, before_a[key] * (1 - alpha) + before_b[key] * alpha)
        if alpha == 0:
            assert torch.equal(value, before_a[key])
    assert torch.allclose(a.text_encoder.weight, text_a["weight"] * (1 - alpha) + text_b["weight"] * alpha)
    assert all(torch.equal(v, vae[k]) for k, v in tensors(a.vae).items())


def test_add_difference_adds_b_minus_c_times_alpha():
    from worker.model_ops import merge_parts

    a, b, c = pipe_of(1), pipe_of(2), pipe_of(3)
    wa, wb, wc = (tensors(p.unet)["0.weight"] for p in (a, b, c))
    merge_parts([a, b, c], "add_difference", 0.5)
    assert torch.allclose(a.unet[0].weight, wa + (wb - wc) * 0.5)


@pytest.mark.parametrize("dtype, expected", [("fp16", torch.float16), ("bf16", torch.bfloat16),
                                             ("fp32", torch.float32)])
def test_the_pipeline_is_cast_to_the_precision_it_is_saved_in(dtype, expected):
    from worker.model_ops import cast

    pipe = pipe_of(1)
    pipe.components = {"unet": pipe.unet, "text_encoder": pipe.text_encoder, "vae": pipe.vae, "scheduler": object()}
    cast(pipe, dtype)
    assert {t.dtype for part in (pipe.unet, pipe.text_encoder, pipe.vae) for t in part.state_dict().values()} == {expected}


def test_models_of_other_shapes_are_refused_and_nothing_is_changed():
    from worker.model_ops import OpError, merge_parts

    a, b = pipe_of(1), pipe_of(2)
    b.unet[1] = torch.nn.Linear(4, 6)
    before = tensors(a.unet)
    with pytest.raises(OpError, match=r"unets differ at 1.weight \(\[3, 4\] against \[6, 4\]\)"):
        merge_parts([a, b], "weighted_sum", 0.5)
    assert all(torch.equal(v, before[k]) for k, v in tensors(a.unet).items())


@pytest.mark.parametrize("spec, shared", [("demo-kontext", "demo-flux"), ("demo-qwen-edit", "demo-qwen"),
                                          ("demo-qwen-edit-plus", "demo-qwen"), ("demo-sdxl", "demo-sdxl"),
                                          ("demo", "demo")])
def test_a_demo_model_run_from_another_ones_folder_is_read_from_that_folder(ops_app, spec, shared):
    """demo-qwen-edit and demo-qwen-edit-plus are the demo Qwen-Image's folder run as editing
    models (families.DEMO_SHARED_FOLDERS, as the worker loads them), like demo-kontext."""
    from services.generation import catalog

    app, models = ops_app
    with app.app_context():
        path = model_ops.source_path(AiModel(id=spec, name=spec, spec=spec, kind="demo", source="demo"))
        own = catalog.DEMO_FOLDER if shared == "demo" else f"{catalog.DEMO_FOLDER}-{shared.removeprefix('demo-')}"
        assert path == catalog.models_folder() / own
