"""Installing models from Admin → Models (services/generation/installs.py) through the real
archive worker, from an HTTPS server this module starts on 127.0.0.1 (a self-signed
certificate trusted through DAYDREAM_INSTALL_CA_BUNDLE; the host allowed by
DAYDREAM_INSTALL_ALLOW_HOSTS): a hub repo id from a mirror of the hub's layout and a
single .safetensors file by URL both install, are scanned and generate; a cut connection
resumes with Range; progress arrives over Socket.IO; a wrong checksum, a redirect to the
metadata address, a too-large file and a cancel each end with a reason and leave nothing
behind (and a 404 is asked once, not again); a busy server (503, 502) is tried again, the
job saying so meanwhile; a failed install is started again from its row (retry); the
archive workers' reconciler deletes the rows of jobs that ended long ago; pickles,
http:// and malformed ids are refused at once."""
from __future__ import annotations

import hashlib

import pytest
import requests

from tests.helpers import model_install_setup, wait_for
from tests.integration.helpers import ApiUser, connect, csrf_from, make_staff

REPO = "tiny/sd1-install"


@pytest.fixture(scope="module")
def install(stack_factory, tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    server, settings, sources = model_install_setup(base)
    server.repos[REPO] = sources / "sd1"
    single = sources / "tiny-sd1.safetensors"
    stack = stack_factory(web=1, archiver=True, **settings)
    app, web = stack.app, stack.web(1)
    staff = make_staff(app, "installer", "installer password")
    session = requests.Session()
    token = csrf_from(session.get(web.url + "/login", timeout=30).content)
    session.post(web.url + "/login", timeout=30,
                 data={"login": "installer", "password": "installer password", "csrf_token": token})
    return {"app": app, "client": app.test_client(), "staff": staff, "server": server, "web": web,
            "session": session, "single": single.read_bytes(), "models": base / "install-models"}


def start(ctx, **body):
    return ctx["client"].post("/api/v1/admin/models/install", json=body, headers=ctx["staff"])


def job_end(ctx, job_id: str, timeout: float = 120) -> dict:
    def ended():
        job = ctx["client"].get(f"/api/v1/admin/model-jobs/{job_id}", headers=ctx["staff"]).get_json()
        return job if job["state"] in ("done", "failed", "cancelled") else None

    return wait_for(ended, timeout, interval=0.1, message=f"model job {job_id} to end")


def generate_with(ctx, model_id: str, username: str) -> dict:
    client = ctx["client"]
    enabled = client.patch(f"/api/v1/admin/models/{model_id}", json={"enabled": True}, headers=ctx["staff"])
    assert enabled.status_code == 200, enabled.get_json()
    user = ApiUser(client, username)
    response = user.submit(model=model_id, steps=2, seed=5)
    assert response.status_code == 202, response.get_json()
    task = user.wait_task(response.get_json()["id"], timeout=240)
    assert task["state"] == "done", task
    assert task["model"] == model_id and len(task["images"]) == 1
    return task


@pytest.mark.parametrize("body, field, words", [
    ({"source": "http://127.0.0.1/model.safetensors"}, "source", "https only"),
    ({"source": "https://example.com/v1-5-pruned.ckpt"}, "source", "unpickling"),
    ({"source": "https://example.com/model.pth"}, "source", "unpickling"),
    ({"source": "https://example.com/pytorch_model.bin"}, "source", "unpickling"),
    ({"source": "https://example.com/readme.txt"}, "source", ".safetensors or .gguf"),
    ({"source": "https://169.254.169.254/latest.safetensors"}, "source", "link-local"),
    ({"source": "not a repo"}, "source", "owner/name"),
    ({"source": "owner/../name"}, "source", "owner/name"),
    ({"source": "tiny/model", "files": ["weights.ckpt"]}, "files", "unpickling"),
    ({"source": "tiny/model", "variant": "fp16; rm"}, "variant", "variant"),
    ({"source": "https://example.com/m.safetensors", "sha256": "abc"}, "sha256", "64 hexadecimal"),
    ({"source": "https://example.com/m.safetensors", "revision": "main"}, "revision", "repo id only"),
    ({}, "source", "repo id"),
])
def test_what_cannot_be_installed_is_refused_at_once_with_the_reason(install, body, field, words):
    response = start(install, **body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()["error"]
    assert error["field"] == field and words in error["message"], error


def test_only_staff_install_and_see_the_jobs(install):
    user = ApiUser(install["client"], "curious-installer")
    assert user.post("/api/v1/admin/models/install", json={"source": REPO}).status_code == 403
    assert user.get("/api/v1/admin/model-jobs").status_code == 403


def test_a_hub_repo_installs_from_the_mirror_with_progress_events_and_generates(install):
    events = []
    sock = connect(install["web"], install["session"])
    sock.on("model_job", events.append)
    try:
        response = start(install, source=REPO, reason="the tiny test model")
        assert response.status_code == 202, response.get_json()
        job = job_end(install, response.get_json()["id"])
        wait_for(lambda: any(e["state"] == "done" for e in events), 10, message="the done event")
    finally:
        sock.disconnect()
    assert job["state"] == "done", job
    assert job["destination"] == "tiny--sd1-install" and job["model_id"]
    assert job["done_bytes"] == job["total_bytes"] > 0
    running = [e for e in events if e["id"] == job["id"] and e["state"] == "running"]
    assert running and any(0 < e["done_bytes"] < e["total_bytes"] for e in running) or len(running) >= 2
    folder = install["models"] / "tiny--sd1-install"
    assert (folder / "model_index.json").is_file() and (folder / "unet" / "config.json").is_file()
    assert not list((install["models"] / ".installing").glob("*"))
    model = next(m for m in install["client"].get("/api/v1/admin/models", headers=install["staff"])
                 .get_json()["items"] if m["id"] == job["model_id"])
    assert (model["family"], model["enabled"], model["spec"]) == ("sd1", False, "tiny--sd1-install")
    again = start(install, source=REPO)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "already_installed"
    generate_with(install, job["model_id"], "hubinstalluser")


def test_a_url_install_resumes_a_cut_connection_checks_the_sha256_and_generates(install):
    server, data = install["server"], install["single"]
    server.files["/files/tiny-sd1.safetensors"] = data
    server.cut_once["/files/tiny-sd1.safetensors"] = len(data) // 3
    response = start(install, source=server.url("/files/tiny-sd1.safetensors"),
                     sha256=hashlib.sha256(data).hexdigest())
    assert response.status_code == 202, response.get_json()
    job = job_end(install, response.get_json()["id"])
    assert job["state"] == "done", job
    ranges = [r for p, r in server.requests if p == "/files/tiny-sd1.safetensors"]
    assert ranges[0] is None and ranges[1] == f"bytes={len(data) // 3}-"
    installed = install["models"] / "tiny-sd1.safetensors"
    assert installed.read_bytes() == data and job["sha256"] == hashlib.sha256(data).hexdigest()
    assert not (install["models"] / "tiny-sd1.safetensors.part").exists()
    generate_with(install, job["model_id"], "urlinstalluser")


def test_a_wrong_checksum_a_redirect_to_the_metadata_address_and_a_full_disk_fail_with_the_reason(install):
    server = install["server"]
    server.files["/files/wrong.safetensors"] = install["single"]
    server.redirects["/files/meta.safetensors"] = "https://169.254.169.254/latest/meta.safetensors"
    server.claimed_size["/files/huge.safetensors"] = 10 ** 15
    cases = {"wrong.safetensors": ("sha256", "not the"), "meta.safetensors": ("link-local", "169.254.169.254"),
             "huge.safetensors": ("Not enough free disk space", "1000.0 TB"),
             "gone.safetensors": ("answered 404", "not found")}
    jobs = {}
    for name in cases:
        body = {"source": server.url(f"/files/{name}")}
        if name == "wrong.safetensors":
            body["sha256"] = "0" * 64
        response = start(install, **body)
        assert response.status_code == 202, response.get_json()
        jobs[name] = response.get_json()["id"]
    for name, words in cases.items():
        job = job_end(install, jobs[name])
        assert job["state"] == "failed" and all(w in job["error"] for w in words), job
        assert not (install["models"] / name).exists() and not (install["models"] / f"{name}.part").exists()
        # Final: asked once, not again (a checksum, a refused address, disk space, 404).
        assert len([p for p, _r in server.requests if p == f"/files/{name}"]) == 1, name
    audit = install["client"].get("/api/v1/admin/audit?action=models.install_end",
                                  headers=install["staff"]).get_json()
    ended = {row["target"]["id"]: row for row in audit["items"]}
    assert set(jobs.values()) <= set(ended)


def test_staff_cancel_a_running_install_and_its_part_file_goes(install):
    server = install["server"]
    server.files["/files/slow.safetensors"] = install["single"] * 4
    server.slow.add("/files/slow.safetensors")
    job_id = start(install, source=server.url("/files/slow.safetensors")).get_json()["id"]
    client, staff = install["client"], install["staff"]
    wait_for(lambda: client.get(f"/api/v1/admin/model-jobs/{job_id}", headers=staff).get_json()["done_bytes"] > 0,
             60, message="the slow download to start")
    cancelled = client.post(f"/api/v1/admin/model-jobs/{job_id}/cancel", json={"reason": "wrong file"}, headers=staff)
    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "cancelled"
    part = install["models"] / "slow.safetensors.part"
    wait_for(lambda: not part.exists(), 30, message="the .part to be removed")
    assert not (install["models"] / "slow.safetensors").exists()
    again = client.post(f"/api/v1/admin/model-jobs/{job_id}/cancel", json={}, headers=staff)
    assert again.status_code == 409
    rows = client.get("/api/v1/admin/audit?action=models.job_cancel", headers=staff).get_json()["items"]
    assert [(r["target"]["id"], r["reason"]) for r in rows if r["target"]["id"] == job_id] == [(job_id, "wrong file")]
    listed = client.get("/api/v1/admin/model-jobs", headers=staff).get_json()
    assert job_id in [j["id"] for j in listed["items"]] and listed["total"] >= 1


def test_a_job_whose_worker_died_is_failed_by_the_reconciler_and_a_queued_one_is_left(install):
    from datetime import timedelta

    from extensions import db
    from models import ModelJob, utcnow
    from services.generation import model_jobs

    app = install["app"]
    with app.app_context():
        old = utcnow() - timedelta(minutes=5)
        lost = ModelJob(kind="install", state="running", source="https://example.com/lost.safetensors",
                        destination="lost.safetensors", created_at=old, started_at=old)
        waiting = ModelJob(kind="install", state="queued", source="https://example.com/waiting.safetensors",
                           destination="waiting.safetensors", created_at=old)
        db.session.add_all([lost, waiting])
        db.session.commit()
        # Its RQ job waits in a queue no worker serves: still queued, so the row is left.
        from rq import Queue

        from services.core import keys, redis_client

        nobody = Queue("nobody-serves-" + waiting.id, connection=redis_client.connection())
        nobody.enqueue("worker.install_jobs.run_install", waiting.id, job_id=keys.model_job(waiting.id))
        lost_id, waiting_id = lost.id, waiting.id
        model_jobs.reconcile_lost()  # (or the archive worker's own reconciler, the same code, got there first)
        rows = {j.id: j for j in db.session.scalars(db.select(ModelJob).where(ModelJob.id.in_([lost_id, waiting_id])))}
        assert rows[lost_id].state == "failed" and "worker running this job stopped" in rows[lost_id].error
        assert rows[waiting_id].state == "queued"
        model_jobs.cancel(waiting_id)
        nobody.delete(delete_jobs=True)
        db.session.remove()


def test_a_busy_server_is_tried_again_and_the_job_says_so_meanwhile(install):
    server, data = install["server"], install["single"]
    path = "/files/busy-sd1.safetensors"
    server.files[path] = data
    server.fail_next[path] = [(503, {"Retry-After": "1"}), 502]
    server.cut_once[path] = len(data) // 3
    events = []
    sock = connect(install["web"], install["session"])
    sock.on("model_job", events.append)
    try:
        response = start(install, source=server.url(path), sha256=hashlib.sha256(data).hexdigest())
        assert response.status_code == 202, response.get_json()
        job_id = response.get_json()["id"]
        job = job_end(install, job_id)
        wait_for(lambda: any(e["id"] == job_id and e["state"] == "done" for e in events), 10, message="the done event")
    finally:
        sock.disconnect()
    # Staff saw why it waited, each time: the server's Retry-After, then the backoff (0.1 s,
    # then 0.05 s again once bytes had arrived: shown to a tenth of a second).
    notes = [e["options"]["stage"] for e in events if e["id"] == job_id and "stage" in e["options"]]
    assert notes[:2] == ["retrying in 1 s after 503", "retrying in 0.1 s after 502"], notes
    assert len(notes) == 3 and notes[2].startswith("retrying in 0.1 s after a connection failure ("), notes
    assert job["state"] == "done" and job["sha256"] == hashlib.sha256(data).hexdigest(), job
    assert "stage" not in job["options"] and job["model_id"]
    # 503, 502, a cut connection, then the rest from where the bytes stopped.
    assert [r for p, r in server.requests if p == path] == [None, None, None, f"bytes={len(data) // 3}-"]
    assert (install["models"] / "busy-sd1.safetensors").read_bytes() == data


def test_a_failed_install_is_started_again_from_its_row(install):
    from extensions import db
    from models import ModelJob

    server, client, staff = install["server"], install["client"], install["staff"]
    path = "/files/later-sd1.safetensors"
    sha = hashlib.sha256(install["single"]).hexdigest()
    first = start(install, source=server.url(path), sha256=sha).get_json()
    failed = job_end(install, first["id"])
    assert failed["state"] == "failed" and "404" in failed["error"], failed

    def retry(job_id, **body):
        return client.post(f"/api/v1/admin/model-jobs/{job_id}/retry", json=body, headers=staff)

    server.files[path] = install["single"]  # the file is there now
    again = retry(failed["id"], reason="the file is up now")
    assert again.status_code == 202, again.get_json()
    retried = again.get_json()
    assert retried["id"] != failed["id"] and retried["source"] == failed["source"]
    assert retried["options"] == {"type": "url", "sha256": sha, "retry_of": failed["id"]}
    done = job_end(install, retried["id"])
    assert done["state"] == "done" and done["model_id"] and done["sha256"] == sha, done
    rows = client.get("/api/v1/admin/audit?action=models.install", headers=staff).get_json()["items"]
    row = next(r for r in rows if r["target"]["id"] == retried["id"])
    assert row["reason"] == "the file is up now" and row["details"]["retry_of"] == failed["id"]

    # Only a failed or cancelled install, once nothing is in its way; else a 409 that says why.
    done_again = retry(done["id"]).get_json()["error"]
    assert done_again["code"] == "not_retryable" and "only a failed or cancelled install" in done_again["message"]
    assert retry(failed["id"]).get_json()["error"]["code"] == "already_installed"
    with install["app"].app_context():
        merge = ModelJob(kind="merge", state="failed", source="a,b", destination="merged/x", error="no")
        db.session.add(merge)
        db.session.commit()
        merge_id = merge.id
        db.session.remove()
    not_install = retry(merge_id)
    assert not_install.status_code == 409 and not_install.get_json()["error"]["code"] == "not_an_install"
    assert retry("no-such-job").status_code == 404
    user = ApiUser(client, "retry-curious")
    assert user.post(f"/api/v1/admin/model-jobs/{failed['id']}/retry", json={}).status_code == 403


def test_the_reconciler_deletes_the_rows_of_jobs_that_ended_long_ago(install):
    from datetime import timedelta

    from rq import Queue

    import qarchiver
    from extensions import db
    from models import ModelJob, utcnow
    from services.core import keys, redis_client

    with install["app"].app_context():
        old, recent = utcnow() - timedelta(days=31), utcnow() - timedelta(days=29)
        rows = {name: ModelJob(kind="install", state=state, source=f"https://example.com/{name}.safetensors",
                               destination=f"{name}.safetensors", created_at=when, finished_at=finished)
                for name, state, when, finished in [
                    ("old-done", "done", old, old), ("old-failed", "failed", old, old),
                    ("old-cancelled", "cancelled", old, old), ("ended-lately", "failed", old, recent),
                    ("recent-done", "done", recent, recent), ("old-queued", "queued", old, None)]}
        db.session.add_all(rows.values())
        db.session.commit()
        ids = {name: row.id for name, row in rows.items()}
        # The queued one's RQ job waits in a queue no worker serves: unfinished, it stays.
        nobody = Queue("nobody-serves-" + ids["old-queued"], connection=redis_client.connection())
        nobody.enqueue("worker.install_jobs.run_install", ids["old-queued"], job_id=keys.model_job(ids["old-queued"]))
        try:
            settled = qarchiver.reconcile_archives()  # the archive workers' reconciler round
            left = set(db.session.scalars(db.select(ModelJob.id).where(ModelJob.id.in_(ids.values()))))
            assert left == {ids["ended-lately"], ids["recent-done"], ids["old-queued"]}
            assert "model_jobs_pruned" in settled  # (the archive worker's own round may have come first)
        finally:
            from services.generation import model_jobs

            model_jobs.cancel(ids["old-queued"])
            nobody.delete(delete_jobs=True)
            db.session.remove()
