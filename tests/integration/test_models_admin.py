"""Staff manage models: scan the models folder, enable, pick the default. Users can't."""
from __future__ import annotations

import pytest

from tests.helpers import instance_env, make_app
from tests.integration.helpers import ApiUser


@pytest.fixture
def staffed(tmp_path, redis_url):
    models = tmp_path / "models"
    models.mkdir()
    app = make_app(instance_env(tmp_path / "instance", redis_url, models))
    runner = app.test_cli_runner()
    result = runner.invoke(args=["create-staff", "--username", "boss", "--email", "boss@example.com"],
                           input="a staff password\n")
    assert result.exit_code == 0, result.output
    client = app.test_client()
    token = client.post("/api/v1/auth/tokens", json={"login": "boss", "password": "a staff password",
                                                     "name": "t"}).get_json()["token"]
    return app, client, {"Authorization": f"Bearer {token}"}, models


def test_create_staff_refuses_a_short_password_and_a_taken_name(staffed):
    app, *_ = staffed
    runner = app.test_cli_runner()
    short = runner.invoke(args=["create-staff", "--username", "second", "--email", "x2@example.com"], input="short\n")
    assert short.exit_code != 0 and "at least 10" in short.output
    taken = runner.invoke(args=["create-staff", "--username", "boss", "--email", "b2@example.com"],
                          input="a staff password\n")
    assert taken.exit_code != 0 and "already registered" in taken.output


def model_ids(items):
    return [m["id"] for m in items if m["kind"] == "model"]


def test_scan_finds_folders_and_checkpoints_and_staff_enable_them(staffed):
    from worker.demo_model import build_demo_model

    app, client, staff, models = staffed
    build_demo_model(models / "sd" / "mini")
    (models / "dreamy.safetensors").write_bytes(b"not really weights")
    (models / "notes.txt").write_text("ignored")
    listed = client.get("/api/v1/admin/models", headers=staff).get_json()
    assert model_ids(listed["items"]) == ["demo"] and listed["folder"] == str(models)
    scanned = {m["id"]: m for m in client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]}
    assert set(scanned) == {"demo", "demo-lora-sd1", "mini", "dreamy"}
    assert scanned["mini"]["format"] == "folder" and scanned["mini"]["spec"] == "sd/mini"
    assert scanned["mini"]["family"] == "sd1" and scanned["mini"]["kind"] == "model"
    assert not scanned["mini"]["enabled"] and scanned["mini"]["state"] == "available"
    # A damaged file is listed with why, so staff see it rather than nothing.
    assert scanned["dreamy"]["format"] == "single_file" and scanned["dreamy"]["state"] == "error"
    assert "is not a safetensors file" in scanned["dreamy"]["error"]

    user = ApiUser(client, "painter")
    assert model_ids(user.get("/api/v1/models").get_json()["items"]) == ["demo"]
    assert user.submit(model="mini").status_code == 422

    enabled = client.patch("/api/v1/admin/models/mini", json={"enabled": True}, headers=staff)
    assert enabled.status_code == 200 and enabled.get_json()["enabled"] is True
    default = client.patch("/api/v1/admin/models/mini", json={"default": True}, headers=staff).get_json()
    assert default["default"] is True
    items = [m for m in user.get("/api/v1/models").get_json()["items"] if m["kind"] == "model"]
    assert [(m["id"], m["default"]) for m in items] == [("mini", True), ("demo", False)]
    assert user.submit().get_json()["model"] == "mini"  # the default is used when none is named
    refused = client.patch("/api/v1/admin/models/mini", json={"enabled": False}, headers=staff)
    assert refused.status_code == 422  # the default can't be disabled
    lora_default = client.patch("/api/v1/admin/models/demo-lora-sd1", json={"default": True}, headers=staff)
    assert lora_default.status_code == 422 and "LoRA" in lora_default.get_json()["error"]["message"]

    (models / "dreamy.safetensors").unlink()
    rescanned = {m["id"]: m for m in client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]}
    assert rescanned["dreamy"]["state"] == "missing"


def test_a_scan_lists_models_not_their_parts_and_loras_with_their_family(staffed):
    """A folder holding one SDXL folder, one FLUX folder, one SD 1.x checkpoint and a LoRA
    for each family (and a VAE on its own) is four models and four LoRAs: not the
    component weights of each folder."""
    import shutil

    from safetensors.torch import save_file
    import torch

    from tests.checkpoints import save_sd1_checkpoint
    from worker.demo_model import build_demo_lora, build_demo_model

    app, client, staff, models = staffed
    build_demo_model(models / "sdxl-base", "sdxl")
    build_demo_model(models / "flux" / "flux1-schnell", "flux")
    sd1 = build_demo_model(models / ".build" / "sd1")
    from diffusers import StableDiffusionPipeline

    save_sd1_checkpoint(StableDiffusionPipeline.from_pretrained(sd1, local_files_only=True),
                        models / "checkpoints" / "dreamlike.safetensors")
    shutil.rmtree(models / ".build")
    for family in ("sd1", "sdxl", "sd3", "flux"):
        build_demo_lora(models / "loras" / f"style-{family}.safetensors", family, models / ".base" / family)
    shutil.rmtree(models / ".base")
    save_file({"decoder.conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(models / "vae-ft-mse.safetensors"))
    (models / "loras" / "broken.safetensors").write_bytes(b"\x00" * 3)

    items = client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]
    scanned = {m["spec"]: m for m in items if m["source"] == "scan"}
    assert sorted(scanned) == sorted([
        "sdxl-base", "flux/flux1-schnell", "checkpoints/dreamlike.safetensors", "loras/broken.safetensors",
        *[f"loras/style-{f}.safetensors" for f in ("sd1", "sdxl", "sd3", "flux")]])
    assert {s: (m["kind"], m["family"]) for s, m in scanned.items() if s != "loras/broken.safetensors"} == {
        "sdxl-base": ("model", "sdxl"), "flux/flux1-schnell": ("model", "flux"),
        "checkpoints/dreamlike.safetensors": ("model", "sd1"),
        **{f"loras/style-{f}.safetensors": ("lora", f) for f in ("sd1", "sdxl", "sd3", "flux")}}
    assert scanned["flux/flux1-schnell"]["variant"] == "schnell"
    broken = scanned["loras/broken.safetensors"]
    assert broken["kind"] == "lora" and broken["state"] == "error"
    refused = client.patch(f"/api/v1/admin/models/{broken['id']}", json={"enabled": True}, headers=staff)
    assert refused.status_code == 422 and "cannot be used" in refused.get_json()["error"]["message"]

    lora = scanned["loras/style-sdxl.safetensors"]
    assert client.patch(f"/api/v1/admin/models/{lora['id']}", json={"enabled": True},
                        headers=staff).status_code == 200
    user = ApiUser(client, "lorafan")
    listed = {m["id"]: m for m in user.get("/api/v1/models").get_json()["items"]}
    assert listed[lora["id"]] == {"id": lora["id"], "name": "style-sdxl", "kind": "lora", "format": "single_file",
                                  "family": "sdxl", "family_label": "Stable Diffusion XL"}


@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/admin/models"), ("post", "/api/v1/admin/models/scan"),
    ("patch", "/api/v1/admin/models/demo"), ("post", "/api/v1/admin/tasks/x/cancel"),
])
def test_admin_api_refuses_users(staffed, method, path):
    _, client, _, _ = staffed
    user = ApiUser(client, f"nosy{abs(hash(path)) % 1000}{method}")
    response = getattr(client, method)(path, json={}, headers=user.headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"


def test_admin_pages_refuse_users_and_show_to_staff(staffed):
    from tests.integration.helpers import sign_in

    app, client, _, _ = staffed
    ApiUser(client, "visitor")
    sign_in(client, "visitor", "correct horse battery")
    assert client.get("/admin/models").status_code == 403
    staff_client = app.test_client()
    sign_in(staff_client, "boss", "a staff password")
    page = staff_client.get("/admin/models")
    assert page.status_code == 200 and b"admin-models.js" in page.data


def test_staff_cancel_any_task_and_are_not_charged(staffed):
    _, client, staff, _ = staffed
    user = ApiUser(client, "victim")
    task = user.submit().get_json()
    canceled = client.post(f"/api/v1/admin/tasks/{task['id']}/cancel", headers=staff)
    assert canceled.status_code == 200 and canceled.get_json()["state"] == "canceled"
    assert user.me()["tokens"] == 20
    own = client.post("/api/v1/tasks", json={"prompt": "free", "width": 64, "height": 64},
                      headers=staff).get_json()
    assert own["cost"] == 0
