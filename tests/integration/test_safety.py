"""The image check (DAYDREAM_SAFETY, worker/safety.py) in real worker processes, each
with an instance of its own and a tiny classifier built here (tests/safety_model.py,
run as a script): one whose head says "nsfw" for every picture, one that says "normal".

- flag: the images are kept but held: their files answer 404 to the owner and to
  strangers, staff open them and release (the owner sees it) or delete (gone, audited);
- block: the images are not kept, the task is refunded (balance and ledger rows);
- on, without a classifier: the worker takes no task (it stays queued), /healthz and
  Admin → Queue say why; a classifier dropped into the folder is picked up without a
  restart, and a "normal" verdict leaves the images visible."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import redis
import sqlalchemy as sa
from rq import Queue, Worker

from extensions import db
from models import AuditEntry, Image, Ledger, Task
from tests.helpers import ROOT, WorkerProcess, instance_env, make_app, wait_for
from tests.integration.helpers import ApiUser, make_staff, sign_in

SAFETY_BUILDER = ROOT / "tests" / "safety_model.py"


def safety_classifiers(*builds: tuple) -> None:
    """Build tiny classifiers, each (folder, "flag": every picture unsafe, or "pass": none),
    in one process."""
    args = [str(part) for build in builds for part in build]
    subprocess.run([sys.executable, str(SAFETY_BUILDER), *args], check=True, cwd=ROOT,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, timeout=300)


class SafetyStack:
    def __init__(self, tmp_path_factory, redis_url, models_path, name: str, setting: str):
        self.instance = tmp_path_factory.mktemp(name)
        self.safety_path = self.instance / "safety"
        self.env = instance_env(self.instance, redis_url, models_path, DAYDREAM_SAFETY=setting,
                                DAYDREAM_SAFETY_PATH=self.safety_path, DAYDREAM_SAFETY_RETRY="0.3",
                                DAYDREAM_HEARTBEAT_INTERVAL="0.3", DAYDREAM_STARTING_TOKENS=200,
                                # (no reconciler turn during a test: one test moves a task itself)
                                DAYDREAM_RECONCILE_INTERVAL=3600)
        self.app = make_app(self.env)
        self.worker = WorkerProcess(self.env, self.instance / "worker.log")
        self.client = self.app.test_client()
        self.users = 0

    def user(self, prefix: str) -> ApiUser:
        self.users += 1
        return ApiUser(self.client, f"{prefix}{self.users}")


@pytest.fixture(scope="module")
def safety_stacks(tmp_path_factory, redis_url, models_path):
    """Three workers, started together: flag and block with the flag-everything
    classifier, and flag with an empty classifier folder."""
    flag = SafetyStack(tmp_path_factory, redis_url, models_path, "safetyflag", "flag")
    block = SafetyStack(tmp_path_factory, redis_url, models_path, "safetyblock", "block")
    missing = SafetyStack(tmp_path_factory, redis_url, models_path, "safetymissing", "flag")
    safety_classifiers((flag.safety_path / "tiny-nsfw", "flag"),
                       (block.safety_path, "flag"),  # the folder itself may be the model folder
                       (missing.instance / "staging", "pass"))  # dropped in by a test
    stacks = {"flag": flag, "block": block, "missing": missing}
    for stack in stacks.values():
        stack.worker.launch()
    try:
        flag.worker.wait_ready(180)
        block.worker.wait_ready(180)
        yield stacks
    finally:
        for stack in stacks.values():
            stack.worker.stop()


def safety_staff(stack: SafetyStack, name: str) -> dict:
    return make_staff(stack.app, f"{name}{stack.users}")


def image_files(stack: SafetyStack) -> list:
    return sorted((stack.instance / "images").rglob("*.png"))


def test_flag_holds_every_image_from_its_owner_until_staff_decide(safety_stacks):
    stack = safety_stacks["flag"]
    owner, stranger = stack.user("held"), stack.user("peek")
    staff_number = stack.users
    staff = safety_staff(stack, "mod")
    task = owner.wait_task(owner.submit(samples=2, seed=7).get_json()["id"], timeout=120)
    assert task["state"] == "done", task
    images = task["images"]
    assert [img["review"] for img in images] == ["held", "held"]
    assert len(image_files(stack)) == 2  # kept on disk
    with stack.app.app_context():
        labels = db.session.scalars(sa.select(Image.safety_label).where(Image.task_id == task["id"])).all()
    assert labels == ["nsfw 1.00", "nsfw 1.00"]

    first, second = images[0]["id"], images[1]["id"]
    for who in (owner, stranger):
        for variant in ("full", "thumbnail", "metadata"):
            assert who.get(f"/api/v1/images/{first}/{variant}").status_code == 404
    # The owner's gallery lists them (a placeholder card), but cannot publish or zip them.
    listed = owner.get("/api/v1/images").get_json()["items"]
    assert {i["id"]: i["review"] for i in listed} == {first: "held", second: "held"}
    assert owner.client.patch(f"/api/v1/images/{first}", json={"public": True},
                              headers=owner.headers).status_code == 404
    assert owner.post("/api/v1/images/bulk", json={"action": "public", "ids": [first, second]}).get_json()["done"] == 0
    assert owner.get(f"/api/v1/tasks/{task['id']}/archive").status_code == 409

    # Staff list them and open them; nobody else may.
    held = stack.client.get("/api/v1/admin/moderation/held", headers=staff).get_json()
    assert held["total"] == 2 and {i["id"] for i in held["items"]} == {first, second}
    assert held["items"][0]["owner"]["username"] == owner.username
    thumb = stack.client.get(held["items"][0]["thumbnail_url"], headers=staff)
    assert thumb.status_code == 200 and thumb.mimetype == "image/webp"
    assert stack.client.get(f"/api/v1/admin/moderation/held/{first}/full", headers=staff).mimetype == "image/png"
    assert owner.get(f"/api/v1/admin/moderation/held/{first}/full").status_code == 403
    assert owner.post(f"/api/v1/admin/moderation/held/{first}/release", json={}).status_code == 403

    # Release: the owner sees it as any other image.
    released = stack.client.post(f"/api/v1/admin/moderation/held/{first}/release",
                                 json={"reason": "a lighthouse, nothing else"}, headers=staff)
    assert released.status_code == 200 and released.get_json()["review"] == "released"
    full = owner.get(f"/api/v1/images/{first}/full")
    assert full.status_code == 200 and full.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert stranger.get(f"/api/v1/images/{first}/full").status_code == 404
    again = stack.client.post(f"/api/v1/admin/moderation/held/{first}/release", json={}, headers=staff)
    assert again.status_code == 404

    # Delete: row and files gone, the owner's task says so.
    gone = stack.client.delete(f"/api/v1/admin/moderation/held/{second}?reason=not+for+school", headers=staff)
    assert gone.status_code == 204
    assert len(image_files(stack)) == 1
    after = owner.get(f"/api/v1/tasks/{task['id']}").get_json()
    assert [i["id"] for i in after["images"]] == [first]
    assert "removed by staff" in after["error"] and after["state"] == "done"
    assert stack.client.get("/api/v1/admin/moderation/held", headers=staff).get_json()["total"] == 0
    with stack.app.app_context():
        rows = db.session.execute(sa.select(AuditEntry.action, AuditEntry.target_id, AuditEntry.reason)
                                  .where(AuditEntry.action.like("moderation.%"))
                                  .order_by(AuditEntry.id)).all()
    assert [tuple(r) for r in rows] == [("moderation.release", first, "a lighthouse, nothing else"),
                                        ("moderation.delete", second, "not for school")]
    # Admin → Moderation has the section (a browser session: the pages want one).
    browser = stack.app.test_client()
    sign_in(browser, f"mod{staff_number}", "a staff password")
    page = browser.get("/admin/moderation")
    assert page.status_code == 200 and b'id="moderation-held"' in page.data
    assert b"js/pages/admin-moderation-held.js" in page.data


def test_block_keeps_no_image_and_refunds_the_task(safety_stacks):
    stack = safety_stacks["block"]
    owner = stack.user("blocked")
    before = owner.me()["tokens"]
    task = owner.wait_task(owner.submit(samples=2, seed=3).get_json()["id"], timeout=120)
    assert task["state"] == "failed" and task["refunded"] is True, task
    assert task["images"] == [] and "withheld by the image check" in task["error"]
    assert owner.me()["tokens"] == before
    with stack.app.app_context():
        kinds = db.session.scalars(sa.select(Ledger.kind).where(Ledger.task_id == task["id"])
                                   .order_by(Ledger.id)).all()
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Image)) == 0
    assert kinds == ["debit", "refund"]
    assert image_files(stack) == []


def test_block_refunds_the_share_of_the_images_it_withheld(safety_stacks):
    """A task of 4 whose 1 image was withheld: done, with a message, refunded a quarter
    of its cost (rounded down) in one ledger row. (The worker's own call of
    tasks.finish_checked, made here on a task no worker can take: the block worker's
    classifier withholds all.)"""
    from services.generation import tasks as task_service

    stack = safety_stacks["missing"]  # its worker takes no task
    owner = stack.user("share")
    before = owner.me()["tokens"]
    submitted = owner.submit(samples=4, steps=6).get_json()
    cost = submitted["cost"]
    assert cost >= 4
    with stack.app.app_context():
        task = task_service.start_task(submitted["id"], "a-test")
        assert task_service.finish_checked(task, 1) is True
        row = db.session.scalar(sa.select(Ledger).where(Ledger.task_id == task.id, Ledger.kind == "refund"))
        assert row.delta == cost * 1 // 4
        assert db.session.get(Task, task.id).state == "done"
    after = owner.get(f"/api/v1/tasks/{submitted['id']}").get_json()
    assert after["error"].startswith("1 of 4 images was withheld by the image check")
    assert owner.me()["tokens"] == before - cost + cost // 4
    assert task_service.share_of(10, 3, 3) == 10 and task_service.share_of(5, 4, 1) == 1


def test_without_its_classifier_a_worker_takes_no_task_until_one_is_dropped_in(safety_stacks):
    stack = safety_stacks["missing"]
    owner = stack.user("waits")
    staff = safety_staff(stack, "ops")
    wanted = f"missing: no image classifier in {stack.safety_path}"

    def health():
        body = stack.client.get("/healthz").get_json()
        return body if body.get("safety") == wanted else None

    body = wait_for(health, 120, interval=0.2, message="/healthz to say the classifier is missing")
    assert body["workers"] == 1 and body["workers_ready"] == 0
    [worker] = stack.client.get("/api/v1/admin/queue", headers=staff).get_json()["workers"]
    assert worker["safety"] == wanted

    task_id = owner.submit(seed=11).get_json()["id"]
    conn = redis.Redis.from_url(stack.env["REDIS_URL"])
    rq_queue = Queue(stack.env["DAYDREAM_QUEUE"], connection=conn)
    # It never took a job: not registered with RQ, the job waits, the task is queued.
    assert not [w for w in Worker.all(queue=rq_queue) if w.pid == stack.worker.proc.pid]
    assert rq_queue.count >= 1
    assert owner.get(f"/api/v1/tasks/{task_id}").get_json()["state"] == "queued"
    assert stack.worker.proc.poll() is None and "taking no tasks" in stack.worker.output()

    # A classifier dropped into the folder: the worker loads it and serves the task. Its
    # verdict is "normal": the images are the owner's as any other.
    stack.safety_path.mkdir(exist_ok=True)
    (stack.instance / "staging").rename(stack.safety_path / "tiny-normal")  # dropped in at once
    task = owner.wait_task(task_id, timeout=120)
    assert task["state"] == "done" and task["error"] is None, task
    [image] = task["images"]
    assert image["review"] is None
    assert owner.get(f"/api/v1/images/{image['id']}/full").status_code == 200
    with stack.app.app_context():
        assert db.session.get(Image, image["id"]).safety_label == "normal 1.00"
    def serving():
        body = stack.client.get("/healthz").get_json()
        return body if body["safety"] == "flag" else None

    assert wait_for(serving, 10, message="/healthz to say the worker serves")["workers_ready"] == 1


def test_flag_leaves_a_held_image_out_of_the_compatibility_answers(safety_stacks):
    stack = safety_stacks["flag"]
    caller = stack.user("webui")
    answer = caller.post("/sdapi/v1/txt2img", json={"prompt": "a red kite", "steps": 2, "width": 64,
                                                    "height": 64, "batch_size": 1})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["images"] == []  # held for review: staff's only
    [task] = caller.get("/api/v1/tasks").get_json()["items"]
    assert task["state"] == "done" and [i["review"] for i in task["images"]] == ["held"]
