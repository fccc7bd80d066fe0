"""The account page lists the user's ZIP archives from the server (issue 13): ready ones
with their size, image count, expiry and download link, ones being made, and expired
ones; nobody else's. The same list as JSON: GET /api/v1/archives."""
from __future__ import annotations

import re
from datetime import timedelta

from extensions import db
from models import Archive, User, utcnow
from tests.integration.helpers import ApiUser, sign_in


def add_archive(app, username: str, **values) -> str:
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.username == username))
        archive = Archive(user_id=user.id, scope="all", image_ids="[]", **values)
        db.session.add(archive)
        db.session.commit()
        archive_id = archive.id
        db.session.remove()
    return archive_id


def rows_of(html: str) -> dict[str, str]:
    """archive id → the text of its row in account/_archives.html."""
    found = re.findall(r'<tr class="archive-row" data-archive-id="([^"]+)" data-state="[^"]+">(.*?)</tr>', html, re.S)
    return {archive_id: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)) for archive_id, row in found}


def test_the_account_page_lists_ready_building_and_expired_archives_of_this_user_only(idle_app, idle_client):
    me = ApiUser(idle_client, "archivist")
    other = ApiUser(idle_client, "stranger")
    now = utcnow()
    ready = add_archive(idle_app, me.username, state="ready", image_count=3, done_count=3, size_bytes=2_500_000,
                        finished_at=now, expires_at=now + timedelta(hours=24))
    building = add_archive(idle_app, me.username, state="building", image_count=5, done_count=2)
    expired = add_archive(idle_app, me.username, state="expired", image_count=4, done_count=4,
                          expires_at=now - timedelta(hours=1))
    theirs = add_archive(idle_app, other.username, state="ready", image_count=1, done_count=1, size_bytes=10,
                         expires_at=now + timedelta(hours=24))

    sign_in(idle_client, me.username, me.password)
    page = idle_client.get("/account").get_data(as_text=True)
    partial = idle_client.get("/account/archives")
    assert partial.status_code == 200
    for html in (page, partial.get_data(as_text=True)):
        rows = rows_of(html)
        assert set(rows) == {ready, building, expired}, rows
        assert theirs not in html
        assert "Ready" in rows[ready] and "3" in rows[ready] and "2.5 MB" in rows[ready]
        assert f'href="/api/v1/archives/{ready}/download"' in html
        assert "Being made (2 of 5)" in rows[building]
        assert "Expired" in rows[expired] and "deleted" in rows[expired]
        assert f"/api/v1/archives/{building}/download" not in html
        assert f"/api/v1/archives/{expired}/download" not in html
        # Newest first.
        assert list(rows) == [expired, building, ready]

    listed = me.get("/api/v1/archives").get_json()
    assert {a["id"]: a["state"] for a in listed["items"]} == {ready: "ready", building: "building", expired: "expired"}
    assert listed["total"] == 3


def test_the_archives_partial_needs_a_sign_in(idle_client):
    response = idle_client.get("/account/archives")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
