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


def test_scan_finds_folders_and_checkpoints_and_staff_enable_them(staffed):
    from worker.demo_model import build_demo_model

    app, client, staff, models = staffed
    build_demo_model(models / "sd" / "mini")
    (models / "dreamy.safetensors").write_bytes(b"not really weights")
    (models / "notes.txt").write_text("ignored")
    listed = client.get("/api/v1/admin/models", headers=staff).get_json()
    assert [m["id"] for m in listed["items"]] == ["demo"] and listed["folder"] == str(models)
    scanned = {m["id"]: m for m in client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]}
    assert set(scanned) == {"demo", "mini", "dreamy"}
    assert scanned["mini"]["kind"] == "folder" and scanned["mini"]["spec"] == "sd/mini"
    assert scanned["dreamy"]["kind"] == "single_file"
    assert not scanned["mini"]["enabled"] and scanned["mini"]["state"] == "available"

    user = ApiUser(client, "painter")
    assert [m["id"] for m in user.get("/api/v1/models").get_json()["items"]] == ["demo"]
    assert user.submit(model="mini").status_code == 422

    enabled = client.patch("/api/v1/admin/models/mini", json={"enabled": True}, headers=staff)
    assert enabled.status_code == 200 and enabled.get_json()["enabled"] is True
    default = client.patch("/api/v1/admin/models/mini", json={"default": True}, headers=staff).get_json()
    assert default["default"] is True
    items = user.get("/api/v1/models").get_json()["items"]
    assert [(m["id"], m["default"]) for m in items] == [("mini", True), ("demo", False)]
    assert user.submit().get_json()["model"] == "mini"  # the default is used when none is named
    refused = client.patch("/api/v1/admin/models/mini", json={"enabled": False}, headers=staff)
    assert refused.status_code == 422  # the default can't be disabled

    (models / "dreamy.safetensors").unlink()
    rescanned = {m["id"]: m for m in client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]}
    assert rescanned["dreamy"]["state"] == "missing"


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
