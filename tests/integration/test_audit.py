"""The staff audit trail: every staff action writes exactly one append-only row (who, what,
whom, when, why) in the transaction of the action; staff list and filter it in the API and
on Admin → Audit and download the same filter as CSV; everyone else is refused."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.helpers import unique
from tests.integration.helpers import ApiUser, add_image, make_staff, sign_in, user_row

AUDIT_STAFF_PASSWORD = "an auditor's password"


@pytest.fixture(scope="module")
def audit_office(tmp_path_factory, redis_url, models_path):
    """An app of its own (no worker) with a staff account, and the SDXL demo model beside
    the SD 1.x one (a second model to make the default)."""
    from tests.helpers import instance_env, make_app

    app = make_app(instance_env(tmp_path_factory.mktemp("audit"), redis_url, models_path,
                                DAYDREAM_DEMO_MODELS="sdxl"))
    app.staff_name = unique("auditor")
    app.staff_headers = make_staff(app, app.staff_name, AUDIT_STAFF_PASSWORD)
    return app


def audit_rows(app, **filters) -> list[dict]:
    response = app.test_client().get("/api/v1/admin/audit", query_string={"limit": 200, **filters},
                                     headers=app.staff_headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["items"]


def audit_count(app) -> int:
    from extensions import db
    from models import AuditEntry

    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(AuditEntry))


def audit_public_image(app, owner: ApiUser) -> str:
    """A public image of the owner's, as the gallery would have it."""
    from extensions import db
    from models import Image

    add_image(app, user_row(app, owner.username).id)
    with app.app_context():
        image = db.session.scalars(sa.select(Image).where(Image.user_id == user_row(app, owner.username).id)
                                   .order_by(Image.created_at.desc())).first()
        image.public = True
        db.session.commit()
        return image.id


def audit_other_model(app) -> str:
    models = app.test_client().get("/api/v1/admin/models", headers=app.staff_headers).get_json()["items"]
    return next(m["id"] for m in models if m["enabled"] and not m.get("default") and m["kind"] != "lora"
                and m["id"].startswith("demo"))


# Each action: (setup(app, client, staff) -> target id or None, do(app, client, staff, target, reason)
# -> the response, and the target id the row names (None: the setup's)).

def _user(app, client, staff):
    return ApiUser(client, unique("whom")).data["id"]


def _patch(**data):
    def do(app, client, staff, target, reason):
        return client.patch(f"/api/v1/admin/users/{target}", json={**data, "reason": reason}, headers=staff), None
    return do


def _deactivated(app, client, staff):
    target = _user(app, client, staff)
    assert client.patch(f"/api/v1/admin/users/{target}", json={"active": False}, headers=staff).status_code == 200
    return target


def _pending(app, client, staff):
    """An account waiting for approval, as DAYDREAM_REGISTRATION=approval makes them."""
    from extensions import db
    from models import User

    target = _user(app, client, staff)
    with app.app_context():
        db.session.scalar(sa.select(User).where(User.uuid == target)).pending = True
        db.session.commit()
    return target


def _approve(app, client, staff, target, reason):
    return client.post(f"/api/v1/admin/users/{target}/approve", json={"reason": reason}, headers=staff), None


def _delete_user(app, client, staff, target, reason):
    return client.delete(f"/api/v1/admin/users/{target}", json={"reason": reason}, headers=staff), None


def _reset_link(app, client, staff, target, reason):
    return client.post(f"/api/v1/admin/users/{target}/reset-link", json={"reason": reason}, headers=staff), None


def _vouchers(app, client, staff, target, reason):
    response = client.post("/api/v1/admin/vouchers", json={"tokens": 5, "count": 3, "note": "fair",
                                                            "reason": reason}, headers=staff)
    return response, response.get_json()["batch"]


def _scan(app, client, staff, target, reason):
    return client.post("/api/v1/admin/models/scan", json={"reason": reason}, headers=staff), ""


def _model(data, pick):
    def setup(app, client, staff):
        target = pick(app)
        if data.get("enabled") is True and not data.get("same"):  # to enable it, it must be off first
            client.patch(f"/api/v1/admin/models/{target}", json={"enabled": False}, headers=staff)
        return target

    def do(app, client, staff, target, reason):
        body = {k: v for k, v in data.items() if k != "same"}
        return client.patch(f"/api/v1/admin/models/{target}", json={**body, "reason": reason}, headers=staff), None
    return setup, do


def _lora(app):
    return "demo-lora-sd1"


def _image(app, client, staff):
    return audit_public_image(app, ApiUser(client, unique("painter")))


def _featured(hidden=None):
    def setup(app, client, staff):
        image_id = _image(app, client, staff)
        assert client.post("/api/v1/showcase", json={"image_id": image_id}, headers=staff).status_code == 201
        if hidden is not None:
            assert client.patch(f"/api/v1/showcase/{image_id}", json={"hidden": hidden},
                                headers=staff).status_code == 200
        return image_id
    return setup


def _feature(app, client, staff, target, reason):
    return client.post("/api/v1/showcase", json={"image_id": target, "reason": reason}, headers=staff), None


def _hide(hidden):
    def do(app, client, staff, target, reason):
        return client.patch(f"/api/v1/showcase/{target}", json={"hidden": hidden, "reason": reason},
                            headers=staff), None
    return do


def _unfeature(app, client, staff, target, reason):
    return client.delete(f"/api/v1/showcase/{target}", json={"reason": reason}, headers=staff), None


STAFF_ACTIONS = {
    "tokens.grant": (_user, _patch(tokens_delta=7), "user"),
    "tokens.revoke": (_user, _patch(tokens_delta=-3), "user"),
    "users.tier": (_user, _patch(tier="plus"), "user"),
    "users.role": (_user, _patch(role="staff"), "user"),
    "users.deactivate": (_user, _patch(active=False), "user"),
    "users.reactivate": (_deactivated, _patch(active=True), "user"),
    "users.delete": (_user, _delete_user, "user"),
    "users.reset_link": (_user, _reset_link, "user"),
    "users.approve": (_pending, _approve, "user"),
    "vouchers.batch": (lambda *a: None, _vouchers, "voucher_batch"),
    "models.scan": (lambda *a: None, _scan, "models"),
    "models.disable": (*_model({"enabled": False}, _lora), "model"),
    "models.enable": (*_model({"enabled": True}, _lora), "model"),
    "models.default": (*_model({"default": True}, audit_other_model), "model"),
    "models.update": (*_model({"enabled": True, "same": True}, lambda app: "demo"), "model"),
    "showcase.feature": (_image, _feature, "image"),
    "showcase.hide": (_featured(), _hide(True), "image"),
    "showcase.show": (_featured(hidden=True), _hide(False), "image"),
    "showcase.unfeature": (_featured(), _unfeature, "image"),
}


@pytest.mark.parametrize("action", sorted(STAFF_ACTIONS))
def test_audit_each_staff_action_writes_one_row_with_who_what_whom_and_why(audit_office, action):
    setup, do, target_type = STAFF_ACTIONS[action]
    client = audit_office.test_client()
    staff = audit_office.staff_headers
    target = setup(audit_office, client, staff)
    reason = unique("because ")
    before = audit_count(audit_office)
    response, named = do(audit_office, client, staff, target, reason)
    assert response.status_code in (200, 201, 204), response.get_data(as_text=True)[:300]
    assert audit_count(audit_office) == before + 1  # exactly one row, whatever else happened
    target = target if named is None else named
    [row] = audit_rows(audit_office, q=reason)
    assert row["action"] == action
    assert row["actor"]["username"] == audit_office.staff_name and row["actor"]["id"]
    assert row["reason"] == reason
    assert (row["target"]["type"], row["target"]["id"]) == (target_type, target or "")
    assert row["address"] == "127.0.0.1"
    made = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
    assert abs(datetime.now(timezone.utc) - made) < timedelta(minutes=2)


# The model jobs' rows (a start, an end, a cancel) come from jobs on the archive worker:
# test_model_install.py and test_model_ops.py check them where those jobs run.
MODEL_JOB_ACTIONS = {"models.install", "models.install_end", "models.convert", "models.convert_end",
                     "models.merge", "models.merge_end", "models.job_cancel"}


def test_audit_every_recorded_action_is_exercised_or_is_moderations(audit_office):
    from services.core import audit

    assert set(audit.ACTIONS) == (set(STAFF_ACTIONS) | {a for a in audit.ACTIONS if a.startswith("moderation.")}
                                  | MODEL_JOB_ACTIONS)


def test_audit_a_refused_action_writes_no_row(audit_office):
    client = audit_office.test_client()
    staff = audit_office.staff_headers
    target = _user(audit_office, client, staff)
    before = audit_count(audit_office)
    too_much = client.patch(f"/api/v1/admin/users/{target}", json={"tokens_delta": -10_000, "reason": "x"},
                            headers=staff)
    assert too_much.status_code == 422
    assert client.patch(f"/api/v1/admin/users/{target}", json={"tier": "plus", "reason": 5},
                        headers=staff).status_code == 422  # a reason is text
    models = client.get("/api/v1/admin/models", headers=staff).get_json()["items"]
    default = next(m["id"] for m in models if m.get("default"))
    assert client.patch(f"/api/v1/admin/models/{default}", json={"enabled": False, "reason": "x"},
                        headers=staff).status_code == 422  # the default cannot be disabled
    assert audit_count(audit_office) == before


def test_audit_a_row_of_a_deleted_user_still_reads_right(audit_office):
    client = audit_office.test_client()
    staff = audit_office.staff_headers
    whom = ApiUser(client, unique("gone"))
    assert client.patch(f"/api/v1/admin/users/{whom.data['id']}", json={"tokens_delta": 4, "reason": "prize"},
                        headers=staff).status_code == 200
    assert client.delete(f"/api/v1/admin/users/{whom.data['id']}?reason=asked+to+leave",
                         headers=staff).status_code == 204
    rows = audit_rows(audit_office, target=whom.username)
    assert [(r["action"], r["reason"], r["target"]["name"]) for r in rows] == [
        ("users.delete", "asked to leave", whom.username), ("tokens.grant", "prize", whom.username)]
    assert rows[1]["details"] == {"tokens": 4}


def test_audit_rows_are_append_only(audit_office):
    from extensions import db
    from models import AuditEntry

    client = audit_office.test_client()
    staff = audit_office.staff_headers
    for method in ("put", "patch", "delete", "post"):
        assert getattr(client, method)("/api/v1/admin/audit", headers=staff).status_code == 405
    with audit_office.app_context():
        entry = db.session.scalars(sa.select(AuditEntry)).first()
        entry.reason = "rewritten"
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.commit()
        db.session.rollback()
        db.session.delete(db.session.scalars(sa.select(AuditEntry)).first())
        with pytest.raises(RuntimeError, match="append-only"):
            db.session.flush()
        db.session.rollback()


@pytest.fixture(scope="module")
def audit_history(audit_office):
    """Two staff accounts acting on two users, plus the moderation rows the moderation
    helpers record themselves."""
    from extensions import db
    from models import User
    from services.core import audit

    client = audit_office.test_client()
    first = audit_office.staff_headers
    second_name = unique("deputy")
    second = make_staff(audit_office, second_name, AUDIT_STAFF_PASSWORD)
    tag = unique("hist")
    alice, bob = ApiUser(client, f"{tag}alice"), ApiUser(client, f"{tag}bob")
    for headers, user, delta, why in ((first, alice, 10, f"{tag} prize"), (second, alice, -2, f"{tag} oops"),
                                      (second, bob, 5, f"{tag} helper"), (first, bob, -1, f"{tag} typo")):
        assert client.patch(f"/api/v1/admin/users/{user.data['id']}", json={"tokens_delta": delta, "reason": why},
                            headers=headers).status_code == 200
    with audit_office.app_context():
        deputy = db.session.scalar(sa.select(User).where(User.username == second_name))
        for action in ("moderation.rule_add", "moderation.release", "moderation.report_hide"):
            audit.record(action, target_type="image", target_id=f"{tag}-{action}", reason=f"{tag} moderated",
                         actor=deputy)
        db.session.commit()
    return {"tag": tag, "first": audit_office.staff_name, "second": second_name, "alice": alice, "bob": bob}


def test_audit_filters_by_action_prefix_actor_target_text_and_dates(audit_office, audit_history):
    h = audit_history
    tag = h["tag"]
    mine = audit_rows(audit_office, q=tag)
    assert len(mine) == 7
    assert [r["created_at"] for r in mine] == sorted((r["created_at"] for r in mine), reverse=True)
    assert {r["reason"] for r in audit_rows(audit_office, q=tag, action="tokens.grant")} == {
        f"{tag} prize", f"{tag} helper"}
    assert len(audit_rows(audit_office, q=tag, action="tokens")) == 4
    assert len(audit_rows(audit_office, q=tag, action="tokens.*")) == 4
    assert len(audit_rows(audit_office, action="tok", q=tag)) == 0  # an area is a whole word
    moderation = audit_rows(audit_office, q=tag, action="moderation")
    assert {r["action"] for r in moderation} == {"moderation.rule_add", "moderation.release", "moderation.report_hide"}
    by_second = audit_rows(audit_office, q=tag, actor=h["second"].upper())
    assert len(by_second) == 5 and {r["actor"]["username"] for r in by_second} == {h["second"]}
    second_id = by_second[0]["actor"]["id"]
    assert len(audit_rows(audit_office, q=tag, actor=second_id)) == 5
    on_alice = audit_rows(audit_office, target=h["alice"].username)
    assert {r["reason"] for r in on_alice} == {f"{tag} prize", f"{tag} oops"}
    assert len(audit_rows(audit_office, target=h["alice"].data["id"])) == 2
    assert [r["reason"] for r in audit_rows(audit_office, q=f"{tag} OOPS")] == [f"{tag} oops"]
    today = datetime.now(timezone.utc).date()
    assert len(audit_rows(audit_office, q=tag, since=today.isoformat(), until=today.isoformat())) == 7
    assert audit_rows(audit_office, q=tag, since=(today + timedelta(days=1)).isoformat()) == []
    assert audit_rows(audit_office, q=tag, until=(today - timedelta(days=1)).isoformat()) == []
    assert len(audit_rows(audit_office, q=tag, since=(datetime.now(timezone.utc) - timedelta(hours=1))
                          .strftime("%Y-%m-%dT%H:%M:%SZ"))) == 7
    assert audit_rows(audit_office, q=f"{tag}%") == []  # % and _ are letters here, not wildcards


def test_audit_pages_and_refuses_bad_filters(audit_office, audit_history):
    client = audit_office.test_client()
    staff = audit_office.staff_headers
    tag = audit_history["tag"]
    seen = []
    for offset in range(0, 8, 3):
        page = client.get(f"/api/v1/admin/audit?q={tag}&limit=3&offset={offset}", headers=staff).get_json()
        assert page["total"] == 7 and page["limit"] == 3 and page["offset"] == offset
        seen += [r["id"] for r in page["items"]]
    assert len(seen) == len(set(seen)) == 7
    for query, field in (("since=yesterday", "since"), ("until=2026-13-40", "until"),
                         ("since=2026-05-02&until=2026-05-01", "until"), ("limit=0", "limit"),
                         ("q=" + "x" * 201, "q")):
        for path in ("/api/v1/admin/audit", "/api/v1/admin/audit.csv"):
            wrong = client.get(f"{path}?{query}", headers=staff)
            assert wrong.status_code == 422 or (path.endswith(".csv") and field == "limit"), (path, query)
            if wrong.status_code == 422:
                assert wrong.get_json()["error"]["field"] == field


def test_audit_csv_is_the_filter_as_a_download(audit_office, audit_history):
    client = audit_office.test_client()
    tag = audit_history["tag"]
    response = client.get(f"/api/v1/admin/audit.csv?q={tag}&action=tokens", headers=audit_office.staff_headers)
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="daydream-audit-')
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 4
    assert {(r["action"], r["target_name"], r["reason"]) for r in rows} == {
        ("tokens.grant", audit_history["alice"].username, f"{tag} prize"),
        ("tokens.revoke", audit_history["alice"].username, f"{tag} oops"),
        ("tokens.grant", audit_history["bob"].username, f"{tag} helper"),
        ("tokens.revoke", audit_history["bob"].username, f"{tag} typo")}
    assert {r["actor"] for r in rows} == {audit_history["first"], audit_history["second"]}
    assert all(r["when"].endswith("Z") and r["id"].isdigit() for r in rows)
    everything = client.get("/api/v1/admin/audit.csv", headers=audit_office.staff_headers).get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(everything)))) == audit_count(audit_office)


def test_audit_csv_quotes_what_a_spreadsheet_would_run(audit_office):
    client = audit_office.test_client()
    target = ApiUser(client, unique("sheet")).data["id"]
    assert client.patch(f"/api/v1/admin/users/{target}", json={"tokens_delta": 1, "reason": "=HYPERLINK(1)"},
                        headers=audit_office.staff_headers).status_code == 200
    text = client.get(f"/api/v1/admin/audit.csv?target={target}",
                      headers=audit_office.staff_headers).get_data(as_text=True)
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["reason"] == "'=HYPERLINK(1)"
    assert audit_rows(audit_office, target=target)[0]["reason"] == "=HYPERLINK(1)"  # the JSON is as given


def test_audit_page_lists_filters_pages_and_links_the_csv(audit_office, audit_history):
    browser = audit_office.test_client()
    sign_in(browser, audit_office.staff_name, AUDIT_STAFF_PASSWORD)
    tag = audit_history["tag"]
    page = browser.get(f"/admin/audit?q={tag}&action=moderation")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'aria-label="Staff"' in html and 'id="audit-filters"' in html
    assert html.count('class="audit-row"') == 3 and "moderation.release" in html and "tokens.grant</span>" not in html
    assert f'href="/api/v1/admin/audit.csv?action=moderation&amp;q={tag}"' in html or \
        f'href="/api/v1/admin/audit.csv?q={tag}&amp;action=moderation"' in html
    assert '<option value="moderation" selected>' in html
    assert "js/pages/admin-audit.js" in html and "<script>" not in html
    rows = browser.get(f"/admin/audit/rows?q={tag}&action=tokens&offset=0").get_data(as_text=True)
    assert rows.count('class="audit-row"') == 4 and f"{tag} prize" in rows and "<html" not in rows
    assert 'data-total="4"' in rows and "/api/v1/admin/audit.csv?" in rows
    later = browser.get(f"/admin/audit/rows?q={tag}&offset=5").get_data(as_text=True)
    assert later.count('class="audit-row"') == 2
    bad = browser.get("/admin/audit/rows?since=soon")
    assert bad.status_code == 200 and "must be a date" in bad.get_data(as_text=True)
    assert 'class="audit-row"' not in bad.get_data(as_text=True)
    csv_text = browser.get(f"/api/v1/admin/audit.csv?q={tag}&action=moderation").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(csv_text)))) == 3  # the link works with the session too


AUDIT_ROUTES = ["/api/v1/admin/audit", "/api/v1/admin/audit.csv", "/admin/audit", "/admin/audit/rows"]


@pytest.mark.parametrize("path", AUDIT_ROUTES)
def test_audit_is_refused_to_users_and_strangers(audit_office, path):
    client = audit_office.test_client()
    user = ApiUser(client, unique("nosy"))
    if path.startswith("/api/"):
        refused = client.get(path, headers=user.headers)
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
        anonymous = audit_office.test_client().get(path)
        assert anonymous.status_code == 401 and anonymous.get_json()["error"]["code"] == "not_signed_in"
    else:
        sign_in(client, user.username, user.password)
        assert client.get(path).status_code == 403
        anonymous = audit_office.test_client().get(path)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    browser = audit_office.test_client()
    sign_in(browser, user.username, user.password)
    assert browser.get(path).status_code == 403  # a session is refused as a token is
