"""The models folder is read safely: links that lead out of it are not followed unless
DAYDREAM_MODELS_FOLLOW_LINKS says so, an entry that cannot be read is listed with why
and the scan goes on, a model that cannot be used cannot be enabled, a folder of a
family Daydream does not serve is listed as unsupported, and a model that fails to load
shows users its name, not the server's paths (staff see them)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from tests.helpers import WorkerProcess, instance_env, make_app
from tests.integration.helpers import ApiUser, make_staff


def write_sd1_checkpoint(path: Path) -> Path:
    """A file whose tensor names are an SD 1.x checkpoint's (the scan reads names only)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)}, str(path))
    return path


def write_pipeline_folder(folder: Path, class_name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": class_name}))
    return folder


@pytest.fixture(scope="module")
def scan_stack(tmp_path_factory, redis_url):
    base = tmp_path_factory.mktemp("scan-safety")
    models = base / "models"
    models.mkdir()
    env = instance_env(base / "instance", redis_url, models)
    app = make_app(env)
    worker = WorkerProcess(env, base / "worker.log").launch()  # ready when the load test needs it
    app.worker, app.models, app.base = worker, models, base
    app.staff = make_staff(app)
    yield app
    worker.stop()


@pytest.fixture(scope="module")
def scan_staff(scan_stack):
    return scan_stack.test_client()


def scan(client, headers) -> dict:
    response = client.post("/api/v1/admin/models/scan", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    data = response.get_json()
    data["by_spec"] = {m["spec"]: m for m in data["items"] if m["source"] == "scan"}
    data["skipped_by_path"] = {s["path"]: s["why"] for s in data["skipped"]}
    return data


def test_links_out_of_the_folder_are_not_followed_and_the_scan_says_why(scan_stack, scan_staff):
    models, outside = scan_stack.models, scan_stack.base / "elsewhere"
    write_sd1_checkpoint(outside / "secret.safetensors")
    (models / "out-dir").symlink_to(outside, target_is_directory=True)
    (models / "passwd.safetensors").symlink_to("/etc/passwd")
    (models / "root").symlink_to("/", target_is_directory=True)

    data = scan(scan_staff, scan_stack.staff)

    assert not [s for s in data["by_spec"] if s.startswith(("out-dir", "passwd", "root"))]
    for path, target in (("out-dir", str(outside.resolve())), ("passwd.safetensors", "/etc/passwd"),
                         ("root", "/")):
        assert path in data["skipped_by_path"], data["skipped"]
        why = data["skipped_by_path"][path]
        assert f"links to {target}," in why and "outside the models folder" in why
        assert "DAYDREAM_MODELS_FOLLOW_LINKS=true" in why
    # The audit row of the scan names what it skipped.
    audit = scan_staff.get("/api/v1/admin/audit?action=models.scan", headers=scan_stack.staff).get_json()
    assert any("root" in (row.get("details") or {}).get("skipped", []) for row in audit["items"])


def test_links_inside_the_folder_are_followed(scan_stack, scan_staff):
    models = scan_stack.models
    write_sd1_checkpoint(models / "real" / "inner.safetensors")
    (models / "alias").symlink_to(models / "real", target_is_directory=True)
    (models / "alias-file.safetensors").symlink_to(models / "real" / "inner.safetensors")

    data = scan(scan_staff, scan_stack.staff)

    for spec in ("real/inner.safetensors", "alias/inner.safetensors", "alias-file.safetensors"):
        assert data["by_spec"][spec]["family"] == "sd1" and data["by_spec"][spec]["state"] == "available"
    assert not any(path.startswith(("real", "alias")) for path in data["skipped_by_path"])


def test_links_out_are_followed_when_the_setting_says_so(tmp_path, redis_url):
    models, outside = tmp_path / "models", tmp_path / "shared-disk"
    models.mkdir()
    write_sd1_checkpoint(outside / "big.safetensors")
    (models / "shared").symlink_to(outside, target_is_directory=True)
    app = make_app(instance_env(tmp_path / "instance", redis_url, models, DAYDREAM_MODELS_FOLLOW_LINKS="true"))
    data = scan(app.test_client(), make_staff(app))
    assert data["by_spec"]["shared/big.safetensors"]["family"] == "sd1"
    assert data["skipped"] == []


@contextmanager
def as_nobody(*writable: Path):
    """Run the block with the effective uid of `nobody`, so that chmod 000 means
    unreadable even when the tests run as root (root reads anything)."""
    for path in writable:
        os.chmod(path, 0o777 if path.is_dir() else 0o666)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


def test_an_unreadable_entry_is_listed_with_why_and_the_scan_goes_on(tmp_path, redis_url):
    if os.geteuid() != 0 and os.access("/", os.W_OK):  # a user with root's file powers
        pytest.skip("cannot make an unreadable folder here: chmod 000 does not stop this user")
    # As root a world-readable place is needed: the scan runs as nobody (see as_nobody).
    base = Path(tempfile.mkdtemp(prefix="daydream-unreadable-"))
    try:
        os.chmod(base, 0o777)
        models = base / "models"
        models.mkdir()
        write_sd1_checkpoint(models / "fine" / "ok.safetensors")
        locked = models / "locked"
        write_sd1_checkpoint(locked / "hidden.safetensors")
        write_sd1_checkpoint(models / "locked-file.safetensors")
        app = make_app(instance_env(base / "instance", redis_url, models))
        client, staff = app.test_client(), make_staff(app)
        for path in [models, *models.rglob("*")]:
            os.chmod(path, 0o777 if path.is_dir() else 0o666)
        os.chmod(locked, 0o000)
        os.chmod(models / "locked-file.safetensors", 0o000)
        instance = base / "instance"
        writable = [instance, *instance.iterdir()] if os.geteuid() == 0 else []
        with as_nobody(*writable) if os.geteuid() == 0 else _nothing():
            with pytest.raises(PermissionError):  # else this is not a test of an unreadable folder
                os.listdir(locked)
            data = scan(client, staff)
        assert data["by_spec"]["fine/ok.safetensors"]["state"] == "available"  # the scan went on
        assert data["skipped_by_path"]["locked"] == "locked could not be read: Permission denied"
        unreadable = data["by_spec"]["locked-file.safetensors"]
        assert unreadable["state"] == "error" and "Permission denied" in unreadable["error"]
    finally:
        for path in [base, *base.rglob("*")] if base.exists() else []:
            if not path.is_symlink():
                os.chmod(path, 0o777 if path.is_dir() else 0o666)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def _nothing():
    yield


def test_an_unknown_pipeline_class_is_listed_as_unsupported_not_as_sd1(scan_stack, scan_staff):
    models = scan_stack.models
    write_pipeline_folder(models / "wan-video", "WanPipeline")  # (a video model)
    write_pipeline_folder(models / "lumina-image", "Lumina2Pipeline")

    data = scan(scan_staff, scan_stack.staff)

    for spec, name in (("wan-video", "WanPipeline"), ("lumina-image", "Lumina2Pipeline")):
        row = data["by_spec"][spec]
        assert row["state"] == "unsupported", row
        assert row["error"].startswith(f"{name} is not supported yet")
        assert row["family"] is None and row["family_label"] == "Unsupported"
        assert not row["enabled"]


def test_a_model_that_cannot_be_used_cannot_be_enabled(scan_stack, scan_staff):
    models, staff = scan_stack.models, scan_stack.staff
    (models / "half-downloaded.safetensors").write_bytes(b"\x00" * 5)
    write_pipeline_folder(models / "wan-again", "WanPipeline")
    data = scan(scan_staff, staff)
    damaged, unsupported = data["by_spec"]["half-downloaded.safetensors"], data["by_spec"]["wan-again"]
    assert damaged["state"] == "error"

    for row, words in ((damaged, "scan the models folder again"), (unsupported, "WanPipeline is not supported yet")):
        for change in ({"enabled": True}, {"default": True}):
            refused = scan_staff.patch(f"/api/v1/admin/models/{row['id']}", json=change, headers=staff)
            assert refused.status_code == 422, (row["spec"], change, refused.get_json())
            assert "cannot be used" in refused.get_json()["error"]["message"]
            assert words in refused.get_json()["error"]["message"]
    listed = {m["id"]: m for m in scan_staff.get("/api/v1/admin/models", headers=staff).get_json()["items"]}
    assert not listed[damaged["id"]]["enabled"] and not listed[unsupported["id"]]["enabled"]

    # Fixed files: the next scan reads them and the model can be enabled.
    write_sd1_checkpoint(models / "half-downloaded.safetensors")
    assert scan(scan_staff, staff)["by_spec"]["half-downloaded.safetensors"]["state"] == "available"
    assert scan_staff.patch(f"/api/v1/admin/models/{damaged['id']}", json={"enabled": True},
                              headers=staff).status_code == 200


def test_a_model_load_failure_shows_users_its_name_and_staff_its_path(scan_stack, scan_staff):
    """An SD 1.x checkpoint by its tensor names whose weights are not there: the scan lists
    it, the worker fails to load it. The task's error (JSON, the A1111 and OpenAI answers)
    names the model; the absolute path is on Admin → Models only."""
    models, staff = scan_stack.models, scan_stack.staff
    write_sd1_checkpoint(models / "checkpoints" / "dreamshaper-broken.safetensors")
    row = scan(scan_staff, staff)["by_spec"]["checkpoints/dreamshaper-broken.safetensors"]
    assert scan_staff.patch(f"/api/v1/admin/models/{row['id']}", json={"enabled": True},
                              headers=staff).status_code == 200
    scan_stack.worker.wait_ready()
    folder = str(models)

    user = ApiUser(scan_stack.test_client(), "pathless")
    task = user.submit(model=row["id"], width=64, height=64, steps=2).get_json()
    failed = user.wait_task(task["id"], timeout=120)
    assert failed["state"] == "failed"
    assert "dreamshaper-broken" in failed["error"] and "could not be loaded" in failed["error"]
    assert folder not in failed["error"] and str(scan_stack.base) not in failed["error"]
    assert "/" + models.parts[1] not in failed["error"]  # no absolute path at all

    openai = user.post("/v1/images/generations", json={"prompt": "a fox", "model": row["id"], "size": "64x64"})
    assert openai.status_code >= 400 and "dreamshaper-broken" in openai.get_data(as_text=True)
    assert folder not in openai.get_data(as_text=True)

    listed = {m["id"]: m for m in scan_staff.get("/api/v1/admin/models", headers=staff).get_json()["items"]}
    assert listed[row["id"]]["state"] == "error"
    assert str(models / "checkpoints" / "dreamshaper-broken.safetensors") in listed[row["id"]]["error"]
