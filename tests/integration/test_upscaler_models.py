"""Upscaler models: files under <models>/upscalers/ are found by the admin Scan with their
scale and architecture (read by spandrel), enabled by staff like models, and listed in
GET /api/v1/models as kind "upscaler" beside the built-in resamplers; a .pth whose pickle
would run code is refused at the scan and nothing runs; a model upscales 64 px to 128 px
with pixels of its own (not Lanczos's). The demo ESRGAN ×2 comes with the demo models."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image as PILImage
from safetensors.torch import save_file

from tests.helpers import instance_env, make_app
from tests.integration.helpers import ApiUser, make_staff


def tiny_rrdbnet_state(filters: int = 8, growth: int = 32) -> dict:
    """An ESRGAN ×2 (Real-ESRGAN's key names: conv_first, body.N.rdbM.convK, conv_up1, …)
    with one RRDB block of `filters` filters and seeded random weights."""
    generator = torch.Generator().manual_seed(5)
    state = {}

    def conv(name: str, out_c: int, in_c: int) -> None:
        state[f"{name}.weight"] = torch.randn(out_c, in_c, 3, 3, generator=generator) / (in_c * 9) ** 0.5
        state[f"{name}.bias"] = torch.full((out_c,), 0.1)

    conv("conv_first", filters, 3)
    for rdb in (1, 2, 3):
        for k in range(1, 5):
            conv(f"body.0.rdb{rdb}.conv{k}", growth, filters + (k - 1) * growth)
        conv(f"body.0.rdb{rdb}.conv5", filters, filters + 4 * growth)
    for name in ("conv_body", "conv_up1", "conv_hr"):
        conv(name, filters, filters)
    conv("conv_last", 3, filters)
    return state


class RunsCode:
    """Unpickling this would run a shell command that creates `marker`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def upscaler_site(tmp_path_factory, redis_url):
    base = tmp_path_factory.mktemp("upscaler-models")
    models = base / "models"
    (models / "upscalers" / "x2").mkdir(parents=True)
    save_file(tiny_rrdbnet_state(), str(models / "upscalers" / "x2" / "2x-tiny.safetensors"))
    torch.save(tiny_rrdbnet_state(), str(models / "upscalers" / "2x-tiny-pth.pth"))
    marker = base / "pickle-ran"
    torch.save({"conv_first.weight": RunsCode(marker)}, str(models / "upscalers" / "evil.pth"))
    save_file({"decoder.conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(models / "upscalers" / "vae.safetensors"))
    app = make_app(instance_env(base / "instance", redis_url, models))
    app.models, app.marker, app.staff = models, marker, make_staff(app)
    return app


@pytest.fixture(scope="module")
def scanned(upscaler_site) -> dict:
    client = upscaler_site.test_client()
    response = client.post("/api/v1/admin/models/scan", headers=upscaler_site.staff)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return {m["spec"]: m for m in response.get_json()["items"] if m["source"] == "scan"}


def upscaler_items(user) -> dict:
    return {m["id"]: m for m in user.get("/api/v1/models").get_json()["items"] if m["kind"] == "upscaler"}


def test_the_scan_finds_upscalers_with_scale_and_architecture_and_refuses_a_pickle_that_runs_code(
        upscaler_site, scanned):
    assert sorted(scanned) == ["upscalers/2x-tiny-pth.pth", "upscalers/evil.pth", "upscalers/vae.safetensors",
                               "upscalers/x2/2x-tiny.safetensors"]
    tiny = scanned["upscalers/x2/2x-tiny.safetensors"]
    assert (tiny["id"], tiny["name"], tiny["kind"], tiny["format"]) == ("2x-tiny", "2x-tiny", "upscaler", "single_file")
    assert (tiny["scale"], tiny["architecture"], tiny["state"], tiny["enabled"]) == (2, "ESRGAN", "available", False)
    pth = scanned["upscalers/2x-tiny-pth.pth"]  # a weights-only .pth is read
    assert (pth["kind"], pth["scale"], pth["architecture"], pth["state"]) == ("upscaler", 2, "ESRGAN", "available")

    evil = scanned["upscalers/evil.pth"]
    assert evil["kind"] == "upscaler" and evil["state"] == "error"
    assert "evil.pth was refused: its pickle asks to run code" in evil["error"]
    assert not upscaler_site.marker.exists()  # nothing ran
    vae = scanned["upscalers/vae.safetensors"]
    assert vae["state"] == "unsupported" and "not an upscaler model" in vae["error"]

    # Neither is a model nor a LoRA: the models list and the default are as they were.
    client = upscaler_site.test_client()
    items = client.get("/api/v1/admin/models", headers=upscaler_site.staff).get_json()["items"]
    assert [m["id"] for m in items if m["kind"] == "model"] == ["demo"]
    assert not [m for m in items if m["kind"] == "lora" and m["source"] == "scan"]


def test_staff_enable_an_upscaler_and_users_see_it_in_the_models_list(upscaler_site, scanned):
    client, staff = upscaler_site.test_client(), upscaler_site.staff
    user = ApiUser(upscaler_site.test_client(), "upscalefan")
    before = upscaler_items(user)
    assert {k: (m["name"], m["builtin"]) for k, m in before.items()} == {
        "lanczos": ("Lanczos", True), "nearest": ("Nearest", True)}
    models_before = [m["id"] for m in user.get("/api/v1/models").get_json()["items"] if m["kind"] == "model"]

    tiny = scanned["upscalers/x2/2x-tiny.safetensors"]
    enabled = client.patch(f"/api/v1/admin/models/{tiny['id']}", json={"enabled": True}, headers=staff)
    assert enabled.status_code == 200 and enabled.get_json()["enabled"] is True
    listed = upscaler_items(user)
    assert listed[tiny["id"]] == {"id": "2x-tiny", "name": "2x-tiny", "kind": "upscaler", "format": "single_file",
                                  "scale": 2, "architecture": "ESRGAN", "builtin": False}
    assert [m["id"] for m in user.get("/api/v1/models").get_json()["items"] if m["kind"] == "model"] == models_before
    assert user.submit(model=tiny["id"]).status_code == 422  # not a model to paint with

    evil = scanned["upscalers/evil.pth"]
    refused = client.patch(f"/api/v1/admin/models/{evil['id']}", json={"enabled": True}, headers=staff)
    assert refused.status_code == 422 and "cannot be used" in refused.get_json()["error"]["message"]
    not_default = client.patch(f"/api/v1/admin/models/{tiny['id']}", json={"default": True}, headers=staff)
    assert not_default.status_code == 422 and "upscaler" in not_default.get_json()["error"]["message"]

    with upscaler_site.app_context():
        from services.generation import upscalers

        assert upscalers.find(tiny["id"])["spec"] == "upscalers/x2/2x-tiny.safetensors"
        assert upscalers.spec_of("lanczos") is None and upscalers.find(evil["id"]) is None
    assert not upscaler_site.marker.exists()


def test_the_model_upscales_64_to_128_with_pixels_of_its_own(upscaler_site, scanned):
    from worker import upscalers as runs

    tiny = scanned["upscalers/x2/2x-tiny.safetensors"]
    client = upscaler_site.test_client()
    assert client.patch(f"/api/v1/admin/models/{tiny['id']}", json={"enabled": True},
                        headers=upscaler_site.staff).status_code == 200
    yy, xx = np.mgrid[0:64, 0:64]
    picture = PILImage.fromarray(np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).astype(np.uint8))
    with upscaler_site.app_context():
        from services.generation import upscalers

        found = upscalers.find(tiny["id"])
        calls = []
        result = runs.upscale(picture, found, (128, 128), tile=48, overlap=8, device="cpu",
                              progress=lambda done, total: calls.append((done, total)))
    assert result.size == (128, 128) and result.mode == "RGB"
    assert calls[-1] == (4, 4) == (runs.tile_count((64, 64), 2, 48, 8),) * 2
    lanczos = np.asarray(picture.resize((128, 128), PILImage.Resampling.LANCZOS)).astype(int)
    made = np.asarray(result).astype(int)
    assert np.abs(made - lanczos).mean() > 2
    assert made.std() > 1  # a picture, not one flat colour


def test_the_demo_upscaler_comes_with_the_demo_models(tmp_path, redis_url):
    models = tmp_path / "models"
    app = make_app(instance_env(tmp_path / "instance", redis_url, models, DAYDREAM_DEMO_MODELS="sdxl"))
    user = ApiUser(app.test_client(), "demofan")
    demo = upscaler_items(user)["demo-esrgan-x2"]
    assert (demo["name"], demo["scale"], demo["architecture"], demo["builtin"]) == ("Demo ESRGAN ×2", 2, "ESRGAN",
                                                                                   False)
    from worker import upscalers as runs

    with app.app_context():
        from services.generation import upscalers

        found = upscalers.find("demo-esrgan-x2")
        result = runs.upscale(PILImage.new("RGB", (32, 24), "teal"), found, (64, 48), device="cpu")
    assert result.size == (64, 48)
    assert (models / "daydream-demo-upscalers" / "esrgan-x2.safetensors").is_file()
    # A scan does not list the built demo file as a scanned upscaler.
    scanned_items = app.test_client().post("/api/v1/admin/models/scan", headers=make_staff(app)).get_json()["items"]
    assert not [m for m in scanned_items if m["source"] == "scan"]
