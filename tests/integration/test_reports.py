"""Reports of showcase pictures (services/moderation/reports.py): a signed-in user reports
a picture the showcase shows, the report waits in the staff list, and staff hide the
picture in one call (it leaves the public showcase) or dismiss the report; each decision
is one audit row. Visitors cannot report; one open report per user and picture."""
from __future__ import annotations

import uuid

import pytest

from tests.helpers import image_bytes, unique
from tests.integration.helpers import ApiUser, add_image, make_staff, sign_in, user_row

REPORTS = "/api/v1/admin/moderation/reports"


@pytest.fixture(scope="module")
def reports_staff(stack) -> dict:
    return make_staff(stack, unique("warden"))


def reports_featured_image(app, staff: dict) -> str:
    """A user's public image that staff featured: its showcase id."""
    owner = ApiUser(app.test_client(), unique("artist"))
    add_image(app, user_row(app, owner.username).id)
    image_id = owner.get("/api/v1/images").get_json()["items"][0]["id"]
    assert owner.client.patch(f"/api/v1/images/{image_id}", json={"public": True},
                              headers=owner.headers).status_code == 200
    featured = app.test_client().post("/api/v1/showcase", json={"image_id": image_id}, headers=staff)
    assert featured.status_code == 201, featured.get_json()
    return image_id


def reports_folder_item(app) -> str:
    folder = app.config["SHOWCASE_PATH"]
    folder.mkdir(parents=True, exist_ok=True)
    name = f"reported-{uuid.uuid4().hex[:6]}.png"
    (folder / name).write_bytes(image_bytes((40, 30), (30, 160, 90)))
    items = app.test_client().get("/api/v1/showcase?limit=200").get_json()["items"]
    return next(i["id"] for i in items if i.get("file") == name)


def reports_public_ids(client) -> set[str]:
    return {item["id"] for item in client.get("/api/v1/showcase?limit=200").get_json()["items"]}


def reports_audit(client, staff: dict, item_id: str) -> list[dict]:
    return client.get(f"/api/v1/admin/audit?target={item_id}&action=moderation",
                      headers=staff).get_json()["items"]


def test_reports_a_user_reports_and_staff_hide_the_picture_in_one_call(app, client, make_user, reports_staff):
    item_id = reports_featured_image(app, reports_staff)
    assert item_id in reports_public_ids(client)
    alice, bob = make_user("alice"), make_user("bob")

    # Visitors are asked to sign in; unknown pictures are a 404; a bad reason a 422.
    assert app.test_client().post(f"/api/v1/showcase/{item_id}/report", json={}).status_code == 401
    assert alice.post("/api/v1/showcase/nothing-here/report", json={}).status_code == 404
    assert alice.post(f"/api/v1/showcase/{item_id}/report", json={"reason": 5}).status_code == 422
    assert alice.post(f"/api/v1/showcase/{item_id}/report", json={"reason": "x" * 501}).status_code == 422

    first = alice.post(f"/api/v1/showcase/{item_id}/report", json={"reason": "  not for a school  "})
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["state"] == "open" and first.get_json()["reason"] == "not for a school"
    again = alice.post(f"/api/v1/showcase/{item_id}/report", json={"reason": "again"})
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]  # one open report each
    assert bob.post(f"/api/v1/showcase/{item_id}/report").status_code == 201  # no body: no reason

    listed = [r for r in client.get(f"{REPORTS}?limit=200", headers=reports_staff).get_json()["items"]
              if r["item_id"] == item_id]
    assert sorted(r["reporter"]["username"] for r in listed) == sorted([alice.username, bob.username])
    assert all(r["open_reports"] == 2 and r["item"]["thumbnail_url"].endswith(f"/{item_id}/thumbnail")
               for r in listed)
    assert {r["reason"] for r in listed} == {"not for a school", ""}

    done = client.post(f"{REPORTS}/{first.get_json()['id']}", json={"action": "hide", "reason": "agreed"},
                       headers=reports_staff)
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["resolved"] == 2 and done.get_json()["action"] == "hide"
    # Gone from the public showcase (listing and files), both reports closed.
    assert item_id not in reports_public_ids(app.test_client())
    assert app.test_client().get(f"/api/v1/showcase/{item_id}/full").status_code == 404
    assert not [r for r in client.get(REPORTS, headers=reports_staff).get_json()["items"] if r["item_id"] == item_id]
    hidden = [r for r in client.get(f"{REPORTS}?state=hidden&limit=200", headers=reports_staff).get_json()["items"]
              if r["item_id"] == item_id]
    assert len(hidden) == 2
    # One audit row, by the staff member, naming the picture and the reports.
    [row] = reports_audit(client, reports_staff, item_id)
    assert row["action"] == "moderation.report_hide" and row["reason"] == "agreed"
    assert row["target"]["type"] == "image" and len(row["details"]["reports"]) == 2
    # Deciding again is a conflict; a hidden picture cannot be reported.
    assert client.post(f"{REPORTS}/{first.get_json()['id']}", json={"action": "dismiss"},
                       headers=reports_staff).status_code == 409
    assert alice.post(f"/api/v1/showcase/{item_id}/report", json={}).status_code == 404


def test_reports_staff_dismiss_a_report_and_the_picture_stays(app, client, make_user, reports_staff):
    item_id = reports_folder_item(app)
    carol = make_user("carol")
    report = carol.post(f"/api/v1/showcase/{item_id}/report", json={"reason": "odd"}).get_json()
    for bad in ({"action": "delete"}, {}, {"action": "hide", "reason": 3}):
        answer = client.post(f"{REPORTS}/{report['id']}", json=bad, headers=reports_staff)
        assert answer.status_code == 422, (bad, answer.get_json())
    assert client.post(f"{REPORTS}/999999", json={"action": "dismiss"}, headers=reports_staff).status_code == 404
    assert client.get(f"{REPORTS}?state=bogus", headers=reports_staff).status_code == 422
    answer = client.post(f"{REPORTS}/{report['id']}", json={"action": "dismiss"}, headers=reports_staff)
    assert answer.status_code == 200 and answer.get_json()["resolved"] == 1
    assert item_id in reports_public_ids(client)
    [row] = reports_audit(client, reports_staff, item_id)
    assert row["action"] == "moderation.report_dismiss" and row["target"]["type"] == "showcase_file"
    assert row["reason"] == "odd"  # no reason of staff's own: the report's is kept
    # Dismissed: the user may report it again, as a new report.
    assert carol.post(f"/api/v1/showcase/{item_id}/report", json={}).status_code == 201


def test_reports_are_rate_limited_per_user(fresh):
    app = fresh()
    app.config["REPORT_LIMIT"] = "2 per hour"
    items = [reports_folder_item(app) for _ in range(3)]
    user = ApiUser(app.test_client(), unique("eager"))
    assert [user.post(f"/api/v1/showcase/{i}/report", json={}).status_code for i in items[:2]] == [201, 201]
    refused = user.post(f"/api/v1/showcase/{items[2]}/report", json={})
    assert refused.status_code == 429 and refused.headers["Retry-After"]
    assert refused.get_json()["error"]["code"] == "rate_limited"
    # The open reports answer as before (they add nothing), and another user is not limited.
    assert user.post(f"/api/v1/showcase/{items[0]}/report", json={}).status_code == 200
    assert ApiUser(app.test_client(), unique("calm")).post(f"/api/v1/showcase/{items[2]}/report",
                                                          json={}).status_code == 201


def test_reports_the_showcase_offers_signed_in_users_a_report_button(app, make_user):
    reports_folder_item(app)
    assert 'data-action="report"' not in app.test_client().get("/gallery").get_data(as_text=True)
    user = make_user("viewer")
    browser = app.test_client()
    sign_in(browser, user.username, user.password)
    page = browser.get("/gallery").get_data(as_text=True)
    assert 'data-action="report"' in page
