"""What a submit may and may not do: tokens, validation, idempotency, cancel, ownership."""
from __future__ import annotations

import redis
import sqlalchemy as sa

from extensions import db
from models import Ledger, Task
from services.accounts.credits import ledger_balance


def queue_length(app) -> int:
    from rq import Queue

    return Queue(app.config["QUEUE_NAME"], connection=redis.Redis.from_url(app.config["REDIS_URL"])).count


def test_not_enough_tokens_is_402_and_nothing_is_queued(idle_app, make_idle_user):
    user = make_idle_user()
    before, length = user.me()["tokens"], queue_length(idle_app)
    response = user.submit(width=768, height=768, steps=150, samples=4)  # 28 tokens
    assert response.status_code == 402
    error = response.get_json()["error"]
    assert error["code"] == "not_enough_tokens" and "28" in error["message"]
    assert user.me()["tokens"] == before
    assert queue_length(idle_app) == length
    assert user.get("/api/v1/tasks").get_json()["total"] == 0


def test_a_debit_is_a_ledger_row_and_the_balance_is_their_sum(idle_app, make_idle_user):
    user = make_idle_user()
    task = user.submit(steps=50, width=512, height=512, samples=3).get_json()
    assert task["cost"] == 3
    me = user.me()
    assert me["tokens"] == 17
    with idle_app.app_context():
        from models import User

        owner = db.session.scalar(sa.select(User).where(User.uuid == me["id"]))
        assert ledger_balance(owner.id) == 17
        kinds = db.session.scalars(sa.select(Ledger.kind).where(Ledger.user_id == owner.id)
                                   .order_by(Ledger.id)).all()
        assert kinds == ["starting_grant", "debit"]


def test_invalid_parameters_are_422_naming_the_field(make_idle_user):
    user = make_idle_user()
    cases = [({"prompt": ""}, "prompt"), ({"width": 100}, "width"), ({"height": 4096}, "height"),
             ({"steps": 0}, "steps"), ({"guidance": "lots"}, "guidance"), ({"samples": 9}, "samples"),
             ({"seed": -1}, "seed"), ({"scheduler": "nope"}, "scheduler"), ({"model": "nope"}, "model")]
    for params, field in cases:
        response = user.submit(**params)
        assert response.status_code == 422, (params, response.get_json())
        assert response.get_json()["error"]["field"] == field
        assert field in response.get_json()["error"]["message"]
    bad_json = user.post("/api/v1/tasks", data="{not json", content_type="application/json")
    assert bad_json.status_code == 400
    assert user.me()["tokens"] == 20  # nothing was charged


def test_the_same_idempotency_key_returns_the_same_task(make_idle_user):
    user = make_idle_user()
    first = user.submit(headers={"Idempotency-Key": "abc-1"})
    again = user.submit(headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 202
    assert first.get_json()["id"] == again.get_json()["id"]
    assert user.me()["tokens"] == 19
    other = user.submit(headers={"Idempotency-Key": "abc-2"})
    assert other.get_json()["id"] != first.get_json()["id"]


def test_cancel_a_queued_task_refunds_it_once(idle_app, make_idle_user):
    user = make_idle_user()
    task = user.submit().get_json()
    assert task["position"] is not None
    assert user.me()["tokens"] == 19
    response = user.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert response.status_code == 200
    assert response.get_json()["state"] == "canceled" and response.get_json()["refunded"]
    assert user.me()["tokens"] == 20
    again = user.post(f"/api/v1/tasks/{task['id']}/cancel")
    assert again.status_code == 409
    assert user.me()["tokens"] == 20
    with idle_app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Ledger).where(
            Ledger.task_id == task["id"], Ledger.kind == "refund")) == 1
        from rq import Queue

        q = Queue(idle_app.config["QUEUE_NAME"], connection=redis.Redis.from_url(idle_app.config["REDIS_URL"]))
        assert task["id"] not in q.get_job_ids()


def test_another_users_task_and_image_are_404(make_user):
    owner, stranger = make_user(), make_user()
    task = owner.wait_task(owner.submit(steps=2).get_json()["id"])
    assert task["state"] == "done"
    image = task["images"][0]
    for path in (f"/api/v1/tasks/{task['id']}", image["url"], image["thumbnail_url"],
                 image["metadata_url"], f"/api/v1/images/{image['id']}"):
        assert owner.get(path).status_code == 200, path
        response = stranger.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] == "not_found"
    assert stranger.post(f"/api/v1/tasks/{task['id']}/cancel").status_code == 404


def test_the_api_needs_a_signed_in_user(client):
    for method, path in (("get", "/api/v1/me"), ("get", "/api/v1/tasks"), ("post", "/api/v1/tasks"),
                         ("get", "/api/v1/queue"), ("get", "/api/v1/images/x/full")):
        response = getattr(client, method)(path)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] == "not_signed_in"
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer dd_wrong"})
    assert bad.status_code == 401


def test_api_tokens_list_and_revoke(make_idle_user):
    user = make_idle_user()
    tokens = user.get("/api/v1/auth/tokens").get_json()["items"]
    assert [t["name"] for t in tokens] == ["tests"] and "token" not in tokens[0]
    extra = user.post("/api/v1/auth/tokens", json={"login": user.username, "password": user.password,
                                                   "name": "script"}).get_json()
    headers = {"Authorization": f"Bearer {extra['token']}"}
    assert user.client.get("/api/v1/me", headers=headers).status_code == 200
    assert user.client.delete(f"/api/v1/auth/tokens/{extra['id']}", headers=user.headers).status_code == 204
    assert user.client.get("/api/v1/me", headers=headers).status_code == 401
    wrong = user.post("/api/v1/auth/tokens", json={"login": user.username, "password": "nope",
                                                   "name": "x"})
    assert wrong.status_code == 401


def test_healthz_reports_db_redis_and_workers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"db": "ok", "redis": "ok", "workers": 1, "workers_ready": 1,
                                   "archive_workers": 1, "safety": "off", "disk": "ok"}


def test_queue_status_shows_your_position(make_idle_user):
    user = make_idle_user()
    user.submit()
    status = user.get("/api/v1/queue").get_json()
    assert status["queued"] >= 1 and status["your_position"] >= 1 and status["workers"] == 0


def test_the_openapi_document_lists_every_api_route(app, client):
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    import re

    documented = {re.sub(r"\{[^}]+\}", "{id}", path) for path in doc["paths"]}
    routes = {re.sub(r"<(?:\w+:)?\w+>", "{id}", rule.rule.removeprefix("/api/v1"))
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")}
    assert routes - {"/openapi.json"} == documented
