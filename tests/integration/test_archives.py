"""ZIP archives of a selection, a board and a whole account, built by the real archive
worker (qarchiver.py) on its own queue: contents, metadata, ownership, expiry."""
from __future__ import annotations

import csv
import io
import zipfile
from datetime import timedelta

import pytest

from services.library import imaging
from tests.helpers import wait_for


def make_images(user, samples: int = 3, **params) -> list[dict]:
    task = user.submit(samples=samples, steps=2, **params).get_json()
    done = user.wait_task(task["id"])
    assert done["state"] == "done", done
    return done["images"]


def wait_archive(user, archive_id: str, states=("ready", "failed"), timeout: float = 60) -> dict:
    def finished():
        archive = user.get(f"/api/v1/archives/{archive_id}").get_json()
        return archive if archive["state"] in states else None

    return wait_for(finished, timeout, interval=0.1, message=f"archive {archive_id}")


def ask(user, **body) -> dict:
    response = user.post("/api/v1/archives", json=body)
    assert response.status_code == 202, response.get_json()
    archive = response.get_json()
    assert archive["state"] in ("queued", "building", "ready")
    return archive


def download(user, archive: dict) -> zipfile.ZipFile:
    response = user.get(archive["url"])
    assert response.status_code == 200, response.get_json()
    assert response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    return zipfile.ZipFile(io.BytesIO(response.data))


def build(user, **body) -> tuple[dict, zipfile.ZipFile]:
    archive = wait_archive(user, ask(user, **body)["id"])
    assert archive["state"] == "ready", archive
    return archive, download(user, archive)


def test_a_selection_archive_holds_exactly_the_selection_with_metadata_that_round_trips(make_user):
    user = make_user("zipper")
    images = make_images(user, samples=3, prompt="a red kite over the dunes", seed=1234)
    upload = user.post("/api/v1/uploads", data={"file": (
        io.BytesIO(user.get(images[0]["url"]).data), "mine.png")},
        content_type="multipart/form-data").get_json()
    chosen = [images[0], images[2], upload]

    archive, zf = build(user, image_ids=[i["id"] for i in chosen])

    assert archive["scope"] == "selection" and archive["image_count"] == 3
    assert archive["progress"] == {"done": 3, "total": 3}
    assert archive["expires_at"] and archive["size_bytes"] > 0
    names = {f"{images[0]['task_id']}_0.png": images[0], f"{images[2]['task_id']}_2.png": images[2],
             f"upload_{upload['id']}.png": upload}
    assert sorted(zf.namelist()) == sorted([*names, "manifest.csv"])
    for name, image in names.items():
        info = zf.getinfo(name)
        assert info.compress_type == zipfile.ZIP_STORED  # stored, never recompressed
        data = zf.read(name)
        assert data == user.get(image["url"]).data  # the very file, byte for byte
        metadata = imaging.read_metadata(data)
        assert metadata == user.get(image["metadata_url"]).get_json()
        if image["kind"] == "result":
            assert metadata["prompt"] == "a red kite over the dunes"
            assert metadata["seed"] == image["seed"]
    rows = list(csv.DictReader(io.StringIO(zf.read("manifest.csv").decode())))
    assert {row["file"] for row in rows} == set(names)
    by_file = {row["file"]: row for row in rows}
    kite = by_file[f"{images[0]['task_id']}_0.png"]
    assert kite["prompt"] == "a red kite over the dunes" and kite["image_id"] == images[0]["id"]
    assert kite["steps"] == "2" and kite["width"] == "64" and kite["seed"] == str(images[0]["seed"])


def test_a_board_archive_and_an_account_archive(make_user):
    user = make_user("boarder")
    first = make_images(user, samples=2, prompt="first")
    second = make_images(user, samples=2, prompt="second")
    board = user.post("/api/v1/boards", json={"name": "keepers"})
    assert board.status_code == 201, board.get_json()
    board = board.get_json()
    moved = user.post("/api/v1/images/bulk", json={"ids": [first[1]["id"], second[0]["id"]],
                                                   "action": "move", "board_id": board["id"]})
    assert moved.status_code == 200, moved.get_json()

    archive, zf = build(user, board_id=board["id"])
    assert archive["scope"] == "board" and archive["board_id"] == board["id"]
    assert sorted(zf.namelist()) == sorted([f"{first[1]['task_id']}_1.png",
                                            f"{second[0]['task_id']}_0.png", "manifest.csv"])

    archive, zf = build(user, all=True)
    assert archive["scope"] == "all" and archive["image_count"] == 4
    assert len([n for n in zf.namelist() if n.endswith(".png")]) == 4

    listed = user.get("/api/v1/archives").get_json()
    assert listed["total"] == 2 and listed["items"][0]["id"] == archive["id"]


@pytest.mark.parametrize("body, field", [
    ({}, "image_ids"),
    ({"image_ids": [], "all": True}, "image_ids"),
    ({"image_ids": "abc"}, "image_ids"),
    ({"image_ids": []}, "image_ids"),
    ({"all": "yes"}, "all"),
])
def test_an_archive_request_must_say_what_to_archive(make_user, body, field):
    user = make_user("vague")
    response = user.post("/api/v1/archives", json=body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["error"]["field"] == field


def test_an_empty_account_has_nothing_to_archive(make_user):
    response = make_user("empty").post("/api/v1/archives", json={"all": True})
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "no_images"


@pytest.fixture(scope="module")
def two_users_and_an_archive(stack):
    from tests.integration.helpers import ApiUser

    client = stack.test_client()
    owner, other = ApiUser(client, "archowner"), ApiUser(client, "archother")
    images = make_images(owner, samples=1)
    board = owner.post("/api/v1/boards", json={"name": "mine"}).get_json()
    archive = wait_archive(owner, ask(owner, image_ids=[images[0]["id"]])["id"])
    return owner, other, archive, images, board


@pytest.mark.parametrize("method, path", [
    ("get", "/api/v1/archives/{id}"),
    ("get", "/api/v1/archives/{id}/download"),
    ("delete", "/api/v1/archives/{id}"),
])
def test_another_users_archive_is_a_404_in_every_route(two_users_and_an_archive, method, path):
    owner, other, archive, _images, _board = two_users_and_an_archive
    url = path.format(id=archive["id"])
    response = getattr(other.client, method)(url, headers=other.headers)
    assert response.status_code == 404, response.get_json()
    assert response.get_json()["error"]["code"] == "not_found"
    assert owner.get(f"/api/v1/archives/{archive['id']}").status_code == 200  # still there
    assert other.get("/api/v1/archives").get_json()["total"] == 0


@pytest.mark.parametrize("key", ["image_ids", "board_id"])
def test_archiving_another_users_images_or_board_is_a_404(two_users_and_an_archive, key):
    _owner, other, _archive, images, board = two_users_and_an_archive
    body = {"image_ids": [images[0]["id"]]} if key == "image_ids" else {"board_id": board["id"]}
    response = other.post("/api/v1/archives", json=body)
    assert response.status_code == 404, response.get_json()


def test_a_signed_out_client_gets_401(client):
    assert client.get("/api/v1/archives").status_code == 401
    assert client.post("/api/v1/archives", json={"all": True}).status_code == 401


def test_expired_archives_are_removed_by_the_archive_worker_and_the_cli(app, make_user):
    from extensions import db
    from models import Archive, utcnow
    from services.library import archives

    user = make_user("expiring")
    images = make_images(user, samples=2)
    first = wait_archive(user, ask(user, image_ids=[images[0]["id"]])["id"])
    second = wait_archive(user, ask(user, image_ids=[images[1]["id"]])["id"])
    with app.app_context():
        paths = {a: archives.path_of(db.session.get(Archive, a)) for a in (first["id"], second["id"])}
        assert all(p.exists() for p in paths.values())
        db.session.get(Archive, first["id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        db.session.remove()

    # The archive worker deletes what has expired after each job it runs.
    ask(user, all=True)
    wait_for(lambda: not paths[first["id"]].exists(), 30, message="the expired archive's file to go")
    gone = user.get(f"/api/v1/archives/{first['id']}").get_json()
    assert gone["state"] == "expired" and gone["url"] is None
    response = user.get(f"/api/v1/archives/{first['id']}/download")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "archive_expired"
    assert paths[second["id"]].exists()  # not due yet

    # And so does the CLI.
    with app.app_context():
        db.session.get(Archive, second["id"]).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        db.session.remove()
    result = app.test_cli_runner().invoke(args=["expire-archives"])
    assert result.exit_code == 0, result.output
    assert "expired" in result.output
    assert not paths[second["id"]].exists()
    assert user.get(f"/api/v1/archives/{second['id']}").get_json()["state"] == "expired"
