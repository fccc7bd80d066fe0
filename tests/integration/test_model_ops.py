"""Convert and merge through the real archive worker (issue 26): a tiny single-file SD 1.x
checkpoint becomes a diffusers folder that loads and generates; a merge of the demo
model with another tiny SD 1.x model at α 0 is the demo model tensor for tensor and
paints its pixels, at α 0.5 is neither; an fp16 checkpoint converts (and merges, as
model A) to fp16 tensors on disk, and `dtype` chooses another precision; a job whose
queue entry was lost is queued again once by the reconciler, and fails lost twice;
refusals name the field and the reason."""
from __future__ import annotations

import io
import shutil

import pytest
import sqlalchemy as sa
import torch
from PIL import Image as PILImage
from safetensors.torch import load_file, save_file

from extensions import db
from models import AiModel, AuditEntry, ModelJob
from tests.helpers import wait_for
from tests.integration.helpers import ApiUser, make_staff

FOLDER = "model-ops"  # everything this module writes in the shared models folder


@pytest.fixture(scope="module")
def ops_stack(stack_factory, models_path):
    shared = stack_factory(web=1, DAYDREAM_DEMO_MODELS="all", DAYDREAM_PREVIEW_HZ=50, DAYDREAM_STARTING_TOKENS=10000)
    shared.start_archiver()
    app = shared.app
    staff = make_staff(app, "opsboss")
    user = ApiUser(app.test_client(), "opsuser")
    yield app, app.test_client(), staff, user, models_path
    shutil.rmtree(models_path / FOLDER, ignore_errors=True)
    with app.app_context():  # the shared stack's other modules see the catalog as it was
        db.session.execute(sa.delete(AiModel).where(AiModel.spec.like(f"{FOLDER}/%")))
        db.session.commit()


@pytest.fixture(scope="module")
def tiny_models(ops_stack):
    """The demo SD 1.x model written back as one .safetensors file in the original layout,
    and a second tiny SD 1.x folder: the demo model with other weights (another seed)."""
    from diffusers import StableDiffusionPipeline

    from tests.checkpoints import save_sd1_checkpoint
    from worker.demo_model import build_demo_model

    app, client, staff, user, models = ops_stack
    demo = build_demo_model(models / "daydream-demo")  # (the worker's own, built once a run)
    pipe = StableDiffusionPipeline.from_pretrained(demo, local_files_only=True, safety_checker=None,
                                                   requires_safety_checker=False)
    save_sd1_checkpoint(pipe, models / FOLDER / "tiny-sd1.safetensors")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for part in (pipe.unet, pipe.text_encoder):
            for tensor in part.state_dict().values():
                if tensor.is_floating_point():
                    tensor.add_(torch.randn(tensor.shape, generator=generator) * 0.05)
    pipe.save_pretrained(models / FOLDER / "other-sd1", safe_serialization=True)
    # A file cut short: its header reads (the scan lists it as SD 1.x), its weights do not.
    whole = (models / FOLDER / "tiny-sd1.safetensors").read_bytes()
    (models / FOLDER / "cut-short.safetensors").write_bytes(whole[:len(whole) // 2])
    # The same checkpoint in fp16, as most shared checkpoints are.
    half = {k: v.half() if v.is_floating_point() else v
            for k, v in load_file(str(models / FOLDER / "tiny-sd1.safetensors")).items()}
    save_file(half, str(models / FOLDER / "tiny-sd1-fp16.safetensors"))
    scanned = client.post("/api/v1/admin/models/scan", headers=staff).get_json()["items"]
    ids = {m["spec"]: m["id"] for m in scanned}
    return (ids[f"{FOLDER}/tiny-sd1.safetensors"], ids[f"{FOLDER}/other-sd1"], ids[f"{FOLDER}/cut-short.safetensors"],
            ids[f"{FOLDER}/tiny-sd1-fp16.safetensors"])


def lost_jobs(app, model_id: str) -> dict:
    """Two queued converts whose queue entries were lost (Redis restarted without its data),
    one of them queued again once already, and the reconciler's round over them."""
    from datetime import timedelta

    from models import utcnow
    from services.core import keys, redis_client
    from services.generation import model_jobs

    with app.app_context():
        old = utcnow() - timedelta(minutes=5)
        options = {"models": [model_id], "family": "sd1", "dtype": "source", "stage": "queued"}
        rows = {name: ModelJob(kind="convert", state="queued", source=model_id, created_at=old,
                               options={**options, **more}, destination=f"{FOLDER}/{name}")
                for name, more in (("lost-once", {}), ("lost-twice", {"requeued": 1}))}
        db.session.add_all(rows.values())
        db.session.commit()
        ids = {name: row.id for name, row in rows.items()}
        assert not any(redis_client.connection().exists(keys.model_job(i)) for i in ids.values())
        model_jobs.reconcile_lost()  # (or the archive worker's own reconciler, the same code, got there first)
        db.session.remove()
    return {name: {"id": job_id} for name, job_id in ids.items()}


@pytest.fixture(scope="module")
def ops_jobs(ops_stack, tiny_models) -> dict:
    """A convert, two merges (α 0 and 0.5) and a convert that fails, asked for at once, and
    converts and a merge in other precisions: the archive worker's child process runs them
    in turn (torch is loaded once). First of all, a convert whose queue entry was lost and
    which the reconciler queued again."""
    app, client, staff, user, models = ops_stack
    single, other, cut, half = tiny_models
    answers = lost_jobs(app, half)
    asked = {"converted": ("convert", {"model": single}), "from-cut": ("convert", {"model": cut}),
             "merged-0": ("merge", {"models": ["demo", other], "method": "weighted_sum", "alpha": 0}),
             "merged-half": ("merge", {"models": ["demo", other], "alpha": 0.5}),
             "converted-fp16": ("convert", {"model": half}),
             "merged-from-fp16": ("merge", {"models": [half, other], "alpha": 0.5}),
             "converted-bf16": ("convert", {"model": single, "dtype": "bf16"})}
    for name, (route, body) in asked.items():
        response = client.post(f"/api/v1/admin/models/{route}", headers=staff,
                               json={**body, "destination": f"{FOLDER}/{name}"})
        assert response.status_code == 202, response.get_json()
        answers[name] = response.get_json()
    return answers


def model_op_ended(app, job_id: str, timeout: float = 240) -> ModelJob:
    def ended():
        with app.app_context():
            job = db.session.get(ModelJob, job_id)
            return job if job.state in ("done", "failed") else None

    return wait_for(ended, timeout, interval=0.2, message=f"model job {job_id} to end")


def enable_and_paint(client, staff, user, model_id: str, seed: int = 11) -> bytes:
    assert client.patch(f"/api/v1/admin/models/{model_id}", json={"enabled": True},
                        headers=staff).status_code == 200
    response = user.submit(model=model_id, width=64, height=64, steps=2, seed=seed)
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=180)
    assert task["state"] == "done", task
    return PILImage.open(io.BytesIO(user.get(task["images"][0]["url"]).data)).tobytes()


def unet_of(folder) -> dict:
    return load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))


def test_a_single_file_converts_into_a_folder_that_loads_and_generates(ops_stack, tiny_models, ops_jobs):
    app, client, staff, user, models = ops_stack
    single = tiny_models[0]
    queued = ops_jobs["converted"]
    assert queued["kind"] == "convert" and queued["state"] == "queued" and queued["options"]["models"] == [single]
    job = model_op_ended(app, queued["id"])
    assert job.state == "done", job.error
    folder = models / FOLDER / "converted"
    assert (folder / "model_index.json").is_file() and not (models / FOLDER / "converted.partial").exists()
    # The checkpoint was the demo model's weights: the folder has them again, by diffusers' names.
    demo, converted = unet_of(models / "daydream-demo"), unet_of(folder)
    assert converted.keys() == demo.keys() and all(torch.equal(converted[k], demo[k]) for k in demo)
    with app.app_context():
        row = db.session.get(AiModel, job.model_id)
        assert (row.spec, row.kind, row.family, row.enabled) == (f"{FOLDER}/converted", "folder", "sd1", False)
        actions = list(db.session.scalars(sa.select(AuditEntry.action).where(AuditEntry.target_id == job.id)
                                          .order_by(AuditEntry.id)))
    assert actions == ["models.convert", "models.convert_end"]
    assert enable_and_paint(client, staff, user, job.model_id)


def test_a_job_that_fails_leaves_nothing_behind_and_says_why(ops_stack, ops_jobs):
    app, client, staff, user, models = ops_stack
    job = model_op_ended(app, ops_jobs["from-cut"]["id"])
    assert job.state == "failed" and "cut-short could not be loaded" in job.error, job.error
    assert str(models) not in job.error  # (no server paths)
    assert not (models / FOLDER / "from-cut").exists() and not (models / FOLDER / "from-cut.partial").exists()
    assert job.options["stage"] == "failed" and job.model_id is None
    listed = client.get(f"/api/v1/admin/model-jobs/{job.id}", headers=staff).get_json()
    assert (listed["state"], listed["error"]) == ("failed", job.error)


def test_a_merge_at_alpha_0_is_its_first_model_and_at_half_is_neither(ops_stack, tiny_models, ops_jobs):
    app, client, staff, user, models = ops_stack
    other = tiny_models[1]
    assert ops_jobs["merged-half"]["options"]["method"] == "weighted_sum"  # (the default)
    zero, half = (model_op_ended(app, ops_jobs[name]["id"]) for name in ("merged-0", "merged-half"))
    assert zero.state == "done" and half.state == "done", (zero.error, half.error)
    assert zero.options["stage"] == "done" and zero.done_bytes == zero.total_bytes > 3  # (loads + tensors)
    demo, b = unet_of(models / "daydream-demo"), unet_of(models / FOLDER / "other-sd1")
    at_zero, at_half = unet_of(models / FOLDER / "merged-0"), unet_of(models / FOLDER / "merged-half")
    assert at_zero.keys() == demo.keys() and all(torch.equal(at_zero[k], demo[k]) for k in demo)
    text = "text_encoder/model.safetensors"
    assert all(torch.equal(v, load_file(str(models / "daydream-demo" / text))[k])
               for k, v in load_file(str(models / FOLDER / "merged-0" / text)).items())
    moved = [k for k in demo if not torch.equal(demo[k], b[k])]
    assert moved and all(torch.allclose(at_half[k], (demo[k] + b[k]) / 2, atol=1e-6) for k in moved)
    assert not any(torch.equal(at_half[k], demo[k]) or torch.equal(at_half[k], b[k]) for k in moved)
    with app.app_context():
        actions = list(db.session.scalars(sa.select(AuditEntry.action).where(AuditEntry.target_id == zero.id)
                                          .order_by(AuditEntry.id)))
    assert actions == ["models.merge", "models.merge_end"]

    assert enable_and_paint(client, staff, user, zero.model_id) == enable_and_paint(client, staff, user, "demo")


def dtypes_of(folder) -> set:
    return {t.dtype for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                                 "vae/diffusion_pytorch_model.safetensors")
            for t in load_file(str(folder / part)).values() if t.is_floating_point()}


def test_the_result_keeps_its_sources_precision_unless_asked_for_another(ops_stack, ops_jobs):
    app, client, staff, user, models = ops_stack
    half, merged, bf16 = (model_op_ended(app, ops_jobs[name]["id"])
                          for name in ("converted-fp16", "merged-from-fp16", "converted-bf16"))
    assert (half.state, merged.state, bf16.state) == ("done", "done", "done"), (half.error, merged.error, bf16.error)
    # An fp16 checkpoint stays fp16 (not float32, twice its size); a merge takes A's precision.
    assert dtypes_of(models / FOLDER / "converted-fp16") == {torch.float16}
    assert ops_jobs["converted-fp16"]["options"]["dtype"] == "source" and half.options["saved_dtype"] == "fp16"
    assert dtypes_of(models / FOLDER / "merged-from-fp16") == {torch.float16}
    assert dtypes_of(models / FOLDER / "converted-bf16") == {torch.bfloat16} and bf16.options["dtype"] == "bf16"
    assert dtypes_of(models / FOLDER / "converted") == {torch.float32}  # (a float32 source)
    unet = "unet/diffusion_pytorch_model.safetensors"
    size = {name: (models / FOLDER / name / unet).stat().st_size for name in ("converted", "converted-fp16")}
    assert size["converted-fp16"] < size["converted"] * 0.6
    # The fp16 weights are the checkpoint's, and the folder generates.
    source = {k.removeprefix("model.diffusion_model."): v for k, v in
              load_file(str(models / FOLDER / "tiny-sd1-fp16.safetensors")).items()
              if k.startswith("model.diffusion_model.")}
    saved = unet_of(models / FOLDER / "converted-fp16")
    assert sum(t.numel() for t in saved.values()) == sum(t.numel() for t in source.values())
    assert enable_and_paint(client, staff, user, half.model_id)


def test_a_job_whose_queue_entry_was_lost_is_queued_again_once_then_fails(ops_stack, ops_jobs):
    app, client, staff, user, models = ops_stack
    job = model_op_ended(app, ops_jobs["lost-once"]["id"])
    assert job.state == "done" and job.options["requeued"] == 1, job.error
    assert (models / FOLDER / "lost-once" / "model_index.json").is_file()
    failed = model_op_ended(app, ops_jobs["lost-twice"]["id"], timeout=30)
    assert failed.state == "failed" and "lost again" in failed.error, failed.error
    assert not (models / FOLDER / "lost-twice").exists()


def test_mixed_families_other_kinds_and_bad_destinations_are_refused_with_reasons(ops_stack, tiny_models):
    app, client, staff, user, models = ops_stack
    single, other = tiny_models[:2]

    def refused(path, body, field, says):
        response = client.post(path, headers=staff, json=body)
        error = response.get_json()["error"]
        assert response.status_code == 422 and error["field"] == field and says in error["message"], error

    merge = "/api/v1/admin/models/merge"
    refused(merge, {"models": ["demo", "demo-sdxl"], "destination": "m"}, "models", "one family only")
    refused(merge, {"models": ["demo", "demo-lora-sd1"], "destination": "m"}, "models", "is a LoRA")
    refused(merge, {"models": ["demo", other], "destination": f"{FOLDER}/other-sd1"}, "destination",
            "exists already")
    refused(merge, {"models": ["demo", other], "destination": "../escape"}, "destination", "leaves it")
    refused("/api/v1/admin/models/convert", {"model": other, "destination": "c"}, "model",
            "only single-file checkpoints")
    refused("/api/v1/admin/models/convert", {"model": single, "destination": ""}, "destination",
            "give the new folder")
    refused("/api/v1/admin/models/convert", {"model": single, "destination": "c", "dtype": "fp8"}, "dtype",
            "'source'")
    refused(merge, {"models": ["demo", other], "destination": "m", "dtype": 16}, "dtype", "'fp16', 'bf16' or 'fp32'")
    assert client.post(merge, headers=user.headers, json={"models": ["demo", other],
                                                           "destination": "m"}).status_code == 403
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(ModelJob)
                                 .where(ModelJob.destination.in_(["m", "c", "../escape"]))) == 0
