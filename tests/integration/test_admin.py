"""The staff pages and API: refused to everyone else; users (search, grants and revokes
with reasons, tiers, roles, deactivation, deletion with files); the last staff account is
protected; sensitive actions need a recent sign-in; vouchers; the live queue and workers."""
from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from tests.helpers import unique
from tests.integration.helpers import ApiUser, add_image, make_staff, sign_in, user_row

STAFF_PASSWORD = "a staff password"

ADMIN_API = [
    ("get", "/api/v1/admin/users"), ("get", "/api/v1/admin/users/x"),
    ("get", "/api/v1/admin/users/x/ledger"), ("patch", "/api/v1/admin/users/x"),
    ("delete", "/api/v1/admin/users/x"), ("post", "/api/v1/admin/vouchers"),
    ("get", "/api/v1/admin/vouchers"), ("get", "/api/v1/admin/vouchers/unredeemed.csv"),
    ("get", "/api/v1/admin/queue"), ("post", "/api/v1/admin/tasks/x/cancel"),
    ("get", "/api/v1/admin/models"), ("post", "/api/v1/admin/models/scan"),
    ("patch", "/api/v1/admin/models/demo"),
]
ADMIN_PAGES = ["/admin", "/admin/", "/admin/users", "/admin/vouchers", "/admin/queue", "/admin/models"]


@pytest.fixture(scope="module")
def office(tmp_path_factory, redis_url, models_path):
    """An app with a staff account (no worker: tasks stay queued)."""
    from tests.helpers import instance_env, make_app

    app = make_app(instance_env(tmp_path_factory.mktemp("office"), redis_url, models_path))
    app.staff_headers = make_staff(app, "chief", STAFF_PASSWORD)
    return app


@pytest.fixture
def staff_client(office):
    client = office.test_client()
    client.csrf = sign_in(client, "chief", STAFF_PASSWORD)
    return client


def patch_user(client, user_id, headers=None, **data):
    return client.patch(f"/api/v1/admin/users/{user_id}", json=data, headers=headers or {})


@pytest.mark.parametrize("method, path", ADMIN_API)
def test_every_admin_api_refuses_a_user_and_a_stranger(office, method, path):
    client = office.test_client()
    user = ApiUser(client, unique("nosy"))
    response = getattr(client, method)(path, json={}, headers=user.headers)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "forbidden"
    anonymous = getattr(office.test_client(), method)(path, json={})
    assert anonymous.status_code == 401


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_every_admin_page_refuses_a_user_and_shows_to_staff(office, staff_client, path):
    client = office.test_client()
    user = ApiUser(client, unique("peek"))
    sign_in(client, user.username, user.password)
    assert client.get(path).status_code == 403
    assert office.test_client().get(path).status_code == 302  # not signed in: to /login
    page = staff_client.get(path)
    assert page.status_code == 200
    assert b'aria-label="Staff"' in page.data  # the staff sub-navigation


def test_staff_find_users_and_see_their_numbers(office):
    client = office.test_client()
    staff = office.staff_headers
    tag = unique("findme")
    users = [ApiUser(client, f"{tag}{n}") for n in range(3)]
    users[0].submit(samples=2)
    add_image(office, user_row(office, users[0].username).id)
    found = client.get(f"/api/v1/admin/users?q={tag.upper()}&limit=2", headers=staff).get_json()
    assert found["total"] == 3 and len(found["items"]) == 2
    rest = client.get(f"/api/v1/admin/users?q={tag}&limit=2&offset=2", headers=staff).get_json()
    rows = {u["username"]: u for u in found["items"] + rest["items"]}
    first = rows[users[0].username]
    assert (first["tokens"], first["tasks"], first["images"], first["tier"], first["role"]) == (18, 1, 1, "free", "user")
    assert first["active"] is True and first["last_seen_at"]
    by_id = client.get(f"/api/v1/admin/users?q={users[1].data['id']}", headers=staff).get_json()
    assert [u["username"] for u in by_id["items"]] == [users[1].username]


def test_staff_grant_and_revoke_tokens_with_a_reason_in_the_ledger(office):
    client = office.test_client()
    staff = office.staff_headers
    user = ApiUser(client, unique("gifted"))
    granted = patch_user(client, user.data["id"], staff, tokens_delta=30, reason="contest prize")
    assert granted.status_code == 200 and granted.get_json()["tokens"] == 50
    revoked = patch_user(client, user.data["id"], staff, tokens_delta=-45, reason="refund abuse")
    assert revoked.get_json()["tokens"] == 5
    rows = user.get("/api/v1/me/ledger").get_json()["items"]
    assert [(r["kind"], r["delta"], r["balance_after"]) for r in rows[:2]] == [
        ("staff_revoke", -45, 5), ("staff_grant", 30, 50)]
    assert rows[1]["note"] == "contest prize (by chief)"
    too_much = patch_user(client, user.data["id"], staff, tokens_delta=-6, reason="x")
    assert too_much.status_code == 422 and "revoke at most 5" in too_much.get_json()["error"]["message"]
    no_reason = patch_user(client, user.data["id"], staff, tokens_delta=5)
    assert no_reason.status_code == 422 and no_reason.get_json()["error"]["field"] == "reason"
    assert patch_user(client, user.data["id"], staff, tokens_delta="5", reason="x").status_code == 422
    assert user.me()["tokens"] == 5
    ledger = client.get(f"/api/v1/admin/users/{user.data['id']}/ledger", headers=staff).get_json()
    assert ledger["total"] == 3


def test_moving_to_a_plan_grants_its_allowance_at_once_and_moving_down_takes_nothing(office):
    client = office.test_client()
    staff = office.staff_headers
    user = ApiUser(client, unique("upgraded"))
    assert user.me()["tokens"] == 20
    moved = patch_user(client, user.data["id"], staff, tier="plus")
    assert moved.status_code == 200 and moved.get_json()["tokens"] == 420
    [row] = user.get("/api/v1/me/ledger").get_json()["items"][:1]
    assert (row["kind"], row["delta"], row["balance_after"]) == ("allowance", 400, 420)
    assert "Plus allowance" in row["note"] and "from Free to Plus" in row["note"]
    assert patch_user(client, user.data["id"], staff, tier="plus").get_json()["tokens"] == 420  # no change, no grant
    down = patch_user(client, user.data["id"], staff, tier="free").get_json()
    assert down["tier"] == "free" and down["tokens"] == 440  # nothing taken; the free allowance starts
    with office.app_context():
        from services.accounts.credits import check_ledger

        assert check_ledger() == []


def test_deactivating_cancels_and_refunds_queued_tasks(office):
    client = office.test_client()
    staff = office.staff_headers
    user = ApiUser(client, unique("paused"))
    tasks = [user.submit().get_json()["id"] for _ in range(2)]
    assert user.me()["tokens"] == 18
    assert patch_user(client, user.data["id"], staff, active=False).get_json()["active"] is False
    assert user.get("/api/v1/me").status_code == 401  # their token stops working
    with office.app_context():
        from extensions import db
        from models import Task

        states = db.session.execute(sa.select(Task.state, Task.refunded).where(Task.id.in_(tasks))).all()
        assert sorted(states) == [("canceled", True), ("canceled", True)]
    assert user_row(office, user.username).tokens == 20
    assert patch_user(client, user.data["id"], staff, active=True).status_code == 200
    assert user.get("/api/v1/me").status_code == 200  # API tokens work again once reactivated


def test_staff_delete_a_user_with_their_images_and_files(office):
    client = office.test_client()
    staff = office.staff_headers
    user = ApiUser(client, unique("doomed"))
    files = add_image(office, user_row(office, user.username).id)
    assert all(p.exists() for p in files)
    assert client.delete("/api/v1/admin/users/nobody", headers=staff).status_code == 404
    assert client.delete(f"/api/v1/admin/users/{user.data['id']}", headers=staff).status_code == 204
    assert not any(p.exists() for p in files)
    assert user_row(office, user.username) is None


def test_roles_change_and_the_last_staff_account_is_protected(tmp_path, redis_url, models_path):
    from tests.helpers import instance_env, make_app

    app = make_app(instance_env(tmp_path / "alone", redis_url, models_path))
    staff = make_staff(app, "solo", STAFF_PASSWORD)
    client = app.test_client()
    me = client.get("/api/v1/me", headers=staff).get_json()["id"]
    for action in (lambda: patch_user(client, me, staff, role="user"),
                   lambda: patch_user(client, me, staff, active=False),
                   lambda: client.delete(f"/api/v1/admin/users/{me}", headers=staff),
                   lambda: client.delete("/api/v1/me", json={"password": STAFF_PASSWORD}, headers=staff)):
        refused = action()
        assert refused.status_code == 409, refused.get_json()
        assert refused.get_json()["error"]["code"] == "last_staff"
    assert client.get("/api/v1/me", headers=staff).get_json()["role"] == "staff"

    helper = ApiUser(client, "helper")
    promoted = patch_user(client, helper.data["id"], staff, role="staff")
    assert promoted.get_json()["role"] == "staff"
    assert helper.get("/api/v1/admin/users").status_code == 200
    assert patch_user(client, me, staff, role="user").get_json()["role"] == "user"  # now allowed
    assert client.get("/api/v1/admin/users", headers=staff).status_code == 403
    assert patch_user(client, helper.data["id"], helper.headers, role="user").status_code == 409
    assert patch_user(client, helper.data["id"], helper.headers, role="boss").status_code == 422


def test_sensitive_actions_need_a_recent_sign_in(office, staff_client):
    user = ApiUser(office.test_client(), unique("target"))
    headers = {"X-CSRFToken": staff_client.csrf}
    assert patch_user(staff_client, user.data["id"], headers, tokens_delta=1, reason="fresh").status_code == 200
    with staff_client.session_transaction() as session:
        session["auth_at"] = time.time() - 16 * 60
    stale = patch_user(staff_client, user.data["id"], headers, tokens_delta=1, reason="stale")
    assert stale.status_code == 403 and stale.get_json()["error"]["code"] == "reauth_required"
    assert staff_client.post("/api/v1/admin/vouchers", json={"tokens": 1, "count": 1},
                             headers=headers).status_code == 403
    assert staff_client.delete(f"/api/v1/admin/users/{user.data['id']}", headers=headers).status_code == 403
    # Reading is fine without it.
    assert staff_client.get("/api/v1/admin/users").status_code == 200
    wrong = staff_client.post("/api/v1/auth/reauth", json={"password": "not it at all"}, headers=headers)
    assert wrong.status_code == 422
    assert staff_client.post("/api/v1/auth/reauth", json={"password": STAFF_PASSWORD},
                             headers=headers).status_code == 204
    assert patch_user(staff_client, user.data["id"], headers, tokens_delta=1, reason="again").status_code == 200
    assert user.me()["tokens"] == 22


def test_the_queue_shows_every_task_with_owners_and_staff_cancel_any(office):
    client = office.test_client()
    staff = office.staff_headers
    a, b = ApiUser(client, unique("qa")), ApiUser(client, unique("qb"))
    first = a.submit(prompt="first in line").get_json()
    b.submit(prompt="second in line")
    view = client.get("/api/v1/admin/queue", headers=staff).get_json()
    mine = {t["prompt"]: t for t in view["items"] if t["owner"]["username"] in (a.username, b.username)}
    assert set(mine) == {"first in line", "second in line"}
    assert mine["first in line"]["owner"]["username"] == a.username
    assert mine["first in line"]["state"] == "queued" and mine["first in line"]["position"] >= 1
    assert {"width", "steps", "cost", "progress"} <= set(mine["first in line"])
    assert view["queued"] >= 2 and isinstance(view["workers"], list)
    canceled = client.post(f"/api/v1/admin/tasks/{first['id']}/cancel", headers=staff)
    assert canceled.get_json()["state"] == "canceled"
    assert a.me()["tokens"] == 20
    after = client.get("/api/v1/admin/queue", headers=staff).get_json()
    assert first["id"] not in {t["id"] for t in after["items"]}


def test_the_queue_lists_the_live_workers(app, make_user):
    """With the real worker of the integration stack."""
    from services.accounts.users import create_staff

    name = unique("ops")
    with app.app_context():
        create_staff(name, f"{name}@example.com", STAFF_PASSWORD)
    client = app.test_client()
    token = client.post("/api/v1/auth/tokens", json={"login": name, "password": STAFF_PASSWORD,
                                                     "name": "t"}).get_json()["token"]
    user = make_user()
    user.wait_task(user.submit().get_json()["id"])
    workers = client.get("/api/v1/admin/queue", headers={"Authorization": f"Bearer {token}"}).get_json()["workers"]
    ours = [w for w in workers if w["pid"] == app.worker.proc.pid]
    assert len(ours) == 1, workers
    worker = ours[0]
    assert worker["alive"] is True and worker["model"] == "demo" and worker["jobs_done"] >= 1
    assert worker["last_heartbeat"] and worker["last_heartbeat_age_s"] < 600


def test_voucher_batches_are_validated(office):
    client = office.test_client()
    staff = office.staff_headers
    for body, field in (({"tokens": 0, "count": 1}, "tokens"), ({"tokens": 5, "count": 0}, "count"),
                        ({"tokens": 5, "count": 5000}, "count"), ({"tokens": "5", "count": 1}, "tokens")):
        response = client.post("/api/v1/admin/vouchers", json=body, headers=staff)
        assert response.status_code == 422 and response.get_json()["error"]["field"] == field
