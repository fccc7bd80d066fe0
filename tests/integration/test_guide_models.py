"""Guide models (issue 25) in the catalog: the admin Scan lists ControlNets under
<models>/controlnet/ and IP-Adapters under <models>/ipadapter/ with the family they guide
and their architecture (error and unsupported ones with the reason, links out of the
folder skipped), staff enable them like models, users see the enabled ones in GET
/api/v1/models as kind "controlnet" / "ipadapter", and they are never models to paint with.
With DAYDREAM_DEMO_MODELS=all the demo guides and the demo FLUX.1 Kontext are there.
No worker: nothing here renders."""
from __future__ import annotations

import pytest

from tests.helpers import (SD1_CONTROLNET, instance_env, make_app, safetensors_stub, write_guide_layout,
                           write_json_file)
from tests.integration.helpers import ApiUser, make_staff, sign_in


@pytest.fixture(scope="module")
def guide_site(tmp_path_factory, redis_url):
    base = tmp_path_factory.mktemp("guide-models")
    models = write_guide_layout(base / "models")
    # xinsir's first SDXL Union as a folder: six control modes (no tile, no repaint).
    write_json_file(models / "controlnet" / "union-sdxl-1.0" / "config.json",
                    {"_class_name": "ControlNetUnionModel", "cross_attention_dim": 2048, "num_control_type": 6})
    safetensors_stub(models / "controlnet" / "union-sdxl-1.0" / "diffusion_pytorch_model.safetensors",
                     {"conv_in.weight": [320, 4, 3, 3]})
    outside = safetensors_stub(base / "outside" / "linked.safetensors", SD1_CONTROLNET)
    (models / "controlnet" / "linked.safetensors").symlink_to(outside)
    app = make_app(instance_env(base / "instance", redis_url, models, DAYDREAM_DEMO_MODELS="all"))
    app.staff = make_staff(app)
    return app


@pytest.fixture(scope="module")
def guide_scan(guide_site) -> dict:
    response = guide_site.test_client().post("/api/v1/admin/models/scan", headers=guide_site.staff)
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return response.get_json()


def by_spec(scanned: dict) -> dict:
    return {m["spec"]: m for m in scanned["items"] if m["source"] == "scan"}


def guide_items(user) -> dict:
    return {m["id"]: m for m in user.get("/api/v1/models").get_json()["items"]
            if m["kind"] in ("controlnet", "ipadapter")}


def test_the_scan_lists_guides_with_their_family_and_architecture(guide_scan):
    found = by_spec(guide_scan)
    listed = {spec: (m["kind"], m["family"], m["architecture"], m["state"], m["enabled"])
              for spec, m in found.items() if m["kind"] != "model"}
    assert listed == {
        "controlnet/control_v11p_sd15_canny.safetensors": ("controlnet", "sd1", "controlnet", "available", False),
        "controlnet/sdxl-canny": ("controlnet", "sdxl", "controlnet", "available", False),
        "controlnet/union/controlnet-union-sdxl.safetensors": ("controlnet", "sdxl", "union", "available", False),
        "controlnet/union-sdxl-1.0": ("controlnet", "sdxl", "union", "available", False),
        "controlnet/flux-union": ("controlnet", "flux", "union", "available", False),
        "controlnet/flux-canny.safetensors": ("controlnet", "flux", "controlnet", "available", False),
        "controlnet/sd3-canny": ("controlnet", "sd3", None, "unsupported", False),
        "controlnet/cut-short.safetensors": ("controlnet", None, None, "error", False),
        "controlnet/old-canny.pth": ("controlnet", None, None, "unsupported", False),
        "ipadapter/models/ip-adapter_sd15.safetensors": ("ipadapter", "sd1", "ip-adapter", "available", False),
        "ipadapter/models/ip-adapter-plus_sd15.safetensors": ("ipadapter", "sd1", "ip-adapter-plus", "available",
                                                              False),
        "ipadapter/sdxl_models/ip-adapter_sdxl.safetensors": ("ipadapter", "sdxl", None, "error", False),
        "ipadapter/flux-redux": ("ipadapter", "flux", "redux", "available", False),
    }
    canny = found["controlnet/control_v11p_sd15_canny.safetensors"]
    assert (canny["id"], canny["name"], canny["format"], canny["family_label"]) == (
        "control-v11p-sd15-canny", "control_v11p_sd15_canny", "single_file", "Stable Diffusion 1.x")
    assert found["controlnet/sdxl-canny"]["format"] == "folder"
    assert "1024-wide image embeddings, but the IP-Adapter takes 1280" in \
        found["ipadapter/sdxl_models/ip-adapter_sdxl.safetensors"]["error"]
    assert "incomplete" in found["controlnet/cut-short.safetensors"]["error"]
    assert found["controlnet/sd3-canny"]["family_label"] == "Stable Diffusion 3 / 3.5"  # its reason says why not
    # The link out of the models folder is not read, and said; the image encoder is no row.
    assert [s["path"] for s in guide_scan["skipped"]] == ["controlnet/linked.safetensors"]
    assert not [spec for spec in found if "image_encoder" in spec]
    # The Kontext folder is a model: an editing one.
    kontext = found["flux1-kontext-dev"]
    assert (kontext["kind"], kontext["family"], kontext["variant"], kontext["edits"], kontext["max_references"]) == (
        "model", "flux", "kontext", True, 3)


def test_demo_guides_and_the_demo_kontext_come_with_the_demo_models(guide_site, guide_scan):
    builtin = {m["id"]: m for m in guide_scan["items"] if m["source"] == "builtin"}
    guides = {k: (m["kind"], m["family"], m["architecture"], m["format"], m["enabled"])
              for k, m in builtin.items() if m["kind"] in ("controlnet", "ipadapter")}
    assert guides == {"demo-controlnet-sd1": ("controlnet", "sd1", "controlnet", "demo", True),
                      "demo-controlnet-sdxl": ("controlnet", "sdxl", "controlnet", "demo", True),
                      "demo-controlnet-flux": ("controlnet", "flux", "union", "demo", True),
                      "demo-ipadapter-sd1": ("ipadapter", "sd1", "ip-adapter", "demo", True),
                      "demo-controlnet-sdxl-union": ("controlnet", "sdxl", "union", "demo", True)}
    user = ApiUser(guide_site.test_client(), "demoguides")
    kontext = {m["id"]: m for m in user.get("/api/v1/models").get_json()["items"]}["demo-kontext"]
    assert (kontext["kind"], kontext["family"], kontext["variant"], kontext["edits"]) == ("model", "flux", "kontext",
                                                                                         True)
    assert kontext["defaults"]["steps"] == 8 and not kontext["controlnet"]
    flux = {m["id"]: m for m in user.get("/api/v1/models").get_json()["items"]}["demo-flux"]
    assert flux["controlnet"] and flux["ip_adapter"] and not flux["edits"] and flux["max_references"] == 0


def test_staff_enable_a_guide_and_users_see_it_but_never_as_a_model(guide_site, guide_scan):
    client, staff = guide_site.test_client(), guide_site.staff
    user = ApiUser(guide_site.test_client(), "guidefan")
    before = guide_items(user)
    assert set(before) == {"demo-controlnet-sd1", "demo-controlnet-sdxl", "demo-controlnet-flux",
                           "demo-ipadapter-sd1", "demo-controlnet-sdxl-union"}
    models_before = [m["id"] for m in user.get("/api/v1/models").get_json()["items"] if m["kind"] == "model"]

    found = by_spec(guide_scan)
    plus = found["ipadapter/models/ip-adapter-plus_sd15.safetensors"]
    enabled = client.patch(f"/api/v1/admin/models/{plus['id']}", json={"enabled": True}, headers=staff)
    assert enabled.status_code == 200 and enabled.get_json()["enabled"] is True
    assert guide_items(user)[plus["id"]] == {
        "id": "ip-adapter-plus-sd15", "name": "ip-adapter-plus_sd15", "kind": "ipadapter", "format": "single_file",
        "family": "sd1", "family_label": "Stable Diffusion 1.x", "architecture": "ip-adapter-plus",
        "control_modes": None}
    assert [m["id"] for m in user.get("/api/v1/models").get_json()["items"] if m["kind"] == "model"] == models_before
    assert user.submit(model=plus["id"]).status_code == 422  # not a model to paint with

    for spec in ("ipadapter/sdxl_models/ip-adapter_sdxl.safetensors", "controlnet/sd3-canny"):
        refused = client.patch(f"/api/v1/admin/models/{found[spec]['id']}", json={"enabled": True}, headers=staff)
        assert refused.status_code == 422 and "this " in refused.get_json()["error"]["message"]
    canny = found["controlnet/control_v11p_sd15_canny.safetensors"]
    not_default = client.patch(f"/api/v1/admin/models/{canny['id']}", json={"default": True}, headers=staff)
    assert not_default.status_code == 422 and "ControlNet cannot be the default" in \
        not_default.get_json()["error"]["message"]

    with guide_site.app_context():
        from services.generation import catalog

        assert plus["id"] not in [m.id for m in catalog.enabled_models()]
        assert not [m for m in catalog.enabled_models() if m.adapter]
        assert [m.id for m in catalog.enabled_guides("ipadapter")] == ["demo-ipadapter-sd1", plus["id"]]
        assert catalog.guide_table()[plus["id"]] == {"name": "ip-adapter-plus_sd15", "family": "sd1",
                                                    "adapter": "ipadapter", "architecture": "ip-adapter-plus",
                                                    "control_modes": None}
        assert "demo-controlnet-flux" in catalog.guide_table() and canny["id"] not in catalog.guide_table()


def test_the_admin_models_page_has_a_guides_table(guide_site):
    staff_client = guide_site.test_client()
    sign_in(staff_client, "boss", "a staff password")
    page = staff_client.get("/admin/models")
    assert page.status_code == 200 and b'id="guides-body"' in page.data and b"admin-models.js" in page.data


def test_a_unit_whose_mode_the_union_lacks_is_a_422_naming_control_and_charges_nothing(guide_site, guide_scan):
    """The scan reads a Union's number of control modes (config.json's num_control_type, a
    single file's task_embedding rows; the demo's eight are ProMax's); submit refuses a tile
    unit on xinsir's first Union (six modes) instead of charging a task that fails."""
    found = by_spec(guide_scan)
    first = found["controlnet/union-sdxl-1.0"]
    assert (first["control_modes"], found["controlnet/union/controlnet-union-sdxl.safetensors"]["control_modes"],
            found["controlnet/sdxl-canny"]["control_modes"]) == (6, 8, None)
    assert {m["id"]: m for m in guide_scan["items"]}["demo-controlnet-sdxl-union"]["control_modes"] == 8
    enabled = guide_site.test_client().patch(f"/api/v1/admin/models/{first['id']}", json={"enabled": True},
                                             headers=guide_site.staff)
    assert enabled.status_code == 200, enabled.get_json()
    user = ApiUser(guide_site.test_client(), "unionfirst")
    before = user.me()["tokens"]
    response = user.submit(model="demo-sdxl", control=[{"image": "PictureId123", "model": first["id"],
                                                        "preprocessor": "canny"},
                                                       {"image": "PictureId123", "model": first["id"],
                                                        "preprocessor": "tile"}])
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == "control" and error["message"].startswith(
        "control: unit 2: the tile preprocessor needs a ControlNet Union with 8 control modes (ProMax); "
        "union-sdxl-1.0 has 6"), error
    assert user.me()["tokens"] == before
