"""GGUF denoiser files and the memory plan, through the real worker on the shared stack:
a tiny GGUF file of each family's demo transformer (Q8_0, written with the `gguf` package
under the names the files people share use where diffusers turns them back:
tests/helpers.py:original_names) beside <models>/configs/<family> is found by the scan
with its family, quantization, size and plan, is enabled, and generates pixels close to
the unquantized demo model's. A model that cannot fit the workers' GPU is refused at
submit, saying why."""
from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from extensions import db
from models import AiModel
from services.generation import catalog, planner
from tests.helpers import gguf_from_safetensors
from tests.integration.helpers import ApiUser, make_staff

# family: (the demo model whose transformer the file holds, the file, the variant the scan
# tells from the file). FLUX.1's and Chroma's files are in diffusers' names, Z-Image's and
# FLUX.2's in the original ones, Qwen-Image's are both.
GGUF_CASES = {"flux": ("demo-flux", "gguf-tests/tiny-flux-schnell-Q8_0.gguf", "schnell"),
              "zimage": ("demo-zimage", "gguf-tests/tiny-z_image_turbo-Q8_0.gguf", "turbo"),
              "qwen": ("demo-qwen", "gguf-tests/tiny-qwen-image-Q8_0.gguf", ""),
              "chroma": ("demo-chroma", "gguf-tests/tiny-chroma-Q8_0.gguf", ""),
              "flux2": ("demo-flux2", "gguf-tests/tiny-flux-2-klein-Q8_0.gguf", "klein")}


@pytest.fixture(scope="module")
def gguf_stack(stack_factory):
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    return shared.app


@pytest.fixture(scope="module")
def gguf_user(gguf_stack):
    return ApiUser(gguf_stack.test_client(), "ggufuser")


@pytest.fixture(scope="module")
def gguf_staff(gguf_stack):
    return make_staff(gguf_stack, "ggufboss")


def gguf_picture(user, **params) -> np.ndarray:
    response = user.submit(**{"width": 64, "height": 64, "steps": 2, "seed": 41, "prompt": "a red fox", **params})
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=180)
    assert task["state"] == "done", task.get("error")
    data = user.get(task["images"][0]["url"]).data
    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)


@pytest.fixture(scope="module", params=list(GGUF_CASES))
def gguf_file(request, gguf_stack, gguf_user) -> Iterator[tuple[str, Path, np.ndarray]]:
    """A family, the demo model's picture (which also has the worker build its folder), and
    a Q8_0 GGUF file of its transformer with the demo folder as <models>/configs/<family>."""
    family = request.param
    demo_model, spec, _ = GGUF_CASES[family]
    unquantized = gguf_picture(gguf_user, model=demo_model)
    models = Path(gguf_stack.config["MODELS_PATH"])
    demo = models / f"daydream-{demo_model}"
    path = models / spec
    path.parent.mkdir(parents=True, exist_ok=True)
    types = gguf_from_safetensors(demo / "transformer" / "diffusion_pytorch_model.safetensors", path,
                                  family=family)
    assert types["Q8_0"] > 10
    configs = models / "configs" / family
    if not configs.exists():
        shutil.copytree(demo, configs)
    yield family, path, unquantized
    # The stack is shared with other modules: its model lists must not keep this file (a
    # FLUX.2 one would join the editing models other modules' messages name).
    path.unlink(missing_ok=True)
    with gguf_stack.app_context():
        db.session.execute(sa.delete(AiModel).where(AiModel.spec == spec))
        db.session.commit()


def test_the_scan_lists_a_gguf_file_with_its_quant_size_and_plan(gguf_stack, gguf_staff, gguf_file):
    family, path, _ = gguf_file
    _, spec, variant = GGUF_CASES[family]
    client = gguf_stack.test_client()
    items = client.post("/api/v1/admin/models/scan", headers=gguf_staff).get_json()["items"]
    row = next(m for m in items if m.get("spec") == spec)
    assert (row["family"], row["variant"], row["format"], row["state"]) == (family, variant, "single_file",
                                                                             "available")
    assert row["quant"] == "Q8_0" and row["size_bytes"] == path.stat().st_size
    # The shared stack's worker runs on the CPU: its heartbeat says so, and so does the plan.
    assert row["plan"] == {"label": "CPU: Q8_0 GGUF: no GPU memory limit, slow", "fits": True, "expected_bytes": 0,
                           "offload": "none", "quant": "Q8_0", "text_encoder_quant": None, "precision": "fp32",
                           "why": "the worker runs on the CPU, in its memory"}
    # Admin → Models shows the plan under the format (its script renders the rows it reads).
    page = client.get("/admin/models", headers=gguf_staff)
    assert page.status_code in (200, 302)
    script = (Path(__file__).parents[2] / "site/static/js/pages/admin-models.js").read_text()
    assert "model.plan.label" in script and "model.quant" in script


def test_an_enabled_gguf_model_generates_close_to_the_unquantized_one(gguf_stack, gguf_staff, gguf_user, gguf_file):
    family, _, unquantized = gguf_file
    client = gguf_stack.test_client()
    items = client.post("/api/v1/admin/models/scan", headers=gguf_staff).get_json()["items"]
    model_id = next(m["id"] for m in items if m.get("spec") == GGUF_CASES[family][1])
    enabled = client.patch(f"/api/v1/admin/models/{model_id}", json={"enabled": True}, headers=gguf_staff)
    assert enabled.status_code == 200, enabled.get_json()
    listed = {m["id"]: m for m in gguf_user.get("/api/v1/models").get_json()["items"]}
    assert listed[model_id]["plan"]["label"].startswith("CPU") and listed[model_id]["family"] == family
    quantized = gguf_picture(gguf_user, model=model_id)
    assert quantized.shape == unquantized.shape == (64, 64, 3)
    # Q8_0 keeps the weights to about 1%: the picture is nearly the same (a mean difference of
    # 0.05 to 0.2 of 255 here); a tensor read under the wrong name moves it further (FLUX.2's
    # final modulation with its shift and scale swapped: 1.6).
    assert np.abs(quantized - unquantized).mean() < 1.0, np.abs(quantized - unquantized).mean()


def test_a_model_that_cannot_fit_the_workers_gpu_is_refused_at_submit(gguf_stack, gguf_staff, gguf_user, monkeypatch):
    with gguf_stack.app_context():
        if db.session.get(AiModel, "qwen-too-big") is None:
            db.session.add(AiModel(id="qwen-too-big", name="Qwen-Image (bf16)", spec="qwen-too-big/", kind="folder",
                                   source="scan", enabled=True, family="qwen"))
            db.session.commit()
    before = gguf_user.me()["tokens"]
    # As if the ready workers were one with a 6 GB GPU (this stack's worker is on the CPU).
    monkeypatch.setattr(catalog, "worker_gpu", lambda: {"device": "cuda", "gpu_total_bytes": 6 * planner.GB})
    monkeypatch.setitem(gguf_stack.config, "QUANT", "none")
    refused = gguf_user.submit(model="qwen-too-big", steps=2)
    assert refused.status_code == 422, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "model_does_not_fit" and error["field"] == "model"
    assert "this worker's GPU has 6.0 GB" in error["message"] and "GGUF" in error["message"]
    assert gguf_user.me()["tokens"] == before
    listed = {m["id"]: m for m in gguf_user.get("/api/v1/models").get_json()["items"]}
    assert listed["qwen-too-big"]["plan"]["fits"] is False
    # A CPU worker never refuses.
    monkeypatch.setattr(catalog, "worker_gpu", lambda: {"device": "cpu"})
    assert catalog.plan_of is not None
    with gguf_stack.test_request_context():
        catalog.check_fits("qwen-too-big")
    with gguf_stack.app_context():
        db.session.delete(db.session.get(AiModel, "qwen-too-big"))
        db.session.commit()
